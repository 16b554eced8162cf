"""The Batch API (files + batches endpoints) of an OpenAI-compatible server, as `judging.batch`'s
`BatchBackend`: OpenAI, Azure OpenAI, vLLM's batch runner behind a gateway, or any server with
`POST /files`, `POST /batches`, `GET /batches[/{id}]` and `GET /files/{id}/content`.

It shares the chat client's SDK client (key, base URL, Azure) and its masking: no error shows the
key. Transient failures (connection, 408/409/429, 5xx) are retried with the chat client's bounded
backoff; anything else stops the run with one line (a DataError).
"""
from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from mt_bench_task.clients.azure import AZURE_BATCH_ENDPOINT
from mt_bench_task.clients.openai_rules import (
    CHAT_ENDPOINT,
    COMPLETION_WINDOW,
    MAX_BYTES_PER_BATCH,
    MAX_REQUESTS_PER_BATCH,
    queue_limit,
    unsupported_param,
)
from mt_bench_task.core.errors import DataError

T = TypeVar("T")


class OpenAIBatchBackend:
    """`BatchBackend` over an `OpenAIChatClient`'s SDK client."""

    def __init__(self, chat: Any, *, max_retries: int | None = None):
        self._chat = chat
        self.max_retries = chat.max_retries if max_retries is None else max_retries
        self.endpoint = AZURE_BATCH_ENDPOINT if chat.azure else CHAT_ENDPOINT
        self.max_requests, self.max_bytes = MAX_REQUESTS_PER_BATCH, MAX_BYTES_PER_BATCH

    def refused_param(self, status: int, error: Any) -> str | None:
        return unsupported_param(status, error)

    def queue_limit(self, batch: dict[str, Any]) -> int | None:
        return queue_limit(batch)

    def __repr__(self) -> str:  # never the key
        return f"OpenAIBatchBackend(base_url={self._chat.base_url!r})"

    async def upload(self, content: bytes, filename: str) -> str:
        sdk = self._chat._get_client()
        f = await self._call("upload the batch file",
                             lambda: sdk.files.create(file=(filename, content), purpose="batch"))
        return str(f.id)

    async def create(self, input_file_id: str) -> dict[str, Any]:
        sdk = self._chat._get_client()
        b = await self._call("create the batch", lambda: sdk.batches.create(
            input_file_id=input_file_id, endpoint=self.endpoint,  # type: ignore[arg-type]
            completion_window=COMPLETION_WINDOW,
            metadata={"source": "mt_bench_task"}))
        return _as_dict(b)

    async def find(self, input_file_id: str) -> dict[str, Any] | None:
        sdk = self._chat._get_client()
        try:
            page = await self._call("list batches", lambda: sdk.batches.list(limit=100))
        except DataError:  # a server without the listing (Gemini's OpenAI-compatible API?)
            return None  # create says what is wrong, if anything
        for b in getattr(page, "data", None) or []:
            if getattr(b, "input_file_id", None) == input_file_id:
                return _as_dict(b)
        return None

    async def retrieve(self, batch_id: str) -> dict[str, Any]:
        sdk = self._chat._get_client()
        return _as_dict(await self._call(f"retrieve batch {batch_id}",
                                         lambda: sdk.batches.retrieve(batch_id)))

    async def download(self, file_id: str) -> bytes:
        sdk = self._chat._get_client()
        resp = await self._call(f"download file {file_id}", lambda: sdk.files.content(file_id))
        return bytes(resp.content)

    async def close(self) -> None:
        await self._chat.close()

    async def _call(self, what: str, make: Callable[[], Awaitable[T]]) -> T:
        import openai

        for attempt in range(self.max_retries + 1):
            if attempt:
                await asyncio.sleep(self._chat.backoff_delay(attempt))
            try:
                return await make()
            except (openai.APITimeoutError, openai.APIConnectionError):
                reason = "no answer / connection error"
            except openai.APIStatusError as e:
                if e.status_code not in (408, 409, 429) and e.status_code < 500:
                    raise DataError(self._chat.mask(
                        f"{self._chat.base_url} refused to {what}: HTTP {e.status_code} "
                        f"{_message(e)}")) from None
                reason = f"HTTP {e.status_code}"
        raise DataError(self._chat.mask(f"could not {what} at {self._chat.base_url} after "
                                        f"{self.max_retries + 1} attempts ({reason})"))


def _as_dict(obj: Any) -> dict[str, Any]:
    if hasattr(obj, "model_dump"):
        return dict(obj.model_dump())
    return dict(obj)


def _message(e: Any) -> str:
    body = getattr(e, "body", None)
    if isinstance(body, dict):
        body = (body.get("error") or {}).get("message") if isinstance(body.get("error"), dict) \
            else body.get("message")
    return " ".join(str(body or getattr(e, "message", "")).split())[:300]
