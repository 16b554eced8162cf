"""The judge (and answering) client protocol: one chat completion, its result and running usage.
The OpenAI-compatible client (`client`) and the local transformers judge (`local_judge`) fit it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


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


@dataclass
class ClientUsage:
    """Running totals of one client, for progress bars and summaries."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    requests: int = 0  # HTTP attempts (local: generations), retries and adapted resends included
    retries: int = 0
    failures: int = 0  # completions given up on ("$ERROR$")
    adapted: int = 0  # requests refused for a parameter and resent adapted (not judgments)


class ChatClient(Protocol):
    """One chat completion. The OpenAI-compatible client and the local transformers judge both fit."""

    usage: ClientUsage
    adaptations: list[str]  # what was changed in the requests for this server, said once each

    async def complete(self, model: str, messages: list[dict[str, str]], *, temperature: float,
                       max_tokens: int) -> Completion: ...

    async def check_reachable(self) -> None:
        """Raise DataError quickly when the backend cannot answer at all."""

    async def close(self) -> None:
        """Release connections or workers bound to the current event loop."""


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
