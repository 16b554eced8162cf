"""Judge calibration (`mt-bench calibrate`): a judge against the official GPT-4 grades.

Dataset: the official answers of 6 leaderboard models (`data/official_answers/`) and their
official GPT-4 grades (`data/official_grades/`); MT-bench's questions and GPT-4 references.
Paper: arXiv:2306.05685. Scored: the judge grades the official answers with FastChat's single
prompts (references for math, reasoning, coding), through the one judging job and `execute`
(judging/execute.py) as `mt-bench judge` does; the statistics (outputs/calibration_stats.py)
compare each judge score with the official grade of the same (model, question, turn).
"""
from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mt_bench_task.clients import make_client
from mt_bench_task.core import data
from mt_bench_task.core.bench import DEFAULT_BENCH, load_bench, official_answers_dir, with_references
from mt_bench_task.core.chat import ChatClient
from mt_bench_task.core.errors import DataError, ParameterError
from mt_bench_task.core.jsonl import write_lines_atomic
from mt_bench_task.core.judge_spec import judge_spec
from mt_bench_task.core.types import SingleJudgment
from mt_bench_task.engine.config import EngineOptions
from mt_bench_task.judging.execute import SendOptions, execute
from mt_bench_task.judging.job import JudgeSummary, JudgingJob
from mt_bench_task.outputs.calibration_stats import (
    OFFICIAL_SOURCE,
    calibration_stats,
    citation,
    judgments_path,
    stats_path,
)
from mt_bench_task.outputs.judge_map import map_text
from mt_bench_task.outputs.official import (
    REFERENCE_MODELS,
    check_mt_bench,
    load_official_grades,
    mt_bench,
)


# ---- the run ----
@dataclass(frozen=True)
class CalibrationRun:
    data_dir: Path
    judge_model: str
    base_url: str | None = None
    models: tuple[str, ...] | None = None  # None: all 6 reference models
    dry_run: bool = False
    judge_repeats: int = 1  # each match K times; records carry "repeat" when K > 1 (as `judge`)
    references: str | None = None  # "inline" or a FastChat reference file (`bench.with_references`)
    engine: str = "auto"  # a local judge's engine (hf, vllm) and its options
    engine_options: EngineOptions | None = None
    send: SendOptions = field(default_factory=SendOptions)  # as `judge`'s: parallel, --batch, pacing
    judge_max_tokens: int | None = None  # as `judge`'s: the first budget (thinking judges)
    judge_reasoning_effort: str | None = None


@dataclass
class CalibrationSummary:
    judge: str
    models: list[str]
    judging: JudgeSummary  # what was planned and sent (`execute`'s summary)
    stats_file: Path | None = None
    stats: dict[str, Any] | None = None

    # the judging's figures, read where the plan, the table and callers read them
    @property
    def label(self) -> str | None:  # `judge_spec`'s "not comparable" line for this judge, or None
        return self.judging.label

    @property
    def planned(self) -> int:
        return self.judging.planned

    @property
    def already_done(self) -> int:
        return self.judging.already_done

    @property
    def sent(self) -> int:
        return self.judging.sent

    @property
    def failed(self) -> int:
        return self.judging.failed

    @property
    def output(self) -> Path | None:
        return self.judging.output

    @property
    def batch_pending(self) -> bool:
        return self.judging.batch_pending

    @property
    def ok(self) -> bool:
        return self.judging.ok


def reference_set(models: Sequence[str] | None = None) -> tuple[list[str], dict[str, Any]]:
    """(model names, {model: {question_id: Answer}}) of the reference models (default: all 6)."""
    chosen = list(dict.fromkeys(models)) if models else list(REFERENCE_MODELS)
    unknown = [m for m in chosen if m not in REFERENCE_MODELS]
    if unknown:
        raise DataError(f"models: {', '.join(unknown)} have no official answers; "
                        f"choose from {', '.join(REFERENCE_MODELS)}")
    packaged = official_answers_dir()  # `<model>.jsonl` files, no model_answer/ folder
    return chosen, {m: data.load_answers(packaged, m, fallback_dir=packaged) for m in chosen}


