"""A judge's grades on GPT-4's scale: the monotone map fitted by `mt-bench calibrate`.

Data: the calibration pairs (judge grade, official GPT-4 grade) of the 6 official answer sets.
Grades live on a grid of half points 1..10 (a judge's 7.25 counts as 7.5). Candidate maps:
linear (least squares), conditional mean (the official mean at each judge grade; not always
monotone), isotonic (that mean made non-decreasing, pool-adjacent-violators), equipercentile
(ordinal: the official grades at the judge grade's percentiles, test equating), and isotonic per
turn or per category. Each is scored leave-one-model-out (fit on 5 models, predict the 6th
model's average); the pooled monotone map with the smallest error is chosen, a per-turn or
per-category one only when it beats that by more than `GROUPED_MARGIN`. Every map is fitted from
per-question sums, so a bootstrap over questions refits it cheaply (`outputs/equivalence.py`).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

GRID = tuple(1 + 0.5 * i for i in range(19))  # 1, 1.5, ..., 10
GROUPED_MARGIN = 0.02  # per-turn/category maps must beat the pooled one by this (points)
CANDIDATES = (("linear", "all"), ("conditional mean", "all"), ("isotonic", "all"),
              ("equipercentile", "all"), ("isotonic", "turn"), ("isotonic", "category"))
Pair = tuple[str, Any, int, float, float]  # (model, question_id, turn, judge grade, official)


def grid_index(grade: float) -> int:
    return int(round((min(10.0, max(1.0, float(grade))) - 1) * 2))


def group_names(by: str, categories: Sequence[str]) -> list[str]:
    return ["all"] if by == "all" else ["1", "2"] if by == "turn" else list(categories)


def group_of(by: str, turn: int, category: str) -> str:
    return "all" if by == "all" else str(turn) if by == "turn" else category


def tensors(pairs: Sequence[Pair], by: str, category_of: Mapping[Any, str],
            models: Sequence[str], questions: Sequence[Any], groups: Sequence[str]) -> dict[str, Any]:
    """Per (model, question, group, grid point): n, the sum and the sum of squares of the official
    grades at that judge grade, and the official grades' counts on the grid (`h`)."""
    import numpy as np

    shape = (len(models), len(questions), len(groups), len(GRID))
    t = {k: np.zeros(shape) for k in ("n", "so", "so2", "h")}
    mi, qi, gi = ({m: i for i, m in enumerate(models)}, {q: i for i, q in enumerate(questions)},
                  {g: i for i, g in enumerate(groups)})
    for model, q, turn, j, o in pairs:
        g = gi.get(group_of(by, turn, category_of.get(q, "unknown")))
        if g is None or model not in mi or q not in qi:
            continue
        at = (mi[model], qi[q], g, grid_index(j))
        t["n"][at] += 1
        t["so"][at] += o
        t["so2"][at] += o * o
        t["h"][at[:3] + (grid_index(o),)] += 1
    return t


def fit(method: str, n: Any, so: Any, h: Any) -> Any:
    """The map's values on GRID per group (rows), from summed n, so, h (groups x grid)."""
    import numpy as np

    x = np.array(GRID)
    out = np.zeros(n.shape)
    for g in range(n.shape[0]):
        ng, sg, hg = n[g], so[g], h[g]
        has = ng > 0
        if not has.any():
            out[g] = np.nan
            continue
        means = np.where(has, sg / np.where(has, ng, 1), 0.0)
        if method == "linear":
            xm = (ng * x).sum() / ng.sum()
            ym = sg.sum() / ng.sum()
            var = (ng * (x - xm) ** 2).sum()
            slope = max(0.0, float((ng * (x - xm) * (means - ym)).sum() / var)) if var > 0 else 0.0
            out[g] = np.clip(ym + slope * (x - xm), 1, 10)
            continue
        if method == "isotonic":
            means = _pava(means, ng)
        elif method == "equipercentile":
            means = _equipercentile(ng, hg, x)
        out[g] = np.interp(x, x[has], means[has])  # grades the calibration never gave
    return out


