"""Anthropic's Message Batches as `core.chat.BatchBackend`: the judging side (judging/batch.py,
judging/batch_queue.py) keeps its OpenAI-shaped lines, records, state file and resume; this
backend translates at the edge.

- upload: Anthropic takes the requests inline, so the "file" is kept here under an id derived
  from its content; create posts `{"requests": [{"custom_id", "params"}]}` (the chat line's
  body in the Messages API's shape: clients/anthropic_rules.py's `message_params`);
- retrieve: `processing_status` in_progress / canceling -> "in_progress", ended -> "completed"
  (or "expired" / "cancelled" when nothing succeeded or errored), with OpenAI-style counts and an
  output "file" that is the batch's results;
- download: the results JSONL (one `{"custom_id", "result": {"type": ...}}` per line, any order)
  as OpenAI output lines: succeeded -> a 200 chat completion, errored -> an error line (a
  "$ERROR$" judgment, sent again by the next run), canceled / expired -> no line (no record: the
  next run sends it).
Limits: 100,000 requests or 256 MB per batch. A batch carries no file id, so `find` cannot tell a
batch created just before a kill -9 from others: that one instant can make a second batch.
"""
from __future__ import annotations

import hashlib
import json
from typing import Any

from mt_bench_task.clients.anthropic_rules import anthropic_sdk, message_params, message_text
from mt_bench_task.core.errors import DataError

MAX_REQUESTS = 100_000
MAX_BYTES = 240 * 1024 * 1024  # (256 MB), with a margin
RESULTS = "results:"  # the output "file" of a batch: its results


class AnthropicBatchBackend:
    endpoint = "/v1/messages"

    def __init__(self, chat: Any):
        self._chat = chat
        self._files: dict[str, bytes] = {}
        self.max_requests, self.max_bytes = MAX_REQUESTS, MAX_BYTES

    def __repr__(self) -> str:  # never the key
        return f"AnthropicBatchBackend(base_url={self._chat.base_url!r})"

    def refused_param(self, status: int, error: Any) -> str | None:
        return None  # FastChat's request is what Claude takes

    def queue_limit(self, batch: dict[str, Any]) -> int | None:
        return None

    async def upload(self, content: bytes, filename: str) -> str:
        file_id = "inline-" + hashlib.sha256(content).hexdigest()[:24]
        self._files[file_id] = content
        return file_id

    async def create(self, input_file_id: str) -> dict[str, Any]:
        if input_file_id not in self._files:
            raise DataError(f"the requests of {input_file_id} are gone (Anthropic takes them "
                            f"inline); delete the .batch.json next to the judgment file")
        requests = [to_request(line) for line in self._files[input_file_id].decode().splitlines()
                    if line.strip()]
        if requests:
            self._chat.note(requests[0]["params"]["model"], 0.0)
        b = await self._call("create the batch",
                             lambda sdk: sdk.messages.batches.create(requests=requests))
        return as_openai(b.model_dump())

    async def find(self, input_file_id: str) -> dict[str, Any] | None:
        return None

    async def retrieve(self, batch_id: str) -> dict[str, Any]:
        b = await self._call(f"retrieve batch {batch_id}",
                             lambda sdk: sdk.messages.batches.retrieve(batch_id))
        return as_openai(b.model_dump())

    async def download(self, file_id: str) -> bytes:
        batch_id = file_id.removeprefix(RESULTS)
        rows = await self._call(f"download the results of {batch_id}",
                                lambda sdk: sdk.messages.batches.results(batch_id))
        lines = [to_output_line(r.model_dump()) async for r in rows]
        return "".join(json.dumps(x) + "\n" for x in lines if x is not None).encode()

    async def close(self) -> None:
        await self._chat.close()

    async def _call(self, what: str, make: Any) -> Any:
        anthropic = anthropic_sdk()
        try:
            return await make(self._chat.sdk())
        except anthropic.APIStatusError as e:
            raise DataError(self._chat.rejection(e, f"a request to {what}")) from None
        except anthropic.APIConnectionError:
            raise DataError(f"could not {what} at {self._chat.base_url}: connection error"
                            ) from None


def to_request(line: str) -> dict[str, Any]:
    """An OpenAI batch line -> a Message Batches request."""
    obj = json.loads(line)
    body = obj["body"]
    budget = body.get("max_tokens") or body.get("max_completion_tokens")
    return {"custom_id": obj["custom_id"],
            "params": message_params(body["model"], body["messages"], int(budget))}


def as_openai(b: dict[str, Any]) -> dict[str, Any]:
    """A MessageBatch as the batch object judging reads (OpenAI's shape)."""
    counts = b.get("request_counts") or {}
    done = int(counts.get("succeeded") or 0) + int(counts.get("errored") or 0)
    total = sum(int(v or 0) for v in counts.values())
    status = "in_progress"
    if b.get("processing_status") == "ended":
        status = "completed"
        if not done and counts.get("expired"):
            status = "expired"
        elif not done and counts.get("canceled"):
            status = "cancelled"
    return {"id": b["id"], "status": status, "errors": None,
            "request_counts": {"total": total, "completed": done, "failed": 0},
            "output_file_id": RESULTS + b["id"] if status != "in_progress" else None,
            "error_file_id": None}


def to_output_line(row: dict[str, Any]) -> dict[str, Any] | None:
    """One result line -> an OpenAI output line (None: canceled or expired, no line)."""
    result = row.get("result") or {}
    kind, cid = result.get("type"), row.get("custom_id")
    if kind == "succeeded":
        msg = result.get("message") or {}
        usage = msg.get("usage") or {}
        return {"custom_id": cid, "error": None, "response": {"status_code": 200, "body": {
            "model": msg.get("model"),
            "choices": [{"index": 0, "message": {"role": "assistant",
                                                  "content": message_text(msg)}}],
            "usage": {"prompt_tokens": usage.get("input_tokens") or 0,
                      "completion_tokens": usage.get("output_tokens") or 0}}}}
    if kind == "errored":
        return {"custom_id": cid, "response": None, "error": result.get("error")}
    return None
