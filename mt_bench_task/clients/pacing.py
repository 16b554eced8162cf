"""Pacing by the server's rate-limit headers: requests wait their turn instead of meeting a 429.

OpenAI (and gateways that copy it) answer every request with `x-ratelimit-limit-requests`,
`x-ratelimit-remaining-requests`, `x-ratelimit-reset-requests` and the same three for tokens.
A limit replenishes continuously; "reset" is the time until it is full again ("1s", "6m0s",
"20ms"), so the rate at which it refills is (limit - remaining) / reset. Missing values, or -1,
mean unknown: that dimension is not paced. OpenAI counts a request's tokens as its prompt
estimate plus `max_tokens` (what it reserves), so `cost()` does the same.

`Pacer` keeps a local bucket per dimension, refilled at the learned rate, lowered to the server's
`remaining` whenever the server sees less than we do (our prompt estimate is only an estimate);
`acquire()` waits, first come first served, until a request fits in both. Before the first
answer nothing is known and nothing waits (the first window). `--max-requests-per-minute` and
`--max-tokens-per-minute` give limits by hand (refilled over 60 s, starting from one second's
worth, so that a server enforcing them per second sees no burst); the server's lower ones win.
"""
from __future__ import annotations

import asyncio
import math
import re
import time
from collections.abc import Callable, Mapping

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
KINDS = ("requests", "tokens")


def parse_reset(value: str | None) -> float | None:
    """"6m0s" -> 360.0, "1.5s" -> 1.5, "20ms" -> 0.02, "2" -> 2.0; None when absent or unreadable."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    parts = _DURATION.findall(value)
    if not parts or "".join(n + u for n, u in parts) != value:
        return None
    scale = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
    return sum(float(n) * scale[u] for n, u in parts)


def _number(value: str | None) -> float | None:
    try:
        x = float(value) if value is not None else None
    except ValueError:
        return None
    return None if x is None or x < 0 or math.isnan(x) else x


def estimate_tokens(messages: list[dict[str, str]], max_tokens: int) -> int:
    """What the server reserves for a request: prompt characters / 4, plus `max_tokens`."""
    return sum(len(str(m.get("content", ""))) for m in messages) // 4 + max_tokens


class _Bucket:
    """One limit. By hand only, it holds one second's worth (a request bigger than that goes when
    it is full and leaves a debt): a server enforcing the limit per second sees no burst."""

    def __init__(self, manual: float | None):
        self.manual = manual
        self.server: float | None = None  # the server's limit, once it said one
        self.rate: float | None = manual / 60.0 if manual else None
        self.level: float = self.cap or 0.0
        self.t = 0.0

    @property
    def limit(self) -> float | None:
        known = [x for x in (self.manual, self.server) if x]
        return min(known) if known else None

    @property
    def cap(self) -> float | None:
        if self.server:
            return self.limit
        return self.manual / 60.0 if self.manual else None

    def refill(self, now: float) -> None:
        cap = self.cap
        if cap is not None and self.rate:
            self.level = min(cap, self.level + self.rate * (now - self.t))
        self.t = now

    def observe(self, limit: float | None, remaining: float | None, reset: float | None,
                now: float, in_flight: float) -> None:
        if limit is None or limit <= 0 or remaining is None:
            return
        self.refill(now)
        first = self.server is None
        self.server = limit
        if reset is not None and reset > 0 and remaining < limit:
            rate = (limit - remaining) / reset
            self.rate = min(rate, self.manual / 60.0) if self.manual else rate
        elif self.rate is None:
            self.rate = limit / 60.0
        # the server has not seen what is still on its way to it: count that as spent
        seen = max(0.0, remaining - in_flight) if first else remaining
        self.level = seen if first and not self.manual else min(self.level, seen, limit)

    def wait_for(self, cost: float) -> float:
        """Seconds until `cost` fits (0: now)."""
        cap = self.cap
        if cap is None or not self.rate:
            return 0.0
        need = min(cost, cap)  # a request bigger than the bucket goes when it is full
        return 0.0 if self.level >= need else (need - self.level) / self.rate


class Pacer:
    """Shared by all requests of one client (one event loop at a time)."""

    def __init__(self, max_requests_per_minute: int | None = None,
                 max_tokens_per_minute: int | None = None,
                 clock: Callable[[], float] = time.monotonic):
        self.clock = clock
        self.buckets = {"requests": _Bucket(max_requests_per_minute),
                        "tokens": _Bucket(max_tokens_per_minute)}
        now = clock()
        for b in self.buckets.values():
            b.t = now
        self.in_flight = {"requests": 0.0, "tokens": 0.0}
        self.waited = 0.0  # seconds requests spent waiting, in total
        self._lock: asyncio.Lock | None = None
        self._loop: object = None

    @property
    def active(self) -> bool:
        return any(b.limit is not None for b in self.buckets.values())

    async def acquire(self, tokens: int) -> None:
        """Wait until one request of `tokens` fits within both limits, then take it."""
        loop = asyncio.get_running_loop()
        if self._lock is None or self._loop is not loop:  # a lock belongs to one loop
            self._lock, self._loop = asyncio.Lock(), loop
        costs = {"requests": 1.0, "tokens": float(tokens)}
        async with self._lock:  # first come, first served
            while True:
                now = self.clock()
                for b in self.buckets.values():
                    b.refill(now)
                wait = max(self.buckets[k].wait_for(costs[k]) for k in KINDS)
                if wait <= 0:
                    break
                self.waited += wait
                await asyncio.sleep(wait)
            for k in KINDS:
                self.buckets[k].level -= costs[k]  # below 0: a debt the refill pays first
                self.in_flight[k] += costs[k]

    def done(self, tokens: int, headers: Mapping[str, str] | None) -> None:
        """One request answered (any status): learn from its headers."""
        self.in_flight["requests"] = max(0.0, self.in_flight["requests"] - 1)
        self.in_flight["tokens"] = max(0.0, self.in_flight["tokens"] - tokens)
        if headers is None:
            return
        now = self.clock()
        for k in KINDS:
            self.buckets[k].observe(_number(headers.get(f"x-ratelimit-limit-{k}")),
                                    _number(headers.get(f"x-ratelimit-remaining-{k}")),
                                    parse_reset(headers.get(f"x-ratelimit-reset-{k}")),
                                    now, self.in_flight[k])