def _pava(y: Any, w: Any) -> Any:
    """Weighted pool-adjacent-violators: the closest non-decreasing sequence (zero weights skip)."""
    import numpy as np

    idx = [i for i in range(len(y)) if w[i] > 0]
    blocks: list[list[float]] = []  # [mean, weight, count of points]
    for i in idx:
        blocks.append([float(y[i]), float(w[i]), 1])
        while len(blocks) > 1 and blocks[-2][0] > blocks[-1][0]:
            m2, w2, c2 = blocks.pop()
            m1, w1, c1 = blocks.pop()
            blocks.append([(m1 * w1 + m2 * w2) / (w1 + w2), w1 + w2, c1 + c2])
    out = np.array(y, dtype=float)
    fitted = [b[0] for b in blocks for _ in range(int(b[2]))]
    for i, v in zip(idx, fitted):
        out[i] = v
    return out


def _equipercentile(n: Any, h: Any, x: Any) -> Any:
    """For each judge grade, the mean official grade over the same band of percentiles."""
    import numpy as np

    pj = np.concatenate([[0.0], np.cumsum(n) / n.sum()])
    po = np.concatenate([[0.0], np.cumsum(h) / h.sum()])
    out = np.zeros(len(n))
    for k in range(len(n)):
        a, b = pj[k], pj[k + 1]
        if b <= a:
            continue
        overlap = np.clip(np.minimum(po[1:], b) - np.maximum(po[:-1], a), 0, None)
        out[k] = float((overlap * x).sum() / (b - a))
    return out


def _apply_mean(table: Any, n: Any) -> float:
    """Mean mapped grade of rows counted by n (groups x grid); a group the map lacks (NaN) is
    left out."""
    import numpy as np

    ok = ~np.isnan(table)
    return float((np.where(ok, table, 0) * n).sum() / max(1.0, float((n * ok).sum())))


def leave_one_model_out(method: str, t: Mapping[str, Any], models: Sequence[str]) -> dict[str, Any]:
    """Each model's predicted average from the map fitted on the others, against its official
    average on the same rows; the mean absolute and root mean square errors, and the per-row
    root mean square error of the held-out grades."""
    import numpy as np

    per: dict[str, dict[str, float]] = {}
    sq = rows = 0.0
    for i, m in enumerate(models):
        rest = [k for k in range(len(models)) if k != i]
        n, so, h = (t[k][rest].sum(axis=(0, 1)) for k in ("n", "so", "h"))
        table = fit(method, n, so, h)
        mine = {k: t[k][i].sum(axis=0) for k in ("n", "so", "so2")}
        if mine["n"].sum() == 0:
            continue
        pred = _apply_mean(table, mine["n"])
        official = float(mine["so"].sum() / mine["n"].sum())
        per[m] = {"predicted": pred, "official": official, "error": pred - official}
        tb = np.nan_to_num(table)
        sq += float((mine["so2"] - 2 * tb * mine["so"] + tb * tb * mine["n"]).sum())
        rows += float(mine["n"].sum())
    errors = [v["error"] for v in per.values()]
    return {"models": per,
            "mae": float(np.mean(np.abs(errors))) if errors else None,
            "rmse": float(np.sqrt(np.mean(np.square(errors)))) if errors else None,
            "row_rmse": float(np.sqrt(sq / rows)) if rows else None}


