"""The judge against a real local HTTP server: faults, kill -9 and resume, secrets."""
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
from support.answer_dirs import one_model_answers
from support.fake_openai import FakeOpenAI

from mt_bench_task.clients.openai_client import OpenAIChatClient
from mt_bench_task.core.data import read_single_judgments
from mt_bench_task.core.judging import JudgeRun, run_judging
from mt_bench_task.core.types import SingleJudgment

CONF = Path(__file__).parents[1] / "conformance"
MODEL = "mamba_0_5_dpo_ep1"
SECRET = "sk-test-SECRET-9f8e7d6c5b4a"




def _records(d: Path) -> list[SingleJudgment]:
    return read_single_judgments(d / "model_judgment/gpt-4_single.jsonl")


def test_all_160_judgments_survive_30_percent_faults_without_duplicates(tmp_path):
    d = one_model_answers(tmp_path)
    kinds = ("429:0.05", "429ms:50", "500", "503:0.05", "timeout:1", "drop", "garbage")
    with FakeOpenAI("judge", fault_rate=0.3, fault_kinds=kinds, seed=1) as server:
        client = OpenAIChatClient(server.url, SECRET, timeout=0.5, max_retries=12,
                                  backoff_base=0.01, backoff_max=0.1)
        summary = run_judging(JudgeRun(d, parallel=16), client=client)
    recs = _records(d)
    assert summary.ok and summary.sent == 160 == len(recs)
    assert len({r.key for r in recs}) == 160  # none duplicated
    assert all(1 <= r.score <= 10 for r in recs)  # every one a real rating, no $ERROR$
    assert sum(server.faults_injected.values()) >= 30  # the faults really happened
    assert set(k.split(":")[0] for k in server.faults_injected) >= {"429", "500", "drop", "garbage"}


def _judge_cmd(d: Path, url: str) -> list[str]:
    return [sys.executable, "-m", "mt_bench_task.cli.main", "judge", "--data-dir", str(d),
            "--openai-api-base", url, "--parallel", "4"]


@pytest.mark.slow  # end to end over subprocesses; the fast loop covers the feature
def test_kill_9_mid_run_then_rerun_requests_only_the_missing(tmp_path):
    d = one_model_answers(tmp_path)
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


def test_bad_key_is_a_clear_error_without_the_key_and_nothing_written(tmp_path):
    d = one_model_answers(tmp_path)
    with FakeOpenAI("judge", faults=["401"] * 50) as server:
        p = subprocess.run(_judge_cmd(d, server.url) + ["--first-n", "1"],
                           env={**os.environ, "OPENAI_API_KEY": SECRET}, capture_output=True,
                           text=True)
    assert p.returncode == 2 and "401" in p.stderr and "OPENAI_API_KEY" in p.stderr
    assert SECRET not in p.stderr + p.stdout and "Traceback" not in p.stderr
    out = d / "model_judgment/gpt-4_single.jsonl"
    assert not out.exists() or out.read_text() == ""


def test_unreachable_server_fails_fast_with_the_url(tmp_path):
    d = one_model_answers(tmp_path)
    t = time.time()
    p = subprocess.run(_judge_cmd(d, "http://127.0.0.1:9/v1"), capture_output=True, text=True,
                       env={**os.environ, "OPENAI_API_KEY": SECRET})
    assert p.returncode == 2 and "cannot reach" in p.stderr and "127.0.0.1:9" in p.stderr
    assert time.time() - t < 30 and not (d / "model_judgment/gpt-4_single.jsonl").exists()
