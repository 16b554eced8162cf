"""The one way a judging job is sent: `execute(job, client, options)` alone chooses direct calls or
the client's Batch API (judging/batch.py), paces the client, prices the run (judging/cost.py) and
notes the model that served the judge (core/served.py). `mt-bench judge` (judging/run.py),
`calibrate`, the evaluate metric and the inspect scorer all judge through it; what a client can
do (pace, batch) is asked of the client (`core.chat.ChatClient`), never probed.
"""
from __future__ import annotations

from dataclasses import dataclass

from mt_bench_task.core.chat import ChatClient
from mt_bench_task.core.errors import ParameterError
from mt_bench_task.core.judge_spec import JudgeSpec
from mt_bench_task.core.served import served_models
from mt_bench_task.core.types import Judgment
from mt_bench_task.judging.batch import judge_batch
from mt_bench_task.judging.call import run_sync
from mt_bench_task.judging.cost import Price, judge_price
from mt_bench_task.judging.job import JudgeSummary, JudgingJob, JudgingPlan, drop_superseded_failures


@dataclass(frozen=True)
class SendOptions:
    """How a job's matches are sent: the settings `mt-bench judge` and `calibrate` share."""

    parallel: int = 1  # matches in flight (direct calls)
    batch: bool = False  # the Batch API: one upload, one batch, resumable by id; half price
    batch_poll_interval: float = 30.0
    batch_wait: bool = True  # False: submit (or check) and return
    price_input: float | None = None  # USD per 1M tokens; default: the packaged table
    price_output: float | None = None
    max_requests_per_minute: int | None = None  # else the server's x-ratelimit-* headers
    max_tokens_per_minute: int | None = None
    max_wait: float | None = None  # seconds a request may meet rate-limit 429s (client default)
    batch_max_enqueued_tokens: int | None = None  # the Batch API's queue; default: learnt


def run_price(options: SendOptions, spec: JudgeSpec, served: list[str] | None = None
              ) -> Price | None:
    """The judge's price: the user's, else the packaged table's (batch: half); a local judge
    costs nothing; None: unknown."""
    if spec.local and options.price_input is None and options.price_output is None:
        return Price(0.0, 0.0, "local judge")
    return judge_price([spec.api_model, *(served or [])], batch=options.batch,
                       price_input=options.price_input, price_output=options.price_output)


def execute(job: JudgingJob, client: ChatClient, options: SendOptions,
            plan: JudgingPlan | None = None, *, progress: bool = True,
            check_reachable: bool = True) -> JudgeSummary:
    """Send what `plan` (default: the job's) has still to judge through `client`, in an event
    loop of its own; the summary holds the records, in plan order. The client is closed after
    (its HTTP sessions cannot outlive the loop)."""
    plan = job.plan() if plan is None else plan

    async def go() -> JudgeSummary:
        try:
            return await aexecute(job, client, options, plan, progress=progress,
                                  check_reachable=check_reachable)
        finally:
            await client.close()

    return run_sync(go)


async def aexecute(job: JudgingJob, client: ChatClient, options: SendOptions,
                   plan: JudgingPlan | None = None, *, progress: bool = True,
                   check_reachable: bool = True) -> JudgeSummary:
    """`execute` in the caller's event loop (inspect's scorer); the client stays open."""
    plan = job.plan() if plan is None else plan
    summary = job.summary(plan)
    if not plan.todo:
        return summary
    spec = job.spec
    if options.batch:
        records = await _send_in_batch(job, plan, client, options, summary)
    else:
        client.limit_rate(options.max_requests_per_minute, options.max_tokens_per_minute,
                          options.max_wait)
        if check_reachable:
            await client.check_reachable()
        records = await job.arun(client, plan.todo, options.parallel, progress)
        summary.usage.update(vars(client.usage))
        summary.adaptations = list(client.adaptations)
    summary.records = job.in_plan_order(plan, records)
    summary.sent = len(records)
    summary.failed = sum(r.failed for r in records)
    summary.unrated = sum(r.unrated for r in records)
    summary.served_models = served_models(records)
    summary.price = run_price(options, spec, summary.served_models)
    return summary


async def _send_in_batch(job: JudgingJob, plan: JudgingPlan, client: ChatClient,
                         options: SendOptions, summary: JudgeSummary) -> list[Judgment]:
    """The plan's matches through the client's Batch API into the job's file (submit, or
    reattach to the saved batch); the batch's fate into `summary`."""
    backend = client.batch_backend()
    if backend is None:
        raise ParameterError(f"batch needs an OpenAI-compatible judge with a Batch API; "
                             f"{job.spec.name} is not one", "batch")
    if job.output is None:
        raise ParameterError("batch needs a judgment file to collect the batch into", "batch")
    try:
        outcome = await judge_batch(job.output, plan.todo, job.spec, job.mode, backend,
                                    poll_interval=options.batch_poll_interval,
                                    wait=options.batch_wait,
                                    max_enqueued_tokens=options.batch_max_enqueued_tokens)
    finally:
        await backend.close()
    summary.batch_ids, summary.batch_pending = outcome.batch_ids, outcome.pending
    summary.unfinished = outcome.unfinished
    summary.batch_errors = outcome.errors
    summary.adaptations = outcome.adaptations
    if outcome.records:
        drop_superseded_failures(job.output, job.mode)
    summary.usage.update(vars(outcome.usage))
    return outcome.records
