"""A fake Anthropic API (stdlib only) on 127.0.0.1, modelled on Anthropic's docs, for the Claude
judge's tests: the Messages API and Message Batches.

- every request needs a key, `x-api-key` (or `Authorization: Bearer`, which SDK 2.x sends; else
  401 authentication_error), and `anthropic-version` (else 400 invalid_request_error); `GET /v1/models` lists one model;
- `POST /v1/messages`: `model`, `max_tokens` (required), `messages` (user/assistant only: a
  "system" role is a 400, the system prompt goes in `system`), `temperature`; the answer is a
  Message (`content` blocks, `usage.input_tokens/output_tokens`, `stop_reason`). The text is
  tests/fake_openai.py's judge responder over the same conversation (system prompt first), so a
  Claude judge rates as the OpenAI fake does;
- `POST /v1/messages/batches` `{"requests": [{"custom_id", "params"}]}` -> a MessageBatch,
  `processing_status` "in_progress"; each GET of `/v1/messages/batches/{id}` moves it on: half
  its requests processed, then "ended" with a `results_url`; `hold=True` keeps batches
  in_progress until `release()`. `GET .../results` is JSONL, one `{"custom_id", "result":
  {"type": succeeded | errored | canceled | expired, ...}}` per line, in a shuffled order;
  `errored_ids` / `expired_ids` (predicates on the custom_id) pick those outcomes.
`gate` (support.fake_openai.Gate, kind "retrieve") holds a batch poll where the test chose.
Counters: `messages` (POST /v1/messages), `retrieves` (batch polls), `ran` (Counter of batch custom_ids processed),
`created`, `headers` (the last request's x-api-key and anthropic-version).
"""
from __future__ import annotations

import json
import random
import threading
from collections import Counter
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from .fake_openai import Gate, judge_responder


