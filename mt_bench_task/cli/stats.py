"""The CLI side of the statistics beyond FastChat's tables: `mt-bench show --compare` (paired
comparison, `outputs/compare.py`). `cli.main` hands over the resolved data dir and workspace."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from mt_bench_task.core.errors import DataError


def add_compare_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--compare", nargs="*", default=None, metavar="MODEL",
                   help="is the difference real? A B: paired bootstrap 95%% interval and "
                        "sign-flip p value of mean(A) - mean(B) on their shared questions; "
                        "more models (none: all of the file; with --leaderboard: and the 34 "
                        "official ones): which pairs are resolved and their share")


def show_compare(args: argparse.Namespace, data_dir: Path, workspace: Any) -> int:
    """`mt-bench show --compare`: the sentence or table (or the JSON) on stdout, notes on stderr."""
    from mt_bench_task.core.judge_spec import DEFAULT_JUDGE
    from mt_bench_task.outputs.compare_view import show_compare as view

    if args.plot:
        raise DataError("--compare prints statistics; it cannot be used with --plot")
    out = view(data_dir, args.input_file, args.judge_model or DEFAULT_JUDGE, args.mode,
               args.compare, args.leaderboard, args.seed, workspace)
    if args.json:
        for label in out.labels:
            print(f"NOTE: {label}", file=sys.stderr)
        print(json.dumps(out.results))
    else:
        print(out.text)
    return 0
