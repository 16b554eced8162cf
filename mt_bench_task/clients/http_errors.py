"""What an OpenAI-compatible server's error says, read from the SDK's exception: the wait it
asks for (Retry-After), the error object and its message (the transport's root cause: transport.py)."""
from __future__ import annotations

import email.utils
import json
import time
from collections.abc import Mapping
from typing import Any


def retry_after(headers: Mapping[str, str]) -> float | None:
    """retry-after-ms (OpenAI's) or Retry-After in seconds or as an HTTP date; None if absent."""
    try:
        if headers.get("retry-after-ms"):
            return float(headers["retry-after-ms"]) / 1000
        value = headers.get("retry-after")
        if not value:
            return None
        try:
            return float(value)
        except ValueError:
            return email.utils.parsedate_to_datetime(value).timestamp() - time.time()
    except (ValueError, TypeError):
        return None


def error_body(e: Any) -> dict[str, Any]:
    body = getattr(e, "body", None)
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        body = body["error"]
    return body if isinstance(body, dict) else {}


def server_message(e: Any) -> str:
    body = getattr(e, "body", None)
    if isinstance(body, dict):
        body = body.get("message") or body.get("error") or json.dumps(body)
    return str(body if body is not None else getattr(e, "message", ""))[:300]
