"""Claude judges through Anthropic's Messages API and Message Batches (clients/anthropic_*.py)
against tests/fake_anthropic.py, and Gemini's Batch API through the OpenAI SDK shape it accepts
(its OpenAI-compatible base URL .../v1beta/openai) against tests/fake_batch.py."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from support.answer_dirs import answer_dir
from support.fake_anthropic import FakeAnthropic
from support.fake_batch import FakeBatchServer
from support.fake_openai import FakeOpenAI

from mt_bench_task.clients.anthropic_client import AnthropicChatClient
from mt_bench_task.clients.openai_client import OpenAIChatClient
from mt_bench_task.judging.batch import state_path
from mt_bench_task.judging.execute import SendOptions
from mt_bench_task.judging.run import JudgeRun, run_judging

SECRET = "sk-ant-test-SECRET-0a1b2c3d"
BATCH = SendOptions(batch=True, batch_poll_interval=0.01)
CLAUDE = "claude-sonnet-4-5"


def _scores(d: Path, judge: str) -> dict:
    rows = [json.loads(x) for x in (d / f"model_judgment/{judge}_single.jsonl").read_text()
            .splitlines()]
    return {(r["question_id"], r["turn"]): (r["score"], r["user_prompt"]) for r in rows}


def _claude(server: FakeAnthropic) -> AnthropicChatClient:
    return AnthropicChatClient(SECRET, server.url, max_retries=1)


def test_claude_judges_what_the_openai_path_judges_with_anthropic_headers(tmp_path):
    ref, d = answer_dir(tmp_path, name="openai"), answer_dir(tmp_path, name="claude")
    with FakeOpenAI("judge") as oa:  # the same responder: equal ratings iff equal prompts
        run_judging(JudgeRun(ref, judge_model=CLAUDE, first_n=5, send=SendOptions(parallel=4)),
                    client=OpenAIChatClient(oa.url, "sk-x"))
    with FakeAnthropic() as server:
        summary = run_judging(JudgeRun(d, judge_model=CLAUDE, first_n=5, send=SendOptions(parallel=4)),
                              client=_claude(server))
        assert server.headers["x-api-key"] == SECRET and server.headers["anthropic-version"]
        assert server.messages == 10
    assert summary.ok and summary.sent == 10 and _scores(d, CLAUDE) == _scores(ref, CLAUDE)
    text = "\n".join(summary.end_lines())
    assert "Anthropic's price table" in text and "$3 / $15" not in text  # the cost, not plan
    assert summary.usage["prompt_tokens"] > 0


def test_claude_batch_gives_the_synchronous_records_at_half_price(tmp_path):
    sync_dir, batch_dir = answer_dir(tmp_path, name="sync"), answer_dir(tmp_path, name="batch")
    with FakeAnthropic(seed=3) as server:
        run_judging(JudgeRun(sync_dir, judge_model=CLAUDE, first_n=5, send=SendOptions(parallel=4)),
                    client=_claude(server))
        summary = run_judging(JudgeRun(batch_dir, judge_model=CLAUDE, first_n=5, send=BATCH),
                              client=_claude(server))
        assert server.created == 1 and set(server.ran.values()) == {1} and len(server.ran) == 10
    assert summary.ok and summary.sent == 10 and summary.batch_ids == ["msgbatch_0001"]
    assert _scores(batch_dir, CLAUDE) == _scores(sync_dir, CLAUDE)
    assert summary.price is not None and summary.price.input == 1.5  # $3 / 2: batch
    assert not state_path(batch_dir / f"model_judgment/{CLAUDE}_single.jsonl").exists()


def test_claude_batch_errored_and_expired_results(tmp_path):
    d = answer_dir(tmp_path)
    with FakeAnthropic(errored_ids=lambda c: "-q81-t1-" in c,
                       expired_ids=lambda c: "-q82-t1-" in c) as server:
        summary = run_judging(JudgeRun(d, judge_model=CLAUDE, first_n=5, send=BATCH),
                              client=_claude(server))
        again = run_judging(JudgeRun(d, judge_model=CLAUDE, first_n=5, send=BATCH),
                              client=_claude(server))
    assert (summary.sent, summary.failed, summary.unfinished) == (9, 1, 1)
    assert again.planned == 10 and again.already_done == 8  # the $ERROR$ and the expired one
    assert server.created == 2


def test_without_the_anthropic_sdk_a_claude_judge_is_one_line_exit_2(mt_bench, tmp_path,
                                                                     monkeypatch):
    d = answer_dir(tmp_path)
    monkeypatch.setitem(sys.modules, "anthropic", None)  # `import anthropic` fails
    r = mt_bench("judge", "--data-dir", d, "--judge-model", CLAUDE, "--first-n", "5",
                 env={**os.environ, "ANTHROPIC_API_KEY": SECRET})
    errors = [ln for ln in r.stderr.splitlines() if "error" in ln]
    assert r.returncode == 2 and len(errors) == 1 and "Traceback" not in r.stderr
    assert "pip install 'mt_bench_task[anthropic]'" in errors[0]


def test_gemini_batch_through_its_openai_compatible_base_url(tmp_path):
    d = answer_dir(tmp_path)
    with FakeBatchServer("judge") as server:
        base = f"http://127.0.0.1:{server.port}/v1beta/openai"
        client = OpenAIChatClient(base, "gemini-key-SECRET", backoff_base=0.01, backoff_max=0.05)
        summary = run_judging(JudgeRun(d, judge_model="gemini-2.5-flash", first_n=5, send=BATCH),
                              client=client)
        paths = [p for p in server.paths if "/files" in p or "/batches" in p]
    assert summary.ok and summary.sent == 10 and server.uploads == 1
    assert all("/v1beta/openai/" in p for p in paths)
    assert summary.price is not None and summary.price.input == 0.15  # $0.30 / 2: batch
    assert "Google's price table" in "\n".join(summary.end_lines())
