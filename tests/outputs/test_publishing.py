"""`mt-bench publish` / `push-dataset` against a real local HTTP server that speaks the Hub API.

huggingface_hub reads HF_ENDPOINT at import time: the CLI runs in this process with the client's
constants pointed at the mock (`MockHub.in_this_process`); the slow tests run it as a subprocess
with the mock's environment, the way a user's shell sets it. Every run checks that the token
never shows up.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from support.cli import CliResult, mt_bench_subprocess, run_in_process
from support.mock_hub import FAKE_TOKEN, MockHub

from mt_bench_task.core import scoring
from mt_bench_task.core.bench import JUDGE_PROMPTS_VERSION, dataset_path, load_bench
from mt_bench_task.core.errors import DataError
from mt_bench_task.outputs.publishing import SECTION_END, SECTION_START, _with_section

# huggingface_hub's LFS upload, in this process: its own call into httpx, nothing of ours
pytestmark = pytest.mark.filterwarnings("ignore:Use 'content=<...>' to upload raw bytes:DeprecationWarning")
_MT = load_bench()
CATEGORIES, DATASET_ID, DATASET_REVISION = _MT.categories, _MT.dataset_id, _MT.dataset_revision

REPO = "user/my-model"
BAD_TOKEN = "hf_BADtokenMUSTnotLEAK987654321"


def _results(average: float = 6.875, judge: str = "gpt-4", **extra: Any) -> dict[str, Any]:
    cats = {c: round(4.0 + 0.5 * i, 2) for i, c in enumerate(CATEGORIES)}
    return {"mode": "single", "rows": 160, "rows_dropped": 0, "judge": judge, **extra,
            "models": {"my-model": {"turn_1": 7.5, "turn_2": 6.25, "average": average,
                                    "n_turn_1": 80, "n_turn_2": 80, "categories": cats,
                                    "ci95": [6.5, 7.25]}}}


def _write(tmp_path: Path, results: dict[str, Any], name: str = "results.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(results))
    return path


def run_cli(hub: MockHub, tmp_path: Path, *args: str, token: str | None = None,
            code: str | None = None, subprocess_: bool = False) -> CliResult:
    """`mt-bench ARGS` pointed at the mock hub: in this process, or (`subprocess_`, or
    `python -c CODE`) in a subprocess with the mock's environment."""
    if not (code or subprocess_):
        with hub.in_this_process(str(tmp_path / "hf_home"), token=token):
            proc = run_in_process(*args, cwd=tmp_path)
        return _no_secret_in(proc)
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    env.update(hub.env(str(tmp_path / "hf_home"), token=token))
    if code:
        p = subprocess.run([sys.executable, "-c", code], check=False, env=env, capture_output=True,
                           text=True, timeout=600, cwd=tmp_path)
        proc = CliResult(p.returncode, p.stdout, p.stderr)
    else:
        proc = mt_bench_subprocess(*args, env=env, cwd=tmp_path, timeout=600)
    return _no_secret_in(proc)


def _no_secret_in(proc: CliResult) -> CliResult:
    for secret in (FAKE_TOKEN, BAD_TOKEN):
        assert secret not in proc.stdout + proc.stderr
    return proc


def _readme(hub: MockHub, rev: str = "main") -> str:
    text = hub.repo(REPO).files(rev)["README.md"].decode()
    assert FAKE_TOKEN not in text and BAD_TOKEN not in text
    return text


def _card_data(text: str) -> Any:
    """The card's ModelCardData, parsed offline by huggingface_hub (typed Any: CardData lacks fields)."""
    from huggingface_hub import ModelCard

    return ModelCard(text).data


def _scores(text: str) -> dict[tuple[str, str | None], float]:
    ours = [r for r in _card_data(text).eval_results or [] if r.dataset_type == DATASET_ID]
    keys = [(r.metric_type, r.metric_config) for r in ours]
    assert len(keys) == len(set(keys)), f"colliding entries: {keys}"
    return {(r.metric_type, r.metric_config): r.metric_value for r in ours}


def _publish(hub: MockHub, tmp_path: Path, results: dict[str, Any], *extra: str,
             token: str | None = None, subprocess_: bool = False) -> CliResult:
    return run_cli(hub, tmp_path, "publish", "--repo-id", REPO, "--results",
                   str(_write(tmp_path, results)), *extra, token=token, subprocess_=subprocess_)


