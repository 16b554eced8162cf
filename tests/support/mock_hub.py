"""A stdlib mock of the Hugging Face Hub endpoints that huggingface_hub 2.4, datasets and evaluate call.

No upload-capable Hub server exists on PyPI and huggingface_hub talks through httpx2 (respx cannot
intercept it), so tests run a real HTTP server: point HF_ENDPOINT at `MockHub.url` (see
`MockHub.env()`), in a subprocess, because huggingface_hub reads HF_ENDPOINT at import time.

It keeps repos in memory (commits, branches, PR refs `refs/pr/N`, LFS objects) and records every
request it got in `MockHub.requests`. Auth follows the Hub: a wrong bearer token is a 401 on any
request; a write (or a read of a private repo) without the expected token is a 401.
Use it as a context manager, `with MockHub() as hub: ...`, or as the pytest fixture `mock_hub`
(registered for every test module by tests/conftest.py).
"""
from __future__ import annotations

import base64
import contextlib
import hashlib
import importlib
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Self
from urllib.parse import parse_qs, quote, unquote, urlsplit

import pytest

FAKE_TOKEN = "hf_mockTOKENdoNotLeak0123456789"
_PREFIX = {"model": "", "dataset": "datasets/", "space": "spaces/"}
_LFS_SUFFIXES = (".parquet", ".png", ".jsonl", ".arrow", ".bin", ".safetensors")


@dataclass
class Repo:
    repo_type: str
    repo_id: str
    private: bool = False
    commits: dict[str, dict[str, bytes]] = field(default_factory=dict)  # sha -> {path: bytes}
    refs: dict[str, str] = field(default_factory=dict)  # "main", "refs/pr/1", ... -> sha
    messages: dict[str, str] = field(default_factory=dict)  # sha -> commit summary

    def resolve(self, rev: str) -> str | None:
        if rev in self.refs:
            return self.refs[rev]
        matches = [sha for sha in self.commits if sha.startswith(rev)] if len(rev) >= 7 else []
        return matches[0] if len(matches) == 1 else None

    def files(self, rev: str = "main") -> dict[str, bytes]:
        sha = self.resolve(rev)
        return dict(self.commits[sha]) if sha else {}

    def add_commit(self, parent: str | None, files: dict[str, bytes], summary: str) -> str:
        sha = hashlib.sha1(json.dumps([parent, summary, sorted(
            (p, hashlib.sha256(b).hexdigest()) for p, b in files.items())]).encode()).hexdigest()
        self.commits[sha], self.messages[sha] = dict(files), summary
        return sha


def _git_oid(content: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


class MockHub:
    """The server plus its state. `requests` is a list of {method, path, query, auth, status}."""

    def __init__(self, token: str = FAKE_TOKEN, user: str = "user") -> None:
        self.token, self.user = token, user
        self.read_only_token: str | None = None  # accepted for reads, 403 on writes
        self.reject_commits: str | None = None  # set to a message: every commit fails with 422
        self.repos: dict[tuple[str, str], Repo] = {}
        self.lfs: dict[str, bytes] = {}  # sha256 -> bytes
        self.requests: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(self))
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def env(self, tmp_home: str, token: str | None = None) -> dict[str, str]:
        """Environment for a client subprocess; `token=""` means no token at all."""
        env = {"HF_ENDPOINT": self.url, "HF_HOME": tmp_home, "HF_HUB_DISABLE_XET": "1",
               "HF_HUB_DISABLE_TELEMETRY": "1", "HF_HUB_DISABLE_PROGRESS_BARS": "1",
               "HF_DATASETS_CACHE": f"{tmp_home}/datasets", "HF_HUB_ETAG_TIMEOUT": "5",
               # a caller's HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE must not switch the client off
               "HF_HUB_OFFLINE": "0", "TRANSFORMERS_OFFLINE": "0"}
        tok = self.token if token is None else token
        if tok:
            env["HF_TOKEN"] = tok
        return env

    @contextlib.contextmanager
    def in_this_process(self, tmp_home: str, token: str | None = None) -> Iterator[None]:
        """What `env()` gives a subprocess, for this process while the block runs: huggingface_hub
        read HF_* into its constants when it was imported, so the constants are set (and put back
        after); the token is HF_TOKEN, read at each call. `token=""` means no token at all."""
        from huggingface_hub import constants

        hub_tqdm = importlib.import_module("huggingface_hub.utils.tqdm")  # the module, not its class

        home = Path(tmp_home)
        tok = self.token if token is None else token
        with pytest.MonkeyPatch.context() as mp:
            for name, value in {
                    "ENDPOINT": self.url,
                    "HUGGINGFACE_CO_URL_TEMPLATE": self.url + "/{repo_id}/resolve/{revision}/{filename}",
                    "HF_HOME": str(home), "HF_HUB_CACHE": str(home / "hub"),
                    "HF_TOKEN_PATH": str(home / "token"), "HF_STORED_TOKENS_PATH": str(home / "stored_tokens"),
                    "HF_HUB_DISABLE_XET": True, "HF_HUB_DISABLE_TELEMETRY": True, "HF_HUB_OFFLINE": False,
                    "HF_HUB_ETAG_TIMEOUT": 5}.items():
                mp.setattr(constants, name, value)
            mp.setattr(hub_tqdm, "HF_HUB_DISABLE_PROGRESS_BARS", True)
            mp.delenv("HF_TOKEN", raising=False)
            mp.delenv("HUGGING_FACE_HUB_TOKEN", raising=False)
            if tok:
                mp.setenv("HF_TOKEN", tok)
            yield

    def create_repo(self, repo_id: str, repo_type: str = "model", private: bool = False,
                    files: dict[str, bytes] | None = None) -> Repo:
        """Seed a repo directly (no HTTP), e.g. a model card with foreign content."""
        repo = Repo(repo_type, repo_id, private)
        init = {".gitattributes": b"*.png filter=lfs diff=lfs merge=lfs -text\n", **(files or {})}
        repo.refs["main"] = repo.add_commit(None, init, "initial commit")
        self.repos[(repo_type, repo_id)] = repo
        return repo

    def repo(self, repo_id: str, repo_type: str = "model") -> Repo:
        return self.repos[(repo_type, repo_id)]

    def writes(self) -> list[dict[str, Any]]:
        """Requests that could change state (commits, repo creation, LFS uploads)."""
        return [r for r in self.requests if r["method"] in ("POST", "PUT")
                and not r["path"].endswith(("/validate-yaml", "/objects/batch"))
                and "/preupload/" not in r["path"] and "/paths-info/" not in r["path"]]


