"""`--batch` under the provider's enqueued-token queue (judging/batch_queue.py) against the fake
Batch API enforcing OpenAI's limit (tests/fake_batch.py `queue_limit`)."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from fake_batch import FakeBatchServer

from mt_bench_task.clients.openai_client import OpenAIChatClient
from mt_bench_task.clients.openai_rules import queue_limit
from mt_bench_task.judging.batch import state_path
from mt_bench_task.judging.run import JudgeRun, run_judging

CONF = Path(__file__).parent / "conformance"
MODEL = "mamba_0_5_dpo_ep1"  # its 160 single-mode judge prompts: about 137,000 tokens
SECRET = "sk-test-SECRET-queue-5678"
REFUSAL = {"status": "failed", "errors": {"object": "list", "data": [{
    "code": "token_limit_exceeded", "param": None, "line": None,
    "message": "Enqueued token limit reached for gpt-4 in organization org-abc. Limit: "
               "100,000 enqueued tokens. Please try again once some in_progress batches have "
               "been completed."}]}}


def _data_dir(tmp_path: Path) -> Path:
    d = tmp_path / "bench"
    (d / "model_answer").mkdir(parents=True)
    shutil.copy(CONF / "jxiw/model_answer" / f"{MODEL}.jsonl", d / "model_answer")
    return d


def _client(server: FakeBatchServer) -> OpenAIChatClient:
    return OpenAIChatClient(server.url, SECRET, backoff_base=0.01, backoff_max=0.05)


def _records(d: Path) -> list[dict]:
    path = d / "model_judgment/gpt-4_single.jsonl"
    return [json.loads(x) for x in path.read_text().splitlines()]


def test_the_refusal_names_the_limit():
    assert queue_limit(REFUSAL) == 100_000
    assert queue_limit({"status": "failed", "errors": {"data": [{"code": "invalid_file",
                                                                 "message": "Limit: 5"}]}}) is None
    assert queue_limit({"status": "failed", "errors": None}) is None


def test_a_137k_job_against_a_100k_queue_learns_the_limit_and_finishes_in_two_batches(tmp_path):
    d = _data_dir(tmp_path)
    with FakeBatchServer("judge", queue_limit=100_000) as server:
        summary = run_judging(JudgeRun(d, batch=True, batch_poll_interval=0.01),
                              client=_client(server))
        statuses = [b["status"] for b in server.batches.values()]
    # the whole job, refused (ran nothing), then two batches under the limit, one after the other
    assert statuses == ["failed", "completed", "completed"]
    assert summary.ok and summary.sent == 160 and len(summary.batch_ids) == 2
    assert len(server.ran) == 160 and set(server.ran.values()) == {1}  # each judgment sent once
    assert 0 < server.peak_enqueued <= 100_000
    assert len({(r["question_id"], r["turn"]) for r in _records(d)}) == 160 == len(_records(d))
    assert not state_path(d / "model_judgment/gpt-4_single.jsonl").exists()


def test_a_given_queue_limit_splits_before_any_refusal(tmp_path):
    d = _data_dir(tmp_path)
    with FakeBatchServer("judge", queue_limit=100_000) as server:
        summary = run_judging(JudgeRun(d, batch=True, batch_poll_interval=0.01,
                                       batch_max_enqueued_tokens=100_000),
                              client=_client(server))
        statuses = [b["status"] for b in server.batches.values()]
        sizes = [b["request_counts"]["total"] for b in server.batches.values()]
    assert statuses == ["completed", "completed"] and sum(sizes) == 160 and summary.ok
    assert len(server.ran) == 160 and set(server.ran.values()) == {1}


def _cli(d: Path, url: str) -> list[str]:
    return [sys.executable, "-m", "mt_bench_task.cli.main", "judge", "--data-dir", str(d),
            "--openai-api-base", url, "--batch", "--batch-poll-interval", "0.05",
            "--batch-max-enqueued-tokens", "100000"]


def test_kill_9_between_batches_then_the_next_run_reattaches_and_sends_the_rest(tmp_path):
    d = _data_dir(tmp_path)
    out = d / "model_judgment/gpt-4_single.jsonl"
    env = {**os.environ, "OPENAI_API_KEY": SECRET}
    with FakeBatchServer("judge", queue_limit=100_000, hold=True) as server:
        proc = subprocess.Popen(_cli(d, server.url), env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)
        deadline = time.time() + 60
        while time.time() < deadline and server.retrieves < 3:  # batch 1 held in progress
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        state = json.loads(state_path(out).read_text())
        assert [e["batch_id"] for e in state["batches"]] == ["batch_0001"]
        assert state["waiting"] and server.created == 1  # the second waits for the first
        server.release()
        rerun = subprocess.run(_cli(d, server.url), env=env, capture_output=True, text=True,
                               timeout=120)
        assert rerun.returncode == 0, rerun.stderr
        assert (server.uploads, server.created) == (2, 2)  # reattached, then the rest
    assert len(server.ran) == 160 and set(server.ran.values()) == {1}
    assert len(_records(d)) == 160 and "failures: 0 of 160" in rerun.stderr
    assert SECRET not in rerun.stderr + rerun.stdout


def test_a_failed_batch_says_what_failed_not_0_of_0(tmp_path):
    d = _data_dir(tmp_path)
    with FakeBatchServer("judge", final="failed") as server:
        summary = run_judging(JudgeRun(d, batch=True, batch_poll_interval=0.01, first_n=5),
                              client=_client(server))
    text = "\n".join(summary.end_lines())
    assert not summary.ok and summary.unfinished == 10
    assert "0 of 0" not in text
    assert "10 of 10 matches got no result (batch batch_0001 failed: invalid file)" in text
