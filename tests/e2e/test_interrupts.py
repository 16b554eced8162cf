"""Interrupting a real `mt-bench` process: kill -9 and Ctrl-C (SIGINT), then the next run resumes.

Each signal lands at a point the test chose, never after a sleep: the fake server holds the answer
the process is waiting for (support.fake_openai.Gate), or the local judge's engine waits at its
second batch (support.paused_judge), and the signal goes only once the process is there. The
same records and resume logic run in process, without a signal of the OS, in the fast loop
(tests/judging/test_batch.py, tests/clients/test_local_judge_ctrl_c.py).
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
from support.fake_anthropic import FakeAnthropic
from support.fake_batch import FakeBatchServer
from support.fake_openai import FakeOpenAI, Gate

from mt_bench_task.core.data import read_single_judgments
from mt_bench_task.core.types import SingleJudgment
from mt_bench_task.judging.batch import state_path

pytestmark = pytest.mark.slow  # processes of their own; the fast loop has the in-process twins

MT_BENCH = [sys.executable, "-m", "mt_bench_task.cli.main"]
SECRET = "sk-test-SECRET-interrupt-1234"
TESTS = Path(__file__).parents[1]


def _env(**extra: str) -> dict[str, str]:
    return {**os.environ, "OPENAI_API_KEY": SECRET, **extra}


def _batch_cmd(d: Path, url: str, *extra: str) -> list[str]:
    return [*MT_BENCH, "judge", "--data-dir", str(d), "--openai-api-base", url, "--batch",
            "--batch-poll-interval", "0.05", *extra]


def _run(cmd: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)


def _lines(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines()]


def _until(condition, what: str, timeout: float = 300) -> None:  # type: ignore[no-untyped-def]
    """Wait for a state the process cannot get past (it is held); the timeout only stops a
    broken test."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"never got there: {what}"
        time.sleep(0.05)