def fit_judge_map(pairs: Sequence[Pair], category_of: Mapping[Any, str],
                  category_order: Sequence[str]) -> dict[str, Any] | None:
    """The chosen map (method, grouping, tables on GRID), the comparison of every candidate and
    the leave-one-model-out validation of the chosen one; None with fewer than 3 models."""
    import numpy as np

    models = sorted({p[0] for p in pairs})
    if len(models) < 3:
        return None
    questions = sorted({p[1] for p in pairs}, key=str)
    comparison: dict[str, dict[str, Any]] = {}
    fitted: dict[str, tuple[str, str, dict[str, list[float]], dict[str, Any]]] = {}
    for method, by in CANDIDATES:
        groups = group_names(by, category_order)
        t = tensors(pairs, by, category_of, models, questions, groups)
        table = fit(method, *(t[k].sum(axis=(0, 1)) for k in ("n", "so", "h")))
        monotone = bool(np.all(np.diff(table[~np.isnan(table).any(axis=1)], axis=1) >= -1e-12))
        lomo = leave_one_model_out(method, t, models)
        name = method if by == "all" else f"{method} per {by}"
        comparison[name] = {"method": method, "by": by, "monotone": monotone,
                            "lomo_mae": lomo["mae"], "lomo_rmse": lomo["rmse"],
                            "lomo_row_rmse": lomo["row_rmse"]}
        tables = {g: [float(v) for v in table[i]] for i, g in enumerate(groups)
                  if not np.isnan(table[i]).any()}
        fitted[name] = (method, by, tables, lomo)

    def err(name: str) -> float:
        e = comparison[name]["lomo_mae"]
        return float("inf") if e is None else float(e)

    pooled = [n for n, c in comparison.items() if c["by"] == "all" and c["monotone"]]
    chosen = min(pooled, key=err)
    grouped = [n for n, c in comparison.items() if c["by"] != "all" and c["monotone"]]
    best_grouped = min(grouped, key=err) if grouped else None
    if best_grouped is not None and err(best_grouped) < err(chosen) - GROUPED_MARGIN:
        chosen = best_grouped
    method, by, tables, lomo = fitted[chosen]
    tables["all"] = fitted[method][2]["all"]  # pooled: rows of a group the map lacks
    return {"method": method, "by": by, "name": chosen, "grid": list(GRID), "tables": tables,
            "comparison": comparison, "validation": lomo,
            "label": f"GPT-4-equivalent: the judge's grades mapped onto the official GPT-4 "
                     f"grades by a {chosen} map fitted on {len(models)} official answer sets "
                     f"(leave-one-model-out error of a model's average "
                     f"{lomo['mae']:.2f} mean, {lomo['rmse']:.2f} rms); not comparable"}


def map_text(jmap: Mapping[str, Any] | None) -> list[str]:
    """`calibrate`'s lines on the map: the candidates' leave-one-model-out errors, the chosen
    map, and each held-out model's predicted average against its official one."""
    if not jmap:
        return ["", "-- GPT-4-equivalent map: none (needs grades of 3 models or more)"]

    def f(x: Any) -> str:
        return "-" if x is None else f"{x:.3f}"

    lines = ["", "-- GPT-4-equivalent map: leave-one-model-out error (fit on the others, "
             "predict a model's average)",
             f"{'candidate':24s} {'monotone':>8s} {'avg MAE':>8s} {'avg RMSE':>8s} {'row RMSE':>8s}"]
    for name, c in jmap["comparison"].items():
        lines.append(f"{name:24s} {'yes' if c['monotone'] else 'no':>8s} {f(c['lomo_mae']):>8s} "
                     f"{f(c['lomo_rmse']):>8s} {f(c['lomo_row_rmse']):>8s}")
    lines += [f"chosen: {jmap['name']}",
              f"{'held-out model':24s} {'official':>8s} {'GPT-4-eq':>8s} {'error':>8s}"]
    for name, v in jmap["validation"]["models"].items():
        lines.append(f"{name:24s} {v['official']:8.3f} {v['predicted']:8.3f} {v['error']:+8.3f}")
    table = jmap["tables"]["all"]
    lines.append("map (pooled): " + ", ".join(f"{g:g}->{v:.2f}" for g, v in zip(GRID, table)
                                              if float(g).is_integer()))
    return lines
