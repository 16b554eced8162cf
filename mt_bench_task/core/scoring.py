"""Stage 4, scoring: FastChat show_result's tables with the same numbers, plus per-category scores,
bootstrap CIs, counts and pairwise position consistency. Pure functions over judgment records
(`SingleJudgment`, `PairJudgment`, as `data`'s readers return them), so the CLI, the metric, the
publisher and the report all share them.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from mt_bench_task.core.bench import order_categories
from mt_bench_task.core.data import read_judgments
from mt_bench_task.core.errors import DataError, ParameterError
from mt_bench_task.core.ids import QuestionId, question_key
from mt_bench_task.core.judge_spec import DEFAULT_JUDGE, identity_of_records
from mt_bench_task.core.results import PairScore, Results, SingleScore
from mt_bench_task.core.served import served_models
from mt_bench_task.core.types import Judgment, PairJudgment, SingleJudgment

if TYPE_CHECKING:
    pass

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


def _keyed(categories: Mapping[Any, str] | None) -> dict[QuestionId, str]:
    """{question key: category}, whatever form the ids were given in (1 and "1" are one)."""
    return {question_key(k): v for k, v in (categories or {}).items()}


def summarize_single(records: Sequence[SingleJudgment], categories: Mapping[Any, str],
                     model_list: list[str] | None = None, seed: int = 0) -> Results:
    """show_result single mode: drop score -1, per-turn means, Average pooled over all rows.
    With repeats the Average stays the mean over all valid rows (what FastChat prints), the CI
    resamples (question, turn) units with all their repeats, and `judge_sd` is the spread.
    `categories` ({question_id: category} in the bench's question order, `Bench.category_of`)
    names and orders the per-category scores; other ids count as "unknown"."""
    import numpy as np

    df_all = _frame(records)
    df = df_all[df_all["score"] != -1]
    if model_list is not None:
        df = df[df["model"].isin(model_list)]
    categories = _keyed(categories)
    df = df.assign(category=df["question_id"].map(lambda q: categories.get(q, "unknown")))
    order = tuple(dict.fromkeys(categories.values()))
    repeats = judge_repeats(records)
    rng = np.random.default_rng(seed)
    models: dict[str, SingleScore | PairScore] = {}
    for name in sorted(df["model"].unique()):
        d = df[df["model"] == name]
        t1, t2 = d[d["turn"] == 1]["score"], d[d["turn"] == 2]["score"]
        # one unit per (question, turn) with its repeats; with K = 1 this is the row bootstrap
        units = d.groupby(["question_id", "turn"], sort=False)["score"].agg(["sum", "count"])
        sums, counts = units["sum"].to_numpy(dtype=float), units["count"].to_numpy(dtype=float)
        pick = rng.integers(0, len(units), (N_BOOTSTRAP, len(units)))
        boots = sums[pick].sum(axis=1) / counts[pick].sum(axis=1)
        by_cat = d.groupby("category")["score"].mean()
        models[name] = SingleScore(
            turn_1=float(t1.mean()) if len(t1) else None,
            turn_2=float(t2.mean()) if len(t2) else None,
            average=float(d["score"].mean()), n_turn_1=int(len(t1)), n_turn_2=int(len(t2)),
            categories={c: float(by_cat[c]) for c in order_categories(by_cat.index, order)},
            ci95=(float(np.percentile(boots, 2.5)), float(np.percentile(boots, 97.5))),
            judge_sd=judge_sd(d) if repeats > 1 else None)
    who = identity_of_records(records)
    return Results("single", who.judge, who.comparable, len(df_all),
                   int((df_all["score"] == -1).sum()), models, repeats, categories=order)


def summarize_pairwise(records: Sequence[PairJudgment], mode: str, model_list: list[str] | None = None,
                       baseline_model: str | None = None) -> Results:
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
    models: dict[str, SingleScore | PairScore] = {}
    for name in sorted(counts):
        c = counts[name]
        total = c["win"] + c["loss"] + c["tie"]
        models[name] = PairScore(c["win"], c["loss"], c["tie"], c["win"] / total, c["loss"] / total,
                                 (c["win"] + 0.5 * c["tie"]) / total)
    who = identity_of_records(records)
    return Results(mode, who.judge, who.comparable, len(records), len(records) - len(kept), models,
                   consistency=consistent / used if used else None)  # None: no rows


def results_from_records(records: Sequence[Judgment], mode: str = "single",
                         model_list: list[str] | None = None, baseline_model: str | None = None,
                         categories: Mapping[Any, str] | None = None, seed: int = 0,
                         source: str = "judgments") -> Results:
    """The Results of judgment records: per-model scores, the judge's name and whether its
    scores compare with published MT-bench (`judge_spec`)."""
    if mode == "single":
        single = only(SingleJudgment, records, source)
        _check_models((r.model for r in single), model_list, source)
        results = summarize_single(single, categories or {}, model_list, seed)
    else:
        pair = only(PairJudgment, records, source)
        _check_models((m for r in pair for m in (r.model_1, r.model_2)), model_list, source)
        results = summarize_pairwise(pair, mode, model_list, baseline_model)
    chosen = sorted({r.references for r in records if r.references is not None})
    # `--references`: which reference answers the judge was given (else FastChat's)
    return replace(results, served_by=tuple(served_models(records)),
                   references=", ".join(chosen) or None)


def results_from_file(path: Path | str, mode: str = "single", model_list: list[str] | None = None,
                      baseline_model: str | None = None, categories: Mapping[Any, str] | None = None,
                      seed: int = 0) -> Results:
    """`results_from_records` for a judgment file."""
    return results_from_records(read_judgments(Path(path), mode), mode, model_list, baseline_model,
                                categories, seed, source=str(path))


def judge_labels(records: Iterable[Judgment], default_judge: str = DEFAULT_JUDGE) -> list[str]:
    """The "not comparable with published MT-bench" line for these records' judge (`judge_spec`)."""
    label = identity_of_records(records, default_judge).label
    return [label] if label else []


def fastchat_tables(records: Sequence[Judgment], mode: str, model_list: list[str] | None,
                    baseline_model: str | None, multi_turn: bool = True,
                    pairwise: Results | None = None) -> str:
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
                                          baseline_model)).models
    df = pd.DataFrame.from_dict({n: asdict(m) for n, m in res.items()}, orient="index")
    df.index.name = "model"
    return str(df.sort_values(by="win_rate_adjusted", ascending=False) if res else df)


