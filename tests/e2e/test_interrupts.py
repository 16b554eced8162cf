"""Interrupting a real `mt-bench` process: kill -9 and Ctrl-C (SIGINT), then the next run resumes.

These need a process of their own (a signal, a killed interpreter); the in-process tests cover
the same records and resume logic without one.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from support.answer_dirs import MODEL, answer_dir
from support.fake_batch import FakeBatchServer
from support.fake_openai import FakeOpenAI

from mt_bench_task.core.batch import state_path
from mt_bench_task.core.data import read_single_judgments
from mt_bench_task.core.types import SingleJudgment

MT_BENCH = [sys.executable, "-m", "mt_bench_task.cli.main"]
SECRET = "sk-test-SECRET-interrupt-1234"


def _cli(d: Path, url: str, *extra: str) -> list[str]:
    return [*MT_BENCH, "judge", "--data-dir", str(d), "--openai-api-base", url, "--batch",
            "--batch-poll-interval", "0.05", *extra]


def _judge_cmd(d: Path, url: str) -> list[str]:
    return [*MT_BENCH, "judge", "--data-dir", str(d), "--openai-api-base", url, "--parallel", "4"]


def _lines(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines()]


def _records(d: Path) -> list[SingleJudgment]:
    return read_single_judgments(d / "model_judgment/gpt-4_single.jsonl")


def test_kill_9_while_polling_then_the_next_run_reattaches(tmp_path):
    d = answer_dir(tmp_path)
    out = d / "model_judgment/gpt-4_single.jsonl"
    env = {**os.environ, "OPENAI_API_KEY": SECRET}
    with FakeBatchServer("judge", hold=True) as server:
        proc = subprocess.Popen(_cli(d, server.url), env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)
        deadline = time.time() + 60
        while time.time() < deadline and server.retrieves < 3:
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert server.retrieves >= 3 and not out.exists()
        assert json.loads(state_path(out).read_text())["batches"][0]["batch_id"] == "batch_0001"
        server.release()
        rerun = subprocess.run(_cli(d, server.url), env=env, capture_output=True, text=True,
                               timeout=120)
        assert rerun.returncode == 0, rerun.stderr
        assert (server.uploads, server.created) == (1, 1)  # reattached: no second upload
        again = subprocess.run(_cli(d, server.url), env=env, capture_output=True, text=True,
                               timeout=120)
        assert (server.uploads, server.created) == (1, 1)
    assert again.returncode == 0
    assert len(_lines(out)) == 160 and len({(r["question_id"], r["turn"]) for r in _lines(out)}) == 160
    assert "cost:" in rerun.stderr and "failures: 0 of 160" in rerun.stderr
    assert SECRET not in rerun.stderr + rerun.stdout + out.read_text()


def test_ctrl_c_while_polling_exits_130_and_keeps_the_batch_for_the_next_run(tmp_path):
    d = answer_dir(tmp_path)
    out = d / "model_judgment/gpt-4_single.jsonl"
    env = {**os.environ, "OPENAI_API_KEY": SECRET}
    with FakeBatchServer("judge", hold=True) as server:
        proc = subprocess.Popen(_cli(d, server.url, "--first-n", "3"), env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.time() + 60
        while time.time() < deadline and server.retrieves < 2:
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 130 and "interrupted" in err and "Traceback" not in err
        assert json.loads(state_path(out).read_text())["batches"][0]["batch_id"] == "batch_0001"
        server.release()
        rerun = subprocess.run(_cli(d, server.url, "--first-n", "3"), env=env,
                               capture_output=True, text=True, timeout=120)
    assert rerun.returncode == 0, rerun.stderr
    assert (server.uploads, server.created) == (1, 1) and len(_lines(out)) == 6


@pytest.mark.slow  # end to end over subprocesses; the fast loop covers the feature
def test_kill_9_mid_run_then_rerun_requests_only_the_missing(tmp_path):
    d = answer_dir(tmp_path)
    out = d / "model_judgment/gpt-4_single.jsonl"
    env = {**os.environ, "OPENAI_API_KEY": SECRET}
    with FakeOpenAI("judge", latency=0.05) as server:
        proc = subprocess.Popen(_judge_cmd(d, server.url), env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)
        deadline = time.time() + 60
        while time.time() < deadline and (not out.exists() or out.read_text().count("\n") < 40):
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        done_before = {SingleJudgment.from_dict(json.loads(l)).key
                       for l in out.read_text().splitlines() if l.strip() and l.endswith("}")}
        first_total = server.total
        assert 40 <= len(done_before) < 160
        rerun = subprocess.run(_judge_cmd(d, server.url), env=env, capture_output=True, text=True)
        assert rerun.returncode == 0, rerun.stderr
        second_total = server.total - first_total
        again = subprocess.run(_judge_cmd(d, server.url), env=env, capture_output=True, text=True)
        third_total = server.total - first_total - second_total
    recs = _records(d)
    keys = Counter(r.key for r in recs)
    assert len(recs) == 160 and max(keys.values()) == 1
    assert second_total == 160 - len(done_before)  # only the missing ones were requested
    assert third_total == 0 and again.returncode == 0
    for text in (rerun.stdout, rerun.stderr, again.stderr, out.read_text()):
        assert SECRET not in text


@pytest.mark.slow  # loads the real default model
def test_ctrl_c_while_the_local_judge_runs_exits_130_and_the_next_run_resumes(tmp_path) -> None:
    """Batches run on the event loop's thread: SIGINT lands in the model's work, the command
    exits 130 at once, the records written so far stay, and a re-run judges only the rest."""
    d = answer_dir(tmp_path)
    out = d / "model_judgment" / "smollm2-135m-instruct_single.jsonl"
    cmd = [*MT_BENCH, "judge", "--judge-model", "default", "--data-dir", str(d), "--first-n", "12"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.time() + 300
    while time.time() < deadline and not (out.exists() and out.read_text().count("\n") >= 16):
        time.sleep(0.1)
    assert out.exists(), "no batch finished in 300 s"
    proc.send_signal(signal.SIGINT)
    sent = time.time()
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "Traceback" not in err, err[-2000:]
    assert time.time() - sent < 30  # not after the remaining batches
    kept = [json.loads(line) for line in out.read_text().splitlines()]
    assert 16 <= len(kept) < 24 and all(r["model"] == MODEL for r in kept)
    rerun = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert f"{len(kept)} already judged, {24 - len(kept)} to judge" in rerun.stderr
    assert len(out.read_text().splitlines()) == 24
