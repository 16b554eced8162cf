"""One writer per output file: `judge`, `gen` and `gen-api` hold a lock on the file they append to
from before they read what is done there until they finish, so a second run on the same file
waits for the first (or, with `wait=False`, stops at once) and then sends only what is still
missing: never the same judgment or answer twice.

The lock is `.<file name>.lock` beside the file, an OS lock (flock) that the system drops when
its holder dies, even by kill -9. It holds the holder's pid, host and start time, so the one that
waits can say whom it waits for. The holder removes it when done (a run leaves nothing behind);
a waiter that then gets the lock of a removed file tries again on the new one, so two runs never
both hold it. Without fcntl (Windows) the lock is filelock's and its file stays.
"""
from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from mt_bench_task.core.errors import DataError

log = logging.getLogger(__name__)


def lock_file(path: Path) -> Path:
    return path.with_name(f".{path.name}.lock")


@contextmanager
def one_writer(path: Path, wait: bool = True) -> Iterator[None]:
    """Hold the lock of `path` for the block. Held by another process: log who holds it and
    wait (`wait`), else a DataError naming the holder."""
    try:
        import fcntl  # noqa: F401
    except ImportError:  # pragma: no cover - Windows
        with _filelock(Path(path), wait):
            yield
        return
    lock_path = lock_file(Path(path))
    made = [p for p in lock_path.parents if not p.exists()]  # removed again when done, if empty
    fd = _acquire(Path(path), lock_path, wait)
    try:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()} {socket.gethostname()} {stamp}\n".encode())
        yield
    finally:
        lock_path.unlink(missing_ok=True)  # still held: a waiter sees the inode change, retries
        os.close(fd)  # releases the lock
        for d in made:
            try:
                d.rmdir()
            except OSError:
                break


def _acquire(path: Path, lock_path: Path, wait: bool) -> int:
    import fcntl

    said = False
    while True:
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _holder(lock_path)
                if not wait:
                    raise DataError(f"{path}: {holder} is writing it (lock {lock_path}); wait "
                                    "for it to finish, or leave out --fail-if-locked to wait"
                                    ) from None
                if not said:
                    log.warning("%s: %s is writing it; waiting for it to finish (Ctrl-C to stop)",
                                path, holder)
                    said = True
                fcntl.flock(fd, fcntl.LOCK_EX)
            if _same_file(fd, lock_path):
                return fd
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)  # the holder removed that lock file as it finished: lock the current one


def _same_file(fd: int, lock_path: Path) -> bool:
    try:
        return os.path.samestat(os.fstat(fd), os.stat(lock_path))
    except FileNotFoundError:
        return False


def _holder(lock_path: Path) -> str:
    """"process 1234 on host (since 2026-01-01 12:00:00)", from the holder's lock file."""
    try:
        pid, host, *since = lock_path.read_text(encoding="utf-8").split()
    except (OSError, ValueError):
        return "another process"
    return f"process {pid} on {host}" + (f" (since {' '.join(since)})" if since else "")


@contextmanager
def _filelock(path: Path, wait: bool) -> Iterator[None]:  # pragma: no cover - Windows
    from filelock import FileLock, Timeout

    lock = FileLock(lock_file(path))
    try:
        lock.acquire(timeout=-1 if wait else 0)
    except Timeout:
        raise DataError(f"{path}: another process is writing it (lock {lock.lock_file})") from None
    try:
        yield
    finally:
        lock.release()
