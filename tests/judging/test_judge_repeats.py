"""Repeat judging (`--judge-repeats K`) and the cost plan, against a real local server whose
ratings change with every repeat (the CLI in process, real files)."""
from __future__ import annotations

import json
import statistics
from collections import defaultdict
from pathlib import Path

import pytest
from support.answer_dirs import answer_dir
from support.cli import CliResult
from support.fake_openai import FakeOpenAI, VaryingJudge

from mt_bench_task.core import scoring
from mt_bench_task.core.bench import dataset_path, load_bench
from mt_bench_task.core.data import read_single_judgments
from mt_bench_task.core.types import SingleJudgment
from mt_bench_task.integrations import metric

CONF = Path(__file__).parents[1] / "conformance"
MODELS = ("mamba_0_5_dpo_ep1", "mamba_0_5_dpo_ep3")
SINGLE_KEYS = ["question_id", "model", "judge", "user_prompt", "judgment", "score", "turn", "tstamp"]
FIRST_N = 4  # questions: 8 single matches per model


@pytest.fixture(autouse=True)
def _key(monkeypatch: pytest.MonkeyPatch) -> None:
    """The key every CLI call of this module runs with."""
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-x")


def _judge(mt_bench, d: Path, url: str, *extra: str) -> CliResult:
    p = mt_bench("judge", "--data-dir", str(d), "--openai-api-base", url, "--first-n", str(FIRST_N),
                 "--parallel", "4", *extra)
    assert p.returncode == 0, p.stderr
    return p


def _rows(d: Path, kind: str = "single") -> list[dict]:
    return [json.loads(l) for l in (d / f"model_judgment/gpt-4_{kind}.jsonl").read_text().splitlines()]


def _judge_sd_by_hand(rows: list[dict], model: str) -> float:
    groups = defaultdict(list)
    for r in rows:
        if r["model"] == model and r["score"] != -1:
            groups[(r["question_id"], r["turn"])].append(r["score"])
    return statistics.mean(statistics.stdev(v) for v in groups.values() if len(v) >= 2)


@pytest.mark.slow  # end to end; the fast loop covers the feature
def test_repeats_records_spread_resume_and_one_more_repeat(mt_bench, tmp_path):
    d = answer_dir(tmp_path, MODELS[0])
    matches = 2 * FIRST_N
    with FakeOpenAI(VaryingJudge()) as server:
        _judge(mt_bench, d, server.url, "--judge-repeats", "3")
        assert server.total == 3 * matches
        rows = _rows(d)
        assert all(list(r) == SINGLE_KEYS + ["repeat"] for r in rows)  # FastChat's record + repeat
        by_match = defaultdict(list)
        for r in rows:
            by_match[(r["question_id"], r["turn"])].append((r["repeat"], r["score"]))
        assert len(by_match) == matches
        assert all(sorted(rep for rep, _ in v) == [0, 1, 2] for v in by_match.values())
        assert any(len({s for _, s in v}) > 1 for v in by_match.values())  # ratings vary

        show = json.loads(mt_bench("show", "--data-dir", str(d), "--json").stdout)
        m = show["models"][MODELS[0]]
        assert show["judge_repeats"] == 3
        assert m["judge_sd"] == pytest.approx(_judge_sd_by_hand(rows, MODELS[0]))
        assert m["average"] == pytest.approx(statistics.mean(r["score"] for r in rows))
        text = mt_bench("show", "--data-dir", str(d)).stdout
        assert f"judge sd={m['judge_sd']:.3f}" in text and "judged 3 times" in text

        before = server.total
        again = _judge(mt_bench, d, server.url, "--judge-repeats", "3")
        assert server.total == before and "0 to judge" in again.stderr  # resume: 0 calls
        _judge(mt_bench, d, server.url, "--judge-repeats", "4")
        assert server.total == before + matches  # only repeat 3 of each match
    rows = _rows(d)
    assert sorted(r["repeat"] for r in rows) == sorted(list(range(4)) * matches)