def extra_tables(results: Results) -> str:
    """Beyond FastChat: CI, counts, per-category scores, pairwise consistency."""
    lines = [f"\nrows: {results.rows}, dropped (score -1 / error): {results.rows_dropped}"]
    if not results.single:
        c = results.consistency
        lines.append(f"position consistency (g1 == g2): {'-' if c is None else f'{c:.3f}'}")
        return "\n".join(lines)
    k = results.judge_repeats
    lines.append("\n########## Average with 95% bootstrap CI ##########"
                 + (f" (judged {k} times; judge sd = mean spread of one match's ratings)"
                    if k > 1 else ""))
    for name, m in results.ranked():
        lo, hi = m.ci95
        spread = f"  judge sd={m.judge_sd:.3f}" if k > 1 and m.judge_sd is not None else ""
        lines.append(f"{name:40s} {m.average:.3f}  [{lo:.3f}, {hi:.3f}]  "
                     f"n={m.n_turn_1}+{m.n_turn_2}{spread}")
    cats = order_categories({c for _, m in results.ranked() for c in m.categories},
                            results.categories)
    lines.append("\n########## Per category (both turns) ##########")
    lines.append(f"{'model':40s} " + " ".join(f"{c[:10]:>10s}" for c in cats))
    for name in sorted(results.models):
        m = results.score(name)
        lines.append(f"{name:40s} " + " ".join(
            f"{m.categories[c]:10.3f}" if c in m.categories else f"{'-':>10s}" for c in cats))
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
