"""JSONL files, the contract between stages: strict reads that name file and line, crash-safe writes."""
from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from mt_bench_task.core.errors import DataError

__all__ = ["DataError", "JsonlAppender", "read_jsonl", "read_jsonl_lines", "write_lines_atomic"]  # DataError: errors.py

T = TypeVar("T")


def read_jsonl(path: Path | str, parse: Callable[[dict[str, Any]], T] | None = None, *,
               repair_torn_tail: bool = False) -> list[T]:
    """Parse every line; a malformed line is a DataError naming `path:line`.

    With `repair_torn_tail`, an unparsable *last* line without a trailing newline (a write cut by
    kill -9) is dropped from the file instead, so the next run re-creates that record.
    """
    return [record for _, record in _records(Path(path), parse, repair_torn_tail)]


def read_jsonl_lines(path: Path | str, parse: Callable[[dict[str, Any]], T] | None = None
                     ) -> list[tuple[str, T]]:
    """`read_jsonl`, each record with its line as written (to rewrite a file keeping the bytes
    of the lines that stay)."""
    return [(line.decode("utf-8").removesuffix("\r"), record)
            for line, record in _records(Path(path), parse, False)]


def _records(path: Path, parse: Callable[[dict[str, Any]], T] | None,
             repair_torn_tail: bool) -> Iterator[tuple[bytes, T]]:
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    raw = path.read_bytes()
    lines = raw.split(b"\n")
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line, parse_constant=_no_constant, parse_float=_finite_float)
            if not isinstance(obj, dict):
                raise ValueError("not a JSON object")
            record = parse(obj) if parse else obj
        except (ValueError, KeyError, TypeError, RecursionError) as e:
            torn = lineno == len(lines) and not raw.endswith(b"\n")
            if repair_torn_tail and torn:
                _truncate_to(path, len(raw) - len(line))
                return
            raise DataError(f"{path}:{lineno}: malformed record ({_short(e)})") from None
        yield line, record  # type: ignore[misc]


def _no_constant(name: str) -> float:
    raise ValueError(f"{name} is not a number FastChat writes")


def _finite_float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise ValueError(f"{text[:20]} overflows a float")
    return value


def _short(e: Exception) -> str:
    return str(e).splitlines()[0][:120] if str(e) else type(e).__name__


def _truncate_to(path: Path, size: int) -> None:
    with open(path, "r+b") as f:
        f.truncate(size)


class JsonlAppender:
    """Append one record per line, flushed and fsynced, so a crash loses at most the line in flight.
    An OSError (disk full, read-only, not a directory) names the file."""

    def __init__(self, path: Path | str):
        self.path = Path(path)
        self._f: Any = None  # opened on the first record: a run that fails early creates nothing
        self._made: list[Path] = []  # what open() created, removed again if nothing is written
        self._written = 0

    def open(self) -> JsonlAppender:
        """Open now, so that an unwritable output fails before any paid request; a file (and
        dirs) made here and never written to are removed again by `close`."""
        if self._f is None:
            with _naming(self.path):
                self._made = [p for p in (self.path, *self.path.parents) if not p.exists()]
                self._open()
        return self

    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        needs_newline = False
        if self.path.exists() and self.path.stat().st_size:
            with open(self.path, "rb") as f:  # a file ending without newline would glue two records
                f.seek(-1, os.SEEK_END)
                needs_newline = f.read(1) != b"\n"
        self._f = open(self.path, "a", encoding="utf-8")
        if needs_newline:
            self._f.write("\n")

    def write(self, line: str) -> None:
        with _naming(self.path):
            if self._f is None:
                self._open()
            self._f.write(line + "\n")
            self._f.flush()
            os.fsync(self._f.fileno())
        self._written += 1

    def close(self) -> None:
        if self._f is not None:
            f, self._f = self._f, None
            with _naming(self.path):  # its last flush can fail too (a full disk)
                f.close()
        if not self._written:
            for made in self._made:  # the file, then its new parent dirs, deepest first
                try:
                    made.unlink() if made == self.path else made.rmdir()
                except OSError:
                    break
            self._made = []

    def __enter__(self) -> JsonlAppender:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def write_lines_atomic(path: Path | str, lines: Iterable[str]) -> None:
    """Replace `path` in one rename: readers see the old file or the new one, never half of it."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with _naming(tmp):
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            with open(tmp, "w", encoding="utf-8") as f:
                for line in lines:
                    f.write(line.rstrip("\n") + "\n")
                f.flush()
                os.fsync(f.fileno())
        except OSError:
            tmp.unlink(missing_ok=True)  # a full disk: the old file stays as it was
            raise
        os.replace(tmp, path)


@contextmanager
def _naming(path: Path) -> Iterator[None]:
    """An OSError without a file name (ENOSPC from write or fsync) gets `path`, so the user
    is told which file could not be written."""
    try:
        yield
    except OSError as e:
        if e.filename is None:
            raise OSError(e.errno, e.strerror or str(e), str(path)) from e
        raise
