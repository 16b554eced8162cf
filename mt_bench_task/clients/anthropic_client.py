"""Claude judges through Anthropic's Messages API (the `anthropic` SDK, the optional extra
`mt_bench_task[anthropic]`, imported on first use) behind `core.chat.ChatClient`.

FastChat's judge request in Anthropic's shape: the system prompt apart (`system`), the
user/assistant turns as `messages`, `max_tokens` 2048. No `temperature`: the Messages API of the
SDK's version (anthropic 2.x, `anthropic-version` 2026-10-21) has no sampling parameters, so
FastChat's temperature 0 is not sent; that is said once per run (`adaptations`). The key comes from
`ANTHROPIC_API_KEY`, the address from `ANTHROPIC_BASE_URL` (default https://api.anthropic.com).
Retries are the SDK's (bounded, honouring `retry-after`, on 408/409/429/5xx/529); a refused request
(400/413/422) is FastChat's "$ERROR$" for that judgment only; a rejected key (401/403) or an
unknown model (404) stops the run with one line that never shows the key. `--batch` goes through
Message Batches (clients/anthropic_batch.py), half price.
"""
from __future__ import annotations

import os
from typing import Any

from mt_bench_task.clients.anthropic_rules import (
    ANTHROPIC_BASE_URL,
    NO_TEMPERATURE,
    anthropic_sdk,
    message_params,
    message_text,
    message_thinking,
)
from mt_bench_task.core.chat import BatchBackend, ClientUsage, Completion
from mt_bench_task.core.errors import DataError
from mt_bench_task.core.prompts import API_ERROR_OUTPUT

_REJECTED = {400, 413, 422}
_HINTS = {401: "check ANTHROPIC_API_KEY", 403: "check ANTHROPIC_API_KEY and the model's access",
          404: "check the model name and ANTHROPIC_BASE_URL"}


class AnthropicChatClient:
    """`ChatClient` over `anthropic.AsyncAnthropic`; use `async with` or `await close()`."""

    def __init__(self, api_key: str | None = None, base_url: str | None = None, *,
                 max_retries: int = 6, timeout: float = 120.0):
        anthropic_sdk()  # one line now, not a failed judgment per call
        self._api_key = api_key or os.environ.get("ANTHROPIC_API_KEY") or ""
        if not self._api_key:
            raise DataError("ANTHROPIC_API_KEY is not set (needed for a claude-... judge)")
        self.base_url = (base_url or os.environ.get("ANTHROPIC_BASE_URL")
                         or ANTHROPIC_BASE_URL).rstrip("/")
        self.max_retries, self.timeout = max_retries, timeout
        self.usage = ClientUsage()
        self.adaptations: list[str] = []
        self._client: Any = None

    def __repr__(self) -> str:  # never the key
        return f"AnthropicChatClient(base_url={self.base_url!r})"

    def sdk(self) -> Any:
        if self._client is None:
            self._client = anthropic_sdk().AsyncAnthropic(
                api_key=self._api_key, base_url=self.base_url, max_retries=self.max_retries,
                timeout=self.timeout)
        return self._client

    def mask(self, text: str) -> str:
        return text.replace(self._api_key, "***") if len(self._api_key) >= 4 else text

    async def complete(self, model: str, messages: list[dict[str, str]], *, temperature: float,
                       max_tokens: int, reasoning_effort: str | None = None) -> Completion:
        anthropic = anthropic_sdk()
        self.usage.requests += 1
        self.note(model, temperature)
        try:
            msg = await self.sdk().messages.create(**message_params(model, messages, max_tokens))
        except anthropic.APIStatusError as e:
            if e.status_code in _HINTS:
                raise DataError(self.rejection(e, f"the request for model {model!r}")) from None
            self.usage.failures += 1
            rejection = self.rejection(e, "a request") if e.status_code in _REJECTED else None
            return Completion(API_ERROR_OUTPUT, failed=True, rejection=rejection)
        except anthropic.APIConnectionError:
            self.usage.failures += 1
            return Completion(API_ERROR_OUTPUT, failed=True)
        body = msg.model_dump()
        usage = body.get("usage") or {}
        prompt, completion = int(usage.get("input_tokens") or 0), int(
            usage.get("output_tokens") or 0)
        self.usage.prompt_tokens += prompt
        self.usage.completion_tokens += completion
        # "max_tokens": the budget cut the verdict, as OpenAI's "length" (a thinking judge asks again)
        stop = body.get("stop_reason")
        return Completion(message_text(body), prompt, completion, model=body.get("model"),
                          reasoning=message_thinking(body) or None,
                          finish_reason="length" if stop == "max_tokens" else stop)

    def note(self, model: str, temperature: float | None) -> None:
        """Say once that the temperature is not sent."""
        if temperature is not None and not self.adaptations:
            self.adaptations.append(NO_TEMPERATURE.format(model=model, t=temperature))

    def rejection(self, e: Any, what: str) -> str:
        hint = _HINTS.get(e.status_code, "not retried: the same request would fail again")
        body = getattr(e, "body", None)
        detail = body.get("error", {}).get("message") if isinstance(body, dict) else None
        text = f"{self.base_url} rejected {what}: HTTP {e.status_code} {detail or e} ({hint})"
        return self.mask(" ".join(text.split()))

    async def check_reachable(self) -> None:
        """One GET /v1/models: a wrong address or key is one line now."""
        anthropic = anthropic_sdk()
        try:
            await self.sdk().with_options(max_retries=0, timeout=10.0).models.list(limit=1)
        except anthropic.APIConnectionError:
            raise DataError(f"cannot reach Anthropic's API at {self.base_url}") from None
        except anthropic.APIStatusError as e:
            if e.status_code in (401, 403):
                raise DataError(self.rejection(e, "the key")) from None

    def limit_rate(self, max_requests_per_minute: int | None,
                   max_tokens_per_minute: int | None, max_wait: float | None = None) -> None:
        """Not paced here: the SDK's retries honour Anthropic's retry-after."""

    def batch_backend(self) -> BatchBackend:
        from mt_bench_task.clients.anthropic_batch import AnthropicBatchBackend

        return AnthropicBatchBackend(self)

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None

    async def __aenter__(self) -> AnthropicChatClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
