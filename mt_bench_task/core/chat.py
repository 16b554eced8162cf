"""The judge (and answering) client protocol: one chat completion, its result and running usage,
and what else a client can do, said by the client itself: pace its requests (`limit_rate`) and
send a whole job through a Batch API (`batch_backend`, None when it has none). The
OpenAI-compatible client (`clients.openai_client`) and the local judge (`clients.local_judge`) fit
it; judging asks these, never probes the client's attributes.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True)
class Completion:
    """What a judge (or answering) client returns for one request."""

    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    failed: bool = False  # retries exhausted or request refused: text is FastChat's "$ERROR$"
    fallback_rating: int | None = None  # local judge: most probable 1..10 rating when text has none
    rejection: str | None = None  # the server refused this request (HTTP 400/413/422): its message
    model: str | None = None  # the model the server says answered (its response's "model")
    reasoning: str | None = None  # the reply's thought field (`reasoning_content` / `reasoning`)
    finish_reason: str | None = None  # "stop", "length" (the token limit cut it), ...


@dataclass
class ClientUsage:
    """Running totals of one client, for progress bars and summaries."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    requests: int = 0  # HTTP attempts (local: generations), retries and adapted resends included
    retries: int = 0
    rate_limited: int = 0  # rate-limit 429s met (their resends are in `retries` but spend no attempt)
    failures: int = 0  # completions given up on ("$ERROR$")
    adapted: int = 0  # requests refused for a parameter and resent adapted (not judgments)


class BatchBackend(Protocol):
    """The files and batches endpoints of a server with a Batch API, and that API's rules (the
    server's facts live with its client: `clients.batch` has OpenAI's)."""

    endpoint: str  # the batch lines' "url": "/v1/chat/completions" (Azure: "/chat/completions")
    max_requests: int  # per batch: requests, and the input file's bytes
    max_bytes: int

    def refused_param(self, status: int, error: Any) -> str | None:
        """"max_tokens" or "temperature" when a result line's error says the model does not take
        that parameter (sent again adapted); None for any other result."""

    def queue_limit(self, batch: dict[str, Any]) -> int | None:
        """The enqueued-token limit a failed batch was refused for (it ran nothing: its requests
        go again in smaller batches), or None when it failed for another reason."""

    async def upload(self, content: bytes, filename: str) -> str:
        """Upload a JSONL with purpose "batch"; the file id."""

    async def create(self, input_file_id: str) -> dict[str, Any]:
        """Create a batch over the uploaded file; the batch object."""

    async def find(self, input_file_id: str) -> dict[str, Any] | None:
        """The batch already created over this file, if any (a kill between create and save)."""

    async def retrieve(self, batch_id: str) -> dict[str, Any]: ...

    async def download(self, file_id: str) -> bytes: ...

    async def close(self) -> None: ...


class ChatClient(Protocol):
    """One chat completion. The OpenAI-compatible client and the local transformers judge both fit."""

    usage: ClientUsage
    adaptations: list[str]  # what was changed in the requests for this server, said once each

    async def complete(self, model: str, messages: list[dict[str, str]], *, temperature: float,
                       max_tokens: int, reasoning_effort: str | None = None) -> Completion:
        """`reasoning_effort` (a judge's `--judge-reasoning-effort`) is passed only when set."""
        ...

    async def check_reachable(self) -> None:
        """Raise DataError quickly when the backend cannot answer at all."""

    async def close(self) -> None:
        """Release connections or workers bound to the current event loop."""

    def limit_rate(self, max_requests_per_minute: int | None,
                   max_tokens_per_minute: int | None, max_wait: float | None = None) -> None:
        """Pace requests to these limits (None: the server's rate-limit headers, if any), and let
        a request meet rate-limit 429s for `max_wait` seconds at most (None: the client's
        default); a client without limits to keep ignores it."""

    def batch_backend(self) -> BatchBackend | None:
        """The Batch API of this client's server, or None when it has none."""


class ChatClientBase:
    """Defaults for a `ChatClient` that only needs `complete` (a stand-in judge in tests or
    doctests, a custom backend): no usage counted, nothing to reach or close."""

    def __init__(self) -> None:
        self.usage = ClientUsage()
        self.adaptations: list[str] = []

    async def check_reachable(self) -> None:
        return None

    async def close(self) -> None:
        return None

    def limit_rate(self, max_requests_per_minute: int | None,
                   max_tokens_per_minute: int | None, max_wait: float | None = None) -> None:
        return None

    def batch_backend(self) -> BatchBackend | None:
        return None
