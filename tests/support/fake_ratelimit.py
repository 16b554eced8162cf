"""`FakeOpenAI` that enforces a requests and a tokens limit the way OpenAI does, for pacing tests
and benchmarks/bench_ratelimit.py.

Each limit is a bucket of `limit` that refills continuously over `window` seconds (60 at OpenAI;
shorter in tests). A request costs 1 request and its prompt characters / 4 + `max_tokens`
tokens (what OpenAI reserves). A request that does not fit gets HTTP 429 (nothing deducted), with
`retry-after` (seconds until it would fit) when `retry_after` is on. Every chat answer carries
`x-ratelimit-limit-*`, `-remaining-*` and `-reset-*` (time until full, "1.5s", "6m0s", "20ms").
`headers=False` sends none of them (limits by hand only). `log` holds (monotonic time, status,
tokens) per chat request, also served at GET /ratelog.

The awkward parts OpenAI documents: `quantum=1.0` also enforces each limit over that many seconds
("60,000 requests/minute may be enforced as 1,000 requests/second"): a hidden bucket of
limit / window * quantum, refilled at the same rate, that the headers never show; a request
refused by it gets 429 while `remaining` is high. Refused requests count against the requests
limit (a 429 takes 1 request from each requests bucket that has one left). `quota=True` answers
every chat request with OpenAI's `insufficient_quota` 429 (no credit left). Two clients on one
server share its limits, as two jobs on one key do.

As a process (benchmarks/bench_ratelimit.py)::

    (cd tests && python -m support.fake_ratelimit) --port 8000 --rpm 30 --tpm 100000 --window 20 --latency 1
"""
from __future__ import annotations

import io
import json
import math
import time
from typing import Any

from .fake_openai import FakeOpenAI, _error


def format_reset(seconds: float) -> str:
    if seconds < 1:
        return f"{max(0, round(seconds * 1000))}ms"
    if seconds < 60:
        return f"{seconds:.3f}".rstrip("0").rstrip(".") + "s"
    m, s = divmod(seconds, 60)
    return f"{int(m)}m{s:.3f}".rstrip("0").rstrip(".") + "s"


