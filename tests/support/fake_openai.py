"""A fake OpenAI-compatible server (stdlib only) for tests, fault drills and benchmarks.

In a test::

    from support.fake_openai import FakeOpenAI, judge_responder

    with FakeOpenAI(responder=judge_responder, latency=0.01,
                    faults=["429:0.2", "500", None, "drop"]) as server:
        client = OpenAIChatClient(server.url, api_key="sk-test")   # server.url ends in /v1
        ...
        assert server.total == 5                   # chat requests received, faults included
        assert server.count("gpt-4", prompt) == 2  # by (model, last user message)
        assert "Bearer sk-test" in server.auth_headers

As a pytest fixture::

    @pytest.fixture
    def judge_server():
        with FakeOpenAI("judge", latency=0.01) as server:
            yield server

`responder(request_json) -> str` gives the assistant text (or a `Reply`: content, a thought field,
finish reason); `"judge"` and `"echo"` name the built-in ones, and `ThinkingModel(...)` wraps one
as a model that thinks first (inline tags, `reasoning_content` / `reasoning`, or hidden; a thought
or answer cut by the request's token budget, finish_reason "length").
Faults apply to POST /v1/chat/completions only (GET /v1/models always answers):

- `faults=[...]`: a schedule by request number (0-based, arrival order); `None` = answer normally.
- `fault_every=10, fault_every_kind="429:1"`: every Nth request (arrival order, 1-based: the
  10th, 20th, ...) gets that fault, retries included; deterministic for a given arrival order.
- `fault_rate=0.3, seed=0`: each request is faulted with that probability. The draw hashes
  (seed, model, messages, attempt number of that exact request), so the same requests fail in
  the same way whatever the concurrency; `fault_kinds` picks among kinds (default: all below).

Fault names: `"429:S"` (Retry-After: S seconds), `"429ms:MS"` (retry-after-ms: MS), `"500"`,
`"503:S"` (with Retry-After), `"timeout:S"` (answer only after S seconds, default 5, so the client
times out first), `"drop"` (close the socket without a response), `"garbage"` (200, non-JSON body),
`"nochoices"` (200, JSON without choices), `"reset"` (close the socket with a TCP reset),
`"quota"` (OpenAI's `insufficient_quota` 429: billing, not a rate limit), and any other status
like `"401"`, `"400"`, `"404"` (OpenAI-style error body; a 401 echoes the presented API key, as
a worst case for leak tests; `"400:some text"` sends that text as the error message).

`server.served_model = {"gpt-4": "gpt-4-0613"}` answers a request for gpt-4 with that "model" (an alias
served by a snapshot); `raw_requests` keeps the chat bodies as sent. `completion(req)` is the
answer's body (tests/support/fake_batch.py's batches reuse it).

`reasoning=True` answers like OpenAI's reasoning models (o1/o3/o4-mini, gpt-5): HTTP 400 with
`param: max_tokens, code: unsupported_parameter` when the request has `max_tokens`, and
`param: temperature, code: unsupported_value` for any temperature but 1 (`rejected_params`
counts them; they count in `total` too).
With the default kinds, pass the client a timeout under 5 s, or "timeout" faults cost 5 s each.

`gate=Gate("chat", 41)` stops the client at a point the test chooses: from the 41st chat request
on, the server answers only after `gate.release()` (`gate.wait()` returns once the client got
there); `Gate(..., hold=False, action=...)` runs `action` (a SIGINT, say) when the request comes.
A test that kills or interrupts the client does it there, never after a sleep.
The `"unrated"` responder is the judge's, except that about one prompt in 4 (by its hash, so the
same ones whatever the concurrency) gets a verdict with no rating in it.

Read back (thread-safe to read after the requests finished): `total`, `count(model, prompt)`,
`by_key`, `requests` (bodies), `auth_headers`, `faults_injected` (Counter by kind), `url`, `port`;
`stats()` gives {"total", "faults_injected"}, also served as JSON at GET /stats (or /v1/stats),
for a server running in another process.

As a process (for benchmarks or FastChat in another venv)::

    python tests/support/fake_openai.py --port 8000 --latency 0.05 --fault-rate 0.3 --responder judge
    python tests/support/fake_openai.py --port 8000 --latency 1 --fault-every 10 --fault-kind 429:1
    python tests/support/fake_openai.py --port 8000 --responder echo --thinking reasoning_content
    curl -s http://127.0.0.1:8000/stats   # {"total": ..., "faults_injected": {...}}
"""
from __future__ import annotations

