"""The workspace: right after `mt-bench run`, the commands a newcomer types next (`show`,
`report`, `publish --dry-run`) find that run's judgments with no judge flag, and with
`--judge-model default`; several judges or none are one clear line naming the files and the flag.
The CLI in a real data dir (`data/mt_bench` under the working directory)."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from support.cli import CliResult
from support.mock_hub import hub_offline_without_token

from mt_bench_task.core.judge_spec import EMBEDDED_JUDGE_NAME
from mt_bench_task.core.workspace import judge_name, open_workspace

CONF = Path(__file__).parents[1] / "conformance" / "jxiw"
MODEL = "mamba_0_5_dpo_ep1"


def _mt_bench(mt_bench, cwd: Path, *args: str) -> CliResult:
    """`mt-bench ARGS` in cwd; publish offline and without a token."""
    if args[0] == "publish":
        with hub_offline_without_token():
            return mt_bench(*args, cwd=cwd)
    return mt_bench(*args, cwd=cwd)


def _as_run_left_it(cwd: Path) -> Path:
    """data/mt_bench as the README's first command leaves it: one model's answers and the
    embedded judge's single-mode judgments (judge name smollm2-135m-instruct, local)."""
    d = cwd / "data" / "mt_bench"
    (d / "model_answer").mkdir(parents=True)
    (d / "model_judgment").mkdir()
    (d / "model_answer" / f"{MODEL}.jsonl").write_bytes(
        (CONF / "model_answer" / f"{MODEL}.jsonl").read_bytes())
    rows = []
    for line in (CONF / "model_judgment" / "gpt-4_single.jsonl").read_text().splitlines():
        r = json.loads(line)
        if r["model"] == MODEL:
            r["judge"][0] = EMBEDDED_JUDGE_NAME
            rows.append(json.dumps({**r, "local_judge": True}))
    (d / "model_judgment" / f"{EMBEDDED_JUDGE_NAME}_single.jsonl").write_text("\n".join(rows) + "\n")
    return d


@pytest.mark.parametrize("judge", [[], ["--judge-model", "default"]])
def test_show_report_and_publish_find_the_runs_judgments(mt_bench, tmp_path, judge):
    _as_run_left_it(tmp_path)
    show = _mt_bench(mt_bench, tmp_path, "show", "--json", *judge)
    assert show.returncode == 0, show.stderr
    results = json.loads(show.stdout)
    assert results["judge"] == EMBEDDED_JUDGE_NAME and results["comparable"] is False
    assert list(results["models"]) == [MODEL]
    if not judge:  # it says which files it read
        assert (f"judge {EMBEDDED_JUDGE_NAME} (data/mt_bench/model_judgment/"
                f"{EMBEDDED_JUDGE_NAME}_single.jsonl)") in show.stderr

    report = _mt_bench(mt_bench, tmp_path, "report", *judge)
    assert report.returncode == 0, report.stderr
    page = (tmp_path / "report.html").read_text()
    meta = re.search(r'"judge_model":\s*"([^"]*)"', page)
    assert meta and meta.group(1) == EMBEDDED_JUDGE_NAME and MODEL in page

    card = _mt_bench(mt_bench, tmp_path, "publish", "--dry-run", *judge)
    assert card.returncode == 0, card.stderr
    assert MODEL in card.stdout and f"judged by `{EMBEDDED_JUDGE_NAME}`" in card.stdout
    assert "give --repo-id to publish" in card.stderr


def test_several_judges_or_none_is_one_line_naming_them(mt_bench, tmp_path):
    d = _as_run_left_it(tmp_path)
    (d / "model_judgment" / "gpt-4_single.jsonl").write_bytes(
        (CONF / "model_judgment" / "gpt-4_single.jsonl").read_bytes())
    for command in (["show"], ["report"], ["publish", "--dry-run"]):
        p = _mt_bench(mt_bench, tmp_path, *command)
        assert p.returncode == 2, p.stderr
        lines = p.stderr.strip().splitlines()
        assert len(lines) == 1 and "--judge-model" in lines[0]
        assert "gpt-4_single.jsonl" in lines[0] and f"{EMBEDDED_JUDGE_NAME}_single.jsonl" in lines[0]
    chosen = _mt_bench(mt_bench, tmp_path, "show", "--json", "--judge-model", "gpt-4")
    assert chosen.returncode == 0 and json.loads(chosen.stdout)["judge"] == "gpt-4"
    for f in (d / "model_judgment").iterdir():
        f.unlink()
    p = _mt_bench(mt_bench, tmp_path, "show")
    assert p.returncode == 2 and "no single judgment files" in p.stderr and "--judge-model" in p.stderr


def test_one_rule_from_judge_name_to_file(tmp_path):
    ws = open_workspace(data_dir=tmp_path)
    local = tmp_path / "models" / "my-judge"
    local.mkdir(parents=True)
    assert judge_name("default") == EMBEDDED_JUDGE_NAME
    assert judge_name(str(local)) == "my-judge"
    assert judge_name("gpt-4") == "gpt-4"
    assert ws.judgment_file("default", "single").name == f"{EMBEDDED_JUDGE_NAME}_single.jsonl"
    assert ws.judgment_file("meta-llama/Llama-3-70B", "pairwise-all").name == \
        "meta-llama__Llama-3-70B_pair.jsonl"
    assert ws.resolve_judge(None, ("single",), fallback="gpt-4") == "gpt-4"  # nothing judged yet
