"""The GPT-4-equivalent map's candidates compared (benchmarks/README.md).

No API judge is called: each simulated judge grades an (official model, question, turn) as a
function of its official GPT-4 grade plus noise fixed by the key, the way
tests/outputs/test_gpt4_equivalent.py's fake server does. `calibrate`'s statistics (`calibrate_records`, the
metric's path) fit the map on the 6 models with official answers; the 28 other official models,
graded by the same judge, are then mapped (`equivalent_averages`) and compared with their
official averages. Markdown on stdout.

    python benchmarks/bench_calibration_map.py
"""
from __future__ import annotations

import hashlib
import random
import statistics
from collections.abc import Callable
from dataclasses import replace

from mt_bench_task.outputs.calibration import calibrate_records
from mt_bench_task.outputs.equivalence import equivalent_averages
from mt_bench_task.outputs.official import REFERENCE_MODELS, load_official_grades, mt_bench


def _noise(key: str, sd: float) -> float:
    return random.Random(int(hashlib.sha256(key.encode()).hexdigest(), 16)).gauss(0, sd)


JUDGES: dict[str, Callable[[float, int, str], float]] = {
    "generous (1 + 9 sqrt((g-1)/9), noise sd 0.7)":
        lambda g, t, k: 1 + 9 * ((g - 1) / 9) ** 0.5 + _noise(k, 0.7),
    "compressed (1.5 + 0.6 g, noise sd 1.0)": lambda g, t, k: 1.5 + 0.6 * g + _noise(k, 1.0),
    "harsh on turn 2 (g, turn 2 - 1.5, noise sd 0.7)":
        lambda g, t, k: g - (1.5 if t == 2 else 0) + _noise(k, 0.7),
    "noisy (g, noise sd 2.0)": lambda g, t, k: g + _noise(k, 2.0),
}


def main() -> None:
    bench = mt_bench()
    official = [r for r in load_official_grades() if r.score != -1]
    truth: dict[str, list[float]] = {}
    for r in official:
        truth.setdefault(r.model, []).append(float(r.score))
    for name, judge in JUDGES.items():
        graded = [replace(r, score=min(10, max(1, round(judge(float(r.score), r.turn,
                                                                 f"{r.model}|{r.question_id}|{r.turn}")))),
                          judge=("simulated", r.judge[1])) for r in official]
        stats = calibrate_records([r for r in graded if r.model in REFERENCE_MODELS], "simulated")
        jmap = stats["map"]
        print(f"### {name}\n\n| candidate | monotone | LOMO MAE (avg) | LOMO RMSE (avg) | "
              f"LOMO RMSE (rows) |\n| --- | --- | ---: | ---: | ---: |")
        for cand, c in jmap["comparison"].items():
            mark = " **(chosen)**" if cand == jmap["name"] else ""
            print(f"| {cand}{mark} | {'yes' if c['monotone'] else 'no'} | {c['lomo_mae']:.3f} | "
                  f"{c['lomo_rmse']:.3f} | {c['lomo_row_rmse']:.3f} |")
        others = [r for r in graded if r.model not in REFERENCE_MODELS]
        eq = equivalent_averages(others, stats, bench.category_of)
        misses = [abs(v["average"] - statistics.fmean(truth[m])) for m, v in eq.items()]
        raw = [abs(statistics.fmean(r.score for r in others if r.model == m)
                   - statistics.fmean(truth[m])) for m in eq]
        covered = sum(v["ci95"][0] <= statistics.fmean(truth[m]) <= v["ci95"][1]
                      for m, v in eq.items())
        width = statistics.fmean(v["ci95"][1] - v["ci95"][0] for v in eq.values())
        print(f"\nr = {stats['pearson']:.3f}; the 28 other official models: raw average off by "
              f"{statistics.fmean(raw):.2f} on mean, GPT-4-equivalent by "
              f"{statistics.fmean(misses):.2f} (max {max(misses):.2f}); 95% intervals cover "
              f"{covered} of {len(eq)} (mean width {width:.2f})\n")


if __name__ == "__main__":
    main()
