"""Batch judging: the planned judge requests through a Batch API, resumable by id.

The request and result lines are judging/batch_lines.py's, matched by a `custom_id` that is a pure
function of the match, so a new process can collect a batch it did not submit: the batch and file
ids are saved next to the judgment file (`<judge>_<mode>.batch.json`) before the first poll.
A request a reasoning model refused for a parameter is asked again, adapted, in a new batch.

The HTTP side is a `core.chat.BatchBackend` (files and batches endpoints, the API's limits and
rules), asked of the client; `clients.batch` has OpenAI's.
A result is turned into a record by replaying it through `judge_match`, so a record is what the
synchronous path writes for the same judgment text. An error line, or a status other than 200,
is FastChat's "$ERROR$" (sent again by the next run); a request an expired, cancelled or failed
batch never ran gets no record and is planned again by the next run.
"""
from __future__ import annotations

import json
import logging
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mt_bench_task.core.chat import BatchBackend, ChatClientBase, ClientUsage, Completion
from mt_bench_task.core.jsonl import JsonlAppender
from mt_bench_task.core.judge_spec import JudgeSpec
from mt_bench_task.core.prompts import user_prompts
from mt_bench_task.core.types import Judgment
from mt_bench_task.judging.batch_lines import batch_lines, custom_id, parse_results, refused_params
from mt_bench_task.judging.batch_queue import new_state, reattach, run_queue
from mt_bench_task.judging.call import BudgetLadder, Job, judge_match
from mt_bench_task.judging.request import JUDGE_MAX_TOKENS, JUDGE_TEMPERATURE, adaptation_note

log = logging.getLogger(__name__)


def state_path(judgment_file: Path) -> Path:
    """Where the batch and file ids live: next to the judgment file."""
    return judgment_file.with_name(judgment_file.name.removesuffix(".jsonl") + ".batch.json")


@dataclass
class BatchOutcome:
    records: list[Judgment] = field(default_factory=list)
    batch_ids: list[str] = field(default_factory=list)
    submitted: int = 0  # requests uploaded by this run (0: reattached or nothing to send)
    pending: bool = False  # --no-wait: submitted or still running, collected by a later run
    unfinished: int = 0  # jobs without a result (expired/cancelled/failed batch): planned again
    statuses: list[str] = field(default_factory=list)
    usage: ClientUsage = field(default_factory=ClientUsage)
    adaptations: list[str] = field(default_factory=list)  # request changes the judge required
    errors: list[str] = field(default_factory=list)  # batches that did not complete, and why
    refused: list[str] = field(default_factory=list)  # batches the queue refused (ran nothing)

    def merge(self, later: BatchOutcome) -> None:
        """A later round (the refused requests, adapted) into this one."""
        self.records += later.records
        self.batch_ids += later.batch_ids
        self.submitted += later.submitted
        self.pending, self.unfinished = later.pending, self.unfinished + later.unfinished
        self.statuses += later.statuses
        self.adaptations += later.adaptations
        self.errors += later.errors
        self.refused += later.refused
        for k, v in vars(later.usage).items():
            setattr(self.usage, k, getattr(self.usage, k) + v)


class _Replay(ChatClientBase):
    """Hands `judge_match` the batch's completions for one job, in game order."""

    def __init__(self, completions: list[Completion]):
        super().__init__()
        self._queue = list(completions)

    async def complete(self, model: str, messages: list[dict[str, str]], *, temperature: float,
                       max_tokens: int, reasoning_effort: str | None = None) -> Completion:
        return self._queue.pop(0)


