"""Stage 4, scoring: FastChat show_result's tables with the same numbers, plus per-category scores,
bootstrap CIs, counts and pairwise position consistency. Pure functions over judgment records
(`SingleJudgment`, `PairJudgment`, as `data`'s readers return them), so the CLI, the metric, the
publisher and the report all share them.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from mt_bench_task.core.bench import order_categories
from mt_bench_task.core.data import judgment_file, read_judgments
from mt_bench_task.core.errors import DataError, ParameterError
from mt_bench_task.core.judges import NOT_COMPARABLE, identity_of_records
from mt_bench_task.core.types import Judgment, PairJudgment, QuestionId, SingleJudgment, question_key

if TYPE_CHECKING:
    from mt_bench_task.core.bench import Bench

N_BOOTSTRAP = 1000
J = TypeVar("J", SingleJudgment, PairJudgment)


def _check_models(known: Iterable[str], model_list: list[str] | None, path: Path | str) -> None:
    unknown = sorted(set(model_list or []) - set(known))
    if unknown:
        raise DataError(f"{path}: no judgments for model(s) {unknown}; "
                        f"models in the file: {sorted(set(known))}")


def only(kind: type[J], records: Sequence[Judgment], source: str = "judgments") -> list[J]:
    """`records`, all of one mode (`kind`); DataError naming the first record of the other."""
    found = [r for r in records if isinstance(r, kind)]
    if len(found) != len(records):
        i = next(i for i, r in enumerate(records) if not isinstance(r, kind))
        what, use = (("single-mode", "pairwise-baseline or pairwise-all") if kind is SingleJudgment
                     else ("pairwise", "single"))
        raise DataError(f"{source}: record {i + 1} is not a {what} judgment (read it with mode {use})")
    return found


def judge_repeats(records: Iterable[Judgment]) -> int:
    """K of a judgment file: the largest `repeat` + 1 (1 when no record has one)."""
    return max((r.repeat for r in records), default=0) + 1


def judge_sd(df: Any) -> float | None:
    """Judge noise of one model's valid rows: per (question, turn) with at least 2 repeats, the
    sample standard deviation (ddof 1) of its scores, averaged over those matches; None if none."""
    sds = df.groupby(["question_id", "turn"], sort=False)["score"].agg(["std", "count"])
    sds = sds[sds["count"] >= 2]["std"]
    return float(sds.mean()) if len(sds) else None


def _frame(records: Sequence[SingleJudgment]) -> Any:
    """show_result's DataFrame: one row (question key, model, score, turn) per record."""
    import pandas as pd

    return pd.DataFrame([(question_key(r.question_id), r.model, r.score, r.turn) for r in records],
                        columns=["question_id", "model", "score", "turn"])


def _keyed(categories: dict[Any, str] | None) -> dict[QuestionId, str]:
    """{question key: category}, whatever form the ids were given in (1 and "1" are one)."""
    return {question_key(k): v for k, v in (categories or {}).items()}


