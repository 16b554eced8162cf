"""The judging front door's hooks for judging at scale: `--batch` (judging/batch.py), the price
(judging/cost.py) and the served model (core/served.py), kept out of `judging` so that it only calls
them. The pacing itself lives in the client (clients/pacing.py)."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from mt_bench_task.core.chat import ChatClient
from mt_bench_task.core.errors import ParameterError
from mt_bench_task.core.judge_spec import JudgeSpec
from mt_bench_task.core.served import served_models
from mt_bench_task.core.types import Judgment
from mt_bench_task.judging.batch import BatchOutcome, judge_batch
from mt_bench_task.judging.call import Job, run_sync
from mt_bench_task.judging.cost import Price, end_lines, judge_price

if TYPE_CHECKING:
    from mt_bench_task.judging.job import JudgeSummary
    from mt_bench_task.judging.run import JudgeRun


def run_price(run: JudgeRun, spec: JudgeSpec, served: list[str] | None = None) -> Price | None:
    """The judge's price: the user's, else the packaged table's (batch: half); a local judge
    costs nothing; None: unknown."""
    if spec.local and run.price_input is None and run.price_output is None:
        return Price(0.0, 0.0, "local judge")
    return judge_price([spec.api_model, *(served or [])], batch=run.batch,
                       price_input=run.price_input, price_output=run.price_output)


def note_served(summary: JudgeSummary, records: list[Judgment], run: JudgeRun,
                spec: JudgeSpec) -> None:
    summary.served_models = served_models(records)
    summary.price = run_price(run, spec, summary.served_models)


def batch_judge_into(out: Path, todo: list[Job], chat: ChatClient, spec: JudgeSpec, mode: str,
                     poll_interval: float, wait: bool) -> BatchOutcome:
    """`todo` through the judge's Batch API into `out` (submit, or reattach to the saved batch)."""
    backend_of = getattr(chat, "batch_backend", None)
    if backend_of is None:
        raise ParameterError(f"batch needs an OpenAI-compatible judge with a Batch API; "
                             f"{spec.name} is not one", "batch")
    backend = backend_of()

    async def go() -> BatchOutcome:
        try:
            return await judge_batch(out, todo, spec, mode, backend, poll_interval=poll_interval,
                                     wait=wait)
        finally:
            await backend.close()

    return run_sync(go)


def judge_in_batch(run: JudgeRun, todo: list[Job], out: Path, chat: ChatClient, spec: JudgeSpec,
                   summary: JudgeSummary, tidy: Callable[[Path, str], None]) -> JudgeSummary:
    """`run_judging`'s `--batch` branch: the outcome into the summary; `tidy` drops the $ERROR$
    rows a success superseded."""
    outcome = batch_judge_into(out, todo, chat, spec, run.mode, run.batch_poll_interval,
                               run.batch_wait)
    summary.batch_ids, summary.batch_pending = outcome.batch_ids, outcome.pending
    summary.unfinished = outcome.unfinished
    summary.adaptations = outcome.adaptations
    if outcome.records:
        tidy(out, run.mode)
    summary.sent = len(outcome.records)
    summary.failed = sum(r.failed for r in outcome.records)
    summary.usage.update(vars(outcome.usage))
    note_served(summary, outcome.records, run, spec)
    return summary


def summary_end_lines(summary: JudgeSummary) -> list[str]:
    """The closing line, the batch's fate, who served, the cost and the failure share."""
    if summary.batch_pending:
        return [f"batch {', '.join(summary.batch_ids)} submitted or still running; run the same "
                f"command with --batch again to collect it (nothing is sent twice)"]
    lines = [summary.closing_line()]
    if summary.unfinished:
        lines.append(f"{summary.unfinished} matches got no result (the batch expired, was "
                     f"cancelled or failed): the next run sends them")
    if summary.served_models:
        lines.append(f"served by: {', '.join(summary.served_models)}")
    u = summary.usage
    lines += end_lines(u["requests"], u["prompt_tokens"], u["completion_tokens"], summary.failed,
                       summary.sent, summary.price)
    return lines