async def judge_batch(out: Path, todo: list[Job], spec: JudgeSpec, mode: str,
                      backend: BatchBackend, *, poll_interval: float = 30.0, wait: bool = True,
                      progress: bool = True, max_requests: int | None = None,
                      max_bytes: int | None = None,
                      on_submitted: Callable[[list[str]], None] | None = None,
                      adapted: Collection[str] = (),
                      max_enqueued_tokens: int | None = None) -> BatchOutcome:
    """Submit `todo` as batch(es), or reattach to the ones saved for `out`; wait, then append a
    record per finished job to `out`. The state file goes once the results are written. Requests
    a reasoning model refused for a parameter (judging/request.py) are no judgments: their
    jobs go again, adapted, in a new batch (at most once per parameter). A batch holds at most
    `max_requests` requests and `max_bytes` bytes (default: the backend's limits), and the
    batches queued at once at most `max_enqueued_tokens` prompt tokens (default: learnt from a
    refusal, judging/batch_queue.py): the next is submitted as earlier ones finish."""
    per_batch = (max_requests or backend.max_requests, max_bytes or backend.max_bytes)
    state_file = state_path(out)
    result = BatchOutcome()
    state = _read_state(state_file)
    adapted = sorted(state.get("adapted") or []) if state else sorted(adapted)
    lines = batch_lines(todo, spec, mode, backend.endpoint, adapted)
    if state is None:
        head = {"judge": spec.display_name, "mode": mode, "adapted": adapted}
        queue = new_state(state_file, head, lines, per_batch, max_enqueued_tokens)
        result.submitted = len(lines)
    else:
        queue = reattach(state_file, state, lines, per_batch)
        if max_enqueued_tokens:
            state["queue_limit"] = min(max_enqueued_tokens, queue.limit or max_enqueued_tokens)
    batches, result.pending = await run_queue(queue, backend, out.stem, poll_interval, wait,
                                              progress)
    result.batch_ids = [e["batch_id"] for e in queue.state["batches"]]
    result.refused = list(queue.state.get("refused") or [])
    if on_submitted:
        on_submitted(result.batch_ids)
    result.statuses = [b["status"] for b in batches]
    if result.pending:
        return result
    completions: dict[str, Completion] = {}
    refused: dict[str, str] = {}
    for b in batches:
        # the error file first: a request in both (never seen) counts as answered
        for key in ("error_file_id", "output_file_id"):
            if b.get(key):
                content = await backend.download(b[key])
                completions.update(parse_results(content))
                refused.update(refused_params(content, backend.refused_param))
        if b["status"] != "completed":
            result.errors.append(f"batch {b['id']} {b['status']}"
                                 + (f": {_errors(b)}" if _errors(b) else ""))
            log.warning("batch %s is %s%s: its finished requests are kept, the rest are planned "
                        "again by the next run", b["id"], b["status"],
                        f" ({_errors(b)})" if _errors(b) else "")
    done_adapted = list(adapted)
    new = sorted(set(refused.values()) - set(done_adapted))
    again = [job for job in todo if new and any(i in refused for i in _ids(spec, mode, job))]
    retry = {id(job) for job in again}
    result.records, result.unfinished = _write_records(
        out, [job for job in todo if id(job) not in retry], spec, mode, completions, result.usage)
    result.usage.adapted += sum(i in refused for job in again for i in _ids(spec, mode, job))
    state_file.unlink(missing_ok=True)
    if again:
        for param in new:
            note = adaptation_note(param, spec.api_model, "the Batch API", JUDGE_TEMPERATURE,
                                   JUDGE_MAX_TOKENS)
            log.warning("%s", note)
            result.adaptations.append(note)
        result.merge(await judge_batch(out, again, spec, mode, backend,
                                       poll_interval=poll_interval, wait=wait, progress=progress,
                                       max_requests=max_requests, max_bytes=max_bytes,
                                       on_submitted=on_submitted, adapted=done_adapted + new,
                                       max_enqueued_tokens=queue.limit))
    return result


def _ids(spec: JudgeSpec, mode: str, job: Job) -> list[str]:
    return [custom_id(spec.display_name, mode, job, g)
            for g in range(1, len(user_prompts(job[0])) + 1)]


def _write_records(out: Path, todo: list[Job], spec: JudgeSpec, mode: str,
                   completions: dict[str, Completion], usage: ClientUsage
                   ) -> tuple[list[Judgment], int]:
    records: list[Judgment] = []
    unfinished = 0
    with JsonlAppender(out) as sink:
        for job in todo:
            ids = _ids(spec, mode, job)
            if not all(i in completions for i in ids):
                unfinished += 1
                continue
            done = [completions[i] for i in ids]
            for c in done:
                usage.prompt_tokens += c.prompt_tokens
                usage.completion_tokens += c.completion_tokens
                usage.requests += 1
                usage.failures += c.failed
            rec = _replay_match(job, done, spec)
            sink.write(rec.to_json())
            records.append(rec)
    return records, unfinished


def _replay_match(job: Job, done: list[Completion], spec: JudgeSpec) -> Judgment:
    # one budget: a batch's completions are replayed, never asked again
    coro = judge_match(job[0], _Replay(done), spec, job[1],
                       ladder=BudgetLadder((spec.max_tokens,)))
    try:  # _Replay never awaits anything real: drive the coroutine to its end in one step
        coro.send(None)
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]
    raise RuntimeError("judge_match awaited something real")  # pragma: no cover


def _errors(batch: dict[str, Any]) -> str:
    """A failed batch's reasons (validation errors), on one line."""
    data = (batch.get("errors") or {}).get("data") or []
    return "; ".join(" ".join(str(e.get("message", "")).split()) for e in data[:3]
                     if isinstance(e, dict))[:300]


def _read_state(path: Path) -> dict[str, Any] | None:
    if not path.exists():
        return None
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(state.get("batches"), list):
            raise ValueError("no batches")
        return state
    except ValueError:
        log.warning("%s is unreadable; submitting a new batch", path)
        return None
