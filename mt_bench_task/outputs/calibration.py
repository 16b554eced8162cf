"""Judge calibration (`mt-bench calibrate`): a judge against the official GPT-4 grades.

Dataset: the official answers of 6 leaderboard models (`data/official_answers/`) and their
official GPT-4 grades (`data/official_grades/`); MT-bench's questions and GPT-4 references.
Paper: arXiv:2306.05685. Scored: the judge grades the official answers with FastChat's single
prompts (references for math, reasoning, coding); the statistics compare each judge score with
the official grade of the same (model, question, turn). One implementation of the statistics
(`calibration_stats`) serves the CLI, the saved JSON and the evaluate metric.
"""
from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mt_bench_task.core import data
from mt_bench_task.core.bench import DEFAULT_BENCH, load_bench, order_categories
from mt_bench_task.core.errors import DataError, ParameterError
from mt_bench_task.core.types import SingleJudgment
from mt_bench_task.engine.config import EngineOptions
from mt_bench_task.outputs.agreement import average_ranks, kendall_tau_b, mean, pearson

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


# ---- the run ----
@dataclass(frozen=True)
class CalibrationRun:
    data_dir: Path
    judge_model: str
    base_url: str | None = None
    parallel: int = 1
    models: tuple[str, ...] | None = None  # None: all 6 reference models
    dry_run: bool = False
    judge_repeats: int = 1  # each match K times; records carry "repeat" when K > 1 (as `judge`)
    batch: bool = False  # the Batch API (core/batch.py), as `judge --batch`
    batch_poll_interval: float = 30.0
    batch_wait: bool = True
    max_requests_per_minute: int | None = None
    max_tokens_per_minute: int | None = None
    references: str | None = None  # "inline" or a FastChat reference file (`bench.with_references`)
    engine: str = "auto"  # a local judge's engine (hf, vllm) and its options
    engine_options: EngineOptions | None = None


@dataclass
class CalibrationSummary:
    judge: str
    models: list[str]
    label: str | None = None  # `judges`' "not comparable" line for this judge, or None
    planned: int = 0
    already_done: int = 0
    sent: int = 0
    failed: int = 0
    output: Path | None = None
    stats_file: Path | None = None
    stats: dict[str, Any] | None = None
    usage: dict[str, int] = field(default_factory=dict)
    batch_ids: list[str] = field(default_factory=list)
    batch_pending: bool = False
    unfinished: int = 0  # no result from an expired/cancelled/failed batch: sent next run

    @property
    def ok(self) -> bool:
        return self.failed == 0 and self.unfinished == 0


def reference_set(models: Sequence[str] | None = None) -> tuple[list[str], dict[str, Any]]:
    """(model names, {model: {question_id: Answer}}) of the reference models (default: all 6)."""
    from mt_bench_task.core.bench import official_answers_dir
    from mt_bench_task.outputs.official import REFERENCE_MODELS

    chosen = list(dict.fromkeys(models)) if models else list(REFERENCE_MODELS)
    unknown = [m for m in chosen if m not in REFERENCE_MODELS]
    if unknown:
        raise DataError(f"models: {', '.join(unknown)} have no official answers; "
                        f"choose from {', '.join(REFERENCE_MODELS)}")
    packaged = official_answers_dir()  # `<model>.jsonl` files, no model_answer/ folder
    return chosen, {m: data.load_answers(packaged, m, fallback_dir=packaged) for m in chosen}


def run_calibration(run: CalibrationRun, client: Any = None,
                    on_plan: Callable[[CalibrationSummary], None] | None = None
                    ) -> CalibrationSummary:
    """Judge what is missing of the reference answers, then compare with the official grades.

    `on_plan` sees the plan (calls to make) before any call is sent."""
    from mt_bench_task.clients import make_client
    from mt_bench_task.core.bench import with_references
    from mt_bench_task.core.job import JudgingJob
    from mt_bench_task.core.jsonl import write_lines_atomic
    from mt_bench_task.core.judges import judge_spec
    from mt_bench_task.outputs.official import check_mt_bench, load_official_grades

    models, answers = reference_set(run.models)
    if run.judge_repeats < 1 or run.parallel < 1:
        raise ParameterError(f"judge_repeats and parallel must be >= 1, got {run.judge_repeats} "
                             f"and {run.parallel}", "judge_repeats", "parallel")
    spec = judge_spec(run.judge_model)
    # the official grades' bench: MT-bench's questions; judge prompts of the data dir's own
    # are used (and make the judge not comparable), as `mt-bench judge` would use them
    bench = with_references(load_bench(DEFAULT_BENCH, run.data_dir), run.references)
    check_mt_bench(bench)
    out = judgments_path(run.data_dir, spec.display_name)
    job = JudgingJob(bench, answers, tuple(models), spec, "single", repeats=run.judge_repeats,
                     output=out, repair=not run.dry_run)
    plan = job.plan()
    todo = plan.todo
    summary = CalibrationSummary(spec.display_name, models, job.spec.label, planned=len(plan.jobs),
                                 already_done=plan.already_done, output=out)
    chat = client
    if chat is None and spec.local and not run.dry_run:  # its engine checked before the plan
        chat = make_client(spec, local_engine=run.engine, local_options=run.engine_options)
    if on_plan is not None:
        on_plan(summary)
    if run.dry_run:
        return summary
    if todo:
        chat = chat or make_client(spec, base_url=run.base_url)
        if run.batch:
            from mt_bench_task.core.job import drop_superseded_failures
            from mt_bench_task.core.judge_scale import batch_judge_into

            outcome = batch_judge_into(out, todo, chat, job.spec, "single", run.batch_poll_interval,
                                       run.batch_wait)
            records, usage = outcome.records, outcome.usage
            summary.batch_ids, summary.batch_pending = outcome.batch_ids, outcome.pending
            summary.unfinished = outcome.unfinished
            if outcome.pending:
                return summary
            if records:
                drop_superseded_failures(out, "single")
        else:
            if hasattr(chat, "limit_rate"):
                chat.limit_rate(run.max_requests_per_minute, run.max_tokens_per_minute)
            records = job.run(chat, todo, run.parallel)
            usage = chat.usage
        summary.sent = len(records)
        summary.failed = sum(r.failed for r in records)
        summary.usage = dict(vars(usage))
    judged = data.read_single_judgments(out) if out.exists() else []
    summary.stats = calibration_stats(judged, load_official_grades(), bench.category_of,
                                      spec.display_name, models, bench.categories)
    summary.stats_file = stats_path(run.data_dir, spec.display_name)
    write_lines_atomic(summary.stats_file, [json.dumps(summary.stats, indent=1)])
    return summary


def calibrate_records(records: Sequence[SingleJudgment], judge: str,
                      models: Sequence[str] | None = None) -> dict[str, Any]:
    """The statistics for judgment records made elsewhere (the evaluate metric's path)."""
    from mt_bench_task.outputs.official import load_official_grades, mt_bench

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
    lines.append(f"saved: {s.stats_file}")
    return "\n".join(lines)
