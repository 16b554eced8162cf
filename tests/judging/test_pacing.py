"""Pacing by x-ratelimit-* headers (clients/pacing.py) against a server enforcing the limits."""
from __future__ import annotations

import asyncio

import pytest
from support.fake_ratelimit import RateLimitedServer, format_reset

from mt_bench_task.clients.openai_client import OpenAIChatClient
from mt_bench_task.clients.pacing import Pacer, parse_reset


@pytest.mark.parametrize("text,seconds", [("1s", 1.0), ("6m0s", 360.0), ("20ms", 0.02),
                                          ("1h2m3.5s", 3723.5), ("0.25", 0.25), ("", None),
                                          ("soon", None), (None, None)])
def test_reset_durations(text, seconds):
    assert parse_reset(text) == seconds


def test_format_and_parse_agree():
    for x in (0.02, 1.5, 59.25, 360.0, 754.5):
        assert abs(parse_reset(format_reset(x)) - x) < 0.002


def test_unknown_or_minus_one_means_no_pacing():
    clock = [0.0]
    p = Pacer(clock=lambda: clock[0])
    p.done(0, {"x-ratelimit-limit-requests": "-1", "x-ratelimit-remaining-requests": "-1"})
    assert not p.active
    p.done(0, {"x-ratelimit-limit-tokens": "1000", "x-ratelimit-remaining-tokens": "400",
               "x-ratelimit-reset-tokens": "6s"})
    b = p.buckets["tokens"]
    assert p.active and b.limit == 1000 and b.level == 400 and b.rate == pytest.approx(100)
    assert b.wait_for(600) == pytest.approx(2.0)  # 200 more tokens at 100 a second
    assert p.buckets["requests"].limit is None


def test_manual_limits_pace_without_headers():
    async def go() -> float:
        p = Pacer(max_requests_per_minute=600)  # 10 a second, a full bucket of 600 first
        p.buckets["requests"].level = 0
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        for _ in range(5):
            await p.acquire(10)
        return loop.time() - t0
    assert 0.4 <= asyncio.run(go()) < 1.5


def _send(server: RateLimitedServer, n: int, parallel: int, **limits) -> OpenAIChatClient:
    client = OpenAIChatClient(server.url, "sk-test", backoff_base=0.05, backoff_max=1.0,
                              max_retries=20)
    client.limit_rate(**limits)
    msgs = [{"role": "user", "content": "x" * 400}]  # 100 prompt tokens + 100 max_tokens

    async def go() -> None:
        sem = asyncio.Semaphore(parallel)

        async def one() -> None:
            async with sem:
                c = await client.complete("gpt-4", msgs, temperature=0, max_tokens=100)
                assert not c.failed
        try:
            await asyncio.gather(*(one() for _ in range(n)))
        finally:
            await client.close()
    asyncio.run(go())
    return client


def test_headers_keep_requests_out_of_429_after_the_first_window():
    # 20 requests or 2,000 tokens (10 requests of 200) per 2 s window: tokens bind, 5 a second
    with RateLimitedServer("judge", rpm=20, tpm=2000, window=2.0, latency=0.01) as server:
        client = _send(server, 40, parallel=8)
        first_window_end = server.log[0][0] + 2.0
        ok = [t for t, s, _ in server.log if s == 200]
    assert len(ok) == 40
    assert server.count(429, after=first_window_end) <= 1  # <= 1 % of 40 would be 0.4
    rate = (len(ok) - 10) / (ok[-1] - ok[9])  # after the first burst of a full bucket
    assert rate >= 0.75 * 5  # held the allowed throughput (the benchmark measures it closely)
    assert client.pacer.waited > 0


def test_manual_limits_alone_avoid_429s_from_a_server_without_headers():
    # 5 requests a second (300 a minute, enforced per second), no hints in the answers
    with RateLimitedServer("judge", rpm=5, tpm=10**9, window=1.0, headers=False) as server:
        # paced a tenth under the limit: a request's arrival jitters by a scheduler tick, and at
        # exactly the limit one tick can land a request before the server's bucket refilled
        client = _send(server, 15, parallel=6, max_requests_per_minute=270)
        paced_429s = server.count(429, after=server.log[0][0] + 1.0)
        plain = _send(server, 15, parallel=6)  # retries alone, for contrast
    assert client.pacer.waited > 0 and paced_429s <= 1  # none (or one on a loaded host) after the first window
    assert plain.usage.retries > client.usage.retries