def test_publish_new_card_round_trip(mock_hub: MockHub, tmp_path: Path) -> None:
    repo = mock_hub.create_repo(REPO)
    proc = _publish(mock_hub, tmp_path, _results())
    assert proc.returncode == 0, proc.stderr
    text = _readme(mock_hub)
    scores = _scores(text)
    assert scores[("mt_bench_score", None)] == 6.875
    assert scores[("mt_bench_score", "turn_1")] == 7.5
    assert scores[("mt_bench_score", "turn_2")] == 6.25
    for i, c in enumerate(CATEGORIES):
        assert scores[("mt_bench_score", c)] == 4.0 + 0.5 * i
    assert len(scores) == 3 + len(CATEGORIES)

    data = _card_data(text)
    r = data.eval_results[0]
    assert (r.task_type, r.dataset_name, r.dataset_config, r.dataset_split, r.dataset_revision) == (
        "text-generation", "MT-bench", "question", "train", DATASET_REVISION)
    assert r.metric_args == {"judge_model": "gpt-4", "judge_prompts": JUDGE_PROMPTS_VERSION}
    assert data.model_name == "my-model"
    assert text.count(SECTION_START) == 1 and text.count(SECTION_END) == 1
    assert "| **average** | **6.88** (95% CI 6.50-7.25) |" in text
    assert "not comparable" not in text
    # README (and the radar) land in ONE commit on main
    assert len(repo.commits) == 2
    files = repo.files()
    assert files["mt_bench_radar.png"].startswith(b"\x89PNG")
    assert "](mt_bench_radar.png)" in text
    assert f"{mock_hub.url}/{REPO}/commit/" in proc.stdout


@pytest.mark.slow  # end to end over subprocesses; the fast loop covers the feature
def test_republish_updates_section_in_place(mock_hub: MockHub, tmp_path: Path) -> None:
    mock_hub.create_repo(REPO)
    assert _publish(mock_hub, tmp_path, _results(6.875), subprocess_=True).returncode == 0
    first = _readme(mock_hub)
    proc = _publish(mock_hub, tmp_path, _results(7.125), subprocess_=True)
    assert proc.returncode == 0, proc.stderr
    text = _readme(mock_hub)
    assert text.count(SECTION_START) == 1 and text.count(SECTION_END) == 1
    assert "**7.12**" in text and "**6.88**" not in text
    assert _scores(text)[("mt_bench_score", None)] == 7.125
    assert len(_scores(text)) == len(_scores(first))
    assert len(text.splitlines()) == len(first.splitlines())


FOREIGN_CARD = """---
license: apache-2.0
base_model: HuggingFaceTB/SmolLM2-135M
tags:
- custom-tag
my_custom_key: keep me
model-index:
- name: my-model
  results:
  - task:
      type: text-generation
    dataset:
      name: GSM8K
      type: openai/gsm8k
    metrics:
    - type: accuracy
      value: 0.42
      name: GSM8K accuracy
  - task:
      type: text-generation
    dataset:
      name: MT-bench
      type: mt_bench_task/mt_bench
    metrics:
    - type: mt_bench_score
      value: 1.0
      name: stale MT-bench score
---

# My model

Intro text written by a human.

<!-- mt-bench:start -->
old section
<!-- mt-bench:end -->

## Training

Details that must survive.
"""


def test_merge_keeps_foreign_content(mock_hub: MockHub, tmp_path: Path) -> None:
    mock_hub.create_repo(REPO, files={"README.md": FOREIGN_CARD.encode()})
    proc = _publish(mock_hub, tmp_path, _results())
    assert proc.returncode == 0, proc.stderr
    text = _readme(mock_hub)

    data = _card_data(text)
    assert data.license == "apache-2.0" and data.base_model == "HuggingFaceTB/SmolLM2-135M"
    assert data.tags == ["custom-tag"] and data.to_dict()["my_custom_key"] == "keep me"
    gsm = [r for r in data.eval_results if r.dataset_type == "openai/gsm8k"]
    assert [(r.metric_type, r.metric_value) for r in gsm] == [("accuracy", 0.42)]
    assert _scores(text)[("mt_bench_score", None)] == 6.875  # the stale 1.0 is replaced
    assert "stale MT-bench score" not in text and "old section" not in text
    body = text.split("---", 2)[2]
    for kept in ("# My model", "Intro text written by a human.", "## Training",
                 "Details that must survive."):
        assert kept in body
    assert body.index("Intro text") < body.index(SECTION_START) < body.index("## Training")
    assert text.count(SECTION_START) == 1