def summarize_single(records: Sequence[SingleJudgment], categories: dict[Any, str],
                     model_list: list[str] | None = None, seed: int = 0) -> dict[str, Any]:
    """show_result single mode: drop score -1, per-turn means, Average pooled over all rows.
    With repeats the Average stays the mean over all valid rows (what FastChat prints), the CI
    resamples (question, turn) units with all their repeats, and `judge_sd` is the spread."""
    import numpy as np

    df_all = _frame(records)
    df = df_all[df_all["score"] != -1]
    if model_list is not None:
        df = df[df["model"].isin(model_list)]
    categories = _keyed(categories)
    df = df.assign(category=df["question_id"].map(lambda q: categories.get(q, "unknown")))
    repeats = judge_repeats(records)
    rng = np.random.default_rng(seed)
    models: dict[str, Any] = {}
    for name in sorted(df["model"].unique()):
        d = df[df["model"] == name]
        t1, t2 = d[d["turn"] == 1]["score"], d[d["turn"] == 2]["score"]
        # one unit per (question, turn) with its repeats; with K = 1 this is the row bootstrap
        units = d.groupby(["question_id", "turn"], sort=False)["score"].agg(["sum", "count"])
        sums, counts = units["sum"].to_numpy(dtype=float), units["count"].to_numpy(dtype=float)
        pick = rng.integers(0, len(units), (N_BOOTSTRAP, len(units)))
        boots = sums[pick].sum(axis=1) / counts[pick].sum(axis=1)
        models[name] = {
            "turn_1": float(t1.mean()) if len(t1) else None,
            "turn_2": float(t2.mean()) if len(t2) else None,
            "average": float(d["score"].mean()),
            "n_turn_1": int(len(t1)),
            "n_turn_2": int(len(t2)),
            "categories": {c: float(s) for c, s in d.groupby("category")["score"].mean().items()},
            "ci95": [float(np.percentile(boots, 2.5)), float(np.percentile(boots, 97.5))],
            "judge_sd": judge_sd(d) if repeats > 1 else None,
        }
    return {"mode": "single", "rows": len(df_all),
            "rows_dropped": int((df_all["score"] == -1).sum()), "judge_repeats": repeats,
            "models": models}


def summarize_pairwise(records: Sequence[PairJudgment], mode: str, model_list: list[str] | None = None,
                       baseline_model: str | None = None) -> dict[str, Any]:
    """show_result pairwise: drop error rows; inconsistent (g1 != g2) or g1 tie = tie for both."""
    if mode == "pairwise-all":
        baseline_model = None  # as FastChat's main()
    if baseline_model is not None and records and not any(
            baseline_model in (r.model_1, r.model_2) for r in records):
        found = sorted({m for r in records for m in (r.model_1, r.model_2)})
        raise ParameterError(f"baseline_model {baseline_model!r} played no game in these "
                             f"judgments; models in them: {found}", "baseline_model")
    kept = [r for r in records if r.g1_winner != "error" and r.g2_winner != "error"]
    counts: dict[str, dict[str, int]] = {}
    consistent = used = 0
    for r in kept:
        if model_list is not None and r.model_1 not in model_list:
            continue
        if baseline_model is not None and baseline_model not in (r.model_1, r.model_2):
            continue
        used += 1
        consistent += r.g1_winner == r.g2_winner
        for m in (r.model_1, r.model_2):
            counts.setdefault(m, {"win": 0, "loss": 0, "tie": 0})
        if r.g1_winner == "tie" or r.g1_winner != r.g2_winner:
            counts[r.model_1]["tie"] += 1
            counts[r.model_2]["tie"] += 1
        else:
            winner, loser = ((r.model_1, r.model_2) if r.g1_winner == "model_1"
                             else (r.model_2, r.model_1))
            counts[winner]["win"] += 1
            counts[loser]["loss"] += 1
    counts.pop(baseline_model, None)  # type: ignore[arg-type]
    models = {}
    for name in sorted(counts):
        c = counts[name]
        total = c["win"] + c["loss"] + c["tie"]
        models[name] = {**c, "win_rate": c["win"] / total, "loss_rate": c["loss"] / total,
                        "win_rate_adjusted": (c["win"] + 0.5 * c["tie"]) / total}
    return {"mode": mode, "rows": len(records), "rows_dropped": len(records) - len(kept),
            "models": models, "consistency": consistent / used if used else None}  # None: no rows


def results_from_records(records: Sequence[Judgment], mode: str = "single",
                         model_list: list[str] | None = None, baseline_model: str | None = None,
                         categories: dict[Any, str] | None = None, seed: int = 0,
                         source: str = "judgments") -> dict[str, Any]:
    """The `mt-bench show --json` object for judgment records, with the judge's name and
    whether its scores compare with published MT-bench (`judges`)."""
    who = identity_of_records(records)
    if mode == "single":
        single = only(SingleJudgment, records, source)
        _check_models((r.model for r in single), model_list, source)
        results = summarize_single(single, categories or {}, model_list, seed)
    else:
        pair = only(PairJudgment, records, source)
        _check_models((m for r in pair for m in (r.model_1, r.model_2)), model_list, source)
        results = summarize_pairwise(pair, mode, model_list, baseline_model)
    chosen = sorted({r.references for r in records if r.references is not None})
    if chosen:  # `--references`: which reference answers the judge was given (else FastChat's)
        results = {"references": ", ".join(chosen), **results}
    return {"judge": who.judge, "comparable": who.comparable, **results}


