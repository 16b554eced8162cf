"""A fake Batch API (files + batches) on top of `FakeOpenAI`, for tests of `--batch`.

    with FakeBatchServer("judge") as server:
        ...  # POST /v1/files, POST /v1/batches, GET /v1/batches[/{id}], GET /v1/files/{id}/content

Each GET of a batch moves it one step: validating -> in_progress (half its requests done) ->
finalizing -> `final` ("completed", or "expired"/"cancelled": only the first half done, or
"failed": nothing done, no output file). `hold=True` keeps every batch in_progress until
`release()`. Output lines come in a shuffled order (seeded); `error_ids` (a predicate on the
custom_id) puts a request into the error file (`error_kind` "error": an `error` object, or
"400": a response with status_code 400 in the output file); with `reasoning=True` a line a
reasoning model would refuse gets the chat endpoint's HTTP 400 body. Each line's answer is
`FakeOpenAI.completion(body)`, so a batch answers what the chat endpoint would.
Counters: `uploads`, `created`, `retrieves`, `lines_run` (request lines answered), `ran`
(a Counter of the custom_ids answered: a judgment sent twice shows as 2).

`queue_limit=N` enforces OpenAI's enqueued-token limit per model: a batch whose prompt tokens
(characters / 4 of its messages, as the client estimates; OpenAI's tokenizer counts a little
differently) and those of the same model's batches in_progress or finalizing exceed N fails at
validation, running nothing: status "failed", errors.data[0] {"code": "token_limit_exceeded",
"message": "Enqueued token limit reached for gpt-4 in organization org-fake. Limit: 100,000
enqueued tokens. Please try again once some in_progress batches have been completed."}.
`peak_enqueued` is the most tokens ever in progress at once.
"""
from __future__ import annotations

import json
import random
import threading
from collections import Counter
from collections.abc import Callable
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any

from .fake_openai import FakeOpenAI, _error

STEPS = ("validating", "in_progress", "finalizing")


