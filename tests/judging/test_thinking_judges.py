"""Judges that think: a verdict the judge's token limit cut (finish_reason "length", no rating) is
not a score. It is asked again with a larger budget (2048 -> 8192 -> 32768, at most 2 more
requests; the budget used is in the record), the verdict is read from the answer, not the
thought, and a run that still leaves judgments without a rating says so and exits 1."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from support.cli import CliResult, run_in_process
from support.fake_openai import FakeOpenAI, Reply, ThinkingModel, echo_responder, judge_responder

from mt_bench_task.clients.openai_client import OpenAIChatClient
from mt_bench_task.engine.api import generate_api_answers

KEY = "sk-test-judge-thinks"


@pytest.fixture(scope="module")
def answered(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """2 writing questions answered by two models (plain answers, not the same) to judge."""
    data_dir = tmp_path_factory.mktemp("answers")
    for model, responder in (("a", echo_responder), ("b", lambda req: echo_responder(req).upper())):
        with FakeOpenAI(responder) as server:
            generate_api_answers(model, data_dir, question_end=2,
                                 client=OpenAIChatClient(server.url, api_key=KEY))
    return data_dir


def _copy(answered: Path, tmp_path: Path) -> Path:
    import shutil

    shutil.copytree(answered / "model_answer", tmp_path / "model_answer")
    return tmp_path


def _judge(url: str, data_dir: Path, *extra: str) -> CliResult:
    """`mt-bench judge` in this process (the `mt_bench` fixture's runner)."""
    return run_in_process("judge", "--data-dir", str(data_dir), "--openai-api-base", url,
                          "--first-n", "2", *extra)


def _records(data_dir: Path, kind: str = "single") -> list[dict]:
    path = data_dir / "model_judgment" / f"gpt-4_{kind}.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


def _per_prompt(server: FakeOpenAI) -> dict[str, int]:
    """Requests the judge answered, by user prompt (a reasoning model's refusals left out)."""
    counts: dict[str, int] = {}
    for req in server.requests:
        if server.reasoning and ("max_tokens" in req or req.get("temperature", 1) != 1):
            continue  # refused for the parameter and resent adapted: not a judge call
        prompt = req["messages"][-1]["content"]
        counts[prompt] = counts.get(prompt, 0) + 1
    return counts


def test_a_judge_that_thinks_past_2048_tokens_rates_every_judgment_in_two_requests(
        answered: Path, tmp_path: Path) -> None:
    """OpenAI's reasoning models: the thought is hidden but spends the budget; at 2048 the
    verdict is cut (content "", finish "length"); asked again at 8192 it comes. Later calls
    start at 8192 (the judge thinks on every prompt)."""
    data_dir = _copy(answered, tmp_path)
    judge = ThinkingModel("judge", 3000, "hidden")
    with FakeOpenAI(judge) as server:
        assert _judge(server.url, data_dir, "--model-list", "a").returncode == 0
        per_prompt = _per_prompt(server)
    records = _records(data_dir)
    assert len(records) == 4 and all(1 <= r["score"] <= 10 for r in records)
    assert judge.budgets == [2048, 8192, 8192, 8192, 8192]
    assert max(per_prompt.values()) == 2 and len(per_prompt) == 4
    for r in records:  # FastChat's keys, then the budget used
        assert list(r)[:8] == ["question_id", "model", "judge", "user_prompt", "judgment",
                               "score", "turn", "tstamp"]
        assert r["judge_max_tokens"] == 8192 and "judge_finish_reason" not in r


def test_a_reasoning_api_gets_max_completion_tokens_and_parallel_calls_at_most_two_each(
        answered: Path, tmp_path: Path) -> None:
    data_dir = _copy(answered, tmp_path)
    judge = ThinkingModel("judge", 3000, "reasoning_content")
    with FakeOpenAI(judge, reasoning=True) as server:  # refuses max_tokens and temperature 0
        assert _judge(server.url, data_dir, "--parallel", "4", "--model-list", "a").returncode == 0
        per_prompt = _per_prompt(server)
        sent = [r for r in server.requests if "max_tokens" not in r]
    records = _records(data_dir)
    assert len(records) == 4 and all(1 <= r["score"] <= 10 for r in records)
    assert max(per_prompt.values()) <= 2 and len(per_prompt) == 4
    assert {r["max_completion_tokens"] for r in sent} <= {2048, 8192}
    assert all(THOUGHT not in r["judgment"] for r in records)  # the verdict, not the thought


THOUGHT = "THOUGHT"


def test_pairwise_verdicts_of_a_thinking_judge(answered: Path, tmp_path: Path) -> None:
    data_dir = _copy(answered, tmp_path)
    with FakeOpenAI(ThinkingModel("judge", 3000, "reasoning")) as server:
        assert _judge(server.url, data_dir, "--mode", "pairwise-all").returncode == 0
        assert max(_per_prompt(server).values()) <= 2
    records = _records(data_dir, "pair")
    assert len(records) == 4
    assert all(r["g1_winner"] != "error" and r["g2_winner"] != "error" for r in records)


def test_a_verdict_cut_at_every_budget_is_no_score_and_the_run_exits_1(
        answered: Path, tmp_path: Path) -> None:
    data_dir = _copy(answered, tmp_path)
    judge = ThinkingModel("judge", 50000, "hidden")
    with FakeOpenAI(judge) as server:
        run = _judge(server.url, data_dir, "--model-list", "a")
        assert run.returncode == 1
        assert set(_per_prompt(server).values()) == {3}  # 2048, 8192, 32768: two more at most
    assert judge.budgets[:3] == [2048, 8192, 32768]
    records = _records(data_dir)
    assert all(r["score"] == -1 and r["judge_max_tokens"] == 32768
               and r["judge_finish_reason"] == "length" for r in records)
    err = run.stderr
    assert "failures: 0 of 4 judgments" in err
    assert ('4 of 4 judgments have no rating (score -1 / winner "error"); 4 of them cut by the '
            "judge's token limit at 32768 tokens") in err
    # the next run sends the cut verdicts again (here with a budget they fit) and keeps one
    # record per match
    with FakeOpenAI(ThinkingModel("judge", 3000, "hidden")) as server:
        assert _judge(server.url, data_dir, "--model-list", "a", "--judge-max-tokens",
                      "8192").returncode == 0
        assert server.total == 4
    records = _records(data_dir)
    assert len(records) == 4 and all(1 <= r["score"] <= 10 for r in records)


def test_judge_max_tokens_and_reasoning_effort_by_hand(answered: Path, tmp_path: Path) -> None:
    data_dir = _copy(answered, tmp_path)
    judge = ThinkingModel("judge", 3000, "hidden")
    with FakeOpenAI(judge) as server:
        assert _judge(server.url, data_dir, "--model-list", "a", "--judge-max-tokens", "4096",
                      "--judge-reasoning-effort", "low").returncode == 0
        requests = server.requests
    assert judge.budgets == [4096] * 4  # one request each
    assert all(r["reasoning_effort"] == "low" for r in requests)
    assert all(r["judge_max_tokens"] == 4096 for r in _records(data_dir))


def test_a_judge_thinking_inline_is_rated_by_its_answer_not_its_thought(
        answered: Path, tmp_path: Path) -> None:
    data_dir = _copy(answered, tmp_path)

    def inline(req: dict) -> Reply:  # type: ignore[type-arg]
        return Reply("<think>a first guess: [[2]]</think>\n\n" + judge_responder(req))

    with FakeOpenAI(inline) as server:
        assert _judge(server.url, data_dir, "--model-list", "a").returncode == 0
        expected = [judge_responder(req) for req in server.requests]
    records = _records(data_dir)
    assert sorted(r["score"] for r in records) == sorted(
        int(t.split("[[")[1].split("]]")[0]) for t in expected)
    assert all(r["judgment"].startswith("<think>") for r in records)  # stored as the judge said
    assert all(list(r) == ["question_id", "model", "judge", "user_prompt", "judgment", "score",
                           "turn", "tstamp"] for r in records)  # FastChat's record, nothing added
