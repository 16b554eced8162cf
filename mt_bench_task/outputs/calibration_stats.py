"""Judge calibration's statistics and saved files: a judge's scores against the official GPT-4
grades of the same (model, question, turn) (`calibration_stats`: one implementation for the CLI,
the saved JSON and the evaluate metric), where a calibration is saved, and the one-line citation
that `show`, the leaderboard and the model card put next to the judge's name. The run that
measures it is outputs/calibration.py (`mt-bench calibrate`).
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mt_bench_task.core import data
from mt_bench_task.core.bench import order_categories
from mt_bench_task.core.types import SingleJudgment
from mt_bench_task.outputs.agreement import average_ranks, kendall_tau_b, mean, pearson
from mt_bench_task.outputs.judge_map import fit_judge_map

OFFICIAL_SOURCE = "official GPT-4"


def calibration_stats(judge_records: Sequence[SingleJudgment], official_records: Sequence[SingleJudgment],
                      categories: dict[Any, str], judge: str,
                      models: Sequence[str] | None = None,
                      category_order: Sequence[str] = ()) -> dict[str, Any]:
    """The statistics over the pairs (judge score, official grade) of every (model, question,
    turn) with an official grade and a judge score other than -1 (each repeat is one pair);
    `categories` in `category_order` (MT-bench's `Bench.categories`), then others."""
    official = {(r.model, r.question_id, r.turn): r.score for r in official_records if r.score != -1}
    # sorted, so the sums (and the last digit of each figure) do not depend on the file's order
    pairs = sorted((r.model, r.question_id, float(r.score), float(official[key]), r.turn, r.repeat)
                   for r in judge_records
                   if r.score != -1 and (models is None or r.model in models)
                   and (key := (r.model, r.question_id, r.turn)) in official)
    js, os_ = [p[2] for p in pairs], [p[3] for p in pairs]

    def group(key_of: Any) -> dict[str, dict[str, float | None]]:
        groups: dict[str, list[tuple[float, float]]] = {}
        for p in pairs:
            groups.setdefault(key_of(p), []).append((p[2], p[3]))
        out = {}
        for name, g in groups.items():
            o, j = mean([b for _, b in g]), mean([a for a, _ in g])
            out[name] = {"official": o, "judge": j,
                         "shift": None if o is None or j is None else j - o}
        return out

    by_model = group(lambda p: p[0])
    by_cat = group(lambda p: categories.get(p[1], "unknown"))
    names = sorted(by_model)
    n = len(pairs)
    return {
        "judge": judge, "n": n,
        "pearson": pearson(js, os_),
        "spearman": pearson(average_ranks(js), average_ranks(os_)) if n else None,
        "exact": sum(a == b for a, b in zip(js, os_)) / n if n else None,
        "within_1": sum(abs(a - b) <= 1 for a, b in zip(js, os_)) / n if n else None,
        "mean_shift": mean([a - b for a, b in zip(js, os_)]),
        "kendall_tau_models": kendall_tau_b([_num(by_model[m]["official"]) for m in names],
                                            [_num(by_model[m]["judge"]) for m in names]),
        "models": {m: by_model[m] for m in names},
        "categories": {c: by_cat[c] for c in order_categories(by_cat, category_order)},
        # the map onto GPT-4's scale, and the pairs it is refitted on for intervals
        "map": fit_judge_map([(p[0], p[1], p[4], p[2], p[3]) for p in pairs], categories,
                             category_order),
        "pairs": [[p[0], p[1], p[4], p[2], p[3]] for p in pairs],
    }


def _num(x: float | None) -> float:
    assert x is not None  # every group has at least one pair
    return x


# ---- files ----
def calibration_dir(data_dir: Path) -> Path:
    return Path(data_dir) / "calibration"


def judgments_path(data_dir: Path, judge: str) -> Path:
    return calibration_dir(data_dir) / f"{data.safe_name(judge)}_single.jsonl"


def stats_path(data_dir: Path, judge: str) -> Path:
    return calibration_dir(data_dir) / f"{data.safe_name(judge)}_calibration.json"


def packaged_stats_path(judge: str) -> Path:
    """The calibration measured once for a judge that ships with the package (the embedded one:
    benchmarks/README.md, "The embedded judge's calibration")."""
    return Path(__file__).parent.parent / "data" / "calibration" / f"{data.safe_name(judge)}_calibration.json"


def load_stats(data_dir: Path | None, judge: str) -> dict[str, Any] | None:
    """The saved calibration of `judge` in DATA_DIR, else the packaged one, or None (none saved,
    or unreadable)."""
    own = None if data_dir is None else stats_path(data_dir, judge)
    return _read_stats(own if own is not None and own.is_file() else packaged_stats_path(judge), judge)


def _read_stats(path: Path, judge: str) -> dict[str, Any] | None:
    try:
        stats = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return stats if isinstance(stats, dict) and stats.get("judge") == judge else None


def citation(stats: dict[str, Any] | None) -> str | None:
    """"calibration vs official GPT-4: r = 0.87, shift -0.31 over 960 grades" (None: no stats)."""
    if not stats or not stats.get("n"):
        return None
    r = "n/a" if stats.get("pearson") is None else f"{stats['pearson']:.2f}"
    measured = f" ({stats['measured']})" if isinstance(stats.get("measured"), str) else ""
    return (f"calibration vs {OFFICIAL_SOURCE}: r = {r}, shift {stats['mean_shift']:+.2f} "
            f"over {stats['n']} grades{measured}")


def cite(data_dir: Path | None, judge: str) -> str | None:
    return citation(load_stats(data_dir, judge))