def results_from_file(path: Path | str, mode: str = "single", model_list: list[str] | None = None,
                      baseline_model: str | None = None, categories: dict[Any, str] | None = None,
                      seed: int = 0) -> dict[str, Any]:
    """`categories` ({question_id: category}, a bench's `category_of`) names the per-category
    scores; question ids not in it count as "unknown"."""
    return results_from_records(read_judgments(Path(path), mode), mode, model_list, baseline_model,
                                categories, seed, source=str(path))


def judge_labels(records: Iterable[Judgment], default_judge: str = "gpt-4") -> list[str]:
    """The "not comparable with published MT-bench" line for these records' judge (`judges`)."""
    label = identity_of_records(records, default_judge).label
    return [label] if label else []


def fastchat_tables(records: Sequence[Judgment], mode: str, model_list: list[str] | None,
                    baseline_model: str | None, multi_turn: bool = True,
                    pairwise: dict[str, Any] | None = None) -> str:
    """The text FastChat's show_result prints (default pandas repr, no rounding). FastChat prints
    the Second turn and Average tables for `mt_bench` only; we print them for any bench with
    two-turn questions (`multi_turn`), so a translated MT-bench gets them too. `pairwise`:
    summarize_pairwise's result for these records, where the caller has it already."""
    import pandas as pd

    if mode == "single":
        df = _frame(only(SingleJudgment, records))[["model", "score", "turn"]]
        df = df[df["score"] != -1]
        if model_list is not None:
            df = df[df["model"].isin(model_list)]
        out = ["\n########## First turn ##########"]
        out.append(str(df[df["turn"] == 1].groupby(["model", "turn"]).mean()
                       .sort_values(by="score", ascending=False)))
        if multi_turn:
            out.append("\n########## Second turn ##########")
            out.append(str(df[df["turn"] == 2].groupby(["model", "turn"]).mean()
                           .sort_values(by="score", ascending=False)))
            out.append("\n########## Average ##########")
            out.append(str(df[["model", "score"]].groupby(["model"]).mean()
                           .sort_values(by="score", ascending=False)))
        return "\n".join(out)
    res = (pairwise or summarize_pairwise(only(PairJudgment, records), mode, model_list,
                                          baseline_model))["models"]
    df = pd.DataFrame.from_dict(res, orient="index")
    df.index.name = "model"
    return str(df.sort_values(by="win_rate_adjusted", ascending=False) if res else df)


def extra_tables(results: dict[str, Any], category_order: Sequence[str] = ()) -> str:
    """Beyond FastChat: CI, counts, per-category scores, pairwise consistency."""
    lines = [f"\nrows: {results['rows']}, dropped (score -1 / error): {results['rows_dropped']}"]
    if results["mode"] != "single":
        c = results['consistency']
        lines.append(f"position consistency (g1 == g2): {'-' if c is None else f'{c:.3f}'}")
        return "\n".join(lines)
    k = results.get("judge_repeats", 1)
    lines.append("\n########## Average with 95% bootstrap CI ##########"
                 + (f" (judged {k} times; judge sd = mean spread of one match's ratings)"
                    if k > 1 else ""))
    for name, m in sorted(results["models"].items(), key=lambda kv: -kv[1]["average"]):
        lo, hi = m["ci95"]
        sd = m.get("judge_sd")
        spread = f"  judge sd={sd:.3f}" if k > 1 and sd is not None else ""
        lines.append(f"{name:40s} {m['average']:.3f}  [{lo:.3f}, {hi:.3f}]  "
                     f"n={m['n_turn_1']}+{m['n_turn_2']}{spread}")
    cats = order_categories({c for m in results["models"].values() for c in m["categories"]},
                            category_order)
    lines.append("\n########## Per category (both turns) ##########")
    lines.append(f"{'model':40s} " + " ".join(f"{c[:10]:>10s}" for c in cats))
    for name, m in sorted(results["models"].items()):
        lines.append(f"{name:40s} " + " ".join(
            f"{m['categories'][c]:10.3f}" if c in m["categories"] else f"{'-':>10s}" for c in cats))
    return "\n".join(lines)