import argparse
import hashlib
import json
import random
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Responder = Callable[[dict[str, Any]], "str | Reply"]
FAULT_KINDS = ("429:0.1", "429ms:100", "500", "503:0.1", "timeout:5", "drop", "garbage")


def prompt_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def _last_user(req: dict[str, Any]) -> str:
    users = [m.get("content", "") for m in req.get("messages", []) if m.get("role") == "user"]
    return str(users[-1]) if users else ""


def echo_responder(req: dict[str, Any]) -> str:
    """A short answer derived from the last user message (for answer generation)."""
    return f"Echo ({prompt_hash(_last_user(req))[:6]}): {_last_user(req)[:60]}"


def judge_responder(req: dict[str, Any]) -> str:
    """FastChat judge formats: "[[A]]"/"[[B]]"/"[[C]]" for pairwise prompts, else "Rating: [[k]]".
    The verdict is a pure function of the prompt (k in 1..10)."""
    system = " ".join(m.get("content", "") for m in req.get("messages", [])
                      if m.get("role") == "system")
    digest = int(prompt_hash(json.dumps(req.get("messages", []), sort_keys=True)), 16)
    if "two AI assistants" in system or "[[A]]" in system:
        return f"Both answers were compared. Verdict: [[{'ABC'[digest % 3]}]]"
    return f"The answer is adequate. Rating: [[{digest % 10 + 1}]]"


class VaryingJudge:
    """A judge whose rating of the same prompt changes with each repeat (GPT-4 is not
    deterministic at temperature 0 either): the n-th identical request (0-based) gets
    "Rating: [[k]]" with k = (digest + 3n) % 10 + 1. Thread-safe; `seen` counts per prompt."""

    def __init__(self) -> None:
        self.seen: Counter[str] = Counter()
        self._lock = threading.Lock()

    def __call__(self, req: dict[str, Any]) -> str:
        key = json.dumps(req.get("messages", []), sort_keys=True)
        with self._lock:
            n = self.seen[key]
            self.seen[key] += 1
        return f"Rating: [[{(int(prompt_hash(key), 16) + 3 * n) % 10 + 1}]]"


def unrated_responder(req: dict[str, Any]) -> str:
    """`judge_responder`, but about 1 prompt in 4 (by hash) gets an answer without a rating."""
    digest = int(prompt_hash(json.dumps(req.get("messages", []), sort_keys=True)), 16)
    if digest % 4 == 0:
        return "Both answers have merits and flaws; I cannot decide."
    return judge_responder(req)


@dataclass
class Reply:
    """A responder's full reply (a plain string is `Reply(text)`): the message's content, a
    thought in a field of its own (`reasoning_key`: "reasoning_content" as vLLM's reasoning
    parsers and DeepSeek's API, "reasoning" as newer vLLM and OpenRouter), the finish reason,
    and the completion tokens the usage reports (default: the words sent)."""

    content: str | None
    reasoning: str | None = None
    reasoning_key: str = "reasoning_content"
    finish_reason: str = "stop"
    completion_tokens: int | None = None

    def message(self) -> dict[str, Any]:
        msg: dict[str, Any] = {"role": "assistant", "content": self.content}
        if self.reasoning is not None:
            msg[self.reasoning_key] = self.reasoning
        return msg


THOUGHT_MARK = "THOUGHT"  # in every word of a fake thought: a test finds any that leaked


