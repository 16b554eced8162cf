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
answer nothing is known: at most `SLOW_START` requests go out until one comes back (its headers
then say how much the bucket holds; a burst of `--parallel` into a limit enforced per second
would mostly meet 429s). `--max-requests-per-minute` and
`--max-tokens-per-minute` give limits by hand (refilled over 60 s, starting from one second's
worth, so that a server enforcing them per second sees no burst); the server's lower ones win.

The headers do not tell everything: OpenAI may enforce a per-minute limit over shorter windows
("60,000 requests/minute may be enforced as 1,000 requests/second"), and a key shared with other
jobs drains the bucket behind our back. So a rate-limit 429 on a request the pacer let through
believing it fit (`throttled`) is news: every bucket's pace drops to `DECREASE` of itself, its
bursts are capped at `BURST_S` seconds' worth from then on, and the pace climbs back by
`RECOVERY_PER_S` of the server's rate a second (AIMD, as TCP does). One drop per round: requests
sent before the last drop carry an older epoch and do not drop it again. A `retry-after` on a 429
pauses every request that long.
"""
from __future__ import annotations

import asyncio
import math
import re
import time
from collections.abc import Callable, Mapping

DECREASE = 0.7  # the pace after a 429 the headers did not predict, as a share of itself
RECOVERY_PER_S = 0.04  # the pace regained each second, as a share of the server's rate
MIN_FACTOR = 0.05
SLOW_START = 4  # requests in flight before the first answer
UNKNOWN = -1  # the epoch of a request sent before any limit was known
BURST_S = 1.0  # once the server enforced a short window, bursts of at most this many seconds' worth
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
        self.factor = 1.0  # the share of `rate` we pace at (below 1 after unpredicted 429s)
        self.burst_capped = False  # True once a 429 showed the server enforces a short window
        self.level: float = self.cap or 0.0
        self.t = 0.0

    @property
    def pace(self) -> float | None:
        """The refill rate we use: the learned one, lowered after unpredicted 429s."""
        return self.rate * self.factor if self.rate else None

    @property
    def limit(self) -> float | None:
        known = [x for x in (self.manual, self.server) if x]
        return min(known) if known else None

    @property
    def cap(self) -> float | None:
        cap = self.limit if self.server else self.manual / 60.0 if self.manual else None
        if cap is not None and self.burst_capped and self.pace:
            cap = min(cap, self.pace * BURST_S)
        return cap

    def refill(self, now: float) -> None:
        cap = self.cap
        if cap is not None and self.rate:
            dt = max(0.0, now - self.t)
            self.level = min(cap, self.level + self.rate * self.factor * dt)
            self.factor = min(1.0, self.factor + RECOVERY_PER_S * dt)  # probe back up
        self.t = now

    def decrease(self, now: float) -> None:
        """A 429 the headers did not predict: slower, short bursts, and nothing left to spend."""
        self.refill(now)
        if not self.rate:
            return
        self.factor = max(MIN_FACTOR, self.factor * DECREASE)
        self.burst_capped = True
        self.level = min(self.level, 0.0)

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
        cap, pace = self.cap, self.pace
        if cap is None or not pace:
            return 0.0
        need = min(cost, cap)  # a request bigger than the bucket goes when it is full
        return 0.0 if self.level >= need else (need - self.level) / pace


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
        self.epoch = 0  # bumped by each drop of the pace; a request carries the one it went in
        self.drops = 0  # unpredicted 429s that lowered the pace
        self.pause_until = 0.0  # a 429's retry-after: nobody sends before then
        self.answers = 0  # requests answered (any status)
        self._answered: asyncio.Event | None = None  # set by the first answer (slow start)
        self._lock: asyncio.Lock | None = None
        self._loop: object = None

    @property
    def active(self) -> bool:
        return any(b.limit is not None for b in self.buckets.values())

    async def acquire(self, tokens: int) -> int:
        """Wait until one request of `tokens` fits within both limits, then take it; returns
        the request's epoch for `throttled`."""
        loop = asyncio.get_running_loop()
        if self._lock is None or self._loop is not loop:  # a lock belongs to one loop
            self._lock, self._loop, self._answered = asyncio.Lock(), loop, asyncio.Event()
            if self.answers:
                self._answered.set()
        costs = {"requests": 1.0, "tokens": float(tokens)}
        async with self._lock:  # first come, first served
            while not (self.answers or self.active) and self.in_flight["requests"] >= SLOW_START:
                assert self._answered is not None
                await self._answered.wait()
            known = self.active
            while True:
                now = self.clock()
                for b in self.buckets.values():
                    b.refill(now)
                wait = max([self.pause_until - now]
                           + [self.buckets[k].wait_for(costs[k]) for k in KINDS])
                if wait <= 0:
                    break
                self.waited += wait
                await asyncio.sleep(wait)
            for k in KINDS:
                self.buckets[k].level -= costs[k]  # below 0: a debt the refill pays first
                self.in_flight[k] += costs[k]
            return self.epoch if known else UNKNOWN

    def done(self, tokens: int, headers: Mapping[str, str] | None) -> None:
        """One request answered (any status): learn from its headers."""
        self.in_flight["requests"] = max(0.0, self.in_flight["requests"] - 1)
        self.in_flight["tokens"] = max(0.0, self.in_flight["tokens"] - tokens)
        self.answers += 1
        if self._answered is not None:
            self._answered.set()
        if headers is None:
            return
        now = self.clock()
        for k in KINDS:
            self.buckets[k].observe(_number(headers.get(f"x-ratelimit-limit-{k}")),
                                    _number(headers.get(f"x-ratelimit-remaining-{k}")),
                                    parse_reset(headers.get(f"x-ratelimit-reset-{k}")),
                                    now, self.in_flight[k])

    def throttled(self, epoch: int, tokens: int, headers: Mapping[str, str] | None,
                  retry_after: float | None = None) -> None:
        """A rate-limit 429 (after `done` saw its headers). News, and the pace drops (once per
        epoch), when the pacer had let the request through knowing the limits, or when the
        429's own headers show room for it (a limit they do not show)."""
        if not self.active:
            return  # nothing known: the client backs off by itself
        now = self.clock()
        if retry_after is not None and retry_after > 0:
            self.pause_until = max(self.pause_until, now + retry_after)
        if epoch == UNKNOWN:  # sent blind: news only if the documented bucket had room
            if self.epoch != 0 or not _room(headers, tokens):
                return
        elif epoch != self.epoch:
            return
        self.epoch += 1
        self.drops += 1
        for b in self.buckets.values():
            b.decrease(now)


def _room(headers: Mapping[str, str] | None, tokens: int) -> bool:
    """Do these headers say the request fitted (both remainders known and large enough)?"""
    if not headers:
        return False
    requests = _number(headers.get("x-ratelimit-remaining-requests"))
    left = _number(headers.get("x-ratelimit-remaining-tokens"))
    return requests is not None and requests >= 1 and (left is None or left >= tokens)
