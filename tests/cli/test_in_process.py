"""The `mt_bench` fixture (tests/support/cli.py): the entry point's exit codes, and nothing of a call
left behind in this process (tests/e2e compares it with the real entry point)."""
from __future__ import annotations

import logging
import os
import signal
import sys
from pathlib import Path

import pytest


def test_exit_codes_are_the_entry_points(mt_bench, tmp_path: Path):
    assert mt_bench("--help").returncode == 0  # argparse's SystemExit(0)
    bad = mt_bench("no-such-command")
    assert bad.returncode == 2 and "invalid choice" in bad.stderr  # argparse's SystemExit(2)
    missing = mt_bench("show", "--data-dir", tmp_path / "nowhere")
    assert missing.returncode == 2 and missing.stderr.startswith("mt-bench show: error: ")


def test_ctrl_c_is_130_and_an_uncaught_error_is_1_with_its_traceback(mt_bench, monkeypatch):
    import mt_bench_task.cli.main as cli_main

    def interrupted(args):  # type: ignore[no-untyped-def]
        raise KeyboardInterrupt

    def broken(args):  # type: ignore[no-untyped-def]
        raise RuntimeError("boom")

    monkeypatch.setitem(cli_main.COMMANDS, "show", interrupted)
    r = mt_bench("show")
    assert r.returncode == 130 and "interrupted" in r.stderr
    monkeypatch.setitem(cli_main.COMMANDS, "show", broken)
    r = mt_bench("show")
    assert r.returncode == 1 and "Traceback" in r.stderr and "RuntimeError: boom" in r.stderr


def test_a_call_leaves_this_process_as_it_found_it(mt_bench, tmp_path: Path):
    logger = logging.getLogger("mt_bench_task")
    before = (dict(os.environ), os.getcwd(), sys.argv, list(logger.handlers), logger.level,
              signal.getsignal(signal.SIGINT))
    r = mt_bench("show", "--data-dir", tmp_path / "nowhere", cwd=tmp_path,
                 env={**os.environ, "OPENAI_API_KEY": "sk-test-in-process"})
    assert r.returncode == 2
    after = (dict(os.environ), os.getcwd(), sys.argv, list(logger.handlers), logger.level,
             signal.getsignal(signal.SIGINT))
    assert after == before


def test_hf_settings_read_at_import_are_refused_in_process(mt_bench):
    with pytest.raises(ValueError, match="HF_ENDPOINT"):
        mt_bench("show", env={**os.environ, "HF_ENDPOINT": "http://127.0.0.1:9"})
