"""OpenAIChatClient against a real local HTTP server (tests/support/fake_openai.py) with injected faults."""
from __future__ import annotations

import asyncio
import logging
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support.fake_openai import FakeOpenAI, echo_responder

from mt_bench_task.clients.openai_client import OpenAIChatClient
from mt_bench_task.core.chat import Completion
from mt_bench_task.core.errors import DataError

SECRET = "sk-test-SECRET-1234567890"
MESSAGES = [{"role": "system", "content": "You are a judge."},
            {"role": "user", "content": "Rate this answer."}]


def complete(url: str, messages=MESSAGES, **client_kwargs) -> tuple[Completion, OpenAIChatClient]:
    client_kwargs.setdefault("backoff_base", 0.01)
    client = OpenAIChatClient(url, SECRET, **client_kwargs)

    async def run() -> Completion:
        async with client:
            return await client.complete("gpt-4", messages, temperature=0.0, max_tokens=2048)

    return asyncio.run(run()), client


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_sends_what_fastchat_sends_and_counts_usage():
    with FakeOpenAI("judge") as server:
        result, client = complete(server.url)
    assert server.requests == [{"messages": MESSAGES, "model": "gpt-4", "n": 1,
                                "temperature": 0.0, "max_tokens": 2048}]
    assert server.auth_headers == [f"Bearer {SECRET}"]
    assert "Rating: [[" in result.text and not result.failed
    assert (result.prompt_tokens, result.completion_tokens) == (7, len(result.text.split()))
    assert client.usage.requests == 1 and client.usage.retries == 0
    assert client.usage.prompt_tokens == 7 and client.usage.completion_tokens > 0


