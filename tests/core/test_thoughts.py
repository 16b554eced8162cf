"""core/thoughts.py: the one rule that splits a completion into thought and answer, the answer
record's thoughts beside `turns`, and the judge prompt that never holds a thought."""
from __future__ import annotations

import json

import pytest

from mt_bench_task.core.bench import load_bench
from mt_bench_task.core.prompts import build_matches, user_prompts
from mt_bench_task.core.thoughts import (
    ThinkTags,
    count_answers,
    prompt_opens,
    split_reply,
    split_text,
    strip_thoughts,
    template_tags,
)
from mt_bench_task.core.types import Answer, Choice

R1 = ThinkTags(thinks=True, opened=True)  # DeepSeek-R1's template opens the thought in the prompt

# (completion, tags, answer, thought, closed)
SPLITS = [
    ("<think>plan it</think>\n\nThe answer.", ThinkTags(), "The answer.", "plan it", True),
    ("plan it</think>The answer.", ThinkTags(), "The answer.", "plan it", True),  # opened by prompt
    ("plan it</think>\n\nThe answer.", R1, "The answer.", "plan it", True),
    ("plan it, and on and on", R1, "", "plan it, and on and on", False),  # cut inside the thought
    ("<think>plan it, and on", ThinkTags(), "", "plan it, and on", False),
    ("<think>\n\n</think>\n\nNo thinking.", ThinkTags(), "No thinking.", None, True),  # Qwen3 off
    ("<seed:think>s</seed:think>A", ThinkTags("<seed:think>", "</seed:think>"), "A", "s", True),
    ("[THINK]t[/THINK]A", ThinkTags("[THINK]", "[/THINK]"), "A", "t", True),
    ("<think>a</think>mid<think>b</think>end", ThinkTags(), "midend", "a\n\nb", True),
]


@pytest.mark.parametrize("text,tags,answer,thought,closed", SPLITS)
def test_split_text(text: str, tags: ThinkTags, answer: str, thought: str | None,
                    closed: bool) -> None:
    assert split_text(text, tags) == (split := split_text(text, tags))
    assert (split.answer, split.thought, split.closed) == (answer, thought, closed)


@pytest.mark.parametrize("text", ["  An answer with no tags.\n", "a < think > b", "[[8]]", ""])
def test_text_without_tags_is_kept_byte_for_byte(text: str) -> None:
    assert split_text(text).answer == text and split_text(text).thought is None
    assert strip_thoughts(text) == text


def test_split_reply_reads_the_reasoning_field_and_inline_tags() -> None:
    assert split_reply("Answer.", "thought") == split_text("<think>thought</think>Answer.")
    cut = split_reply(None, "a thought the limit cut")  # vLLM's parser: content null
    assert (cut.answer, cut.thought, cut.closed) == ("", "a thought the limit cut", False)
    both = split_reply("<think>inline</think>A", "field")
    assert (both.answer, both.thought) == ("A", "field\n\ninline")
    assert split_reply("plain", None).thought is None


def test_template_tags_and_opened_prompt() -> None:
    qwen3 = "{%- if '</think>' in content %}{{ '<think>\\n' }}{%- endif %}"
    assert template_tags(qwen3) == ThinkTags(thinks=True)
    assert template_tags("{{ messages }}") == ThinkTags()  # no tags named: not known to think
    assert template_tags("x [THINK] y [/THINK]").strings == ("[THINK]", "[/THINK]")
    assert template_tags(None, ("<r>", "</r>")) == ThinkTags("<r>", "</r>", thinks=True)
    assert prompt_opens(ThinkTags(thinks=True), "<|Assistant|><think>\n").opened
    assert not prompt_opens(ThinkTags(thinks=True), "<think></think>\n<|Assistant|>").opened


def _answer(turns: list[str], reasoning=(), finish=()) -> Answer:  # type: ignore[no-untyped-def]
    return Answer(81, "id", "m", [Choice.with_thoughts(0, turns, reasoning, finish)], 1.0)