class RateLimitedServer(FakeOpenAI):
    def __init__(self, *args: Any, rpm: int, tpm: int, window: float = 60.0,
                 retry_after: bool = True, headers: bool = True, quantum: float | None = None,
                 quota: bool = False, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.limits = {"requests": float(rpm), "tokens": float(tpm)}
        self.levels = dict(self.limits)
        self.window = window
        self.retry_after = retry_after
        self.send_headers = headers  # False: a server that gives no x-ratelimit-* hints
        self.quantum = quantum
        self.quota = quota
        # the hidden short-window buckets: the same rate, `quantum` seconds' worth of capacity
        self.short = {k: v / window * quantum for k, v in self.limits.items()} if quantum else {}
        self.short_levels = dict(self.short)
        self.t = time.monotonic()
        self.log: list[tuple[float, int, float]] = []  # (monotonic time, status, tokens)
        base = self._httpd.RequestHandlerClass
        self._httpd.RequestHandlerClass = _handler(self, base)  # type: ignore[arg-type]

    def admit(self, req: dict[str, Any]) -> tuple[bool, dict[str, str]]:
        chars = sum(len(str(m.get("content", ""))) for m in req.get("messages", []))
        budget = req.get("max_tokens") or req.get("max_completion_tokens") or 0
        cost = {"requests": 1.0, "tokens": float(chars // 4 + int(budget))}
        with self._lock:
            now = time.monotonic()
            for k, limit in self.limits.items():
                rate = limit / self.window
                self.levels[k] = min(limit, self.levels[k] + rate * (now - self.t))
                if k in self.short:
                    self.short_levels[k] = min(self.short[k],
                                               self.short_levels[k] + rate * (now - self.t))
            self.t = now
            # a request bigger than a short bucket goes when that bucket is full
            short_ok = all(self.short_levels[k] >= min(cost[k], self.short[k]) for k in self.short)
            ok = short_ok and all(self.levels[k] >= cost[k] for k in cost)
            wait = 0.0
            if ok:
                for k in cost:
                    self.levels[k] -= cost[k]
                    if k in self.short:
                        self.short_levels[k] -= cost[k]
            else:
                wait = max([(cost[k] - self.levels[k]) / (self.limits[k] / self.window)
                            for k in cost]
                           + [(min(cost[k], self.short[k]) - self.short_levels[k])
                              / (self.limits[k] / self.window) for k in self.short])
                # a refused request counts against the requests limit too (OpenAI's docs)
                self.levels["requests"] = max(0.0, self.levels["requests"] - 1)
                if "requests" in self.short:
                    self.short_levels["requests"] = max(0.0, self.short_levels["requests"] - 1)
            self.log.append((now, 200 if ok else 429, cost["tokens"]))
            headers: dict[str, str] = {}
            for k, limit in self.limits.items():
                rate = limit / self.window
                headers[f"x-ratelimit-limit-{k}"] = str(int(limit))
                headers[f"x-ratelimit-remaining-{k}"] = str(max(0, math.floor(self.levels[k])))
                headers[f"x-ratelimit-reset-{k}"] = format_reset((limit - self.levels[k]) / rate)
        if not self.send_headers:
            headers = {}
        if not ok and self.retry_after:
            headers["retry-after"] = f"{wait:.3f}"
        return ok, headers

    def count(self, status: int, after: float = 0.0) -> int:  # type: ignore[override]
        return sum(1 for t, s, _ in self.log if s == status and t >= after)


def _handler(server: RateLimitedServer, base: type) -> type:
    class Handler(base):  # type: ignore[valid-type, misc]
        _extra: dict[str, str] = {}

        def do_GET(self) -> None:
            if self.path.rstrip("/").endswith("/ratelog"):
                with server._lock:
                    return self._json(200, {"window": server.window, "limits": server.limits,
                                            "log": list(server.log)})
            return super().do_GET()

        def do_POST(self) -> None:
            if not self.path.rstrip("/").endswith("/chat/completions"):
                return super().do_POST()
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if server.quota:
                with server._lock:
                    server.log.append((time.monotonic(), 429, 0.0))
                return self._json(429, {"error": {
                    "message": "You exceeded your current quota, please check your plan and "
                               "billing details.", "type": "insufficient_quota", "param": None,
                    "code": "insufficient_quota"}})
            ok, self._extra = server.admit(json.loads(body))
            if not ok:
                return self._json(429, _error("Rate limit reached", "rate_limit_exceeded"))
            # the base handler reads the body again: hand it this request's bytes, then give the
            # connection its own stream back (else keep-alive ends after one request, unannounced)
            conn, self.rfile = self.rfile, io.BufferedReader(io.BytesIO(body))  # type: ignore[assignment]
            try:
                return super().do_POST()
            finally:
                self.rfile = conn

        def _raw(self, status: int, body: bytes, ctype: str,
                 headers: dict[str, str] | None = None) -> None:
            super()._raw(status, body, ctype, {**self._extra, **(headers or {})})
            self._extra = {}

    return Handler


def main() -> None:
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, default=8000)
    ap.add_argument("--rpm", type=int, required=True, help="requests per window")
    ap.add_argument("--tpm", type=int, required=True, help="tokens per window")
    ap.add_argument("--window", type=float, default=60.0, help="seconds (OpenAI: 60)")
    ap.add_argument("--latency", type=float, default=0.0)
    ap.add_argument("--no-retry-after", action="store_true")
    ap.add_argument("--quantum", type=float, default=None,
                    help="also enforce each limit over this many seconds, unseen by the headers")
    args = ap.parse_args()
    server = RateLimitedServer("judge", rpm=args.rpm, tpm=args.tpm, window=args.window,
                               latency=args.latency, port=args.port,
                               retry_after=not args.no_retry_after, quantum=args.quantum)
    print(f"rate-limited fake OpenAI server listening on {server.url}", flush=True)
    try:
        server._httpd.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server._httpd.server_close()


if __name__ == "__main__":
    main()