@pytest.fixture
def waits(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The waits the client chose before its retries (it still sleeps them): what a wall clock on
    a loaded host cannot tell apart from its own slowness."""
    chosen: list[float] = []
    real = OpenAIChatClient.backoff_delay

    def spy(self: OpenAIChatClient, attempt: int, retry_after: float | None = None) -> float:
        chosen.append(real(self, attempt, retry_after))
        return chosen[-1]

    monkeypatch.setattr(OpenAIChatClient, "backoff_delay", spy)
    return chosen


@pytest.mark.parametrize("fault, wait", [("429:0.6", 0.6), ("429ms:400", 0.4), ("503:0.5", 0.5)])
def test_retry_after_header_sets_the_wait(fault, wait, waits):
    # backoff_base=5: without the header the wait would be 2.5..5 s
    with FakeOpenAI("echo", faults=[fault]) as server:
        start = time.perf_counter()
        result, client = complete(server.url, backoff_base=5.0)
        elapsed = time.perf_counter() - start
    assert not result.failed and server.total == 2 and client.usage.retries == 1
    assert waits == [pytest.approx(wait)] and elapsed >= wait - 0.05  # and it did wait


def test_retry_after_is_capped_by_backoff_max(waits):
    with FakeOpenAI("echo", faults=["429:30"]) as server:
        result, _ = complete(server.url, backoff_max=0.2)
    assert not result.failed and server.total == 2 and waits == [0.2]


def test_backoff_is_exponential_with_jitter_and_bounded():
    client = OpenAIChatClient("http://127.0.0.1:9/v1", backoff_base=1.0, backoff_max=10.0)
    for attempt in range(1, 30):
        expected = min(10.0, 2.0 ** (attempt - 1))
        delays = [client.backoff_delay(attempt) for _ in range(50)]
        assert all(expected / 2 <= d <= expected for d in delays)
    assert len({client.backoff_delay(3) for _ in range(20)}) > 1  # jittered
    assert client.backoff_delay(1, retry_after=2.5) == 2.5  # the header, exactly
    assert client.backoff_delay(1, retry_after=99) == 10.0


@pytest.mark.parametrize("fault", ["500", "garbage", "nochoices", "drop", "timeout:2", "408"])
def test_transient_faults_are_retried_then_succeed(fault):
    with FakeOpenAI("echo", faults=[fault]) as server:
        result, client = complete(server.url, timeout=0.4)
    assert result.text.startswith("Echo") and not result.failed
    assert server.total == 2 and client.usage.retries == 1 and client.usage.failures == 0


def test_exhaustion_gives_fastchat_error_text_and_one_warning(caplog):
    with caplog.at_level(logging.DEBUG), FakeOpenAI("echo", faults=["500"] * 10) as server:
        result, client = complete(server.url, max_retries=2)
    assert result == Completion(text="$ERROR$", failed=True)
    assert server.total == 3 and client.usage.failures == 1 and client.usage.retries == 2
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "3 attempt(s)" in warnings[0].getMessage()
    assert SECRET not in caplog.text


@pytest.mark.parametrize("status", ["400", "422"])
def test_a_rejected_request_fails_alone_without_retries(status, caplog):
    # e.g. vLLM's 400 for a prompt over the context length: $ERROR$ for it, the run goes on
    with caplog.at_level(logging.DEBUG), FakeOpenAI("echo", faults=[status]) as server:
        got, _ = complete(server.url)
    assert got.failed and got.text == "$ERROR$" and server.total == 1
    assert f"HTTP {status}" in caplog.text and SECRET not in caplog.text


@pytest.mark.parametrize("status", ["401", "403", "404"])
def test_client_errors_are_not_retried_and_never_show_the_key(status, caplog, capsys):
    # the fake's 401 echoes the presented key in its error message, as a worst case
    with caplog.at_level(logging.DEBUG), FakeOpenAI("echo", faults=[status]) as server:
        with pytest.raises(DataError) as info:
            complete(server.url)
    message = str(info.value)
    assert server.total == 1
    assert f"HTTP {status}" in message and server.url in message and "\n" not in message
    out, err = capsys.readouterr()
    for text in (message, repr(info.value), caplog.text, out, err):
        assert SECRET not in text and "1234567890" not in text
    if status == "401":
        assert "Incorrect API key provided: ***" in message and "OPENAI_API_KEY" in message


def test_mask_hides_the_key_and_key_like_strings():
    client = OpenAIChatClient("http://x/v1", "my-own-token-abcdef")
    masked = client.mask("key my-own-token-abcdef, other sk-proj-abcdefgh12, Bearer xyz123456")
    assert masked == "key ***, other sk-***, Bearer ***"
    assert "my-own-token" not in repr(client)


def test_missing_key_is_an_error_for_openai_and_dummy_for_local(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    with pytest.raises(DataError, match="OPENAI_API_KEY is not set"):
        OpenAIChatClient()
    with FakeOpenAI("echo") as server:
        client = OpenAIChatClient(server.url)

        async def run() -> Completion:
            async with client:
                return await client.complete("m", MESSAGES, temperature=0.7, max_tokens=8)

        assert not asyncio.run(run()).failed
    assert server.auth_headers == ["Bearer EMPTY"]


def test_base_url_and_key_fall_back_to_the_environment(monkeypatch):
    with FakeOpenAI("echo") as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.url)
        monkeypatch.setenv("OPENAI_API_KEY", SECRET)
        client = OpenAIChatClient()
        assert client.base_url == server.url

        async def run() -> Completion:
            async with client:
                return await client.complete("m", MESSAGES, temperature=0.7, max_tokens=8)

        assert not asyncio.run(run()).failed
    assert server.auth_headers == [f"Bearer {SECRET}"]


def test_check_reachable_fails_fast_and_names_the_url():
    url = f"http://127.0.0.1:{closed_port()}/v1"
    client = OpenAIChatClient(url, SECRET)
    start = time.perf_counter()
    with pytest.raises(DataError, match=f"cannot reach OpenAI-compatible server at {url}: "
                                        "connection refused"):
        asyncio.run(client.check_reachable())
    assert time.perf_counter() - start < 3


def test_check_reachable_passes_on_a_live_server():
    with FakeOpenAI("echo") as server:
        async def run() -> None:
            async with OpenAIChatClient(server.url, SECRET) as client:
                await client.check_reachable()

        asyncio.run(run())
    assert server.total == 0  # GET /models is not a chat request


def test_connection_refused_gets_bounded_retries_then_error_text():
    result, client = complete(f"http://127.0.0.1:{closed_port()}/v1", max_retries=3)
    assert result.failed and client.usage.requests == 4


def test_parallel_requests_with_30_percent_faults_all_succeed():
    kinds = ["429ms:20", "500", "drop", "garbage"]
    with FakeOpenAI(echo_responder, fault_rate=0.3, fault_kinds=kinds, seed=1) as server:
        client = OpenAIChatClient(server.url, SECRET, backoff_base=0.01, max_retries=8)

        async def run() -> list[Completion]:
            async with client:
                return await asyncio.gather(*[
                    client.complete("m", [{"role": "user", "content": f"q{i}"}], temperature=0.0,
                                    max_tokens=8) for i in range(60)])

        results = asyncio.run(run())
    assert all(not r.failed for r in results)
    assert [r.text.endswith(f"q{i}") for i, r in enumerate(results)] == [True] * 60
    assert server.total == 60 + sum(server.faults_injected.values()) == client.usage.requests
    assert 5 < sum(server.faults_injected.values()) < 60
    assert all(server.count("m", f"q{i}") >= 1 for i in range(60))


def test_fake_server_runs_as_a_process_with_the_judge_responder():
    proc = subprocess.Popen([sys.executable, str(Path(__file__).parents[1] / "support" / "fake_openai.py"),
                             "--port", "0", "--responder", "judge", "--latency", "0.01"],
                            stdout=subprocess.PIPE, text=True)
    try:
        url = proc.stdout.readline().split()[-1]  # "fake OpenAI server listening on URL"
        single, _ = complete(url)
        pair_system = "Please act as an impartial judge ... two AI assistants ... \"[[A]]\""
        pair, _ = complete(url, [{"role": "system", "content": pair_system},
                                 {"role": "user", "content": "[User Question] ..."}])
        again, _ = complete(url)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert re.search(r"Rating: \[\[([1-9]|10)\]\]$", single.text) and again.text == single.text
    assert re.search(r"\[\[[ABC]\]\]$", pair.text)
