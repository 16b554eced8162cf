"""Thinking models answering: through the engine seam (a thinking fake engine, and the embedded
model under a template that opens a thought) and through gen-api against tests/fake_openai.py's
ThinkingModel (inline tags, `reasoning_content`, `reasoning`, a thought the budget cuts). Every
answer record keeps the thoughts beside FastChat's `turns`; no turn, no turn-2 request and no
judge prompt holds a thought; show, the report and the card count them."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from support.fake_engine import QueuedEngine, drive_questions
from support.fake_openai import THOUGHT_MARK, FakeOpenAI, ThinkingModel

from mt_bench_task.clients.openai_client import OpenAIChatClient
from mt_bench_task.core.data import read_answers
from mt_bench_task.core.thoughts import ThinkTags
from mt_bench_task.engine.api import generate_api_answers
from mt_bench_task.engine.base import GenRequest, GenResult
from mt_bench_task.judging.run import JudgeRun, run_judging
from mt_bench_task.outputs.report import build_payload

KEY = "sk-test-thinking"


class ThinkingEngine(QueuedEngine):
    """A local thinking model behind the seam: `<think>…</think>answer`, or (for the requests
    in `cut`) a thought the token limit cuts; with `tags.opened`, no opening tag (the prompt
    opened it, as DeepSeek-R1's template does)."""

    name = "thinking"

    def __init__(self, tags: ThinkTags, cut: frozenset[tuple[int, int, int]] = frozenset()):
        super().__init__()
        self.think_tags, self.cut = tags, cut

    def answer(self, r: GenRequest) -> GenResult:
        opening = "" if self.think_tags.opened else self.think_tags.open
        thought = f"{opening}{THOUGHT_MARK} q{r.question_id} t{r.turn}"
        if r.key in self.cut:
            return GenResult(r, thought + " and on", r.max_new_tokens, "length")
        return GenResult(r, f"{thought}{self.think_tags.close}\n\nanswer q{r.question_id} "
                            f"t{r.turn}", 9, "stop")


def _drive(tmp_path: Path, engine: ThinkingEngine, thinking: int = 100) -> list[dict]:
    return drive_questions(engine, tmp_path / "a.jsonl", (81, 82), max_thinking_tokens=thinking)[0]


@pytest.mark.parametrize("opened", [False, True])
def test_engine_seam_splits_thoughts_and_turn_2_carries_the_answer_only(tmp_path: Path,
                                                                        opened: bool) -> None:
    engine = ThinkingEngine(ThinkTags(thinks=True, opened=opened), cut=frozenset({(82, 0, 1)}))
    rows = _drive(tmp_path, engine)
    c81, c82 = (r["choices"][0] for r in rows)
    assert c81["turns"] == ["answer q81 t0", "answer q81 t1"]
    assert c81["reasoning"] == [f"{THOUGHT_MARK} q81 t0", f"{THOUGHT_MARK} q81 t1"]
    assert c82["turns"] == ["answer q82 t0", ""]  # cut in its thought: an empty answer
    assert c82["reasoning"][1] == f"{THOUGHT_MARK} q82 t1 and on"
    assert c82["finish_reasons"] == ["stop", "length"]
    turn_2 = [r for r in engine.submitted if r.turn == 1]
    assert len(turn_2) == 2
    for r in turn_2:  # the history holds turn 1's answer, never its thought
        assert dict(r.messages[1:2])["assistant"] == f"answer q{r.question_id} t0"
        assert not any(THOUGHT_MARK in text for _, text in r.messages)
    # a model known to think gets the thinking budget on top of the answer budget
    assert {r.max_new_tokens for r in engine.submitted} == {32 + 100}


def test_a_model_not_known_to_think_gets_fastchats_budget(tmp_path: Path) -> None:
    engine = ThinkingEngine(ThinkTags())  # the default tags still split, but no extra budget
    rows = _drive(tmp_path, engine)
    assert {r.max_new_tokens for r in engine.submitted} == {32}
    assert rows[0]["choices"][0]["turns"][0] == "answer q81 t0"


def _gen_api(tmp_path: Path, model: ThinkingModel, **kw) -> list[dict]:  # type: ignore[no-untyped-def]
    with FakeOpenAI(model) as server:
        stats = generate_api_answers("m", tmp_path, question_end=2,
                                     client=OpenAIChatClient(server.url, api_key=KEY), **kw)
        requests = server.requests
    assert stats.questions == 2 and stats.failed == 0
    for req in requests:  # no request carries a thought, whatever the turn
        assert not any(THOUGHT_MARK in str(m.get("content")) for m in req["messages"])
    assert sum(len(req["messages"]) == 4 for req in requests) == 2  # the turn-2 requests
    return [json.loads(line) for line in (tmp_path / "model_answer" / "m.jsonl").read_text()
            .splitlines()]


@pytest.mark.parametrize("style", ["inline", "reasoning_content", "reasoning"])
def test_gen_api_keeps_thoughts_beside_the_answers(tmp_path: Path, style: str) -> None:
    rows = _gen_api(tmp_path, ThinkingModel("echo", 30, style))
    for r in rows:
        c = r["choices"][0]
        assert list(c) == ["index", "turns", "reasoning", "finish_reasons"]
        assert all(t.startswith("Echo") and THOUGHT_MARK not in t for t in c["turns"])
        assert all(th.count(THOUGHT_MARK) == 30 for th in c["reasoning"])
        assert c["finish_reasons"] == ["stop", "stop"]


def test_gen_api_gives_a_model_seen_thinking_its_thinking_budget(tmp_path: Path) -> None:
    """The first reply's 60-word thought overruns the 50-token answer budget: that turn is asked
    again with answer + thinking budget (150), and so is every later request."""
    model = ThinkingModel("echo", 60, "reasoning_content")
    rows = _gen_api(tmp_path, model, max_tokens=50, max_thinking_tokens=100)
    assert model.budgets == [50, 150, 150, 150, 150]
    assert all(t.startswith("Echo") for r in rows for t in r["choices"][0]["turns"])


@pytest.fixture
def cut_answers(tmp_path: Path) -> Path:
    """A thinking model whose thoughts the budget cuts (no thinking budget): empty answers."""
    _gen_api(tmp_path, ThinkingModel("echo", 5000, "inline"), max_tokens=40,
             max_thinking_tokens=0)
    return tmp_path


def test_cut_thoughts_are_empty_answers_counted_by_show_report_and_card(
        cut_answers: Path, mt_bench) -> None:  # type: ignore[no-untyped-def]
    [a1, a2] = read_answers(cut_answers / "model_answer" / "m.jsonl")
    for a in (a1, a2):
        assert a.turns == ["", ""] and a.choices[0].thoughts_cut == [0, 1]
        assert a.choices[0].finish_reasons == ["length", "length"]
        assert all(r is not None and r.count(THOUGHT_MARK) == 40 for r in a.choices[0].reasoning)
    with FakeOpenAI("judge") as judge:
        run = JudgeRun(cut_answers, judge_model="gpt-4", first_n=2, base_url=judge.url)
        summary = run_judging(run, OpenAIChatClient(judge.url, api_key=KEY))
        prompts = [m["content"] for req in judge.requests for m in req["messages"]]
    assert summary.sent == 4 and prompts
    assert not any(THOUGHT_MARK in p or "<think>" in p for p in prompts)  # the judge never sees one
    note = ("m: 4 of 4 turns thought, 4 thought(s) cut off (empty answers), 4 turn(s) cut by the "
            "token limit")
    shown = mt_bench("show", "--data-dir", str(cut_answers), "--judge-model", "gpt-4")
    assert shown.returncode == 0 and note in shown.stdout
    payload = build_payload(cut_answers, "gpt-4")
    assert payload["answer_notes"] == [note]
    assert payload["thoughts"][0]["81"][1].count(THOUGHT_MARK) == 40
    card = mt_bench("publish", "--data-dir", str(cut_answers), "--judge-model", "gpt-4",
                    "--dry-run")
    assert card.returncode == 0
    assert "Answers: 4 of 4 turns thought, 4 thought(s) cut off (empty answers)" in card.stdout


@pytest.mark.slow
def test_embedded_model_under_a_template_that_opens_a_thought(default_model_dir: Path,  # type: ignore[no-untyped-def]
                                                                tmp_path: Path, mt_bench) -> None:
    """The local engine (hf) through the seam: a chat template that opens `<think>` in the
    generation prompt and drops thoughts from the history (as DeepSeek-R1's does). The tiny
    model never closes it within answer + thinking budget: every turn is a cut thought."""
    template = tmp_path / "r1.jinja"
    template.write_text(
        "{% for m in messages %}{% set content = m['content'].split('</think>')[-1] %}"
        "<|im_start|>{{ m['role'] }}\n{{ content }}<|im_end|>\n{% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>assistant\n<think>\n{% endif %}")
    gen = mt_bench("gen", "--model-path", str(default_model_dir), "--model-id", "r1",
                   "--data-dir", str(tmp_path), "--question-begin", "20", "--question-end", "22",
                   "--max-new-token", "3", "--max-thinking-tokens", "4", "--dtype", "float32",
                   "--chat-template", str(template), "--engine", "hf")
    assert gen.returncode == 0, gen.stderr
    assert "answers: r1: 4 of 4 turns thought, 4 thought(s) cut off (empty answers)" in gen.stderr
    answers = read_answers(tmp_path / "model_answer" / "r1.jsonl")
    assert len(answers) == 2
    for a in answers:
        c = a.choices[0]
        assert c.reasoning[0] and all(r is not None for r in c.reasoning)
        assert c.turns == ["", ""] and c.thoughts_cut == [0, 1]
        assert set(c.finish_reasons) <= {"length", "stop"} and "length" in c.finish_reasons
