"""The engine seam: what every generation engine takes and gives back.

An engine answers `GenRequest`s (one turn of one choice of one question: the messages so far,
FastChat's sampling for it, the stop tokens) with `GenResult`s (the turn's cleaned text). The
driver (driver.py) owns the task: it turns bench questions into requests, submits a question's
turn 2 as soon as its own turn 1 comes back, and writes FastChat's answer files. Engines own
the model: tokenizing with its chat template, scheduling, sampling. Two engines today, each a
folder with its entry points in registry.py: `hf` (hf/engine.py, our continuous batcher on
transformers) and `vllm` (vllm/engine.py).

FastChat's rules kept by every engine: greedy below temperature 1e-4, a seed per choice
(the choice index), and its post-processing (`clean_output`).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from mt_bench_task.core.ids import QuestionId
from mt_bench_task.core.thoughts import ThinkTags, prompt_opens, template_tags

GREEDY_BELOW = 1e-4  # FastChat: do_sample = temperature >= 1e-4


@dataclass(frozen=True)
class GenRequest:
    """One turn to generate. `messages` ends with this turn's user message."""

    question_id: QuestionId  # as the bench writes it (int or string)
    turn: int  # 0-based
    choice: int
    messages: tuple[tuple[str, str], ...]  # (role, content) pairs
    temperature: float  # FastChat's per-category temperature; greedy below GREEDY_BELOW
    seed: int  # FastChat: the choice index
    max_new_tokens: int
    stop_token_ids: frozenset[int]
    final: bool  # no later turn continues this conversation (an engine may drop what it kept)

    @property
    def key(self) -> tuple[QuestionId, int, int]:
        return self.question_id, self.choice, self.turn

    @property
    def greedy(self) -> bool:
        return self.temperature < GREEDY_BELOW

    def chat(self) -> list[dict[str, str]]:
        """The messages as a chat template wants them."""
        return [{"role": role, "content": content} for role, content in self.messages]


@dataclass(frozen=True)
class GenResult:
    request: GenRequest
    text: str  # cleaned (clean_output), thought included; FastChat's "ERROR" when the engine failed
    tokens: int  # generated tokens before the stop token
    finish_reason: str | None = None  # "stop" | "length" (the token limit); None: failed/unknown


class Engine(Protocol):
    """Requests in, finished results out, in any order."""

    name: str

    @property
    def stop_token_ids(self) -> frozenset[int]:
        """The model's stop tokens (its generation config's eos ids and the tokenizer's)."""
        ...

    @property
    def busy(self) -> bool:
        """Submitted requests are not all finished yet."""
        ...

    def submit(self, requests: Sequence[GenRequest]) -> None: ...

    def step(self) -> list[GenResult]:
        """Advance (one decode step or so); the requests that finished in it."""
        ...

    def close(self) -> None: ...


def stop_token_ids(generation_config: Any, tok: Any) -> frozenset[int]:
    """The generation config's eos ids (one or a list) and the tokenizer's eos id."""
    eos = getattr(generation_config, "eos_token_id", None)
    ids = set(eos if isinstance(eos, list) else [eos]) | {tok.eos_token_id}
    return frozenset(i for i in ids if i is not None)


def prompt_ids(tok: Any, request: GenRequest) -> list[int]:
    """The request's prompt through the model's chat template (add_generation_prompt)."""
    return chat_prompt_ids(tok, request.chat())


def chat_prompt_ids(tok: Any, messages: list[dict[str, str]]) -> list[int]:
    text = tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    return list(tok(text, add_special_tokens=False)["input_ids"])


def clean_output(tok: Any, ids: Sequence[int], stop_ids: frozenset[int] | set[int],
                 keep: Sequence[str] = ()) -> tuple[str, int]:
    """FastChat's post-processing: cut at the first stop token, decode, remove special-token
    strings (but not those in `keep`: thought tags some tokenizers make special), strip.
    Returns (text, tokens before the cut)."""
    cut = next((n for n, t in enumerate(ids) if t in stop_ids), len(ids))
    text = tok.decode(list(ids[:cut]), spaces_between_special_tokens=False)
    for special in tok.special_tokens_map.values():
        for s in special if isinstance(special, list) else [special]:
            if s not in keep:
                text = text.replace(s, "")
    return text.strip(), cut


def gen_result(tok: Any, r: GenRequest, ids: Sequence[int], tags: ThinkTags,
               finish_reason: str | None = None) -> GenResult:
    """An engine's finished token ids as the driver's result: cleaned text, tokens, and the
    finish reason (the engine's, else "length" when no stop token came within the budget)."""
    text, cut = clean_output(tok, ids, r.stop_token_ids, tags.strings)
    if finish_reason is None:
        length = cut == len(ids) and len(ids) >= r.max_new_tokens
        finish_reason = "length" if length else "stop"
    return GenResult(r, text, cut, finish_reason)


def model_think_tags(tok: Any, flag: tuple[str, str] | None = None) -> ThinkTags:
    """The model's thought tags (`--think-tags`, else its chat template's), and whether its
    generation prompt opens the thought (DeepSeek-R1's template ends with `<think>`)."""
    tags = template_tags(getattr(tok, "chat_template", None), flag)
    if not tags.thinks:
        return tags
    from jinja2 import TemplateError

    try:
        prompt = tok.apply_chat_template([{"role": "user", "content": "?"}],
                                         add_generation_prompt=True, tokenize=False)
    except (TemplateError, ValueError, TypeError, KeyError):  # wants more than one message
        return tags
    return prompt_opens(tags, str(prompt))