def test_create_pr_leaves_main_untouched(mock_hub: MockHub, tmp_path: Path) -> None:
    repo = mock_hub.create_repo(REPO, files={"README.md": FOREIGN_CARD.encode()})
    main_before = repo.refs["main"]
    proc = _publish(mock_hub, tmp_path, _results(), "--create-pr")
    assert proc.returncode == 0, proc.stderr
    assert repo.refs["main"] == main_before
    assert "refs/pr/1" in repo.refs
    assert _scores(_readme(mock_hub, "refs/pr/1"))[("mt_bench_score", None)] == 6.875
    assert f"{REPO}/discussions/1" in proc.stdout


@pytest.mark.slow  # end to end over subprocesses; the fast loop covers the feature
def test_revision_targets_a_branch(mock_hub: MockHub, tmp_path: Path) -> None:
    repo = mock_hub.create_repo(REPO, files={"README.md": FOREIGN_CARD.encode()})
    repo.refs["dev"] = main_before = repo.refs["main"]
    proc = _publish(mock_hub, tmp_path, _results(), "--revision", "dev", subprocess_=True)
    assert proc.returncode == 0, proc.stderr
    assert repo.refs["main"] == main_before and repo.refs["dev"] != main_before
    assert "Intro text written by a human." in _readme(mock_hub, "dev")


def test_no_token_is_a_clear_error_and_writes_nothing(mock_hub: MockHub, tmp_path: Path) -> None:
    repo = mock_hub.create_repo(REPO)
    proc = _publish(mock_hub, tmp_path, _results(), token="")
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "no Hugging Face token" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert mock_hub.writes() == [] and len(repo.commits) == 1


def test_bad_token_401_is_a_clear_error_and_writes_nothing(mock_hub: MockHub, tmp_path: Path) -> None:
    repo = mock_hub.create_repo(REPO, files={"README.md": FOREIGN_CARD.encode()})
    proc = _publish(mock_hub, tmp_path, _results(), token=BAD_TOKEN)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "HTTP 401" in proc.stderr and "HF_TOKEN" in proc.stderr
    assert any(r["auth"] for r in mock_hub.requests)  # the server did see (and refuse) the token
    assert mock_hub.writes() == [] and len(repo.commits) == 1
    assert _readme(mock_hub) == FOREIGN_CARD


@pytest.mark.slow  # end to end over subprocesses; the fast loop covers the feature
def test_read_only_token_403_writes_nothing(mock_hub: MockHub, tmp_path: Path) -> None:
    repo = mock_hub.create_repo(REPO, files={"README.md": FOREIGN_CARD.encode()})
    mock_hub.read_only_token = BAD_TOKEN
    proc = _publish(mock_hub, tmp_path, _results(), token=BAD_TOKEN, subprocess_=True)
    assert proc.returncode == 2 and "HTTP 403" in proc.stderr and proc.stderr.count("\n") == 1
    assert len(repo.commits) == 1 and not mock_hub.lfs


def test_failed_commit_leaves_card_and_image_unchanged(mock_hub: MockHub, tmp_path: Path) -> None:
    repo = mock_hub.create_repo(REPO, files={"README.md": FOREIGN_CARD.encode()})
    main_before = repo.refs["main"]
    mock_hub.reject_commits = "commit rejected by the test"
    proc = _publish(mock_hub, tmp_path, _results())
    assert proc.returncode == 2 and "commit rejected by the test" in proc.stderr
    assert proc.stderr.count("\n") == 1
    assert repo.refs["main"] == main_before and len(repo.commits) == 1
    assert set(repo.files()) == {".gitattributes", "README.md"}  # no orphan radar image either


def test_dry_run_prints_the_card_and_pushes_nothing(mock_hub: MockHub, tmp_path: Path) -> None:
    repo = mock_hub.create_repo(REPO, files={"README.md": FOREIGN_CARD.encode()})
    proc = _publish(mock_hub, tmp_path, _results(), "--dry-run")
    assert proc.returncode == 0, proc.stderr
    assert "Intro text written by a human." in proc.stdout and SECTION_START in proc.stdout
    assert _scores(proc.stdout.strip() + "\n")[("mt_bench_score", None)] == 6.875
    assert "dry run, nothing pushed" in proc.stderr
    assert [r for r in mock_hub.requests if r["method"] in ("POST", "PUT")] == []
    assert len(repo.commits) == 1