class ThinkingModel:
    """A model that thinks `thought_words` words (its tokens here) before `answer`'s text, in
    one of the forms servers send (`style`):

    - "inline": `<think>thought</think>\n\nanswer` in content (a server without a reasoning
      parser); `tags` sets another pair; an unclosed `<think>…` when the budget cuts the thought;
    - "reasoning_content" / "reasoning": the thought in that field, the answer in content
      (vLLM's `--reasoning-parser`, DeepSeek's API); cut in the thought: content null;
    - "hidden": the thought counts in the budget but is not returned (OpenAI's o-series and
      gpt-5: `completion_tokens_details.reasoning_tokens`); cut in the thought: content "".

    The budget is the request's `max_completion_tokens`, else `max_tokens`, thought and answer
    together (as vLLM and DeepSeek count them); finish_reason "length" when it cuts.
    `thought_words(req)` may be a function of the request; `budgets` records each budget seen.
    """

    def __init__(self, answer: Responder | str = "echo", thought_words: int | Callable[
            [dict[str, Any]], int] = 40, style: str = "inline",
                 tags: tuple[str, str] = ("<think>", "</think>")) -> None:
        self.answer = RESPONDERS[answer] if isinstance(answer, str) else answer
        self.thought_words, self.style, self.tags = thought_words, style, tags
        self.budgets: list[int | None] = []

    def __call__(self, req: dict[str, Any]) -> Reply:
        budget = req.get("max_completion_tokens", req.get("max_tokens"))
        self.budgets.append(budget)
        n = self.thought_words(req) if callable(self.thought_words) else self.thought_words
        tag = prompt_hash(_last_user(req))[:6]
        thought = [f"{THOUGHT_MARK}-{tag}-{i}" for i in range(n)]
        answer = str(self.answer(req)).split(" ")
        limit = budget if isinstance(budget, int) else len(thought) + len(answer)
        cut_thought = len(thought) > limit
        answer_kept = answer[:max(0, limit - len(thought))]
        finish = "length" if len(thought) + len(answer) > limit else "stop"
        thought_text, answer_text = " ".join(thought[:limit]), " ".join(answer_kept)
        tokens = min(limit, len(thought) + len(answer))
        if self.style == "inline":
            text = f"{self.tags[0]}{thought_text}" + (
                "" if cut_thought else f"{self.tags[1]}\n\n{answer_text}")
            return Reply(text, finish_reason=finish, completion_tokens=tokens)
        if self.style == "hidden":
            return Reply("" if cut_thought else answer_text, finish_reason=finish,
                         completion_tokens=tokens)
        return Reply(None if cut_thought else answer_text, thought_text, self.style, finish,
                     tokens)


RESPONDERS: dict[str, Responder] = {"judge": judge_responder, "echo": echo_responder,
                                    "unrated": unrated_responder}
QUOTA_MESSAGE = ("You exceeded your current quota, please check your plan and billing details. "
                 "For more information on this error, read the docs: "
                 "https://platform.openai.com/docs/guides/error-codes/api-errors.")
REASONING_MAX_TOKENS = ("Unsupported parameter: 'max_tokens' is not supported with this model. "
                        "Use 'max_completion_tokens' instead.")
REASONING_TEMPERATURE = ("Unsupported value: 'temperature' does not support {value} with this "
                         "model. Only the default (1) value is supported.")


