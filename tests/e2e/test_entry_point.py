"""The installed `mt-bench` script as a user runs it: its exit codes and streams are the process's own
(the in-process `mt_bench` fixture reproduces them; these check that it does)."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from support.answer_dirs import answer_dir
from support.cli import mt_bench_subprocess
from support.fake_openai import FakeOpenAI

pytestmark = pytest.mark.slow  # real processes; tests/cli and tests/judging run the same in process

SECRET = "sk-test-SECRET-entry-point-42"


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
    return {**env, "OPENAI_API_KEY": SECRET}


def test_help_exits_0_and_names_every_subcommand():
    p = mt_bench_subprocess("--help", entry_point=True)
    assert p.returncode == 0, p.stderr
    for command in ("gen", "gen-api", "judge", "show", "calibrate", "run", "publish", "report"):
        assert command in p.stdout


def test_a_user_mistake_is_exit_2_and_one_line(tmp_path: Path):
    p = mt_bench_subprocess("show", "--data-dir", tmp_path / "nowhere", entry_point=True, cwd=tmp_path)
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert p.stderr.count("\n") == 1 and p.stderr.startswith("mt-bench show: error: ")
    assert list(tmp_path.iterdir()) == []


def test_gen_api_judge_and_show_through_the_entry_point(tmp_path: Path):
    d = answer_dir(tmp_path)
    with FakeOpenAI("judge") as server:
        gen = mt_bench_subprocess("gen-api", "--model", "m", "--openai-api-base", server.url,
                                  "--data-dir", d, "--question-end", "2", env=_env(), entry_point=True)
        judge = mt_bench_subprocess("judge", "--data-dir", d, "--openai-api-base", server.url,
                                    "--first-n", "2", env=_env(), entry_point=True)
    assert gen.returncode == 0, gen.stderr
    assert judge.returncode == 0, judge.stderr
    show = mt_bench_subprocess("show", "--data-dir", d, "--json", entry_point=True)
    assert show.returncode == 0, show.stderr
    assert set(json.loads(show.stdout)["models"]) == {"m", "mamba_0_5_dpo_ep1"}
    for p in (gen, judge, show):
        assert SECRET not in p.stdout + p.stderr