@pytest.mark.slow  # end to end over subprocesses; the fast loop covers the feature
def test_dry_run_without_token_or_repo(mock_hub: MockHub, tmp_path: Path) -> None:
    proc = _publish(mock_hub, tmp_path, _results(), "--dry-run", token="", subprocess_=True)
    assert proc.returncode == 0, proc.stderr
    assert "showing a new card" in proc.stderr and "# my-model" in proc.stdout
    assert mock_hub.writes() == []


def test_unknown_model_lists_the_known_ones(mock_hub: MockHub, tmp_path: Path) -> None:
    mock_hub.create_repo(REPO)
    proc = _publish(mock_hub, tmp_path, _results(), "--model-id", "nope")
    assert proc.returncode == 2 and "'nope'" in proc.stderr and "my-model" in proc.stderr
    assert mock_hub.requests == []


@pytest.mark.slow  # end to end over subprocesses; the fast loop covers the feature
def test_local_judge_is_labelled_not_comparable(mock_hub: MockHub, tmp_path: Path) -> None:
    mock_hub.create_repo(REPO)
    proc = _publish(mock_hub, tmp_path, _results(judge="smollm2-135m", comparable=False), subprocess_=True)
    assert proc.returncode == 0, proc.stderr
    text = _readme(mock_hub)
    assert "not comparable with published MT-bench" in text
    assert {r.metric_args["judge_model"] for r in _card_data(text).eval_results} == {"smollm2-135m"}


def test_publish_from_judgment_file(mock_hub: MockHub, tmp_path: Path) -> None:
    src = Path(__file__).parents[1] / "conformance" / "jxiw" / "model_judgment" / "gpt-4_single.jsonl"
    judgments = tmp_path / "data" / "model_judgment"
    judgments.mkdir(parents=True)
    (judgments / "gpt-4_single.jsonl").write_bytes(src.read_bytes())
    mock_hub.create_repo(REPO)
    # pairwise vs FastChat's baseline: 2 consistent wins, 1 tie, 1 inconsistent (= tie)
    pair = [("model_1", "model_1"), ("model_2", "model_2"), ("tie", "tie"), ("model_1", "model_2")]
    (judgments / "gpt-4_pair.jsonl").write_text("".join(json.dumps(
        {"question_id": 81 + i, "model_1": m1, "model_2": m2, "g1_winner": g1, "g2_winner": g2,
         "judge": ["gpt-4", "pair-v2"], "turn": 1, "tstamp": 0.0}) + "\n"
        for i, ((g1, g2), (m1, m2)) in enumerate(zip(pair, [
            ("mamba_0_5_dpo_ep1", "gpt-3.5-turbo"), ("gpt-3.5-turbo", "mamba_0_5_dpo_ep1"),
            ("mamba_0_5_dpo_ep1", "gpt-3.5-turbo"), ("mamba_0_5_dpo_ep1", "gpt-3.5-turbo")]))))
    proc = run_cli(mock_hub, tmp_path, "publish", "--repo-id", REPO, "--data-dir",
                   str(tmp_path / "data"), "--model-id", "mamba_0_5_dpo_ep1")
    assert proc.returncode == 0, proc.stderr
    expected = scoring.results_from_file(judgments / "gpt-4_single.jsonl").score("mamba_0_5_dpo_ep1")
    text = _readme(mock_hub)
    scores = _scores(text)
    assert scores[("mt_bench_score", None)] == round(expected.average, 4)
    assert expected.turn_2 is not None
    assert scores[("mt_bench_score", "turn_2")] == round(expected.turn_2, 4)
    assert scores[("mt_bench_win_rate", "vs_gpt-3.5-turbo")] == 0.5
    assert scores[("mt_bench_win_rate_adjusted", "vs_gpt-3.5-turbo")] == 0.75
    assert "| 2 | 0 | 2 | 0.500 | 0.750 |" in text and "not comparable" not in text
    proc = run_cli(mock_hub, tmp_path, "publish", "--repo-id", REPO, "--data-dir",
                   str(tmp_path / "data"), "--dry-run")
    assert proc.returncode == 2 and "--model-id" in proc.stderr and "mamba_0_75_dpo_ep3" in proc.stderr


