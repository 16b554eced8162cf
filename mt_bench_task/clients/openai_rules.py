"""OpenAI's facts, one home for the chat client and its Batch API backend: the chat endpoint the
batch lines name, the Batch API's window and limits, and the HTTP 400 rules by which a reasoning
model (o1/o3/o4-mini, the gpt-5 family) refuses FastChat's request: `max_tokens` (code
unsupported_parameter; use `max_completion_tokens`, the same budget) or `temperature`
(unsupported_value: only the default). What is sent instead is judging's (judging/request.py).
"""
from __future__ import annotations

import re
from typing import Any

CHAT_ENDPOINT = "/v1/chat/completions"  # the batch lines' "url" (Azure's: clients/azure.py)
COMPLETION_WINDOW = "24h"
MAX_REQUESTS_PER_BATCH = 50_000  # OpenAI's limits per batch: requests, and the input file's size
MAX_BYTES_PER_BATCH = 190 * 1024 * 1024  # (200 MB), with a margin
# A batch over the organization's enqueued-token limit for its model fails at validation:
# status "failed", errors.data[0].code "token_limit_exceeded", "Enqueued token limit reached for
# gpt-4 in organization org-... Limit: 100,000 enqueued tokens. Please try again once some
# in_progress batches have been completed." (Azure: the same code, per deployment.)
QUEUE_REFUSAL = "token_limit_exceeded"
_LIMIT = re.compile(r"Limit:\s*([\d,_]+)")


def queue_limit(batch: dict[str, Any]) -> int | None:
    """The enqueued-token limit a failed batch names, or None when it failed for another
    reason (or names no number: then 0, the queue is full however small our batch)."""
    data = (batch.get("errors") or {}).get("data") or []
    for e in data:
        if isinstance(e, dict) and e.get("code") == QUEUE_REFUSAL:
            m = _LIMIT.search(str(e.get("message") or ""))
            return int(m.group(1).replace(",", "").replace("_", "")) if m else 0
    return None


def unsupported_param(status: int, error: Any) -> str | None:
    """"max_tokens" or "temperature" when an HTTP 400's error object says this model does not
    take it (OpenAI's shape: {"message", "type", "param", "code"}); None otherwise."""
    if status != 400 or not isinstance(error, dict):
        return None
    param, code = error.get("param"), error.get("code")
    message = str(error.get("message") or "")
    if (param == "max_tokens" and code == "unsupported_parameter") or (
            param is None and "'max_tokens'" in message and "max_completion_tokens" in message):
        return "max_tokens"
    if param == "temperature" and code in ("unsupported_value", "unsupported_parameter"):
        return "temperature"
    return None
