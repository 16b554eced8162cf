"""Batches that fit the provider's queue: a job split into batches under the enqueued-token limit,
the next submitted as earlier ones finish, every batch and the lines still waiting saved in the
state file so that a new process reattaches to all of them (kill -9) and sends nothing twice.

The limit is given (`--batch-max-enqueued-tokens`) or learnt: a batch the provider refuses for it
(the backend's `queue_limit(batch)`: OpenAI's `token_limit_exceeded`, "Limit: 100,000 enqueued
tokens") ran nothing, so its lines go back to the front of the queue, split again under the
limit. A batch's tokens are the prompt estimate (characters / 4), filled to `FILL` of the limit
(the provider's tokenizer counts differently). While nothing of ours is queued, the next batch
goes whatever its size: another job's batches may hold the queue, and the provider says so.
"""
from __future__ import annotations

import asyncio
import json
import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mt_bench_task.core.chat import BatchBackend
from mt_bench_task.core.errors import DataError
from mt_bench_task.core.jsonl import write_lines_atomic

TERMINAL = ("completed", "expired", "cancelled", "failed")
FILL = 0.9  # share of the queue limit one batch of ours fills
log = logging.getLogger(__name__)


def line_tokens(line: str) -> int:
    """A request line's prompt tokens, estimated as the plan does: characters / 4."""
    obj = json.loads(line)
    body = obj.get("body") or obj.get("params") or {}
    chars = sum(len(str(m.get("content", ""))) for m in body.get("messages") or [])
    chars += len(str(body.get("system") or ""))  # Anthropic's system prompt is apart
    return chars // 4


def split(ids: list[str], tokens: dict[str, int], sizes: dict[str, int], max_requests: int,
          max_bytes: int, max_tokens: int | None) -> list[list[str]]:
    """Consecutive groups under the per-batch limits and, when known, the queue's."""
    chunks: list[list[str]] = [[]]
    size = toks = 0
    for cid in ids:
        n, t = sizes[cid], tokens[cid]
        if max_tokens is not None and t > max_tokens:
            raise DataError(f"one batch request holds about {t} prompt tokens, more than the "
                            f"queue's {max_tokens} (--batch-max-enqueued-tokens)")
        if chunks[-1] and (len(chunks[-1]) >= max_requests or size + n > max_bytes
                           or (max_tokens is not None and toks + t > max_tokens)):
            chunks.append([])
            size = toks = 0
        chunks[-1].append(cid)
        size, toks = size + n, toks + t
    return [c for c in chunks if c]


@dataclass
class Queue:
    """The state file's content: submitted batches, the chunks still waiting, the limit."""

    path: Path
    state: dict[str, Any]
    lines: dict[str, str]  # custom_id -> request line, for the chunks still to upload
    per_batch: tuple[int, int]  # the API's limits per batch: requests, bytes
    tokens: dict[str, int] = field(default_factory=dict)
    refused: list[str] = field(default_factory=list)  # batches the queue refused (ran nothing)

    @property
    def limit(self) -> int | None:
        return self.state.get("queue_limit")

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_lines_atomic(self.path, [json.dumps(self.state, indent=1)])

    def resplit(self, front: list[str]) -> None:
        """`front` (a refused batch's ids) and the waiting chunks, split again under the limit."""
        ids = front + [cid for chunk in self.state["waiting"] for cid in chunk]
        cap = int(self.limit * FILL) if self.limit else None
        sizes = {cid: len(self.lines[cid].encode()) + 1 for cid in ids}
        self.state["waiting"] = split(ids, self.tokens, sizes, *self.per_batch, cap)

    def queued_tokens(self) -> int:
        return sum(e.get("tokens", 0) for e in self.state["batches"]
                   if e.get("status") not in TERMINAL)


def new_state(path: Path, head: dict[str, Any], lines: list[tuple[str, str]],
              per_batch: tuple[int, int], limit: int | None) -> Queue:
    """The queue of a new job: every line waiting, split under the limits."""
    q = Queue(path, {**head, "queue_limit": limit, "batches": [], "waiting": []}, dict(lines),
              per_batch, {cid: line_tokens(line) for cid, line in lines})
    q.resplit([cid for cid, _ in lines])
    return q


def reattach(path: Path, state: dict[str, Any], lines: list[tuple[str, str]],
             per_batch: tuple[int, int]) -> Queue:
    """The queue a killed or --no-wait run saved (`lines`: this run's plan, a superset of the
    lines still waiting: no record is written before every batch has ended)."""
    state.setdefault("waiting", [])
    return Queue(path, state, dict(lines), per_batch,
                 {cid: line_tokens(line) for cid, line in lines})


