"""The one rule that splits a model's completion into its thought and its answer.

Thinking models (Qwen3, DeepSeek-R1 distills, Phi-4-reasoning, SmolLM3, ...) write
`<think>…</think>` before the answer, or a server with a reasoning parser (vLLM's
`--reasoning-parser`, DeepSeek's API) returns the thought in a field of its own
(`reasoning_content`; newer vLLM and OpenRouter: `reasoning`) and the answer in `content`.
Every engine (hf, vLLM: engine/driver.py) and gen-api (engine/api.py) split here; the judge's
prompts strip here too (`strip_thoughts`, core/prompts.py), so an answer file written by another
tool with thoughts inline in `turns` never shows a judge a thought.

Rules (the peers': lighteval's `remove_reasoning_tags`, lm-evaluation-harness's `think_end_token`):
every `OPEN…CLOSE` block is a thought; text before a CLOSE with no OPEN is a thought too (the
chat template opened it in the prompt, as DeepSeek-R1's does); an OPEN that never closes is a
thought cut off (by the token limit, or the model stopped): the answer is what precedes it,
normally "" — never the thought (lighteval #790, #869).
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from mt_bench_task.core.errors import DataError
from mt_bench_task.core.types import Answer

DEFAULT_TAGS = ("<think>", "</think>")
# tag pairs chat templates declare (Qwen3, R1, Phi-4-reasoning, SmolLM3; Seed-OSS; Magistral)
KNOWN_TAGS = (DEFAULT_TAGS, ("<seed:think>", "</seed:think>"), ("[THINK]", "[/THINK]"))
# thinking budget added to the answer budget (one total per request; docs/thinking-models.md)
DEFAULT_THINKING_TOKENS = 8192
REASONING_FIELDS = ("reasoning_content", "reasoning")  # vLLM/DeepSeek; newer vLLM/OpenRouter


@dataclass(frozen=True)
class ThinkTags:
    """How a model marks its thought. `thinks`: known to think (its chat template declares the
    tags, or `--think-tags` said so): it gets the thinking budget. `opened`: its generation
    prompt already opens the thought, so a completion starts inside it."""

    open: str = DEFAULT_TAGS[0]
    close: str = DEFAULT_TAGS[1]
    thinks: bool = False
    opened: bool = False

    @property
    def strings(self) -> tuple[str, str]:
        return self.open, self.close


@dataclass(frozen=True)
class Split:
    """A completion as answer and thought. `thought` None: the model did not think."""

    answer: str
    thought: str | None = None
    closed: bool = True  # False: the thought never closed (the answer is what came before it)


def split_text(text: str, tags: ThinkTags = ThinkTags()) -> Split:
    """Inline thoughts out of `text` (FastChat's cleaned output, or a server's `content`)."""
    open_, close = tags.strings
    rest = (open_ + text) if tags.opened and not text.lstrip().startswith(open_) else text
    thoughts: list[str] = []
    answer: list[str] = []
    while True:
        o, c = rest.find(open_), rest.find(close)
        if c != -1 and (o == -1 or c < o):  # a close with no open: the prompt opened it
            thoughts.append(rest[:c].strip())
            rest = rest[c + len(close):]
            continue
        if o == -1:
            answer.append(rest)
            break
        answer.append(rest[:o])
        c = rest.find(close, o + len(open_))
        if c == -1:  # never closed: cut off; what follows the tag is thought, not answer
            thoughts.append(rest[o + len(open_):].strip())
            return Split("".join(answer).strip(), "\n\n".join(thoughts), closed=False)
        thoughts.append(rest[o + len(open_):c].strip())
        rest = rest[c + len(close):]
    if not thoughts:
        return Split(text)  # no tags: the text as it was, byte for byte
    # an empty block (`<think>\n\n</think>`: Qwen3 with thinking off) is no thought
    return Split("".join(answer).strip(), "\n\n".join(t for t in thoughts if t) or None)


def split_reply(content: str | None, reasoning: str | None, tags: ThinkTags = ThinkTags()
                ) -> Split:
    """An OpenAI-compatible reply: the reasoning field (if any) and inline thoughts in content.
    A reply whose thought is in the field and whose content is empty is a thought without an
    answer (vLLM's parser puts an unclosed thought there with content null)."""
    inline = split_text(content or "", tags)
    if not reasoning:
        return inline
    parts = [reasoning.strip()] + ([inline.thought] if inline.thought else [])
    return Split(inline.answer, "\n\n".join(parts), closed=inline.closed and bool(inline.answer))


def strip_thoughts(text: str) -> str:
    """What a judge sees of an answer turn: the turn less any inline thought in a known tag pair
    (a safety net for answer files of other tools). Text without tags is returned unchanged,
    byte for byte (FastChat's prompts)."""
    for pair in KNOWN_TAGS:
        if pair[0] in text or pair[1] in text:
            text = split_text(text, ThinkTags(*pair)).answer
    return text


def check_think_tags(tags: tuple[str, str] | None) -> None:
    """--think-tags OPEN CLOSE: two different non-empty strings (DataError otherwise)."""
    if tags is None:
        return
    if len(tags) != 2 or not all(t.strip() for t in tags) or tags[0] == tags[1]:
        raise DataError(f"--think-tags needs two different non-empty tags, got {list(tags)}")


def template_tags(chat_template: str | None, flag: tuple[str, str] | None = None) -> ThinkTags:
    """The model's tags: `flag` (--think-tags OPEN CLOSE) first, else the first known pair its
    chat template names (both tags), else the default pair with `thinks` False. `opened` is
    read off the template's generation prompt by `prompt_opens` (the engines render it)."""
    if flag is not None:
        return ThinkTags(flag[0], flag[1], thinks=True)
    for open_, close in KNOWN_TAGS:
        if chat_template and open_ in chat_template and close in chat_template:
            return ThinkTags(open_, close, thinks=True)
    return ThinkTags()


def prompt_opens(tags: ThinkTags, generation_prompt: str) -> ThinkTags:
    """`tags` with `opened` set when the rendered generation prompt ends inside a thought."""
    tail = generation_prompt.rstrip()
    opened = tail.rfind(tags.open) > tail.rfind(tags.close) and tail.rfind(tags.open) != -1
    return ThinkTags(tags.open, tags.close, tags.thinks or opened, opened)


@dataclass(frozen=True)
class AnswerCounts:
    """One model's answer turns (every choice): how many thought, how many thoughts were cut
    off (a thought and an empty answer), how many the token limit cut (finish "length")."""

    turns: int = 0
    thought: int = 0
    thoughts_cut: int = 0
    length: int = 0

    def note(self, model: str) -> str | None:
        """The line show, the report and the card print; None when nothing thought or was cut."""
        if not (self.thought or self.length):
            return None
        return (f"{model}: {self.thought} of {self.turns} turns thought, {self.thoughts_cut} "
                f"thought(s) cut off (empty answers), {self.length} turn(s) cut by the token limit")


def count_answers(answers: Iterable[Answer]) -> AnswerCounts:
    turns = thought = cut = length = 0
    for a in answers:
        for c in a.choices:
            turns += len(c.turns)
            thought += sum(r is not None for r in c.reasoning)
            cut += len(c.thoughts_cut)
            length += sum(f == "length" for f in c.finish_reasons)
    return AnswerCounts(turns, thought, cut, length)
