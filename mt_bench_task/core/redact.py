"""The one redaction rule for anything that may be printed or saved: credentials in a base URL
(`https://user:password@host/v1?api-key=...`), the Basic auth header an HTTP client derives from
them, an API key, and anything that looks like an OpenAI-style key, all become `***`."""
from __future__ import annotations

import base64
import re
from collections.abc import Iterable
from urllib.parse import parse_qsl, unquote, urlsplit, urlunsplit

MASK = "***"
_KEY_LIKE = re.compile(r"\b(sk-|Bearer\s+)[A-Za-z0-9_.\-]{6,}")  # OpenAI-style keys
_MIN_SECRET = 3  # shorter values ("1", "v1") are not worth hiding and would shred the text


def url_secrets(url: str | None) -> list[str]:
    """The secret parts of a base URL: its password (and user:password, as written and decoded,
    and the Basic header's base64 of it) and every query value."""
    if not url:
        return []
    try:
        parts = urlsplit(url)
    except ValueError:
        return []
    found: list[str] = []
    if parts.password is not None:
        user, password = parts.username or "", parts.password
        pair = f"{unquote(user)}:{unquote(password)}"
        found += [password, unquote(password), f"{user}:{password}", pair,
                  base64.b64encode(pair.encode()).decode()]
    for _, value in parse_qsl(parts.query, keep_blank_values=True):
        found.append(value)
    found += [v for v in re.findall(r"=([^&#]+)", parts.query)]  # the raw, undecoded values
    return sorted({s for s in found if len(s) >= _MIN_SECRET}, key=len, reverse=True)


def redact_url(url: str) -> str:
    """`url` with its password and query values replaced by ***: safe to show."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return redact(url)
    netloc = parts.netloc
    if parts.password is not None:
        netloc = f"{parts.username or ''}:{MASK}@{netloc.rsplit('@', 1)[1]}"
    query = "&".join(f"{k}={MASK}" if v else k for k, v in
                     parse_qsl(parts.query, keep_blank_values=True))
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """`text` with each of `secrets` (an API key, `url_secrets`) and anything key-like masked."""
    for secret in sorted(secrets, key=len, reverse=True):
        if len(secret) >= _MIN_SECRET:
            text = text.replace(secret, MASK)
    return _KEY_LIKE.sub(lambda m: f"{m.group(1)}{MASK}", text)