@contextlib.contextmanager
def hub_offline_without_token() -> Iterator[None]:
    """For this process while the block runs, what HF_HUB_OFFLINE=1 HF_TOKEN= gives a subprocess
    (huggingface_hub read HF_HUB_OFFLINE into its constants at import): for `publish --dry-run`."""
    from huggingface_hub import constants

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(constants, "HF_HUB_OFFLINE", True)
        mp.setenv("HF_TOKEN", "")
        yield


@pytest.fixture
def mock_hub() -> Iterator[MockHub]:
    """A started MockHub; pass `hub.env(str(tmp_path))` to the client subprocess."""
    with MockHub() as hub:
        yield hub


class _HubError(Exception):
    def __init__(self, status: int, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.code = status, message, code


def _make_handler(hub: MockHub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        _record: dict[str, Any]
        _read_only = False

        def log_message(self, *args: Any) -> None:  # keep pytest output clean
            pass

        # -- plumbing --
        def _body(self) -> bytes:
            n = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(n) if n else b""

        def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None,
                  ctype: str = "application/json") -> None:
            self._record["status"] = status
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _json(self, obj: Any, status: int = 200, headers: dict[str, str] | None = None) -> None:
            self._send(status, json.dumps(obj).encode(), headers)

        def _dispatch(self) -> None:
            url = urlsplit(self.path)
            parts = [unquote(p) for p in url.path.strip("/").split("/")]
            query = parse_qs(url.query)
            auth = self.headers.get("Authorization")
            self._record = {"method": self.command, "path": url.path, "query": url.query,
                            "auth": auth is not None, "status": None}
            with hub.lock:
                hub.requests.append(self._record)
            body = self._body() if self.command in ("POST", "PUT") else b""
            try:
                read_only = hub.read_only_token is not None and auth == f"Bearer {hub.read_only_token}"
                if auth is not None and auth != f"Bearer {hub.token}" and not read_only:
                    raise _HubError(401, "Invalid credentials in Authorization header")
                self._read_only = read_only
                with hub.lock:
                    self._route(parts, query, body, auth is not None)
            except _HubError as e:
                headers = {"X-Error-Message": e.message}
                if e.code:
                    headers["X-Error-Code"] = e.code
                self._json({"error": e.message}, e.status, headers)

        do_GET = do_HEAD = do_POST = do_PUT = _dispatch

        def _need_auth(self, authed: bool) -> None:  # called by write endpoints only
            if not authed:
                raise _HubError(401, "Invalid username or password.")
            if self._read_only:
                raise _HubError(403, "You don't have the rights to create a commit in this repo")

        def _repo(self, repo_type: str, repo_id: str, authed: bool) -> Repo:
            repo = hub.repos.get((repo_type, repo_id))
            if repo is None or (repo.private and not authed):
                raise _HubError(404 if authed else 401, "Repository not found", "RepoNotFound")
            return repo

        def _sha(self, repo: Repo, rev: str) -> str:
            sha = repo.resolve(rev)
            if sha is None:
                raise _HubError(404, f"Invalid rev id: {rev}", "RevisionNotFound")
            return sha

        # -- routes --
        def _route(self, parts: list[str], query: dict[str, list[str]], body: bytes,
                   authed: bool) -> None:
            m = self.command
            if parts[:2] == ["api", "validate-yaml"]:
                return self._json({})
            if parts[:2] == ["api", "whoami-v2"]:
                self._need_auth(authed)
                return self._json({"type": "user", "name": hub.user, "orgs": [],
                                   "auth": {"accessToken": {"role": "write"}}})
            if parts[:3] == ["api", "repos", "create"] and m == "POST":
                self._need_auth(authed)
                return self._create_repo(json.loads(body or b"{}"))
            if parts[0] == "lfs-upload" and m == "PUT":  # a presigned URL: no Hub auth, like S3
                oid = parts[1]
                if hashlib.sha256(body).hexdigest() != oid:
                    raise _HubError(400, "sha256 mismatch")
                hub.lfs[oid] = body
                return self._send(200)
            if parts[0] == "api" and len(parts) >= 4 and parts[1] in ("models", "datasets", "spaces"):
                return self._api(parts[1][:-1], f"{parts[2]}/{parts[3]}", parts[4:], query, body, authed)
            repo_type, rest = "model", parts
            if parts[0] in ("datasets", "spaces"):
                repo_type, rest = parts[0][:-1], parts[1:]
            if len(rest) >= 3 and rest[1].endswith(".git") and rest[2:] == ["info", "lfs", "objects", "batch"]:
                self._need_auth(authed)
                repo = self._repo(repo_type, f"{rest[0]}/{rest[1][:-4]}", authed)
                return self._lfs_batch(repo, json.loads(body))
            if len(rest) >= 5 and rest[2] == "resolve":
                repo = self._repo(repo_type, f"{rest[0]}/{rest[1]}", authed)
                return self._resolve(repo, rest[3], "/".join(rest[4:]))
            raise _HubError(404, "Not Found")

        def _create_repo(self, payload: dict[str, Any]) -> None:
            repo_type = payload.get("type") or "model"
            repo_id = f"{payload.get('organization') or hub.user}/{payload['name']}"
            url = f"{hub.url}/{_PREFIX[repo_type]}{repo_id}"
            if (repo_type, repo_id) in hub.repos:
                return self._json({"error": "You already created this repo", "url": url}, 409)
            private = bool(payload.get("private")) or payload.get("visibility") == "private"
            hub.create_repo(repo_id, repo_type, private)
            self._json({"url": url, "name": repo_id, "id": repo_id})

        def _api(self, repo_type: str, repo_id: str, rest: list[str], query: dict[str, list[str]],
                 body: bytes, authed: bool) -> None:
            repo = self._repo(repo_type, repo_id, authed)
            action = rest[0] if rest else "info"
            if action in ("info", "revision"):
                sha = self._sha(repo, rest[1] if len(rest) > 1 else "main")
                return self._json({"id": repo_id, "_id": repo_id, "sha": sha, "private": repo.private,
                                   "disabled": False, "gated": False, "downloads": 0, "likes": 0,
                                   "tags": [], "lastModified": "2026-01-01T00:00:00.000Z",
                                   "siblings": [{"rfilename": p} for p in sorted(repo.commits[sha])]})
            if action == "tree":
                sha = self._sha(repo, rest[1])
                recursive = query.get("recursive", ["false"])[0].lower() in ("1", "true")
                return self._json(self._tree(repo.commits[sha], "/".join(rest[2:]), recursive))
            if action == "paths-info":
                sha = self._sha(repo, rest[1])
                form = parse_qs(body.decode())
                paths = form.get("paths") or json.loads(body or b"{}").get("paths", [])
                entries = self._tree(repo.commits[sha], "", True)
                return self._json([e for e in entries if e["path"] in paths])
            if action == "preupload":
                self._need_auth(authed)
                files = json.loads(body)["files"]
                return self._json({"files": [
                    {"path": f["path"], "shouldIgnore": False,
                     "uploadMode": "lfs" if f["path"].endswith(_LFS_SUFFIXES) else "regular"}
                    for f in files]})
            if action == "branch" and self.command == "POST":
                self._need_auth(authed)
                branch = "/".join(rest[1:])
                if branch in repo.refs:
                    raise _HubError(409, "Reference already exists")
                start = json.loads(body or b"{}").get("startingPoint") or "main"
                repo.refs[branch] = self._sha(repo, start)
                return self._json({})
            if action == "commit" and self.command == "POST":
                self._need_auth(authed)
                return self._commit(repo, rest[1], body, query.get("create_pr", ["0"])[0] == "1")
            raise _HubError(404, "Not Found")

        def _tree(self, files: dict[str, bytes], folder: str, recursive: bool) -> list[dict[str, Any]]:
            prefix = f"{folder.strip('/')}/" if folder.strip("/") else ""
            if prefix and not any(p.startswith(prefix) for p in files):
                raise _HubError(404, f"{folder} does not exist", "EntryNotFound")
            out: dict[str, dict[str, Any]] = {}
            for path, content in sorted(files.items()):
                if not path.startswith(prefix):
                    continue
                tail = path[len(prefix):].split("/")
                for depth in range(1, len(tail)):  # the folders on the way
                    d = prefix + "/".join(tail[:depth])
                    if recursive or depth == 1:
                        out.setdefault(d, {"type": "directory", "path": d, "oid": _git_oid(d.encode()),
                                           "size": 0})
                if recursive or len(tail) == 1:
                    entry: dict[str, Any] = {"type": "file", "path": path, "size": len(content),
                                             "oid": _git_oid(content)}
                    if path.endswith(_LFS_SUFFIXES):
                        entry["lfs"] = {"oid": hashlib.sha256(content).hexdigest(),
                                        "size": len(content), "pointerSize": 132}
                    out[path] = entry
            return list(out.values())

        def _lfs_batch(self, repo: Repo, payload: dict[str, Any]) -> None:
            objects = []
            for obj in payload.get("objects", []):
                entry: dict[str, Any] = {"oid": obj["oid"], "size": obj["size"]}
                if obj["oid"] not in hub.lfs:
                    entry["actions"] = {"upload": {"href": f"{hub.url}/lfs-upload/{obj['oid']}"}}
                objects.append(entry)
            self._json({"transfer": "basic", "objects": objects}, headers={})

        def _commit(self, repo: Repo, rev: str, body: bytes, create_pr: bool) -> None:
            if hub.reject_commits:
                raise _HubError(422, hub.reject_commits)
            base_sha = self._sha(repo, rev)
            files = dict(repo.commits[base_sha])
            summary = ""
            for line in body.splitlines():
                item = json.loads(line)
                key, value = item["key"], item["value"]
                if key == "header":
                    summary = value.get("summary", "")
                    parent = value.get("parentCommit")
                    if parent and parent != base_sha:
                        raise _HubError(412, "A commit has happened since. Please refresh and try again.")
                elif key == "file":
                    files[value["path"]] = (base64.b64decode(value["content"])
                                            if value.get("encoding") == "base64"
                                            else value["content"].encode())
                elif key == "lfsFile":
                    if value["oid"] not in hub.lfs:
                        raise _HubError(422, f"LFS object {value['oid']} was not uploaded")
                    files[value["path"]] = hub.lfs[value["oid"]]
                elif key == "deletedFile":
                    files.pop(value["path"], None)
                elif key == "deletedFolder":
                    files = {p: b for p, b in files.items() if not p.startswith(value["path"].rstrip("/") + "/")}
                else:
                    raise _HubError(400, f"unsupported commit key {key}")
            sha = repo.add_commit(base_sha, files, summary)
            pr_url = None
            if create_pr:
                num = 1 + sum(r.startswith("refs/pr/") for r in repo.refs)
                repo.refs[f"refs/pr/{num}"] = sha
                pr_url = f"{hub.url}/{_PREFIX[repo.repo_type]}{repo.repo_id}/discussions/{num}"
            else:
                repo.refs[rev if rev in repo.refs else "main"] = sha
            self._json({"success": True, "commitOid": sha, "pullRequestUrl": pr_url,
                        "commitUrl": f"{hub.url}/{_PREFIX[repo.repo_type]}{repo.repo_id}/commit/{sha}"})

        def _resolve(self, repo: Repo, rev: str, path: str) -> None:
            sha = self._sha(repo, rev)
            content = repo.commits[sha].get(path)
            if content is None:
                raise _HubError(404, "Entry not found", "EntryNotFound")
            digest = (hashlib.sha256(content).hexdigest() if path.endswith(_LFS_SUFFIXES)
                      else _git_oid(content))
            headers = {"X-Repo-Commit": sha, "ETag": f'"{digest}"',
                       "Content-Disposition": f"inline; filename*=UTF-8''{quote(path.split('/')[-1])}"}
            if path.endswith(_LFS_SUFFIXES):
                headers.update({"X-Linked-Etag": f'"{digest}"', "X-Linked-Size": str(len(content))})
            self._send(200, content, headers, "application/octet-stream")

    return Handler
