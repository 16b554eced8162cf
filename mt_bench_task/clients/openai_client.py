"""The OpenAI-compatible chat client (OpenAI, vLLM, TGI, `transformers serve`) behind `ChatClient`.

Sends exactly what FastChat sends (`model` verbatim, `messages`, `n=1`, `temperature`,
`max_tokens`) and keeps FastChat's outcome on exhaustion: the text "$ERROR$". Changed on purpose:
FastChat sleeps 10 s after every error, 16 times, and retries everything; here retries are bounded
exponential backoff with jitter that honours Retry-After, only transient errors are retried, and a
rejected key or a bad request stops the run with one clear line that never shows the key.
A rate-limit 429 is not the judgment's fault: it costs no attempt, the request waits its turn
again (clients/pacing.py learns from it) for up to `max_wait` seconds in all; a 429 whose code
is `insufficient_quota` (no credit left) stops the run at once, as retrying cannot help.

Reasoning models refuse FastChat's request (the rules: clients/openai_rules.py; what is sent
instead: judging/request.py): then that request is resent adapted, the change is kept for the
rest of the run, logged once and listed in `adaptations`; the refusals are not judgments.
Every other server gets exactly FastChat's request.
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import time
from typing import Any

from mt_bench_task.clients.azure import azure_sdk_client, azure_settings
from mt_bench_task.clients.http_errors import error_body as _error_body
from mt_bench_task.clients.http_errors import retry_after as _retry_after
from mt_bench_task.clients.http_errors import server_message as _server_message
from mt_bench_task.clients.openai_rules import unsupported_param
from mt_bench_task.clients.pacing import Pacer, estimate_tokens
from mt_bench_task.clients.transport import transport_reason
from mt_bench_task.core.chat import BatchBackend, ClientUsage, Completion
from mt_bench_task.core.errors import DataError
from mt_bench_task.core.prompts import API_ERROR_OUTPUT
from mt_bench_task.core.redact import redact, redact_url, url_secrets
from mt_bench_task.core.thoughts import REASONING_FIELDS
from mt_bench_task.judging.request import adaptation_note, request_params

__all__ = ["ClientUsage", "OpenAIChatClient"]

OPENAI_BASE_URL = "https://api.openai.com/v1"
DUMMY_API_KEY = "EMPTY"  # vLLM/TGI accept any key, but the SDK insists on one
DEFAULT_MAX_WAIT = 900.0  # seconds a request may keep meeting rate-limit 429s before it fails
REACHABILITY_TIMEOUT = 10.0  # seconds for check_reachable(): a typo'd URL should fail fast
_RETRY_STATUSES = {408, 409, 429}  # plus every 5xx
# This one request is bad (a prompt over the context length on vLLM, say): no retry, but no
# reason to stop the run either; it becomes "$ERROR$" like FastChat's exhausted retries.
_REQUEST_REJECTED = {400, 413, 422}
_HINTS = {401: "check OPENAI_API_KEY", 403: "check OPENAI_API_KEY and the model's access",
          404: "check the model name and --openai-api-base"}
QUOTA_HINT = "insufficient_quota: the account has no credit left; retrying cannot help"
log = logging.getLogger(__name__)


class _Transient(Exception):
    """A failure worth another attempt; `retry_after` is the server's wish in seconds."""

    def __init__(self, reason: str, retry_after: float | None = None):
        super().__init__(reason)
        self.retry_after = retry_after


class _RateLimited(_Transient):
    """HTTP 429 for a rate limit: the request waits its turn again; no attempt is spent."""


class _Rejected(Exception):
    """This request, and only this one, was refused (HTTP 400/413/422): retrying cannot help."""


class _Unsupported(Exception):
    """HTTP 400 naming a parameter this model does not take; the request is resent adapted."""

    def __init__(self, param: str):
        super().__init__(param)
        self.param = param


