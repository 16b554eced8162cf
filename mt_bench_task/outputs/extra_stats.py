"""The scores beside FastChat's: GPT-4-equivalent averages (a calibrated judge, `equivalence.py`)
and length-controlled scores (`length.py`), attached to Results for show, the report, the card
and the metric, and their text for `show`. Raw scores are never replaced."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from mt_bench_task.core.results import Results
from mt_bench_task.core.types import Judgment, PairJudgment, SingleJudgment


def public(stats: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """A saved calibration as results carry it: without the pairs the map is refitted on."""
    return None if stats is None else {k: v for k, v in stats.items() if k != "pairs"}


def attach(results: Results, records: Sequence[Judgment], category_of: Mapping[Any, str],
           stats: Mapping[str, Any] | None = None,
           answers: Mapping[str, Mapping[Any, Any]] | None = None,
           baseline: str | None = None, seed: int = 0) -> Results:
    """`results` with each model's GPT-4-equivalent average (when `stats`, the judge's saved
    calibration, has a map) and length-controlled score (when `answers` has 2+ models)."""
    from mt_bench_task.outputs import equivalence, length

    models = dict(results.models)
    control = None
    if results.single:
        single = [r for r in records if isinstance(r, SingleJudgment) and r.model in models]
        for name, eq in equivalence.equivalent_averages(single, stats, category_of,
                                                        seed=seed).items():
            models[name] = replace(results.score(name), gpt4_equivalent=eq)
        found = length.single_length_control(single, answers or {}, seed) if answers else None
        if found is not None:
            for name, lc in found[0].items():
                if name in models:
                    models[name] = replace(models[name], length_controlled=lc)
            control = found[1]
    elif answers:
        pair = [r for r in records if isinstance(r, PairJudgment)
                and (results.mode != "pairwise-baseline" or baseline in (r.model_1, r.model_2))]
        found_pair = length.pair_length_control(pair, answers, baseline, seed)
        if found_pair is not None:
            for name, lc in found_pair[0].items():
                if name in models:
                    models[name] = replace(results.rates(name), length_controlled=lc)
            control = found_pair[1]
    return replace(results, models=models, length_control=control)


def answers_for(data_dir: Path | None, results: Results, fallback: Path | None = None,
                baseline: str | None = None) -> dict[str, Any]:
    """The answers of the results' models (and the baseline) found in DATA_DIR or `fallback`."""
    from mt_bench_task.outputs.length import answers_of

    if data_dir is None:
        return {}
    return answers_of(data_dir, [*results.models, *([baseline] if baseline else [])], fallback)


def text(results: Results) -> str:
    """The GPT-4-equivalent and length-controlled tables (empty when neither was computed)."""
    lines: list[str] = []
    if results.single:
        eq = [(n, m) for n, m in results.ranked() if m.gpt4_equivalent]
        if eq:
            label = ((results.calibration or {}).get("map") or {}).get("label", "GPT-4-equivalent")
            lines += ["\n########## GPT-4-equivalent average (95% CI incl. the map's "
                      "uncertainty) ##########", f"NOTE: {label}",
                      f"{'model':40s} {'raw':>7s}  {'GPT-4-eq':>8s}  95% CI"]
            for name, m in eq:
                g = m.gpt4_equivalent or {}
                lines.append(f"{name:40s} {m.average:7.3f}  {g['average']:8.3f}  "
                             f"[{g['ci95'][0]:.3f}, {g['ci95'][1]:.3f}]")
    control = results.length_control
    if control:
        c = control["coefficient"]
        lines += ["\n########## Length-controlled ##########", f"NOTE: {control['label']}",
                  f"length coefficient {c:+.3f} per unit of log length "
                  f"[{control['ci95'][0]:+.3f}, {control['ci95'][1]:+.3f}]"
                  + (f" ({control['per_doubling']:+.3f} per doubling)"
                     if "per_doubling" in control else "")]
        if results.single:
            lines.append(f"{'model':40s} {'raw':>7s}  {'LC':>7s}  95% CI")
            for name, m in results.ranked():
                if m.length_controlled:
                    lc = m.length_controlled
                    lines.append(f"{name:40s} {m.average:7.3f}  {lc['average']:7.3f}  "
                                 f"[{lc['ci95'][0]:.3f}, {lc['ci95'][1]:.3f}]")
        else:
            lines.append(f"{'model':40s} {'win rate adj.':>13s}  {'BT':>6s}  {'LC BT':>6s}  95% CI")
            for name in sorted(results.models):
                p = results.rates(name)
                if p.length_controlled:
                    lc = p.length_controlled
                    lines.append(f"{name:40s} {p.win_rate_adjusted:13.3f}  {lc['win_rate_bt']:6.3f}"
                                 f"  {lc['win_rate']:6.3f}  [{lc['ci95'][0]:.3f}, "
                                 f"{lc['ci95'][1]:.3f}]")
    return "\n".join(lines)