class Gate:
    """A point in the client's run that the test chooses: the `at`-th request of a kind ("chat",
    or "retrieve" for a batch poll, tests/support/fake_batch.py) runs `action` (e.g. a SIGINT to
    this process) and sets `reached`; with `hold`, it and every later one of that kind are
    answered only after `release()`. The client is then waiting on those answers, so a signal
    the test sends after `reached` lands there, however slow or loaded the host."""

    def __init__(self, kind: str, at: int, *, hold: bool = True,
                 action: Callable[[], object] | None = None) -> None:
        self.kind, self.at, self.hold, self.action = kind, at, hold, action
        self.reached = threading.Event()
        self._released = threading.Event()

    def release(self) -> None:
        self._released.set()

    def wait(self, timeout: float = 300) -> None:
        """Until the client gets there (the timeout only stops a broken test)."""
        assert self.reached.wait(timeout), f"the client never sent {self.kind} request {self.at}"

    def passing(self, kind: str, n: int) -> None:
        """Called by the handler thread for the n-th request (from 1) of `kind`."""
        if kind != self.kind or n < self.at:
            return
        if n == self.at:
            if self.action is not None:
                self.action()
            self.reached.set()
        if self.hold:
            self._released.wait()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # idle keep-alive connections must not block stop()
    request_queue_size = 256  # listen backlog (default 5): bursts of parallel clients

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that went away (Ctrl-C, kill -9, a timeout) is no server error: no traceback
        on the test's stderr (an in-process CLI call captures it)."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class FakeOpenAI:
    """The server, started in a daemon thread on 127.0.0.1:`port` (0 = a free port)."""

    def __init__(self, responder: Responder | str = "echo", *, latency: float = 0.0,
                 faults: Sequence[str | None] | None = None, fault_rate: float = 0.0,
                 fault_kinds: Sequence[str] = FAULT_KINDS, seed: int = 0, port: int = 0,
                 fault_every: int = 0, fault_every_kind: str = "429:1", reasoning: bool = False,
                 gate: Gate | None = None):
        self.responder = RESPONDERS[responder] if isinstance(responder, str) else responder
        self.latency = latency
        self.faults = list(faults or [])
        self.fault_rate = fault_rate
        self.fault_kinds = list(fault_kinds)
        self.seed = seed
        self.fault_every = fault_every
        self.fault_every_kind = fault_every_kind
        self.reasoning = reasoning
        self.gate = gate
        self.rejected_params: Counter[str] = Counter()
        self.served_model: dict[str, str] = {}  # asked model -> the "model" answered (an alias)
        self.raw_requests: list[bytes] = []  # chat request bodies as sent, in arrival order
        self.paths: list[str] = []  # "METHOD /path?query" of every request
        self.total = 0  # chat requests received, faulted ones included
        self.by_key: Counter[tuple[str, str]] = Counter()  # (model, prompt_hash(last user msg))
        self.faults_injected: Counter[str] = Counter()
        self.auth_headers: list[str] = []  # every Authorization header seen, in order
        self.requests: list[dict[str, Any]] = []  # chat request bodies, in arrival order
        self._attempts: Counter[str] = Counter()  # per exact request body, for the rate draw
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._httpd = _Server(("127.0.0.1", port), _make_handler(self))
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def count(self, model: str, user_prompt: str) -> int:
        with self._lock:
            return self.by_key[(model, prompt_hash(user_prompt))]

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {"total": self.total, "faults_injected": dict(self.faults_injected)}

    def start(self) -> FakeOpenAI:
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,),
                                        daemon=True)  # short poll: stop() returns fast
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()  # wakes handlers sleeping in a "timeout" fault
        if self.gate is not None:
            self.gate.release()
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> FakeOpenAI:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def sleep(self, seconds: float) -> None:
        self._stop.wait(seconds)

    def refusal(self, req: dict[str, Any]) -> dict[str, Any] | None:
        """A reasoning model's HTTP 400 body for a request it does not take (counted), or None."""
        if self.reasoning and "max_tokens" in req:
            with self._lock:
                self.rejected_params["max_tokens"] += 1
            return _error(REASONING_MAX_TOKENS, "unsupported_parameter", "max_tokens")
        if self.reasoning and req.get("temperature", 1) != 1:
            with self._lock:
                self.rejected_params["temperature"] += 1
            return _error(REASONING_TEMPERATURE.format(value=req["temperature"]),
                          "unsupported_value", "temperature")
        return None

    def completion(self, req: dict[str, Any]) -> dict[str, Any]:
        """The chat completion body for `req` (also the body of a batch's output line)."""
        out = self.responder(req)
        reply = out if isinstance(out, Reply) else Reply(out)
        prompt_tokens = sum(len(str(m.get("content", "")).split()) for m in req["messages"])
        model = self.served_model.get(str(req.get("model")), req.get("model"))
        sent = reply.completion_tokens
        if sent is None:
            sent = len(f"{reply.content or ''} {reply.reasoning or ''}".split())
        return {
            "id": f"chatcmpl-fake-{self.total}", "object": "chat.completion",
            "created": int(time.time()), "model": model,
            "choices": [{"index": 0, "message": reply.message(),
                         "finish_reason": reply.finish_reason, "logprobs": None}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": sent,
                      "total_tokens": prompt_tokens + sent}}

    # ---- called by the handler threads ----
    def record(self, req: dict[str, Any], auth: str) -> tuple[int, str | None]:
        """Count the request: its arrival number (from 1) and its fault (None: answer normally)."""
        body_key = json.dumps(req, sort_keys=True)
        with self._lock:
            n = self.total
            self.total += 1
            self.by_key[(str(req.get("model")), prompt_hash(_last_user(req)))] += 1
            self.auth_headers.append(auth)
            self.requests.append(req)
            attempt = self._attempts[body_key]
            self._attempts[body_key] += 1
            fault = self.faults[n] if n < len(self.faults) else None
            if fault is None and self.fault_every > 0 and (n + 1) % self.fault_every == 0:
                fault = self.fault_every_kind
            if fault is None and self.fault_rate > 0 and self.fault_kinds:
                draw = random.Random(f"{self.seed}|{body_key}|{attempt}")
                if draw.random() < self.fault_rate:
                    fault = draw.choice(self.fault_kinds)
            if fault is not None:
                self.faults_injected[fault.split(":")[0]] += 1
            return n + 1, fault


