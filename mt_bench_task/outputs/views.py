"""`mt-bench show`: FastChat's show_result tables for a judgment file, plus CIs, per-category
scores, the judge label (with `mt-bench calibrate`'s figures when there are some), what the
answer files say of thoughts and token limits, and the radar plot. Returns text and values; the CLI prints them."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mt_bench_task.core.bench import order_categories
from mt_bench_task.core.data import answer_notes, judgment_file, read_judgments, unique_judgments
from mt_bench_task.core.errors import DataError, ParameterError
from mt_bench_task.core.judge_spec import NOT_COMPARABLE
from mt_bench_task.core.results import Results
from mt_bench_task.core.scoring import (
    extra_tables,
    fastchat_tables,
    only,
    per_category_turns,
    results_from_records,
)
from mt_bench_task.core.served import mixed_note, served_suffix
from mt_bench_task.core.types import SingleJudgment
from mt_bench_task.core.workspace import Workspace, workspace_at


@dataclass(frozen=True)
class ShowOutput:
    """What `show` computed, for a front end to print: the results (`show --json` is their
    `to_json()`), the text tables, the judge labels and the radar plot written (if any)."""

    results: Results
    text: str
    labels: list[str]
    plot: Path | None


def show(data_dir: Path, input_file: str | None, judge_model: str, mode: str,
         model_list: list[str] | None, baseline_model: str | None,
         plot: Path | str | None = None, seed: int = 0,
         workspace: Workspace | None = None) -> ShowOutput:
    """FastChat's show_result for the workspace's bench (default: DATA_DIR's, `workspace_at`),
    plus CIs, per-category scores, the judge label and, with `plot`, the radar plot."""
    from mt_bench_task.outputs import extra_stats
    from mt_bench_task.outputs.official import calibration_label

    bench = workspace_at(data_dir, workspace).bench
    if plot and mode != "single":
        raise ParameterError("plot draws single-mode (1-10) scores; not with mode " + mode, "plot", "mode")
    path = Path(input_file) if input_file else judgment_file(data_dir, judge_model, mode)
    records, repeated = unique_judgments(read_judgments(path, mode))
    if not records:
        raise DataError(f"{path}: no judgment records")
    results = results_from_records(records, mode, model_list, baseline_model, bench.category_of,
                                   seed, source=str(path))
    labels = not_comparable = [results.label] if results.label else []
    calibration = calibration_label(data_dir, records, judge_model)
    if calibration is not None:  # the judge label with `mt-bench calibrate`'s figures next to it
        labels = [calibration[0]]
        results = results.with_calibration(extra_stats.public(calibration[1]))
    # beside the raw scores: GPT-4-equivalent (a calibrated judge) and length-controlled scores
    results = extra_stats.attach(
        results, records, bench.category_of, calibration[1] if calibration else None,
        extra_stats.answers_for(data_dir, results, bench.official_answers, baseline_model),
        baseline_model if mode == "pairwise-baseline" else None, seed)
    served = list(results.served_by)
    labels = [*labels, *filter(None, [mixed_note(served), _repeated_note(repeated, path)])]
    lines = [f"Input file: {path}", *(f"NOTE: {label}" for label in labels),
             *([f"Judge: {judge_model}{served_suffix(served)}"] if served else []),
             *([f"References: {results.references} (--references)"] if results.references else []),
             fastchat_tables(records, mode, model_list, baseline_model,
                             bench.multi_turn or any(r.turn == 2 for r in records),
                             pairwise=None if mode == "single" else results),
             extra_tables(results), extra_stats.text(results)]
    if mode == "single":
        split = per_category_turns([r for r in only(SingleJudgment, records)
                                    if model_list is None or r.model in model_list], bench.category_of)
        lines.append("\n########## Per category and turn (turn 1 / turn 2) ##########")
        for name, cats in sorted(split.items()):
            order = order_categories(cats, bench.categories)
            cells = [f"{c}: {_fmt(cats[c].get(1))}/{_fmt(cats[c].get(2))}" for c in order]
            lines.append(f"{name}: " + ", ".join(cells))
    notes = answer_notes(data_dir, sorted(results.models), bench.official_answers)
    if notes:  # thinking models, and answers the token limit cut (the answer files say)
        lines += ["\n########## Answers: thoughts and token limits ##########", *notes]
    out = None
    if plot:
        from mt_bench_task.outputs.plot import radar_plot

        out = radar_plot(results, Path(plot),
                         title_note=NOT_COMPARABLE if not_comparable else None,
                         bench_name=bench.name)
    return ShowOutput(results, "\n".join(lines), list(labels), out)


def _repeated_note(repeated: int, path: Path) -> str | None:
    """The warning for a file holding some judgments twice (two runs wrote to it at once)."""
    if not repeated:
        return None
    return (f"{path}: {repeated} records repeat the key (question_id, model(s), turn, judge, "
            f"repeat) of another record; each key is counted once (the last rating)")


def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}"
