"""The CLI side of the official MT-bench data: `mt-bench calibrate` and the `--leaderboard`
options of `show` and `report`. `cli.py` registers them (one subcommand list) and hands over the
resolved data dir and bench; the options and the printing live here.

Both are MT-bench only: the leaderboard refuses another bench (`official.check_mt_bench`), and
calibration always judges the packaged MT-bench (`official.mt_bench`).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from mt_bench_task.cli.options import send_options
from mt_bench_task.core.errors import DataError

if TYPE_CHECKING:
    from mt_bench_task.core.workspace import Workspace
    from mt_bench_task.engine.config import EngineOptions


def add_leaderboard_options(p: argparse.ArgumentParser, plot: bool = False) -> None:
    p.add_argument("--leaderboard", action="store_true", help="place your models among the 34 "
                   "published MT-bench models (official GPT-4 grades; single mode, MT-bench only)")
    if plot:
        p.add_argument("--reference-models", nargs="+", default=None,
                       help="with --leaderboard --plot: official models to draw (default: 3)")


def add_calibrate_options(p: argparse.ArgumentParser) -> None:
    """calibrate's own options (the judge's are `cli_parser.add_judge_client`'s); no --bench-name."""
    p.add_argument("--data-dir", default=None,
                   help="where calibration/ is written (default: data/mt_bench)")
    p.add_argument("--models", nargs="+", default=None,
                   help="reference models to judge (default: all 6 with official answers)")
    p.add_argument("--json", action="store_true", help="the statistics as one JSON object")
    p.add_argument("--dry-run", action="store_true",
                   help="say how many judge calls it would make (960 for all 6), call nothing")
    p.set_defaults(bench_name="mt_bench")  # the default data dir: data/mt_bench


def check_show_options(args: argparse.Namespace) -> None:
    if args.reference_models and not (args.leaderboard and args.plot):
        raise DataError("--reference-models needs --leaderboard and --plot")
    if args.leaderboard and args.mode != "single":  # before any file is looked for
        raise DataError("--leaderboard needs single-mode judgments (--mode single)")


def show_leaderboard(args: argparse.Namespace, data_dir: Path, workspace: Workspace) -> int:
    """`mt-bench show --leaderboard`: the placement table (or JSON) on stdout, notes on stderr."""
    from mt_bench_task.outputs.official import show_leaderboard as view

    out = view(data_dir, args.input_file, args.judge_model, args.mode, args.model_list,
               args.json, args.plot, args.reference_models, args.seed, workspace=workspace)
    for line in out.stderr:
        print(line, file=sys.stderr)
    print(out.stdout)
    return 0


def calibrate(args: argparse.Namespace, data_dir: Path, engine_options: EngineOptions) -> int:
    """`mt-bench calibrate`: the plan (stdout with --dry-run, else stderr), then the table or
    the JSON object; exit 1 while $ERROR$ judgments (sent again on the next run) or judgments
    without a rating remain, with the judge's closing lines saying which."""
    from mt_bench_task.outputs.calibration import CalibrationRun, calibration_plan, calibration_table, run_calibration

    send = send_options(args)
    run = CalibrationRun(data_dir=data_dir, judge_model=args.judge_model,
                         base_url=args.openai_api_base,
                         models=tuple(args.models) if args.models else None, dry_run=args.dry_run,
                         judge_repeats=args.judge_repeats, references=args.references,
                         engine=args.engine, engine_options=engine_options, send=send,
                         judge_max_tokens=args.judge_max_tokens,
                         judge_reasoning_effort=args.judge_reasoning_effort)
    summary = run_calibration(run, on_plan=lambda plan: print(
        calibration_plan(plan), file=sys.stdout if args.dry_run else sys.stderr))
    if args.dry_run:
        return 0
    if summary.batch_pending:  # the one "still running" line, as `judge` says it
        print(*summary.judging.end_lines(), sep="\n", file=sys.stderr)
        print(" ".join(summary.judging.batch_ids))
        return 0
    print(json.dumps(summary.stats) if args.json else calibration_table(summary))
    if not summary.ok:  # exit 1 says why: failed judgments, or judgments without a rating
        print(*summary.judging.end_lines(), sep="\n", file=sys.stderr)
    return 0 if summary.ok else 1
