"""`mt-bench show --compare`: the paired comparison of models in a judgment file (statistics:
`outputs/compare.py`), with `--leaderboard` against the 34 published MT-bench models. Returns
the JSON object and the text; the CLI prints them."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mt_bench_task.core.bench import Bench
from mt_bench_task.core.data import judgment_file, read_judgments
from mt_bench_task.core.errors import DataError, ParameterError
from mt_bench_task.core.judge_spec import identity_of_records
from mt_bench_task.core.types import Judgment, SingleJudgment
from mt_bench_task.core.workspace import Workspace, workspace_at
from mt_bench_task.outputs.compare import Comparison, Separability, question_units, separability


@dataclass
class CompareView:
    results: dict[str, Any]  # `show --compare --json`: judge, comparable, mode, compare
    text: str
    labels: list[str] = field(default_factory=list)


def compare_records(records: Sequence[Judgment], models: Sequence[str], mode: str = "single",
                    seed: int = 0) -> Comparison | Separability:
    """Two models: their paired comparison (A - B, in the order given); more: every pair."""
    from mt_bench_task.outputs.compare import compare_pair

    units = question_units(records)
    unknown = [m for m in models if m not in units]
    if unknown:
        raise DataError(f"compare: no valid judgments for {', '.join(unknown)}; models with "
                        f"some: {', '.join(sorted(units))}")
    if len(models) < 2:
        raise ParameterError(f"compare needs two models or more, got {list(models)}", "compare")
    try:
        if len(models) == 2:
            return compare_pair(units, models[0], models[1], seed)
        return separability(units, models, seed)
    except ValueError as e:  # two models without a shared question
        raise DataError(f"compare: {e}") from e


def show_compare(data_dir: Path, input_file: str | None, judge_model: str, mode: str,
                 models: Sequence[str], leaderboard: bool = False, seed: int = 0,
                 workspace: Workspace | None = None) -> CompareView:
    """The comparison of `models` (none: every model of the file; with `leaderboard`, the
    file's models and the 34 official ones, whose rows are the published GPT-4 grades; the
    workspace's bench, default DATA_DIR's by `workspace_at`, must then be MT-bench)."""
    path = Path(input_file) if input_file else judgment_file(data_dir, judge_model, mode)
    records: list[Judgment] = list(read_judgments(path, mode))
    if not records:
        raise DataError(f"{path}: no judgment records")
    who = identity_of_records(records, judge_model)
    labels = [who.label] if who.label else []
    pool = sorted({m for r in records for m in _models(r)})
    if leaderboard:
        records, official = _with_official(records, mode, workspace_at(data_dir, workspace).bench)
        pool += official
        if not who.comparable:
            labels.append(f"your models were graded by {who.judge}, the official ones by GPT-4: "
                          "their pairs compare two judges")
    result = compare_records(records, list(models) or pool, mode, seed)
    what = "average" if mode == "single" else "adjusted win rate"
    if isinstance(result, Comparison):
        text = result.sentence(what)
    else:
        text = _separability_text(result, what)
    obj = {"judge": who.judge, "comparable": who.comparable, "mode": mode,
           "compare": result.to_json()}
    lines = [f"Input file: {path}", *(f"NOTE: {label}" for label in labels), text]
    return CompareView(obj, "\n".join(lines), labels)


def _models(r: Judgment) -> tuple[str, ...]:
    return (r.model,) if isinstance(r, SingleJudgment) else (r.model_1, r.model_2)


def _with_official(records: list[Judgment], mode: str, bench: Bench
                   ) -> tuple[list[Judgment], list[str]]:
    """The records plus the official grades (an official model named like one of the user's
    gets " (official)"), and the official names."""
    from dataclasses import replace

    from mt_bench_task.outputs.official import OFFICIAL_SUFFIX, check_mt_bench, load_official_grades

    if mode != "single":
        raise ParameterError("--leaderboard compares single-mode scores (mode single)", "mode")
    check_mt_bench(bench)
    mine = {m for r in records for m in _models(r)}
    official = [replace(r, model=r.model + OFFICIAL_SUFFIX) if r.model in mine else r
                for r in load_official_grades()]
    return records + official, sorted({r.model for r in official})


def _separability_text(s: Separability, what: str) -> str:
    resolved = sum(p.resolved for p in s.pairs)
    share = s.share if s.share is not None else 0.0
    lines = [f"########## Paired comparison of {len(s.models)} models (95% paired bootstrap "
             f"over questions) ##########",
             f"resolved pairs: {resolved} of {len(s.pairs)} (separability {share:.1%}): the "
             f"share of model pairs whose {what} difference has a 95% interval excluding 0",
             "", "each model against the next one down:"]
    lines += [f"  {'RESOLVED' if p.resolved else 'unresolved':10s} {p.a} - {p.b}: "
              f"{p.delta:+.3f} [{p.ci95[0]:+.3f}, {p.ci95[1]:+.3f}], p = {p.p_value:.4f}"
              for p in s.neighbours()]
    if len(s.pairs) > len(s.models) - 1:
        lines.append("(every pair: --json)")
    return "\n".join(lines)
