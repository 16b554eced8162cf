"""JSONL files, the contract between stages: strict reads that name file and line, crash-safe writes."""
from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Iterator
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
    """Append one record per line, flushed and fsynced, so a crash loses at most the line in flight."""

    def __init__(self, path: Path | str):
        self.path = Path(path)
        self._f: Any = None  # opened on the first record: a run that fails early creates nothing

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
        if self._f is None:
            self._open()
        self._f.write(line + "\n")
        self._f.flush()
        os.fsync(self._f.fileno())

    def close(self) -> None:
        if self._f is not None:
            self._f.close()

    def __enter__(self) -> JsonlAppender:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def write_lines_atomic(path: Path | str, lines: Iterable[str]) -> None:
    """Replace `path` in one rename: readers see the old file or the new one, never half of it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "w", encoding="utf-8") as f:
        for line in lines:
            f.write(line.rstrip("\n") + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