def test_kill_9_while_polling_then_the_next_run_reattaches(tmp_path):
    d = answer_dir(tmp_path)
    out = d / "model_judgment/gpt-4_single.jsonl"
    gate = Gate("retrieve", 3)  # the process waits on its third poll's answer
    with FakeBatchServer("judge", hold=True, gate=gate) as server:
        proc = subprocess.Popen(_batch_cmd(d, server.url), env=_env(), stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        gate.wait()
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert server.retrieves == 3 and not out.exists()
        assert json.loads(state_path(out).read_text())["batches"][0]["batch_id"] == "batch_0001"
        gate.release()
        server.release()
        rerun = _run(_batch_cmd(d, server.url), _env())
        assert rerun.returncode == 0, rerun.stderr
        assert (server.uploads, server.created) == (1, 1)  # reattached: no second upload
        again = _run(_batch_cmd(d, server.url), _env())
        assert (server.uploads, server.created) == (1, 1)
    assert again.returncode == 0
    assert len(_lines(out)) == 160 and len({(r["question_id"], r["turn"]) for r in _lines(out)}) == 160
    assert "cost:" in rerun.stderr and "failures: 0 of 160" in rerun.stderr
    assert SECRET not in rerun.stderr + rerun.stdout + out.read_text()


def test_ctrl_c_while_polling_exits_130_and_keeps_the_batch_for_the_next_run(tmp_path):
    d = answer_dir(tmp_path)
    out = d / "model_judgment/gpt-4_single.jsonl"
    gate = Gate("retrieve", 2)
    with FakeBatchServer("judge", hold=True, gate=gate) as server:
        proc = subprocess.Popen(_batch_cmd(d, server.url, "--first-n", "3"), env=_env(),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        gate.wait()
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 130 and "interrupted" in err and "Traceback" not in err, err
        assert json.loads(state_path(out).read_text())["batches"][0]["batch_id"] == "batch_0001"
        gate.release()
        server.release()
        rerun = _run(_batch_cmd(d, server.url, "--first-n", "3"), _env())
    assert rerun.returncode == 0, rerun.stderr
    assert (server.uploads, server.created) == (1, 1) and len(_lines(out)) == 6


def test_kill_9_mid_run_then_rerun_requests_only_the_missing(tmp_path):
    d = answer_dir(tmp_path)
    out = d / "model_judgment/gpt-4_single.jsonl"
    cmd = [*MT_BENCH, "judge", "--data-dir", str(d), "--openai-api-base", "URL", "--parallel", "4"]
    gate = Gate("chat", 41)  # 40 answers, then the server answers nothing until released
    with FakeOpenAI("judge", gate=gate) as server:
        cmd[cmd.index("URL")] = server.url
        proc = subprocess.Popen(cmd, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        gate.wait()
        _until(lambda: out.exists() and out.read_text().count("\n") == 40, "40 records written")
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        done_before = {SingleJudgment.from_dict(json.loads(l)).key
                       for l in out.read_text().splitlines() if l.strip() and l.endswith("}")}
        first_total = server.total
        assert len(done_before) == 40
        gate.release()
        rerun = _run(cmd, _env())
        assert rerun.returncode == 0, rerun.stderr
        second_total = server.total - first_total
        again = _run(cmd, _env())
        third_total = server.total - first_total - second_total
    recs = read_single_judgments(out)
    keys = Counter(r.key for r in recs)
    assert len(recs) == 160 and max(keys.values()) == 1
    assert second_total == 160 - 40  # only the missing ones were requested
    assert third_total == 0 and again.returncode == 0
    for text in (rerun.stdout, rerun.stderr, again.stderr, out.read_text()):
        assert SECRET not in text


def test_ctrl_c_while_the_local_judge_runs_exits_130_and_the_next_run_resumes(tmp_path) -> None:
    """Batches run on the event loop's thread: SIGINT lands in the model's work (the engine's step
    for batch 2, held there), the command exits 130 at once, batch 1's records stay, and a re-run
    judges only the rest. The real default model judges."""
    d = answer_dir(tmp_path)
    out = d / "model_judgment" / "smollm2-135m-instruct_single.jsonl"
    marker = tmp_path / "paused"
    args = ["judge", "--judge-model", "default", "--data-dir", str(d), "--first-n", "12"]
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(TESTS), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.Popen([sys.executable, "-m", "support.paused_judge", str(marker), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    _until(marker.exists, "the local judge's second batch", timeout=600)
    first_batch = int(marker.read_text())
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 130 and "Traceback" not in err, err[-2000:]
    kept = _lines(out)
    assert len(kept) == first_batch < 24 and all(r["model"] == MODEL for r in kept)
    rerun = _run([*MT_BENCH, *args], env)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert f"{len(kept)} already judged, {24 - len(kept)} to judge" in rerun.stderr
    assert len(out.read_text().splitlines()) == 24


def test_kill_9_between_queued_batches_then_the_next_run_reattaches_and_sends_the_rest(tmp_path):
    # 137 k tokens against a 100 k queue: the second batch waits for the first
    d = answer_dir(tmp_path)
    out = d / "model_judgment/gpt-4_single.jsonl"
    gate = Gate("retrieve", 3)  # batch 1 held in progress, the process polling it
    with FakeBatchServer("judge", queue_limit=100_000, hold=True, gate=gate) as server:
        cmd = _batch_cmd(d, server.url, "--batch-max-enqueued-tokens", "100000")
        proc = subprocess.Popen(cmd, env=_env(), stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        gate.wait()
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        state = json.loads(state_path(out).read_text())
        assert [e["batch_id"] for e in state["batches"]] == ["batch_0001"]
        assert state["waiting"] and server.created == 1  # the second waits for the first
        gate.release()
        server.release()
        rerun = _run(cmd, _env())
        assert rerun.returncode == 0, rerun.stderr
        assert (server.uploads, server.created) == (2, 2)  # reattached, then the rest
    assert len(server.ran) == 160 and set(server.ran.values()) == {1}  # each sent once
    assert len(_lines(out)) == 160 and "failures: 0 of 160" in rerun.stderr
    assert SECRET not in rerun.stderr + rerun.stdout


def test_kill_9_while_a_claude_batch_runs_then_the_next_run_reattaches(tmp_path):
    d = answer_dir(tmp_path)
    gate = Gate("retrieve", 2)
    with FakeAnthropic(hold=True, gate=gate) as server:
        env = _env(ANTHROPIC_API_KEY=SECRET, ANTHROPIC_BASE_URL=server.url)
        cmd = [*MT_BENCH, "judge", "--data-dir", str(d), "--judge-model", "claude-sonnet-4-5",
               "--first-n", "5", "--batch", "--batch-poll-interval", "0.05"]
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        gate.wait()
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        gate.release()
        server.release()
        rerun = _run(cmd, env)
        assert rerun.returncode == 0, rerun.stderr
        assert server.created == 1 and set(server.ran.values()) == {1} and len(server.ran) == 10
    assert "failures: 0 of 10" in rerun.stderr and "Anthropic's price table" in rerun.stderr
    assert SECRET not in rerun.stderr + rerun.stdout