def test_record_keeps_fastchats_layout_with_thoughts_beside_turns() -> None:
    a = _answer(["A1", ""], ["t1", "cut thought"], ["stop", "length"])
    d = json.loads(a.to_json())
    assert list(d) == ["question_id", "answer_id", "model_id", "choices", "tstamp"]
    assert list(d["choices"][0]) == ["index", "turns", "reasoning", "finish_reasons"]
    assert d["choices"][0]["turns"] == ["A1", ""]  # what FastChat's judge reads: answers only
    back = Answer.from_dict(d)
    assert back.to_json() == a.to_json()  # key order stable through our readers
    assert back.choices[0].reasoning == ["t1", "cut thought"]
    assert back.choices[0].thoughts_cut == [1]
    assert count_answers([back]) == count_answers([a])
    assert count_answers([a]).note("m") == ("m: 2 of 2 turns thought, 1 thought(s) cut off (empty "
                                            "answers), 1 turn(s) cut by the token limit")


def test_old_records_load_and_say_nothing() -> None:
    old = {"question_id": 81, "choices": [{"index": 0, "turns": ["a", "b"]}]}
    a = Answer.from_dict(old)
    assert a.choices[0].reasoning == [None, None] and a.choices[0].finish_reasons == [None, None]
    assert json.loads(a.to_json()) == old and count_answers([a]).note("m") is None
    no_thought = _answer(["a", "b"], [None, None], ["stop", "stop"])
    assert list(no_thought.choices[0].to_dict()) == ["index", "turns", "finish_reasons"]


def test_a_bad_reasoning_list_is_refused() -> None:
    with pytest.raises(ValueError, match=r"choices\[0\].reasoning"):
        Answer.from_dict({"question_id": 1, "choices": [{"turns": ["a"], "reasoning": "t"}]})


@pytest.mark.parametrize("mode", ["single", "pairwise-all"])
def test_judge_prompts_never_hold_a_thought_from_another_tools_file(mode: str) -> None:
    """FastChat answer files from elsewhere may hold thoughts inline in `turns`: stripped at the
    one place answers become judge prompts, whatever the mode or turn."""
    bench = load_bench()
    questions = [q for q in bench.questions if q.question_id in (81, 111)]  # writing, math

    def inline(q, model):  # type: ignore[no-untyped-def]
        return Answer(q.question_id, None, model, [Choice(0, [
            f"<think>SECRET THOUGHT {model} {t}</think>\n\nanswer {model} {t}"
            for t in range(2)])])

    answers = {m: {q.key: inline(q, m) for q in questions} for m in ("a", "b")}
    matches = build_matches(questions, answers, ["a", "b"], bench.judge_prompts, mode, "gpt-4",
                            bench.references)
    prompts = [p for m in matches for p in user_prompts(m)]
    assert len(matches) == (8 if mode == "single" else 4)
    assert prompts and not any("THOUGHT" in p or "<think>" in p for p in prompts)
    for model in ("a", "b"):  # the answers themselves are there, whole
        assert any(f"answer {model} 0" in p for p in prompts)
        assert any(f"\nanswer {model} 1\n" in p for p in prompts)


def test_the_evaluate_metric_judges_predictions_without_their_thoughts() -> None:
    """The metric's front door: predictions as a thinking model wrote them (thought inline)."""
    from mt_bench_task.core.chat import ChatClientBase, Completion
    from mt_bench_task.integrations.metric import JudgeSettings, compute

    class Recorder(ChatClientBase):
        def __init__(self) -> None:
            super().__init__()
            self.prompts: list[str] = []

        async def complete(self, model, messages, *, temperature, max_tokens):  # type: ignore[no-untyped-def]
            self.prompts += [m["content"] for m in messages]
            return Completion("Rating: [[6]]")

    q = next(q for q in load_bench().questions if q.question_id == 81)
    judge = Recorder()
    out = compute([["<think>SECRET THOUGHT one</think>\n\nfirst answer",
                    "<think>SECRET THOUGHT two"]],  # turn 2: a thought the limit cut
                  [{"question_id": 81, "category": q.category, "turns": list(q.turns)}],
                  judge=JudgeSettings(client=judge))
    assert out["score"] == 6 and len(judge.prompts) == 4  # 2 judgments: system + user each
    assert "first answer" in judge.prompts[1]
    assert not any("THOUGHT" in p for p in judge.prompts)