@pytest.mark.slow  # end to end; the fast loop covers the feature
def test_a_fastchat_file_gains_a_second_repeat(mt_bench, tmp_path):
    d = answer_dir(tmp_path, MODELS[0])
    with FakeOpenAI(VaryingJudge()) as server:
        _judge(mt_bench, d, server.url)
        first = _rows(d)
        assert all(list(r) == SINGLE_KEYS for r in first)  # K = 1: exactly FastChat's record
        show = json.loads(mt_bench("show", "--data-dir", str(d), "--json").stdout)
        assert show["judge_repeats"] == 1 and show["models"][MODELS[0]]["judge_sd"] is None
        _judge(mt_bench, d, server.url, "--judge-repeats", "2")
        assert server.total == 2 * 2 * FIRST_N
    added = _rows(d)[len(first):]
    assert len(added) == 2 * FIRST_N and {r["repeat"] for r in added} == {1}


def test_bootstrap_keeps_repeats_together():
    """Identical repeats add no information: the CI equals the CI of one judging."""
    once = [r for r in read_single_judgments(CONF / "jxiw/model_judgment/gpt-4_single.jsonl")
            if r.model == MODELS[0]]
    thrice = [SingleJudgment.from_dict({**r.to_dict(), "repeat": i}) for i in range(3) for r in once]
    assert {r.repeat for r in thrice} == {0, 1, 2} and scoring.judge_repeats(thrice) == 3
    cats = load_bench().category_of
    a = scoring.summarize_single(once, cats).score(MODELS[0])
    b = scoring.summarize_single(thrice, cats).score(MODELS[0])
    assert b.ci95 == pytest.approx(a.ci95) and b.average == pytest.approx(a.average)
    assert b.judge_sd == 0.0 and a.judge_sd is None


def test_pairwise_repeats_count_as_separate_games(mt_bench, tmp_path):
    d = answer_dir(tmp_path, *MODELS)
    with FakeOpenAI("judge") as server:
        _judge(mt_bench, d, server.url, "--mode", "pairwise-all", "--judge-repeats", "2")
        assert server.total == 2 * 2 * 2 * FIRST_N  # g1 + g2, 2 repeats, 2 turns per question
    rows = _rows(d, "pair")
    assert sorted(r["repeat"] for r in rows) == sorted([0, 1] * 2 * FIRST_N)
    show = json.loads(mt_bench("show", "--data-dir", str(d), "--json", "--mode", "pairwise-all").stdout)
    games = {k: v["win"] + v["loss"] + v["tie"] for k, v in show["models"].items()}
    valid = sum(r["g1_winner"] != "error" and r["g2_winner"] != "error" for r in rows)
    assert games == {m: valid for m in MODELS}


def test_dry_run_counts_calls_with_repeats_and_estimates_prompt_tokens(mt_bench, tmp_path):
    d = answer_dir(tmp_path, MODELS[0])
    with FakeOpenAI("judge") as server:
        plan = _judge(mt_bench, d, server.url, "--judge-repeats", "3", "--dry-run")
        assert server.total == 0 and f"({3 * 2 * FIRST_N} judge calls)" in plan.stderr
        done = _judge(mt_bench, d, server.url, "--judge-repeats", "3")
        chars = sum(len(m["content"]) for req in server.requests for m in req["messages"])
    assert f"prompt tokens: about {chars // 4} (estimate" in plan.stderr
    usage = sum(len(str(m["content"]).split()) for req in server.requests for m in req["messages"])
    assert f"tokens used: {usage} prompt" in done.stderr  # the fake counts words as tokens


def test_metric_repeats_and_label():
    questions = [json.loads(l) for l in
                 (dataset_path() / "data/question.jsonl").read_text().splitlines()[:2]]
    answers = [["An answer.", "A second answer."]] * 2
    with FakeOpenAI(VaryingJudge()) as server:
        settings = metric.JudgeSettings("gpt-3.5-turbo", server.url, "sk-test-x", judge_repeats=3)
        res = metric.compute(answers, questions, judge=settings, return_judgments=True)
        assert server.total == 3 * 4
        gpt4 = metric.compute(answers, questions, judge=metric.JudgeSettings(
            "gpt-4", server.url, "sk-test-x"))
    assert (res["judge"], res["comparable"], res["judge_repeats"]) == ("gpt-3.5-turbo", False, 3)
    assert res["label"] == "judged by gpt-3.5-turbo: not comparable with published MT-bench"
    assert res["judge_sd"] == pytest.approx(_judge_sd_by_hand(res["judgments"], "model"))
    assert (gpt4["comparable"], gpt4["label"], gpt4["judge_sd"]) == (True, None, None)