async def run_queue(q: Queue, backend: BatchBackend, name: str, interval: float, wait: bool,
                    progress: bool) -> tuple[list[dict[str, Any]], bool]:
    """Submit what fits, poll, learn from refusals, until every batch is terminal and nothing
    waits (or once, without `wait`). Returns the terminal batches and whether work is pending."""
    from tqdm.auto import tqdm

    bar = tqdm(desc="batch", unit="req", disable=not progress or not wait, file=sys.stderr)
    objects: dict[str, dict[str, Any]] = {}
    try:
        while True:
            await _submit(q, backend, name)
            for e in q.state["batches"]:
                if e.get("status") in TERMINAL:
                    continue
                b = objects[e["batch_id"]] = await backend.retrieve(e["batch_id"])
                limit = backend.queue_limit(b) if b["status"] == "failed" else None
                if limit is not None:
                    _refused(q, e, limit)
                    continue
                e["status"] = b["status"]
            q.save()
            active = [e for e in q.state["batches"] if e.get("status") not in TERMINAL]
            _show(bar, [objects[e["batch_id"]] for e in q.state["batches"]
                        if e["batch_id"] in objects])
            if not active and not q.state["waiting"]:
                return [objects.get(e["batch_id"]) or await backend.retrieve(e["batch_id"])
                        for e in q.state["batches"]], False
            if not wait:
                return [], True
            await asyncio.sleep(interval)
    finally:
        bar.close()


async def _submit(q: Queue, backend: BatchBackend, name: str) -> None:
    """Create the batches uploaded but not created (a kill in between), then upload and create
    waiting chunks while they fit in the queue next to ours."""
    for e in q.state["batches"]:
        if e["batch_id"] is None:
            found = await backend.find(e["input_file_id"])
            if found is None and all(cid in q.lines for cid in e.get("ids") or [None]):
                # upload again (a backend that keeps requests in memory, as Anthropic's, lost
                # them with the killed process); a second file is never a second batch
                content = "".join(q.lines[cid] + "\n" for cid in e["ids"]).encode()
                e["input_file_id"] = await backend.upload(content, f"{name}-again.jsonl")
            e["batch_id"] = (found or await backend.create(e["input_file_id"]))["id"]
            q.save()  # saved before the first poll
    while q.state["waiting"]:
        chunk = [cid for cid in q.state["waiting"][0] if cid in q.lines]  # judged meanwhile: not
        if not chunk:  # sent again
            q.state["waiting"].pop(0)
            continue
        tokens = sum(q.tokens[cid] for cid in chunk)
        queued = q.queued_tokens()
        if queued and q.limit and queued + tokens > q.limit * FILL:
            return  # the next goes when earlier ones finish
        content = "".join(q.lines[cid] + "\n" for cid in chunk).encode()
        n = len(q.state["batches"]) + len(q.refused)
        file_id = await backend.upload(content, f"{name}-{n}.jsonl")
        q.state["waiting"].pop(0)
        q.state["batches"].append({"input_file_id": file_id, "batch_id": None,
                                   "requests": len(chunk), "tokens": tokens, "ids": chunk})
        q.save()  # a file id before the batch: no second upload
        entry = q.state["batches"][-1]
        entry["batch_id"] = (await backend.create(file_id))["id"]
        q.save()


def _refused(q: Queue, entry: dict[str, Any], limit: int) -> None:
    """The queue refused this batch (it ran nothing): learn the limit, queue its lines again."""
    log.warning("batch %s refused: the queue holds %s enqueued tokens; its %d requests go again "
                "in batches under that limit as earlier ones finish", entry["batch_id"],
                f"{limit:,}", entry["requests"])
    q.refused.append(entry["batch_id"])
    q.state.setdefault("refused", []).append(entry["batch_id"])
    q.state["batches"].remove(entry)
    if limit:  # 0: the refusal named no number; ours go again as earlier ones finish
        q.state["queue_limit"] = min(limit, q.limit or limit)
    q.resplit(entry["ids"])
    q.save()


def _show(bar: Any, batches: list[dict[str, Any]]) -> None:
    counts = [b.get("request_counts") or {} for b in batches]
    bar.total = sum(int(c.get("total") or 0) for c in counts) or None
    bar.n = sum(int(c.get("completed") or 0) + int(c.get("failed") or 0) for c in counts)
    bar.set_postfix(status=",".join(sorted({b["status"] for b in batches})), refresh=False)
    bar.refresh()