def comparison_payload(results: Results | None, records: Sequence[SingleJudgment],
                       seed: int = 0) -> dict[str, Any] | None:
    """The report's comparison section: per model raw, GPT-4-equivalent and length-controlled
    averages, and the paired comparison of every pair of models (single mode, 2+ models)."""
    from mt_bench_task.outputs.compare import question_units, separability

    if results is None or not results.single or not results.models:
        return None
    ranked = results.ranked()
    pairs = (separability(question_units([r for r in records if r.model in results.models]),
                          [n for n, _ in ranked], seed).to_json() if len(ranked) > 1 else None)
    jmap = (results.calibration or {}).get("map") or {}
    return {"rows": [{"model": n, "average": m.average, "ci95": list(m.ci95),
                      "gpt4_equivalent": m.gpt4_equivalent, "length_controlled": m.length_controlled}
                     for n, m in ranked],
            "gpt4_label": jmap.get("label") if any(m.gpt4_equivalent for _, m in ranked) else None,
            "length_control": results.length_control, "pairs": pairs}


def card_lines(score: Any, results: Results) -> tuple[list[str], list[str]]:
    """The card's rows beside the raw average: GPT-4-equivalent and length-controlled, with the
    notes that say how each was made."""
    rows: list[str] = []
    notes: list[str] = []
    if score.gpt4_equivalent:
        g = score.gpt4_equivalent
        label = ((results.calibration or {}).get("map") or {}).get("label", "GPT-4-equivalent")
        rows.append(f"| GPT-4-equivalent average (1) | {g['average']:.2f} (95% CI "
                    f"{g['ci95'][0]:.2f}-{g['ci95'][1]:.2f}) |")
        notes.append(f"(1) {label}.")
    if score.length_controlled and results.length_control:
        lc = score.length_controlled
        c = results.length_control
        rows.append(f"| length-controlled average ({len(rows) + 1}) | {lc['average']:.2f} (95% CI "
                    f"{lc['ci95'][0]:.2f}-{lc['ci95'][1]:.2f}) |")
        notes.append(f"({len(rows)}) {c['label']}; length coefficient {c['coefficient']:+.3f} "
                     f"per unit of log length, over {c['models']} models.")
    return rows, notes


def attach_for(results: Results, data_dir: Path, bench: Any, path: Path, seed: int = 0,
               records: Sequence[SingleJudgment] | None = None) -> Results:
    """`attach` for a single-mode judgment file in DATA_DIR (the card, the report): the judge's
    saved calibration, and the answers in DATA_DIR (or the bench's official ones)."""
    from mt_bench_task.core.data import read_single_judgments
    from mt_bench_task.core.judge_spec import identity_of_records
    from mt_bench_task.outputs.calibration_stats import load_stats

    records = read_single_judgments(path) if records is None else records
    stats = load_stats(data_dir, identity_of_records(records, results.judge).judge)
    if stats is not None and results.calibration is None:
        results = results.with_calibration(public(stats))
    return attach(results, records, bench.category_of, stats,
                  answers_for(data_dir, results, bench.official_answers), seed=seed)


# ---- the evaluate metric's extra outputs (one model's result dict) ----
def metric_equivalent(records: Sequence[SingleJudgment], model_id: str,
                      categories: Mapping[Any, str], calibration: Mapping[str, Any] | str | None,
                      judge: str) -> dict[str, Any]:
    """The GPT-4-equivalent score and its label when the judge has a calibration with a map
    (`calibration`: the object or its saved file; None: the judge's packaged one). A single
    model has no length-controlled score: that needs length differences between models."""
    import json

    from mt_bench_task.outputs.calibration_stats import load_stats
    from mt_bench_task.outputs.equivalence import equivalent_averages

    stats: Any = calibration
    if isinstance(stats, str):
        stats = json.loads(Path(stats).read_text(encoding="utf-8"))
    stats = stats if stats is not None else load_stats(None, judge)
    eq = equivalent_averages(records, stats, categories).get(model_id)
    return {} if eq is None else {"gpt4_equivalent": eq, "gpt4_equivalent_label": stats["map"]["label"]}


def metric_length(records: Sequence[PairJudgment], model_id: str, baseline: str,
                  answers: Mapping[str, Mapping[Any, Any]]) -> dict[str, Any]:
    """The Bradley-Terry win rate against the baseline at equal answer length."""
    from mt_bench_task.outputs.length import pair_length_control

    found = pair_length_control(records, answers, baseline)
    if found is None or model_id not in found[0]:
        return {}
    return {"length_controlled": found[0][model_id], "length_control": found[1]}