def per_category_turns(records: Iterable[SingleJudgment], categories: dict[Any, str]) -> dict:
    """{model: {category: {1: mean, 2: mean}}} over records with a rating (the per-turn split)."""
    acc: dict[str, dict[str, dict[int, list[float]]]] = {}
    categories = _keyed(categories)
    for r in records:
        if r.score == -1:
            continue
        cat = categories.get(question_key(r.question_id), "unknown")
        acc.setdefault(r.model, {}).setdefault(cat, {}).setdefault(r.turn, []).append(r.score)
    return {m: {c: {t: sum(v) / len(v) for t, v in turns.items()} for c, turns in cs.items()}
            for m, cs in acc.items()}


@dataclass(frozen=True)
class ShowOutput:
    """What `show` computed, for a front end to print: the results object (`show --json`), the
    text tables, the judge labels and the radar plot written (if any)."""

    results: dict[str, Any]
    text: str
    labels: list[str]
    plot: Path | None


def show(data_dir: Path, input_file: str | None, judge_model: str, mode: str,
         model_list: list[str] | None, baseline_model: str | None,
         plot: Path | str | None = None, seed: int = 0, bench: Bench | None = None) -> ShowOutput:
    """FastChat's show_result for `bench` (default: MT-bench, or DATA_DIR's own questions),
    plus CIs, per-category scores, the judge label and, with `plot`, the radar plot."""
    from mt_bench_task.core.bench import load_bench
    from mt_bench_task.outputs.official import calibration_label

    bench = bench or load_bench(data_dir=data_dir)
    if plot and mode != "single":
        raise ParameterError("plot draws single-mode (1-10) scores; not with mode " + mode, "plot", "mode")
    path = Path(input_file) if input_file else judgment_file(data_dir, judge_model, mode)
    records = read_judgments(path, mode)
    if not records:
        raise DataError(f"{path}: no judgment records")
    results = results_from_records(records, mode, model_list, baseline_model, bench.category_of,
                                   seed, source=str(path))
    labels = not_comparable = judge_labels(records, judge_model)
    calibration = calibration_label(data_dir, records, judge_model)
    if calibration is not None:  # the judge label with `mt-bench calibrate`'s figures next to it
        labels = [calibration[0]]
        results = {**results, "calibration": calibration[1]}
    lines = [f"Input file: {path}", *(f"NOTE: {label}" for label in labels),
             *([f"References: {results['references']} (--references)"]
               if "references" in results else []),
             fastchat_tables(records, mode, model_list, baseline_model,
                             bench.multi_turn or any(r.turn == 2 for r in records),
                             pairwise=None if mode == "single" else results),
             extra_tables(results, bench.categories)]
    if mode == "single":
        split = per_category_turns([r for r in only(SingleJudgment, records)
                                    if model_list is None or r.model in model_list], bench.category_of)
        lines.append("\n########## Per category and turn (turn 1 / turn 2) ##########")
        for name, cats in sorted(split.items()):
            order = order_categories(cats, bench.categories)
            cells = [f"{c}: {_fmt(cats[c].get(1))}/{_fmt(cats[c].get(2))}" for c in order]
            lines.append(f"{name}: " + ", ".join(cells))
    out = None
    if plot:
        from mt_bench_task.outputs.plot import radar_plot

        out = radar_plot(results, Path(plot),
                         title_note=NOT_COMPARABLE if not_comparable else None,
                         categories=bench.categories, bench_name=bench.name)
    return ShowOutput(results, "\n".join(lines), list(labels), out)


def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}"
