"""The judge as one concept, against real local servers and the CLI: the "not comparable"
label said the same way by every command, reasoning-model judges, and a judge that refuses all."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from support.answer_dirs import answer_dir
from support.fake_openai import REASONING_MAX_TOKENS, FakeOpenAI
from support.mock_hub import MockHub

from mt_bench_task.core.bench import load_bench
from mt_bench_task.core.judge_spec import (
    NOT_COMPARABLE,
    identity_of_records,
    is_comparable,
    judge_spec,
)
from mt_bench_task.core.types import SingleJudgment

CONF = Path(__file__).parents[1] / "conformance"
MODEL = "mamba_0_5_dpo_ep1"
SECRET = "sk-test-SECRET-1a2b3c4d5e6f"
FIRST_N = "3"  # 3 questions x 2 turns: enough for every command, fast


@pytest.fixture(autouse=True)
def _key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)


def _judged(mt_bench, tmp_path: Path, judge: str, url: str) -> Path:
    d = answer_dir(tmp_path)
    p = mt_bench("judge", "--data-dir", str(d), "--judge-model", judge, "--openai-api-base", url,
                 "--first-n", FIRST_N, "--parallel", "4")
    assert p.returncode == 0, p.stderr
    return d


def _slow(*values: object) -> object:
    """A case only the full suite runs: the fast loop runs another value of the same test."""
    return pytest.param(*values, marks=pytest.mark.slow)


# ---- one rule ----
@pytest.mark.parametrize("judge,comparable", [("gpt-4", True), ("gpt-4-0613", True),
                                              ("gpt-3.5-turbo", False), ("gpt-4-turbo", False),
                                              ("gpt-5", False), ("default", False)])
def test_only_gpt4_through_an_api_with_fastchats_prompts_is_comparable(judge, comparable):
    spec = judge_spec(judge)
    assert spec.comparable is comparable and is_comparable(spec.api_model, spec.backend) is comparable
    assert (spec.label is None) is comparable
    if not comparable:
        assert spec.label == f"judged by {spec.display_name}: {NOT_COMPARABLE}"


def test_changed_prompts_or_a_local_judge_are_not_comparable(tmp_path):
    prompts = (Path(__file__).parents[2] / "mt_bench_task/data/mt_bench/data/judge_prompts.jsonl")
    same = tmp_path / "same.jsonl"
    shutil.copy(prompts, same)
    changed = tmp_path / "changed.jsonl"
    changed.write_text(prompts.read_text().replace("You evaluation", "Your evaluation"))
    assert load_bench(judge_file=same).fastchat_prompts
    assert not load_bench(judge_file=changed).fastchat_prompts
    row = {"question_id": 81, "model": "m", "judge": ["gpt-4", "single-v1"], "score": 8, "turn": 1}

    def comparable(**changes) -> bool:
        return identity_of_records([SingleJudgment.from_dict({**row, **changes})]).comparable

    assert comparable()
    assert not comparable(local_judge=True)
    assert not comparable(fastchat_prompts=False)
    assert not comparable(judge=["gpt-4", "my-own-prompt"])
    assert not comparable(judge=["gpt-4o", "single-v1"])


# ---- the same label from show, report, publish and run ----
@pytest.mark.parametrize("judge,comparable", [_slow("gpt-3.5-turbo", False), ("gpt-4", True)])
def test_show_and_report_label_the_judge(mt_bench, tmp_path, judge, comparable):
    with FakeOpenAI("judge") as server:
        d = _judged(mt_bench, tmp_path, judge, server.url)
    label = f"judged by {judge}: {NOT_COMPARABLE}"
    show = mt_bench("show", "--data-dir", str(d), "--judge-model", judge)
    assert show.returncode == 0, show.stderr
    assert (label in show.stdout) is not comparable and (NOT_COMPARABLE in show.stdout) is not comparable
    js = json.loads(mt_bench("show", "--data-dir", str(d), "--judge-model", judge, "--json").stdout)
    assert (js["judge"], js["comparable"]) == (judge, comparable)
    report = mt_bench("report", "--data-dir", str(d), "--judge-model", judge, "--out",
                      str(tmp_path / "r.html"))
    assert report.returncode == 0, report.stderr
    assert (label in (tmp_path / "r.html").read_text()) is not comparable


@pytest.mark.parametrize("judge,comparable", [_slow("gpt-3.5-turbo", False), ("gpt-4", True)])
def test_publish_card_labels_the_judge(mt_bench, tmp_path, mock_hub: MockHub, judge, comparable):
    with FakeOpenAI("judge") as server:
        d = _judged(mt_bench, tmp_path, judge, server.url)
    with mock_hub.in_this_process(str(tmp_path / "hf_home")):
        p = mt_bench("publish", "--repo-id", "user/m", "--data-dir", d, "--judge-model", judge, "--dry-run")
    assert p.returncode == 0, p.stderr
    assert (NOT_COMPARABLE in p.stdout) is not comparable  # the card
    assert (f"judged by {judge}: {NOT_COMPARABLE}" in p.stderr) is not comparable


@pytest.mark.slow  # `run` ends in `show`, whose label the fast loop checks
@pytest.mark.parametrize("judge,comparable", [("gpt-3.5-turbo", False), ("gpt-4", True)])
def test_run_labels_the_judge(mt_bench, tmp_path, judge, comparable):
    d = answer_dir(tmp_path)  # answers exist: `run` resumes generation and loads no model
    with FakeOpenAI("judge") as server:
        p = mt_bench("run", "--data-dir", str(d), "--model-id", MODEL, "--judge-model", judge,
                     "--openai-api-base", server.url, "--question-end", FIRST_N, "--plot",
                     str(tmp_path / "radar.png"))
    assert p.returncode == 0, p.stderr
    assert server.total == 2 * int(FIRST_N)
    assert (f"judged by {judge}: {NOT_COMPARABLE}" in p.stdout) is not comparable
    assert (NOT_COMPARABLE in p.stderr) is not comparable


# ---- judges of today ----
def test_other_judges_get_fastchats_exact_request(mt_bench, tmp_path):
    with FakeOpenAI("judge") as server:
        _judged(mt_bench, tmp_path, "gpt-4", server.url)
    assert server.total == 2 * int(FIRST_N)
    for req in server.requests:
        assert set(req) == {"model", "messages", "n", "temperature", "max_tokens"}
        assert (req["model"], req["n"], req["temperature"], req["max_tokens"]) == ("gpt-4", 1, 0, 2048)


def test_reasoning_judge_is_adapted_once_and_completes_every_judgment(mt_bench, tmp_path):
    d = answer_dir(tmp_path)
    with FakeOpenAI("judge", reasoning=True) as server:
        p = mt_bench("judge", "--data-dir", str(d), "--judge-model", "o4-mini", "--openai-api-base",
                     server.url, "--parallel", "8")
    assert p.returncode == 0, p.stderr
    rows = [json.loads(l) for l in (d / "model_judgment/o4-mini_single.jsonl").read_text().splitlines()]
    assert len(rows) == 160 and all(1 <= r["score"] <= 10 for r in rows)
    assert not any("$ERROR$" in r["judgment"] for r in rows)
    assert server.total <= 1.25 * 160 and server.rejected_params["max_tokens"] >= 1
    assert server.rejected_params["temperature"] >= 1
    last = server.requests[-1]
    assert last["max_completion_tokens"] == 2048 and "max_tokens" not in last
    assert "temperature" not in last
    assert p.stderr.count("max_completion_tokens=2048 instead") == 1  # said once
    assert p.stderr.count("sending no temperature") == 1
    assert "judged 160 matches (0 failed" in p.stderr and SECRET not in p.stderr


# ---- a judge that refuses everything ----
@pytest.mark.parametrize("parallel", [_slow(1), 4, _slow(16)])
def test_judge_refusing_everything_stops_within_3x_parallel(mt_bench, tmp_path, parallel):
    d = answer_dir(tmp_path)
    message = f"The model `gpt-4` does not exist or you do not have access to it ({SECRET})."
    with FakeOpenAI("judge", faults=[f"400:{message}"] * 1000) as server:
        p = mt_bench("judge", "--data-dir", str(d), "--openai-api-base", server.url,
                     "--parallel", str(parallel))
    assert p.returncode == 2 and "Traceback" not in p.stderr
    errors = [l for l in p.stderr.splitlines() if l.startswith("mt-bench judge: error:")]
    assert len(errors) == 1 and "does not exist or you do not have access" in errors[0]
    assert "HTTP 400" in errors[0] and SECRET not in p.stderr + p.stdout
    assert server.total <= 3 * parallel
    assert not (d / "model_judgment/gpt-4_single.jsonl").exists()  # nothing written


def test_refusals_after_adaptation_also_stop_the_run(mt_bench, tmp_path):
    d = answer_dir(tmp_path)
    # request 0 is refused for max_tokens, 1 for temperature, then the adapted one for good
    faults = [None, None] + ["400:context_length_exceeded"] * 1000
    with FakeOpenAI("judge", reasoning=True, faults=faults) as server:
        p = mt_bench("judge", "--data-dir", str(d), "--judge-model", "o3", "--openai-api-base",
                     server.url, "--parallel", "1")
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert server.total == 3 and dict(server.rejected_params) == {"max_tokens": 1, "temperature": 1}
    error = p.stderr.splitlines()[-1]
    assert error.startswith("mt-bench judge: error:") and "context_length_exceeded" in error
    assert REASONING_MAX_TOKENS not in error


def test_one_refused_request_among_answers_is_only_a_failed_judgment(mt_bench, tmp_path):
    d = answer_dir(tmp_path)
    with FakeOpenAI("judge", faults=[None, "400:too long"]) as server:
        p = mt_bench("judge", "--data-dir", str(d), "--openai-api-base", server.url, "--first-n",
                     FIRST_N, "--parallel", "1")
    assert p.returncode == 1, p.stderr  # finished, one failure to retry
    rows = (d / "model_judgment/gpt-4_single.jsonl").read_text().splitlines()
    assert len(rows) == 2 * int(FIRST_N) and sum("$ERROR$" in r for r in rows) == 1
    assert server.total == 2 * int(FIRST_N)
