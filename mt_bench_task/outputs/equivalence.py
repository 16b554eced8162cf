"""GPT-4-equivalent averages: a calibrated judge's grades through its map (`judge_map.py`).

A model's GPT-4-equivalent average is the mean of its mapped grades (rows with a rating). Its 95 %
interval comes from a bootstrap that, in each draw, resamples the model's questions (both turns
and repeats together), refits the map on the calibration pairs of resampled calibration models
and questions, and adds a model-level error drawn with the map's leave-one-model-out root mean
square error (what a held-out model's average missed by). Seeded: the same input, the same
numbers. Never comparable with published MT-bench: a label says how the number was made.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from mt_bench_task.core.ids import question_key
from mt_bench_task.core.types import SingleJudgment
from mt_bench_task.outputs.judge_map import GRID, fit, grid_index, group_of, tensors

N_BOOTSTRAP = 1000


def equivalent_averages(records: Sequence[SingleJudgment], stats: Mapping[str, Any] | None,
                        category_of: Mapping[Any, str], models: Sequence[str] | None = None,
                        seed: int = 0, n_bootstrap: int = N_BOOTSTRAP) -> dict[str, dict[str, Any]]:
    """{model: {"average", "ci95"}} for the records' models; {} when `stats` (a saved calibration)
    has no map or no pairs to refit it on."""
    import numpy as np

    jmap, pairs = (stats or {}).get("map"), (stats or {}).get("pairs")
    if not jmap or not pairs:
        return {}
    cats = {question_key(k): v for k, v in category_of.items()}
    by, method = str(jmap["by"]), str(jmap["method"])
    groups = [g for g in jmap["tables"] if g != "all"] if by != "all" else ["all"]
    table = _stack(jmap["tables"], groups)
    cal = [(str(m), question_key(q), int(t), float(j), float(o)) for m, q, t, j, o in pairs]
    cal_models = sorted({p[0] for p in cal})
    cal_questions = sorted({p[1] for p in cal}, key=str)
    cal_t = tensors(cal, by, cats, cal_models, cal_questions, groups)
    pooled_t = tensors(cal, "all", cats, cal_models, cal_questions, ["all"]) if by != "all" else None
    rows: dict[str, dict[Any, Any]] = {}
    slot = {g: i for i, g in enumerate(groups)}
    for r in records:
        if r.score == -1 or (models is not None and r.model not in models):
            continue
        q = question_key(r.question_id)
        g = slot.get(group_of(by, r.turn, cats.get(q, "unknown")), len(groups))  # else: pooled
        cell = rows.setdefault(r.model, {}).setdefault(q, np.zeros((len(groups) + 1, len(GRID))))
        cell[g, grid_index(r.score)] += 1
    rng = np.random.default_rng(seed)
    # the map refitted in each draw (resampled calibration models and questions)
    draws = []
    for _ in range(n_bootstrap):
        wm = np.bincount(rng.integers(0, len(cal_models), len(cal_models)), minlength=len(cal_models))
        wq = np.bincount(rng.integers(0, len(cal_questions), len(cal_questions)),
                         minlength=len(cal_questions))
        draws.append(_refit(method, cal_t, pooled_t, wm, wq, table))
    sd = float(jmap.get("validation", {}).get("rmse") or 0.0)
    out: dict[str, dict[str, Any]] = {}
    for model in sorted(rows):
        u = np.array([rows[model][q] for q in sorted(rows[model], key=str)])  # Q x G+1 x grid
        flat, counts = u.reshape(len(u), -1), u.sum(axis=(1, 2))
        average = float((flat @ table.ravel()).sum() / counts.sum())
        boots = np.empty(n_bootstrap)
        for b, tb in enumerate(draws):
            w = np.bincount(rng.integers(0, len(u), len(u)), minlength=len(u))
            boots[b] = (w @ (flat @ tb.ravel())) / (w @ counts)
        boots += rng.normal(0.0, sd, n_bootstrap)
        out[model] = {"average": average, "ci95": [float(np.percentile(boots, 2.5)),
                                                   float(np.percentile(boots, 97.5))]}
    return out


def _stack(tables: Mapping[str, Sequence[float]], groups: Sequence[str]) -> Any:
    """The map's tables, one row per group, the pooled one last (rows of other groups)."""
    import numpy as np

    return np.array([tables[g] for g in groups] + [tables["all"]], dtype=float)


def _refit(method: str, t: Mapping[str, Any], pooled: Mapping[str, Any] | None, wm: Any, wq: Any,
           fallback: Any) -> Any:
    import numpy as np

    def summed(tt: Mapping[str, Any]) -> list[Any]:
        return [np.tensordot(wm, np.tensordot(wq, tt[k], axes=([0], [1])), axes=([0], [0]))
                for k in ("n", "so", "h")]

    grouped = fit(method, *summed(t))
    last = fit(method, *summed(pooled))[0] if pooled is not None else grouped[0]
    out = np.vstack([grouped, last[None, :]])
    return np.where(np.isnan(out), fallback, out)  # a group the draw left empty: the full fit
