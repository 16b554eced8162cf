"""Pacing that learns from 429s the headers did not predict (clients/pacing.py), rate-limit 429s
that never fail a judgment, `--max-wait`, and `insufficient_quota` stopping the run."""
from __future__ import annotations

import asyncio
import os
import time

import pytest
from support.answer_dirs import answer_dir
from support.fake_openai import FakeOpenAI
from support.fake_ratelimit import RateLimitedServer

from mt_bench_task.clients.openai_client import OpenAIChatClient
from mt_bench_task.clients.pacing import DECREASE, RECOVERY_PER_S, UNKNOWN, Pacer
from mt_bench_task.core.errors import DataError

SECRET = "sk-test-SECRET-4d3c2b1a0f9e"
MSGS = [{"role": "user", "content": "x" * 400}]  # 100 prompt tokens + 100 max_tokens
ROOM = {"x-ratelimit-limit-requests": "60", "x-ratelimit-remaining-requests": "50",
        "x-ratelimit-reset-requests": "10s"}  # 1 request a second, 50 left: room for more


def _pacer() -> tuple[Pacer, list[float]]:
    clock = [0.0]
    p = Pacer(clock=lambda: clock[0])
    p.done(0, ROOM)
    return p, clock


def test_an_unpredicted_429_lowers_the_pace_caps_bursts_and_the_pace_climbs_back():
    p, clock = _pacer()
    b = p.buckets["requests"]
    assert b.rate == pytest.approx(1.0) and b.cap == 60 and b.level == 50
    p.throttled(p.epoch, 1, ROOM)  # let through at the current epoch: the headers missed a limit
    assert p.drops == 1 and b.factor == pytest.approx(DECREASE)
    assert b.level <= 0 and b.cap == pytest.approx(DECREASE * 1.0)  # a second's worth
    p.throttled(0, 1, ROOM)  # sent before the drop: no second drop for the same round
    assert p.drops == 1
    clock[0] = 5.0
    b.refill(clock[0])
    assert b.factor == pytest.approx(min(1.0, DECREASE + 5 * RECOVERY_PER_S))  # probing back up
    assert b.burst_capped and b.cap == pytest.approx(b.factor * 1.0)


def test_a_429_the_headers_explain_does_not_lower_the_pace():
    p, _ = _pacer()
    empty = {**ROOM, "x-ratelimit-remaining-requests": "0"}
    p.throttled(UNKNOWN, 1, empty)  # sent blind before the limits were known, bucket empty
    assert p.drops == 0 and p.buckets["requests"].factor == 1.0
    p.throttled(UNKNOWN, 1, ROOM)  # sent blind, but the documented bucket had room: news
    assert p.drops == 1


def test_retry_after_on_a_429_pauses_every_request():
    async def go() -> float:
        p = Pacer(max_requests_per_minute=6000)
        p.throttled(UNKNOWN, 1, None, retry_after=0.4)
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        await p.acquire(1)
        return loop.time() - t0
    assert 0.35 <= asyncio.run(go()) < 1.5


def _send(clients: list[OpenAIChatClient], n: int, parallel: int) -> list[bool]:
    """`n` requests through each client at once (each with its own pacer, as two processes)."""
    async def go() -> list[bool]:
        async def one(client: OpenAIChatClient, sem: asyncio.Semaphore) -> bool:
            async with sem:
                c = await client.complete("gpt-4", MSGS, temperature=0, max_tokens=100)
                return c.failed
        try:
            jobs = []
            for client in clients:
                sem = asyncio.Semaphore(parallel)
                jobs += [one(client, sem) for _ in range(n)]
            return list(await asyncio.gather(*jobs))
        finally:
            for client in clients:
                await client.close()
    return asyncio.run(go())


def _client(url: str, **kw) -> OpenAIChatClient:
    return OpenAIChatClient(url, SECRET, backoff_base=0.05, backoff_max=1.0, **kw)


def test_a_limit_enforced_per_second_unseen_by_the_headers_is_learnt():
    # 60 requests per 6 s window in the headers, enforced as 10 per second (hidden)
    with RateLimitedServer("judge", rpm=60, tpm=10**9, window=6.0, quantum=1.0,
                           latency=0.05) as server:
        client = _client(server.url, max_retries=0)  # a rate-limit 429 spends no attempt
        failed = _send([client], 60, parallel=24)
        statuses = [s for _, s, _ in server.log]
    assert not any(failed) and statuses.count(200) == 60
    assert client.pacer.drops >= 1 and client.pacer.buckets["requests"].burst_capped
    first_drop = statuses.index(429)
    late = statuses[first_drop + 24:].count(429)  # after the round in flight at the first 429
    assert late <= 3, statuses
    assert statuses.count(429) <= 20  # unpaced, 24 at once into 10 a second meet ~40


def test_two_clients_sharing_one_limit_lose_nothing_and_back_off():
    with RateLimitedServer("judge", rpm=40, tpm=10**9, window=4.0, latency=0.05) as server:
        a, b = _client(server.url, max_retries=0), _client(server.url, max_retries=0)
        failed = _send([a, b], 40, parallel=12)
        statuses = [s for _, s, _ in server.log]
    assert not any(failed) and statuses.count(200) == 80
    assert a.pacer.drops + b.pacer.drops >= 1  # each saw the other only as unpredicted 429s
    assert statuses.count(429) / len(statuses) <= 0.25


def test_a_rate_limit_429_never_fails_a_judgment_until_max_wait():
    with FakeOpenAI("echo", faults=["429:0.02"] * 5) as server:
        client = _client(server.url, max_retries=0)
        (failed,) = _send([client], 1, 1)
    assert not failed and server.total == 6 and client.usage.rate_limited == 5
    with FakeOpenAI("echo", fault_every=1, fault_every_kind="429:0.05") as server:
        client = _client(server.url, max_retries=0, max_wait=0.5)
        t0 = time.monotonic()
        (failed,) = _send([client], 1, 1)
        waited = time.monotonic() - t0
    assert failed and 0.5 <= waited < 3.0 and server.total >= 3
    assert client.usage.failures == 1


def test_insufficient_quota_is_one_error_not_a_retry():
    with RateLimitedServer("judge", rpm=60, tpm=10**9, quota=True) as server:
        client = _client(server.url, max_retries=6)

        async def go() -> None:
            try:
                await client.complete("gpt-4", MSGS, temperature=0, max_tokens=100)
            finally:
                await client.close()
        with pytest.raises(DataError, match="insufficient_quota") as e:
            asyncio.run(go())
        assert len(server.log) == 1 and SECRET not in str(e.value)


def test_judge_stops_at_once_on_insufficient_quota_exit_2(mt_bench, tmp_path):
    d = answer_dir(tmp_path)
    with RateLimitedServer("judge", rpm=600, tpm=10**9, quota=True) as server:
        r = mt_bench("judge", "--data-dir", d, "--openai-api-base", server.url, "--parallel", "4",
                     env={**os.environ, "OPENAI_API_KEY": SECRET})
        sent = len(server.log)
    lines = [ln for ln in r.stderr.splitlines() if "error" in ln]
    assert r.returncode == 2, r.stderr
    assert len(lines) == 1 and "insufficient_quota" in lines[0] and "Traceback" not in r.stderr
    assert SECRET not in r.stderr and sent <= 4  # the slow start's first requests, no retries
    out = d / "model_judgment/gpt-4_single.jsonl"
    assert not out.exists() or out.read_text() == ""