def run_calibration(run: CalibrationRun, client: ChatClient | None = None,
                    on_plan: Callable[[CalibrationSummary], None] | None = None
                    ) -> CalibrationSummary:
    """Judge what is missing of the reference answers, then compare with the official grades.

    `on_plan` sees the plan (calls to make) before any call is sent."""
    models, answers = reference_set(run.models)
    if run.judge_repeats < 1 or run.send.parallel < 1:
        raise ParameterError(f"judge_repeats and parallel must be >= 1, got {run.judge_repeats} "
                             f"and {run.send.parallel}", "judge_repeats", "parallel")
    spec = judge_spec(run.judge_model, run.judge_max_tokens, run.judge_reasoning_effort)
    # the official grades' bench: MT-bench's questions; judge prompts of the data dir's own
    # are used (and make the judge not comparable), as `mt-bench judge` would use them
    bench = with_references(load_bench(DEFAULT_BENCH, run.data_dir), run.references)
    check_mt_bench(bench)
    out = judgments_path(run.data_dir, spec.display_name)
    job = JudgingJob(bench, answers, tuple(models), spec, "single", repeats=run.judge_repeats,
                     output=out, repair=not run.dry_run)
    plan = job.plan()
    summary = CalibrationSummary(spec.display_name, models, job.summary(plan))
    chat = client
    if chat is None and spec.local and not run.dry_run:  # its engine checked before the plan
        chat = make_client(spec, local_engine=run.engine, local_options=run.engine_options)
    if on_plan is not None:
        on_plan(summary)
    if run.dry_run:
        return summary
    if plan.todo:
        summary.judging = execute(job, chat or make_client(spec, base_url=run.base_url),
                                  run.send, plan)
        if summary.batch_pending:
            return summary
    judged = data.read_single_judgments(out) if out.exists() else []
    summary.stats = calibration_stats(judged, load_official_grades(), bench.category_of,
                                      spec.display_name, models, bench.categories)
    summary.stats_file = stats_path(run.data_dir, spec.display_name)
    write_lines_atomic(summary.stats_file, [json.dumps(summary.stats, indent=1)])
    return summary


def calibrate_records(records: Sequence[SingleJudgment], judge: str,
                      models: Sequence[str] | None = None) -> dict[str, Any]:
    """The statistics for judgment records made elsewhere (the evaluate metric's path)."""
    bench = mt_bench()
    return calibration_stats(records, load_official_grades(), bench.category_of, judge, models,
                             bench.categories)


# ---- text for the CLI (returned, never printed here) ----
def calibration_plan(s: CalibrationSummary) -> str:
    todo = s.planned - s.already_done
    return (f"calibrate: judge {s.judge} on the official answers of {len(s.models)} model(s) "
            f"({', '.join(s.models)}): {s.planned} judgments, {s.already_done} already done, "
            f"{todo} judge calls to make -> {s.output}" + (f"\nNOTE: {s.label}" if s.label else ""))


def calibration_table(s: CalibrationSummary) -> str:
    st = s.stats or {}

    def f(x: Any, d: int = 3) -> str:
        return "-" if x is None else f"{x:.{d}f}"

    lines = [(s.label or f"judged by {s.judge}") + f"; {citation(st)}",
             (f"judge {s.judge} vs the {OFFICIAL_SOURCE} grades of the published MT-bench, "
              f"over {st.get('n', 0)} grades (judged {s.sent} now, {s.already_done} before, "
              f"{s.failed} failed)"),
             (f"pearson r {f(st.get('pearson'))}  spearman {f(st.get('spearman'))}  "
              f"exact {f(st.get('exact'))}  within 1 {f(st.get('within_1'))}  "
              f"mean shift {f(st.get('mean_shift'), 2)}  "
              f"kendall tau-b (models) {f(st.get('kendall_tau_models'))}"),
             "", f"{'':24s} {'official':>8s} {'judge':>8s} {'shift':>8s}"]
    for title, key in (("model", "models"), ("category", "categories")):
        lines.append(f"-- by {title}")
        for name, v in (st.get(key) or {}).items():
            lines.append(f"{name:24s} {f(v['official'], 2):>8s} {f(v['judge'], 2):>8s} "
                         f"{f(v['shift'], 2):>8s}")
    lines += map_text(st.get("map"))
    lines.append(f"saved: {s.stats_file}")
    return "\n".join(lines)