def _make_handler(server: FakeOpenAI) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, like real servers

        def log_message(self, format: str, *args: Any) -> None:  # quiet test output
            pass

        def do_GET(self) -> None:
            server.paths.append(f"GET {self.path}")
            self.path = self.path.split("?")[0]  # Azure's ?api-version=...
            if self.path.rstrip("/") in ("/stats", "/v1/stats"):
                self._json(200, server.stats())
            elif self.path.rstrip("/").endswith("/models"):
                self._json(200, {"object": "list", "data": [
                    {"id": "fake-model", "object": "model", "created": 0, "owned_by": "fake"}]})
            else:
                self._json(404, _error("not found", "not_found"))

        def do_POST(self) -> None:
            server.paths.append(f"POST {self.path}")
            self.path = self.path.split("?")[0]  # Azure's ?api-version=...
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if not self.path.rstrip("/").endswith("/chat/completions"):
                return self._json(404, _error("not found", "not_found"))
            try:
                req = json.loads(body)
            except ValueError:
                return self._json(400, _error("body is not JSON", "invalid_request_error"))
            auth = self.headers.get("Authorization", "")
            server.raw_requests.append(body)
            n, fault = server.record(req, auth)
            if server.gate is not None:
                server.gate.passing("chat", n)
            if server.latency:
                server.sleep(server.latency)
            if fault is not None:
                return self._fault(fault, auth)
            refusal = server.refusal(req)
            if refusal is not None:
                return self._json(400, refusal)
            self._json(200, server.completion(req))

        def _fault(self, fault: str, auth: str) -> None:
            kind, _, arg = fault.partition(":")
            if kind == "429":
                self._json(429, _error("rate limited", "rate_limit"), {"Retry-After": arg or "1"})
            elif kind == "429ms":
                self._json(429, _error("rate limited", "rate_limit"),
                           {"retry-after-ms": arg or "100"})
            elif kind == "503" and arg:
                self._json(503, _error("overloaded", "server_error"), {"Retry-After": arg})
            elif kind == "timeout":
                server.sleep(float(arg or 5))
                self._json(500, _error("too late", "server_error"))
            elif kind == "reset":  # SO_LINGER 0: close() sends RST, the client reads ECONNRESET
                import socket
                import struct

                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                           struct.pack("ii", 1, 0))
                self.rfile.close()
                self.connection.close()  # no FIN first (the server's shutdown would send one)
                self.close_connection = True
            elif kind == "quota":
                self._json(429, {"error": {"message": QUOTA_MESSAGE, "type": "insufficient_quota",
                                           "param": None, "code": "insufficient_quota"}})
            elif kind == "drop":
                self.close_connection = True  # the handler returns; the socket closes unanswered
            elif kind == "garbage":
                self._raw(200, b"<html>502 Bad Gateway</html>", "application/json")
            elif kind == "nochoices":
                self._json(200, {"id": "x", "object": "chat.completion", "usage": None})
            elif kind == "401":
                key = auth.removeprefix("Bearer ")
                self._json(401, _error(f"Incorrect API key provided: {key}.", "invalid_api_key"))
            else:
                self._json(int(kind), _error(arg or f"fake error {kind}", "invalid_request_error"))

        def _json(self, status: int, obj: Any, headers: dict[str, str] | None = None) -> None:
            self._raw(status, json.dumps(obj).encode(), "application/json", headers)

        def _raw(self, status: int, body: bytes, ctype: str,
                 headers: dict[str, str] | None = None) -> None:
            try:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout)
                self.close_connection = True

    return Handler


def _error(message: str, code: str, param: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": "invalid_request_error" if param else code,
                      "param": param, "code": code}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, default=8000)
    ap.add_argument("--latency", type=float, default=0.0, help="seconds per chat request")
    ap.add_argument("--fault-rate", type=float, default=0.0)
    ap.add_argument("--fault-kinds", nargs="+", default=list(FAULT_KINDS))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--fault-every", type=int, default=0,
                    help="fault every Nth chat request (arrival order, retries included)")
    ap.add_argument("--fault-kind", default="429:1", help="the fault for --fault-every")
    ap.add_argument("--responder", choices=sorted(RESPONDERS), default="judge")
    ap.add_argument("--thinking", default=None,
                    choices=["inline", "reasoning_content", "reasoning", "hidden"],
                    help="answer as a ThinkingModel that thinks first, in this form")
    ap.add_argument("--thought-words", type=int, default=40, help="with --thinking")
    args = ap.parse_args()
    responder: Responder | str = args.responder
    if args.thinking:
        responder = ThinkingModel(args.responder, args.thought_words, args.thinking)
    server = FakeOpenAI(responder, latency=args.latency, fault_rate=args.fault_rate,
                        fault_kinds=args.fault_kinds, seed=args.seed, port=args.port,
                        fault_every=args.fault_every, fault_every_kind=args.fault_kind)
    print(f"fake OpenAI server listening on {server.url}", flush=True)
    try:
        server._httpd.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        print(f"served {server.total} chat requests, faults: {dict(server.faults_injected)}",
              flush=True)
        server._httpd.server_close()


if __name__ == "__main__":
    main()