class FakeBatchServer(FakeOpenAI):
    def __init__(self, *args: Any, final: str = "completed", hold: bool = False,
                 error_ids: Callable[[str], bool] | None = None, error_kind: str = "error",
                 shuffle_seed: int = 0, queue_limit: int | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.final = final
        self.held = threading.Event()
        if not hold:
            self.held.set()
        self.error_ids = error_ids or (lambda cid: False)
        self.error_kind = error_kind
        self.shuffle_seed = shuffle_seed
        self.files: dict[str, bytes] = {}
        self.batches: dict[str, dict[str, Any]] = {}
        self.uploads = self.created = self.retrieves = self.lines_run = 0
        self.queue_limit = queue_limit
        self.peak_enqueued = 0
        self.ran: Counter[str] = Counter()
        base = self._httpd.RequestHandlerClass
        self._httpd.RequestHandlerClass = _batch_handler(self, base)  # type: ignore[arg-type]

    def release(self) -> None:
        self.held.set()

    def new_file(self, content: bytes) -> str:
        with self._lock:
            fid = f"file-{len(self.files) + 1:04d}"
            self.files[fid] = content
        return fid

    def create(self, req: dict[str, Any]) -> dict[str, Any]:
        lines = [json.loads(x) for x in self.files[req["input_file_id"]].decode().splitlines() if x]
        with self._lock:
            self.created += 1
            bid = f"batch_{self.created:04d}"
            self.batches[bid] = {"id": bid, "object": "batch", "endpoint": req["endpoint"],
                                 "input_file_id": req["input_file_id"],
                                 "completion_window": req["completion_window"],
                                 "status": "validating", "created_at": 0, "errors": None,
                                 "output_file_id": None, "error_file_id": None,
                                 "metadata": req.get("metadata"),
                                 "request_counts": {"total": len(lines), "completed": 0,
                                                    "failed": 0},
                                 "_lines": lines, "_step": 0, "_done": []}
        return self.public(bid)

    def public(self, bid: str) -> dict[str, Any]:
        return {k: v for k, v in self.batches[bid].items() if not k.startswith("_")}

    def advance(self, bid: str) -> dict[str, Any]:
        b = self.batches[bid]
        with self._lock:
            self.retrieves += 1
            n = self.retrieves
        if self.gate is not None:
            self.gate.passing("retrieve", n)
        if b["status"] in ("completed", "expired", "cancelled", "failed"):
            return self.public(bid)
        if b["_step"] == 1 and not self.held.is_set():
            return self.public(bid)  # held in_progress
        if b["_step"] == 0 and self._over_queue(b):
            return self.public(bid)
        b["_step"] += 1
        lines = b["_lines"]
        if b["_step"] < len(STEPS):
            b["status"] = STEPS[b["_step"]]
            self._run(b, lines[: len(lines) // 2] if b["_step"] == 1 else lines)
            return self.public(bid)
        if self.final == "failed":
            b["status"], b["errors"] = "failed", {"data": [{"message": "invalid file"}]}
            return self.public(bid)
        if self.final in ("expired", "cancelled"):
            b["_done"] = b["_done"][: len(lines) // 2]
        b["status"] = self.final
        self._finish(b)
        return self.public(bid)

    def _over_queue(self, b: dict[str, Any]) -> bool:
        """Validation against the enqueued-token limit (the batch fails, running nothing)."""
        if self.queue_limit is None:
            return False
        model = b["_lines"][0]["body"]["model"] if b["_lines"] else ""
        queued = sum(_tokens(o) for o in self.batches.values() if o is not b
                     and o["status"] in ("in_progress", "finalizing")
                     and o["_lines"] and o["_lines"][0]["body"]["model"] == model)
        if queued + _tokens(b) <= self.queue_limit:
            self.peak_enqueued = max(self.peak_enqueued, queued + _tokens(b))
            return False
        b["status"] = "failed"
        b["errors"] = {"object": "list", "data": [{
            "code": "token_limit_exceeded", "param": None, "line": None,
            "message": f"Enqueued token limit reached for {model} in organization org-fake. "
                       f"Limit: {self.queue_limit:,} enqueued tokens. Please try again once "
                       f"some in_progress batches have been completed."}]}
        return True

    def _run(self, b: dict[str, Any], lines: list[dict[str, Any]]) -> None:
        if self.final == "failed":
            return
        have = {x["custom_id"] for x in b["_done"]}
        for line in lines:
            if line["custom_id"] not in have:
                b["_done"].append(line)
        b["request_counts"]["completed"] = len(b["_done"])

    def _finish(self, b: dict[str, Any]) -> None:
        out, err = [], []
        for line in b["_done"]:
            cid = line["custom_id"]
            with self._lock:
                self.lines_run += 1
                self.ran[cid] += 1
            refused = None if self.error_ids(cid) else self.refusal(line["body"])
            if self.error_ids(cid) and self.error_kind == "error":
                err.append({"id": f"req_{cid}", "custom_id": cid, "response": None,
                            "error": {"code": "server_error", "message": "fake failure"}})
            elif self.error_ids(cid) or refused is not None:
                body = refused or _error("fake refusal", "invalid_request_error")
                out.append({"id": f"req_{cid}", "custom_id": cid, "error": None, "response": {
                    "status_code": 400, "request_id": "x", "body": body}})
            else:
                out.append({"id": f"req_{cid}", "custom_id": cid, "error": None, "response": {
                    "status_code": 200, "request_id": "x", "body": self.completion(line["body"])}})
        random.Random(self.shuffle_seed).shuffle(out)
        b["request_counts"]["failed"] = len(err)
        b["request_counts"]["completed"] = len(out)
        if out:
            b["output_file_id"] = self.new_file("".join(json.dumps(x) + "\n" for x in out).encode())
        if err:
            b["error_file_id"] = self.new_file("".join(json.dumps(x) + "\n" for x in err).encode())


def _tokens(b: dict[str, Any]) -> int:
    return sum(sum(len(str(m.get("content", ""))) for m in line["body"]["messages"]) // 4
               for line in b["_lines"])


def _batch_handler(server: FakeBatchServer, base: type) -> type:
    class Handler(base):  # type: ignore[valid-type, misc]
        def do_GET(self) -> None:
            path = self.path.split("?")[0].rstrip("/")
            parts = path.split("/")
            server.paths.append(f"GET {self.path}")
            if path.endswith("/batches"):
                data = [server.public(b) for b in server.batches]
                return self._json(200, {"object": "list", "data": data[::-1], "has_more": False})
            if len(parts) >= 2 and parts[-2] == "batches":
                if parts[-1] not in server.batches:
                    return self._json(404, _error("no such batch", "not_found"))
                return self._json(200, server.advance(parts[-1]))
            if path.endswith("/content") and parts[-2] in server.files:
                return self._raw(200, server.files[parts[-2]], "application/octet-stream")
            return super().do_GET()

        def do_POST(self) -> None:
            path = self.path.split("?")[0].rstrip("/")
            if not (path.endswith("/files") or path.endswith("/batches")):
                return super().do_POST()
            server.paths.append(f"POST {self.path}")
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if path.endswith("/batches"):
                return self._json(200, server.create(json.loads(body)))
            msg = BytesParser(policy=HTTP).parsebytes(
                f"Content-Type: {self.headers['Content-Type']}\r\n\r\n".encode() + body)
            fields = {p.get_param("name", header="content-disposition"): p.get_payload(decode=True)
                      for p in msg.iter_parts()}
            if fields.get("purpose") != b"batch":
                return self._json(400, _error("purpose must be batch", "invalid_request_error"))
            with server._lock:
                server.uploads += 1
            fid = server.new_file(fields["file"])
            return self._json(200, {"id": fid, "object": "file", "bytes": len(fields["file"]),
                                    "created_at": 0, "filename": "batch.jsonl",
                                    "purpose": "batch", "status": "processed"})

    return Handler
