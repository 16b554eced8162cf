"""`--batch` under the provider's enqueued-token queue (judging/batch_queue.py) against the fake
Batch API enforcing OpenAI's limit (tests/fake_batch.py `queue_limit`)."""
from __future__ import annotations

import json
from pathlib import Path

from support.answer_dirs import answer_dir
from support.fake_batch import FakeBatchServer

from mt_bench_task.clients.openai_client import OpenAIChatClient
from mt_bench_task.clients.openai_rules import queue_limit
from mt_bench_task.judging.batch import state_path
from mt_bench_task.judging.execute import SendOptions
from mt_bench_task.judging.run import JudgeRun, run_judging

# answer_dir's model, mamba_0_5_dpo_ep1: its 160 single-mode judge prompts are about 137,000 tokens
SECRET = "sk-test-SECRET-queue-5678"
REFUSAL = {"status": "failed", "errors": {"object": "list", "data": [{
    "code": "token_limit_exceeded", "param": None, "line": None,
    "message": "Enqueued token limit reached for gpt-4 in organization org-abc. Limit: "
               "100,000 enqueued tokens. Please try again once some in_progress batches have "
               "been completed."}]}}


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
    d = answer_dir(tmp_path)
    with FakeBatchServer("judge", queue_limit=100_000) as server:
        summary = run_judging(JudgeRun(d, send=SendOptions(batch=True, batch_poll_interval=0.01)),
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
    d = answer_dir(tmp_path)
    with FakeBatchServer("judge", queue_limit=100_000) as server:
        summary = run_judging(JudgeRun(d, send=SendOptions(batch=True, batch_poll_interval=0.01,
                                                         batch_max_enqueued_tokens=100_000)),
                              client=_client(server))
        statuses = [b["status"] for b in server.batches.values()]
        sizes = [b["request_counts"]["total"] for b in server.batches.values()]
    assert statuses == ["completed", "completed"] and sum(sizes) == 160 and summary.ok
    assert len(server.ran) == 160 and set(server.ran.values()) == {1}


def test_a_failed_batch_says_what_failed_not_0_of_0(tmp_path):
    d = answer_dir(tmp_path)
    with FakeBatchServer("judge", final="failed") as server:
        summary = run_judging(JudgeRun(d, first_n=5, send=SendOptions(batch=True, batch_poll_interval=0.01)),
                              client=_client(server))
    text = "\n".join(summary.end_lines())
    assert not summary.ok and summary.unfinished == 10
    assert "0 of 0" not in text
    assert "10 of 10 matches got no result (batch batch_0001 failed: invalid file)" in text