def _error(kind: str, message: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": kind, "message": message}}


class FakeAnthropic:
    def __init__(self, *, hold: bool = False, errored_ids: Callable[[str], bool] | None = None,
                 expired_ids: Callable[[str], bool] | None = None, seed: int = 0,
                 gate: Gate | None = None):
        self.messages = self.created = self.retrieves = 0
        self.gate = gate
        self.ran: Counter[str] = Counter()
        self.headers: dict[str, str] = {}
        self.batches: dict[str, dict[str, Any]] = {}
        self.errored_ids = errored_ids or (lambda cid: False)
        self.expired_ids = expired_ids or (lambda cid: False)
        self.seed = seed
        self.held = threading.Event()
        if not hold:
            self.held.set()
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._httpd.daemon_threads = True

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def release(self) -> None:
        self.held.set()

    def __enter__(self) -> FakeAnthropic:
        threading.Thread(target=self._httpd.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def message(self, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """The Messages API's answer to `params`: (status, body)."""
        if not isinstance(params.get("max_tokens"), int):
            return 400, _error("invalid_request_error", "max_tokens: Field required")
        msgs = params.get("messages") or []
        if any(m.get("role") not in ("user", "assistant") for m in msgs):
            return 400, _error("invalid_request_error",
                               "messages: roles must be user or assistant (use `system`)")
        conversation = ([{"role": "system", "content": params["system"]}]
                        if params.get("system") else []) + msgs
        text = judge_responder({"messages": conversation})
        words = sum(len(str(m.get("content", "")).split()) for m in conversation)
        return 200, {"id": f"msg_fake_{self.messages}", "type": "message", "role": "assistant",
                     "model": params.get("model"), "content": [{"type": "text", "text": text}],
                     "stop_reason": "end_turn", "stop_sequence": None,
                     "usage": {"input_tokens": words, "output_tokens": len(text.split())}}

    def create(self, body: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            self.created += 1
            bid = f"msgbatch_{self.created:04d}"
            self.batches[bid] = {"requests": body["requests"], "step": 0, "results": []}
        return self.public(bid)

    def public(self, bid: str) -> dict[str, Any]:
        b = self.batches[bid]
        n = len(b["requests"])
        kinds = Counter(r["result"]["type"] for r in b["results"])
        ended = b["step"] >= 2
        return {"id": bid, "type": "message_batch",
                "processing_status": "ended" if ended else "in_progress",
                "request_counts": {"processing": n - len(b["results"]),
                                   "succeeded": kinds["succeeded"], "errored": kinds["errored"],
                                   "canceled": kinds["canceled"], "expired": kinds["expired"]},
                "created_at": "2026-12-07T00:00:00Z", "expires_at": "2026-12-08T00:00:00Z",
                "ended_at": "2026-12-07T00:10:00Z" if ended else None, "archived_at": None,
                "cancel_initiated_at": None,
                "results_url": f"{self.url}/v1/messages/batches/{bid}/results" if ended else None}

    def advance(self, bid: str) -> dict[str, Any]:
        b = self.batches[bid]
        if b["step"] == 1 and not self.held.is_set():
            return self.public(bid)
        if b["step"] < 2:
            b["step"] += 1
            todo = b["requests"][: len(b["requests"]) // 2] if b["step"] == 1 else b["requests"]
            done = {r["custom_id"] for r in b["results"]}
            for r in todo:
                if r["custom_id"] not in done:
                    b["results"].append({"custom_id": r["custom_id"], "result": self._run(r)})
        return self.public(bid)

    def _run(self, request: dict[str, Any]) -> dict[str, Any]:
        cid = request["custom_id"]
        if self.expired_ids(cid):
            return {"type": "expired"}
        with self._lock:
            self.ran[cid] += 1
        if self.errored_ids(cid):
            return {"type": "errored", "error": _error("api_error", "fake failure")}
        status, body = self.message(request["params"])
        if status != 200:
            return {"type": "errored", "error": body}
        return {"type": "succeeded", "message": body}

    def results(self, bid: str) -> bytes:
        rows = list(self.batches[bid]["results"])
        random.Random(self.seed).shuffle(rows)
        return "".join(json.dumps(r) + "\n" for r in rows).encode()


def _handler(server: FakeAnthropic) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _checked(self) -> bool:
            bearer = self.headers.get("Authorization", "").removeprefix("Bearer ")
            server.headers = {"x-api-key": self.headers.get("x-api-key") or bearer,
                              "anthropic-version": self.headers.get("anthropic-version", "")}
            if not server.headers["x-api-key"]:
                self._json(401, _error("authentication_error", "x-api-key header is required"))
                return False
            if not self.headers.get("anthropic-version"):
                self._json(400, _error("invalid_request_error",
                                       "anthropic-version header is required"))
                return False
            return True

        def do_GET(self) -> None:
            path = self.path.split("?")[0].rstrip("/")
            parts = path.split("/")
            if not self._checked():
                return
            if path == "/v1/models":
                return self._json(200, {"data": [{"type": "model", "id": "claude-fake",
                                                  "display_name": "Fake",
                                                  "created_at": "2025-01-01T00:00:00Z"}],
                                        "has_more": False, "first_id": "claude-fake",
                                        "last_id": "claude-fake"})
            if path == "/v1/messages/batches":
                data = [server.public(b) for b in server.batches][::-1]
                return self._json(200, {"data": data, "has_more": False, "first_id": None,
                                        "last_id": None})
            if len(parts) == 6 and parts[-1] == "results" and parts[-2] in server.batches:
                return self._raw(200, server.results(parts[-2]), "application/binary")
            if len(parts) == 5 and parts[-2] == "batches" and parts[-1] in server.batches:
                with server._lock:
                    server.retrieves += 1
                    n = server.retrieves
                if server.gate is not None:
                    server.gate.passing("retrieve", n)
                return self._json(200, server.advance(parts[-1]))
            self._json(404, _error("not_found_error", f"no route {path}"))

        def do_POST(self) -> None:
            path = self.path.split("?")[0].rstrip("/")
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
            if not self._checked():
                return
            if path == "/v1/messages":
                with server._lock:
                    server.messages += 1
                return self._json(*server.message(body))
            if path == "/v1/messages/batches":
                return self._json(200, server.create(body))
            self._json(404, _error("not_found_error", f"no route {path}"))

        def _json(self, status: int, obj: Any) -> None:
            self._raw(status, json.dumps(obj).encode(), "application/json")

        def _raw(self, status: int, body: bytes, ctype: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    return Handler