class OpenAIChatClient:
    """`ChatClient` over `openai.AsyncOpenAI`; use `async with` or `await close()`."""

    def __init__(self, base_url: str | None = None, api_key: str | None = None, *,
                 max_retries: int = 6, timeout: float = 120.0, backoff_base: float = 1.0,
                 backoff_max: float = 60.0, max_wait: float = DEFAULT_MAX_WAIT):
        self.azure = azure_settings(base_url, api_key)  # the SDK's Azure variables, if set
        base_url = base_url or os.environ.get("OPENAI_BASE_URL") or OPENAI_BASE_URL
        self._base_url = self.azure.endpoint if self.azure else base_url.rstrip("/")
        self.base_url = redact_url(self._base_url)  # what messages show: no user:password@, ?key=
        key = self.azure.api_key if self.azure else api_key or os.environ.get("OPENAI_API_KEY")
        if not key:
            if "api.openai.com" in self.base_url:
                raise DataError(f"OPENAI_API_KEY is not set (needed for {self.base_url})")
            key = DUMMY_API_KEY
        self._api_key = key
        self._secrets = url_secrets(self._base_url) + ([key] if key != DUMMY_API_KEY else [])
        self.max_retries = max_retries
        self.timeout = timeout
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.max_wait = max_wait  # seconds one request may spend meeting rate-limit 429s
        self.usage = ClientUsage()
        self.adaptations: list[str] = []  # what this server made us change, once each
        self.adapted: set[str] = set()  # FastChat's parameters this server refused
        self._client: Any = None  # openai.AsyncOpenAI, made on first use (keeps --help fast)
        self.pacer = Pacer()  # by the server's x-ratelimit-* headers, or limit_rate()'s limits

    def limit_rate(self, max_requests_per_minute: int | None = None,
                   max_tokens_per_minute: int | None = None,
                   max_wait: float | None = None) -> None:
        """Limits by hand (per minute); the server's headers still lower them. `max_wait`:
        seconds a request may keep meeting rate-limit 429s before it fails."""
        if max_requests_per_minute or max_tokens_per_minute:
            self.pacer = Pacer(max_requests_per_minute, max_tokens_per_minute)
        if max_wait is not None:
            self.max_wait = max_wait

    def __repr__(self) -> str:  # never the key
        return f"OpenAIChatClient(base_url={self.base_url!r})"

    async def complete(self, model: str, messages: list[dict[str, str]], *, temperature: float,
                       max_tokens: int, reasoning_effort: str | None = None) -> Completion:
        reason, retry_after, rejection = "", None, None
        attempt = 0  # failed attempts that count against max_retries (rate-limit 429s do not)
        limited, limited_since = 0, 0.0  # rate-limit 429s met by this request, since when
        while True:
            self.usage.requests += 1
            try:
                body = await self._post(model, messages, temperature, max_tokens,
                                        reasoning_effort)
                return self._parse(body)
            except _RateLimited as e:
                now = time.monotonic()
                limited_since = limited_since or now
                limited += 1
                self.usage.rate_limited += 1
                if now - limited_since < self.max_wait:
                    self.usage.retries += 1  # a resend, though no attempt is spent
                    if not self.pacer.active:  # nothing to pace by: Retry-After, then growing
                        # (a refused request counts against the limit: a tight loop never gets in)
                        await asyncio.sleep(max(self.backoff_delay(limited - 1) if limited > 1
                                                else 0.0,
                                                self.backoff_delay(limited, e.retry_after)))
                    continue  # else the pacer makes it wait its turn (retry-after included)
                reason = f"rate-limited for {now - limited_since:.0f} s (--max-wait)"
                break
            except _Transient as e:
                reason, retry_after = str(e), e.retry_after
                log.debug("attempt %d for %s failed: %s", attempt + 1, model, self.mask(reason))
            except _Rejected as e:
                reason = rejection = str(e)
                break
            if attempt >= self.max_retries:
                break
            attempt += 1
            self.usage.retries += 1
            await asyncio.sleep(self.backoff_delay(attempt, retry_after))
        self.usage.failures += 1
        log.warning("giving up on a request to %s at %s after %d attempt(s) (%s); its text is %r",
                    model, self.base_url, attempt + limited + 1, self.mask(reason),
                    API_ERROR_OUTPUT)
        return Completion(text=API_ERROR_OUTPUT, failed=True, rejection=rejection)

    def backoff_delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds before retry `attempt` (1-based): the server's Retry-After when it gave one,
        else exponential with jitter; never more than `backoff_max`."""
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.backoff_max)
        exponential = min(self.backoff_max, self.backoff_base * 2 ** (attempt - 1))
        return exponential * random.uniform(0.5, 1.0)  # jitter: parallel workers spread out

    async def check_reachable(self) -> None:
        """One quick GET /models: a DataError now instead of minutes of retries later."""
        import openai

        seconds = min(self.timeout, REACHABILITY_TIMEOUT)
        client = self._get_client().with_options(timeout=seconds, max_retries=0)
        where = f"cannot reach OpenAI-compatible server at {self.base_url}"
        try:
            await client.models.with_raw_response.list()
        except openai.APITimeoutError:
            raise DataError(f"{where}: timed out (no answer within {seconds:g} s)") from None
        except openai.APIConnectionError as e:
            raise DataError(self.mask(f"{where}: {transport_reason(e)}")) from None
        except openai.APIStatusError as e:
            if e.status_code in (401, 403):
                raise DataError(self._rejection(e, "the server")) from None
            # any other answer (404: no /models route, 5xx) still proves the server is there

    def batch_backend(self) -> BatchBackend:
        """This server's Batch API (files + batches) with the same key and base URL."""
        from mt_bench_task.clients.batch import OpenAIBatchBackend

        return OpenAIBatchBackend(self)

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None

    async def __aenter__(self) -> OpenAIChatClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def mask(self, text: str) -> str:
        """`text` with our key, the base URL's credentials (`core.redact`) and anything that
        looks like a key replaced by ***."""
        return redact(text, self._secrets)

    # ---- one attempt ----
    def _get_client(self) -> Any:
        if self._client is None and self.azure:
            self._client = azure_sdk_client(self.azure, self.timeout)
        if self._client is None:
            import openai

            # max_retries=0: the SDK's own retries would multiply ours
            self._client = openai.AsyncOpenAI(base_url=self._base_url, api_key=self._api_key,
                                              max_retries=0, timeout=self.timeout)
        return self._client

    async def _post(self, model: str, messages: list[dict[str, str]], temperature: float,
                    max_tokens: int, reasoning_effort: str | None = None) -> bytes:
        """One request; resent at once (not a retry) when the server refuses a parameter we
        know how to adapt. At most one resend per adaptable parameter."""
        for _ in range(3):
            try:
                return await self._post_once(model, messages, temperature, max_tokens,
                                             reasoning_effort)
            except _Unsupported as e:
                self.usage.adapted += 1
                self._adapt(e.param, model, temperature, max_tokens)
        raise _Rejected(f"{self.base_url} kept refusing the adapted request")  # pragma: no cover

    def _adapt(self, param: str, model: str, temperature: float, max_tokens: int) -> None:
        if param in self.adapted:
            return  # another request adapted it already
        self.adapted.add(param)
        note = adaptation_note(param, model, self.base_url, temperature, max_tokens)
        self.adaptations.append(note)
        log.warning("%s", note)

    async def _post_once(self, model: str, messages: list[dict[str, str]], temperature: float,
                         max_tokens: int, reasoning_effort: str | None = None) -> bytes:
        import openai

        # FastChat's request (model, messages, n, temperature, max_tokens) unless adapted
        sent = request_params(temperature, max_tokens, self.adapted, reasoning_effort)
        cost = estimate_tokens(messages, max_tokens)
        sdk = self._get_client()  # made (imported) before the pacer's clock starts counting
        epoch = await self.pacer.acquire(cost)
        headers, answered = None, False  # answered: the pacer has seen this request's end
        try:
            raw = await sdk.chat.completions.with_raw_response.create(
                model=model, messages=messages, n=1, **sent)
            headers = raw.headers
        except openai.APITimeoutError:  # before APIConnectionError: it is a subclass
            # tried again at once: the timeout was the wait (--request-timeout bounds a request
            # to about (max_retries + 1) x timeout on a server that never answers)
            raise _Transient(f"timed out (no answer within {self.timeout:g} s)", 0.0) from None
        except openai.APIConnectionError as e:
            raise _Transient(f"connection error: {transport_reason(e)}") from None
        except openai.APIStatusError as e:
            headers = e.response.headers
            if e.status_code == 429:
                body = _error_body(e)
                if "insufficient_quota" in (body.get("code"), body.get("type")):
                    raise DataError(self._rejection(e, "a request", QUOTA_HINT)) from None
                self.pacer.done(cost, headers)
                answered = True
                wait = _retry_after(e.response.headers)
                self.pacer.throttled(epoch, cost, e.response.headers,
                                     None if wait is None else min(wait, self.backoff_max))
                raise _RateLimited("HTTP 429", wait) from None
            if e.status_code in _RETRY_STATUSES or e.status_code >= 500:
                wait = _retry_after(e.response.headers)
                raise _Transient(f"HTTP {e.status_code}", wait) from None
            param = unsupported_param(e.status_code, _error_body(e))
            if param in sent:
                raise _Unsupported(param) from None
            if e.status_code in _REQUEST_REJECTED:
                raise _Rejected(self._rejection(e, "a request")) from None
            raise DataError(self._rejection(e, f"the request for model {model!r}")) from None
        finally:
            if not answered:
                self.pacer.done(cost, headers)
        return bytes(raw.content)

    def _parse(self, body: bytes) -> Completion:
        try:
            obj = json.loads(body)
            choice = obj["choices"][0]
            message = choice["message"]
            text, reasoning = message.get("content"), _reasoning(message)
            if text is None and reasoning is not None:
                text = ""  # a thought and no answer (vLLM's parser when the limit cut it)
            if not isinstance(text, str):
                raise TypeError("no message content")
        except (ValueError, KeyError, IndexError, TypeError, AttributeError) as e:
            raise _Transient(f"unusable response body ({type(e).__name__}: {body[:80]!r})"
                             ) from None
        usage = obj.get("usage") or {}
        prompt = int(usage.get("prompt_tokens") or 0)
        completion = int(usage.get("completion_tokens") or 0)
        self.usage.prompt_tokens += prompt
        self.usage.completion_tokens += completion
        served = obj.get("model") if isinstance(obj.get("model"), str) else None
        finish = choice.get("finish_reason")
        return Completion(text=text, prompt_tokens=prompt, completion_tokens=completion,
                          model=served, reasoning=reasoning,
                          finish_reason=finish if isinstance(finish, str) else None)

    def _rejection(self, e: Any, what: str, hint: str | None = None) -> str:
        hint = hint or _HINTS.get(e.status_code, "not retried: the same request would fail again")
        message = (f"{self.base_url} rejected {what}: HTTP {e.status_code} "
                   f"{_server_message(e)} ({hint})")
        return self.mask(" ".join(message.split()))


def _reasoning(message: dict[str, Any]) -> str | None:
    """The thought of a reply from a server that separates it (core/thoughts.REASONING_FIELDS)."""
    for key in REASONING_FIELDS:
        if isinstance(message.get(key), str) and message[key]:
            return str(message[key])
    return None
