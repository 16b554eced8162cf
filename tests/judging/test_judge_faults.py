"""The judge against a real local HTTP server: faults, resume, secrets (kill -9: tests/e2e)."""
from __future__ import annotations

import os
import time
from pathlib import Path

from support.answer_dirs import answer_dir
from support.cli import CliResult
from support.fake_openai import FakeOpenAI

from mt_bench_task.clients.openai_client import OpenAIChatClient
from mt_bench_task.core.data import read_single_judgments
from mt_bench_task.core.types import SingleJudgment
from mt_bench_task.judging.execute import SendOptions
from mt_bench_task.judging.run import JudgeRun, run_judging

CONF = Path(__file__).parents[1] / "conformance"
MODEL = "mamba_0_5_dpo_ep1"
SECRET = "sk-test-SECRET-9f8e7d6c5b4a"


def _records(d: Path) -> list[SingleJudgment]:
    return read_single_judgments(d / "model_judgment/gpt-4_single.jsonl")


def test_all_160_judgments_survive_30_percent_faults_without_duplicates(tmp_path):
    d = answer_dir(tmp_path)
    kinds = ("429:0.05", "429ms:50", "500", "503:0.05", "timeout:1", "drop", "garbage")
    with FakeOpenAI("judge", fault_rate=0.3, fault_kinds=kinds, seed=1) as server:
        client = OpenAIChatClient(server.url, SECRET, timeout=0.5, max_retries=12,
                                  backoff_base=0.01, backoff_max=0.1)
        summary = run_judging(JudgeRun(d, send=SendOptions(parallel=16)), client=client)
    recs = _records(d)
    assert summary.ok and summary.sent == 160 == len(recs)
    assert len({r.key for r in recs}) == 160  # none duplicated
    assert all(1 <= r.score <= 10 for r in recs)  # every one a real rating, no $ERROR$
    assert sum(server.faults_injected.values()) >= 30  # the faults really happened
    assert set(k.split(":")[0] for k in server.faults_injected) >= {"429", "500", "drop", "garbage"}


def _judge(mt_bench, d: Path, url: str, *extra: str) -> CliResult:
    return mt_bench("judge", "--data-dir", d, "--openai-api-base", url, "--parallel", "4", *extra,
                    env={**os.environ, "OPENAI_API_KEY": SECRET})


def test_bad_key_is_a_clear_error_without_the_key_and_nothing_written(mt_bench, tmp_path):
    d = answer_dir(tmp_path)
    with FakeOpenAI("judge", faults=["401"] * 50) as server:
        p = _judge(mt_bench, d, server.url, "--first-n", "1")
    assert p.returncode == 2 and "401" in p.stderr and "OPENAI_API_KEY" in p.stderr
    assert SECRET not in p.stderr + p.stdout and "Traceback" not in p.stderr
    out = d / "model_judgment/gpt-4_single.jsonl"
    assert not out.exists() or out.read_text() == ""


def test_unreachable_server_fails_fast_with_the_url(mt_bench, tmp_path):
    d = answer_dir(tmp_path)
    t = time.time()
    p = _judge(mt_bench, d, "http://127.0.0.1:9/v1")
    assert p.returncode == 2 and "cannot reach" in p.stderr and "127.0.0.1:9" in p.stderr
    assert time.time() - t < 30 and not (d / "model_judgment/gpt-4_single.jsonl").exists()
