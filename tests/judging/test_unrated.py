"""Judgments without a rating (issue 33, item 7) are counted apart from failures and make the run
exit 1; OpenAI's `insufficient_quota` 429 stops the run at once, one line, exit 2."""
from __future__ import annotations

import re

import pytest
from support.answer_dirs import answer_dir
from support.cli import exit_code_only, key_only_env
from support.fake_openai import FakeOpenAI

from mt_bench_task.core.data import read_pair_judgments, read_single_judgments

ENV = key_only_env("sk-test-unrated-123456")


@pytest.fixture
def main(mt_bench):
    """`mt-bench ARGV` in this process with a test key: its exit code, its output to capsys."""
    return exit_code_only(mt_bench, ENV)


def _unrated_line(err: str) -> tuple[int, int]:
    m = re.search(r"^(\d+) of (\d+) judgments have no rating \(score -1", err, re.M)
    assert m, err
    return int(m.group(1)), int(m.group(2))


def test_verdicts_without_a_rating_are_counted_apart_and_exit_1(tmp_path, capsys, main):
    d = answer_dir(tmp_path)
    with FakeOpenAI("unrated") as server:  # about 1 prompt in 4 gets a verdict with no [[k]]
        code = main(["judge", "--data-dir", str(d), "--openai-api-base", server.url,
                     "--parallel", "8"])
    err = capsys.readouterr().err
    records = read_single_judgments(d / "model_judgment/gpt-4_single.jsonl")
    unrated = sum(r.score == -1 for r in records)
    assert len(records) == 160 and 0 < unrated < 160
    assert code == 1 and _unrated_line(err) == (unrated, 160)
    assert "failures: 0 of 160 judgments" in err  # not transport failures

    with FakeOpenAI("unrated") as server:  # kept: a re-run sends nothing (they are judgments)
        assert main(["judge", "--data-dir", str(d), "--openai-api-base", server.url]) == 0
        assert server.total == 0


def test_pairwise_verdicts_without_a_winner_count_too(tmp_path, capsys, main):
    d = answer_dir(tmp_path)
    with FakeOpenAI("unrated") as server:
        code = main(["judge", "--data-dir", str(d), "--openai-api-base", server.url,
                     "--mode", "pairwise-baseline", "--first-n", "10", "--parallel", "4"])
    records = read_pair_judgments(d / "model_judgment/gpt-4_pair.jsonl")
    unrated = sum("error" in (r.g1_winner, r.g2_winner) for r in records)
    assert 0 < unrated and code == 1
    assert _unrated_line(capsys.readouterr().err) == (unrated, len(records))


def test_a_judge_that_rates_everything_exits_0_without_the_line(tmp_path, capsys, main):
    d = answer_dir(tmp_path)
    with FakeOpenAI("judge") as server:
        assert main(["judge", "--data-dir", str(d), "--openai-api-base", server.url,
                     "--first-n", "5"]) == 0
    assert "no rating" not in capsys.readouterr().err


def test_insufficient_quota_stops_at_once_in_one_line(tmp_path, capsys, main):
    """OpenAI's 429 with code insufficient_quota is billing, not a rate limit: waiting cannot help."""
    d = answer_dir(tmp_path)
    with FakeOpenAI("judge", faults=["quota"] * 50) as server:
        code = main(["judge", "--data-dir", str(d), "--openai-api-base", server.url,
                     "--parallel", "2"])
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if "error:" in ln]
    assert code == 2 and len(lines) == 1 and "Traceback" not in err
    assert "HTTP 429" in lines[0] and "quota" in lines[0] and "billing" in lines[0]
    assert server.total <= 2  # the requests already in flight; none retried
    out = d / "model_judgment/gpt-4_single.jsonl"
    assert not out.exists() or out.read_text() == ""