def test_local_judge_rows_are_labelled_not_comparable(mock_hub: MockHub, tmp_path: Path) -> None:
    src = Path(__file__).parents[1] / "conformance" / "jxiw" / "model_judgment" / "gpt-4_single.jsonl"
    rows = [json.loads(line) for line in src.read_text().splitlines()[:6]]
    for r in rows:
        r.update(model="my-model", judge=["smollm2-135m", r["judge"][1]], local_judge=True)
    path = tmp_path / "smollm2-135m_single.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    mock_hub.create_repo(REPO)
    proc = run_cli(mock_hub, tmp_path, "publish", "--repo-id", REPO, "--results", str(path))
    assert proc.returncode == 0, proc.stderr
    text = _readme(mock_hub)
    assert "not comparable with published MT-bench" in text and "`smollm2-135m`" in text
    assert "not comparable" in proc.stderr


_LOAD = """
import json, sys
from datasets import load_dataset
out = {}
for cfg, split in (("question", "train"), ("reference_answer", "gpt_4"), ("judge_prompts", "train")):
    out[cfg] = load_dataset("user/mt_bench", cfg, split=split).to_list()
json.dump(out, sys.stdout)
"""


@pytest.mark.slow  # end to end over subprocesses; the fast loop covers the feature
def test_push_dataset_then_load_dataset_round_trip(mock_hub: MockHub, tmp_path: Path) -> None:
    proc = run_cli(mock_hub, tmp_path, "push-dataset", "--repo-id", "user/mt_bench", subprocess_=True)
    assert proc.returncode == 0, proc.stderr
    assert "pushed the dataset" in proc.stdout
    repo = mock_hub.repo("user/mt_bench", "dataset")
    local = dataset_path()
    for rel in ("README.md", "data/question.jsonl", "data/reference_answer_gpt-4.jsonl",
                "data/judge_prompts.jsonl"):
        assert repo.files()[rel] == (local / rel).read_bytes(), rel  # byte for byte
    # pushing again is a no-op-safe update (repo exists)
    assert run_cli(mock_hub, tmp_path, "push-dataset", "--repo-id", "user/mt_bench", subprocess_=True).returncode == 0

    proc = run_cli(mock_hub, tmp_path, code=_LOAD)
    assert proc.returncode == 0, proc.stderr[-3000:]
    remote = json.loads(proc.stdout)
    from datasets import load_dataset

    cache = str(tmp_path / "local_cache")
    for cfg, split in (("question", "train"), ("reference_answer", "gpt_4"), ("judge_prompts", "train")):
        expected = load_dataset(str(local), cfg, split=split, cache_dir=cache).to_list()
        assert remote[cfg] == expected, cfg
    assert len(remote["question"]) == 80


@pytest.mark.slow  # end to end over subprocesses; the fast loop covers the feature
def test_push_dataset_private_to_a_branch(mock_hub: MockHub, tmp_path: Path) -> None:
    proc = run_cli(mock_hub, tmp_path, "push-dataset", "--repo-id", "user/mt_bench", "--private",
                   "--revision", "v1", subprocess_=True)
    assert proc.returncode == 0, proc.stderr
    repo = mock_hub.repo("user/mt_bench", "dataset")
    assert repo.private and set(repo.files("main")) == {".gitattributes"}
    assert "data/question.jsonl" in repo.files("v1")


def test_push_dataset_without_token(mock_hub: MockHub, tmp_path: Path) -> None:
    proc = run_cli(mock_hub, tmp_path, "push-dataset", "--repo-id", "user/mt_bench", token="")
    assert proc.returncode == 2 and "no Hugging Face token" in proc.stderr
    assert mock_hub.requests == []


def test_publish_to_missing_repo_fails_cleanly(mock_hub: MockHub, tmp_path: Path) -> None:
    proc = _publish(mock_hub, tmp_path, _results())
    assert proc.returncode == 2 and "repository not found" in proc.stderr
    assert proc.stderr.count("\n") == 1 and mock_hub.writes() == []


def test_with_section_appends_then_replaces() -> None:
    sec = f"{SECTION_START}\nnew\n{SECTION_END}"
    once = _with_section("# Title\n\nbody\n", sec)
    assert once == f"# Title\n\nbody\n\n{sec}\n"
    assert _with_section(once, sec) == once
    dup = f"a\n{SECTION_START}\nx\n{SECTION_END}\nb\n{SECTION_START}\ny\n{SECTION_END}\nc\n"
    assert _with_section(dup, sec) == f"a\n{sec}\nb\n\nc\n"
    with pytest.raises(DataError, match="unbalanced"):
        _with_section(f"{SECTION_START}\nno end\n", sec)
