"""`mt-bench ARGS` for the tests: in this process (the `mt_bench` fixture, tests/conftest.py), or in
a real subprocess (`mt_bench_subprocess`, for the entry point itself, signals, kill -9, and the Hub
client, which reads HF_* at import time).

Both give a `CliResult` (returncode, stdout, stderr): a tuple that reads like a CompletedProcess.
In process, the exit code is the one the `mt-bench` entry point gives (`sys.exit(main())`): main's
return value, a SystemExit's code (argparse: 2, --help: 0), 130 for a KeyboardInterrupt, 1 with a
traceback on stderr for an uncaught exception. What a command could leave behind is put back after
each call: os.environ, the working directory, sys.argv, the `mt_bench_task` and root loggers'
handlers and levels, the SIGINT handler.
"""
from __future__ import annotations

import contextlib
import io
import logging
import os
import signal
import subprocess
import sys
import traceback
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import NamedTuple

# read once, at import, by huggingface_hub / datasets / transformers: a call that needs other
# values than this process has must be a subprocess
_IMPORT_TIME_ENV = ("HF_", "TRANSFORMERS_", "HUGGINGFACE_")


class CliResult(NamedTuple):
    returncode: int
    stdout: str
    stderr: str


def run_in_process(*args: str | os.PathLike[str], env: Mapping[str, str] | None = None,
                   cwd: str | os.PathLike[str] | None = None) -> CliResult:
    """`mt-bench ARGS` through `mt_bench_task.cli.main.main`. `env`, as for subprocess.run, is the
    whole environment of the call (None: this process's)."""
    argv = [str(a) for a in args]
    if env is not None:
        _check_env(env)
    out, err = io.StringIO(), io.StringIO()
    with _isolated(env, cwd, argv), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        from mt_bench_task.cli.main import main

        try:
            code = _exit_code(main(argv))
        except SystemExit as e:
            code = _exit_code(e.code, err)
        except KeyboardInterrupt:
            code = 130
        except Exception:  # what the interpreter does with it: the traceback, exit 1
            traceback.print_exc(file=err)
            code = 1
    return CliResult(code, out.getvalue(), err.getvalue())


def key_only_env(key: str) -> dict[str, str]:
    """This process's environment with `key` as the only OpenAI credential (no OPENAI_* or
    AZURE_OPENAI* of the developer's leaks into a test)."""
    return {**{k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "AZURE_OPENAI"))},
            "OPENAI_API_KEY": key}


def exit_code_only(run: Callable[..., CliResult], env: Mapping[str, str]) -> Callable[[list[str]], int]:
    """`mt-bench ARGV` through `run` (the `mt_bench` fixture) in `env`: its exit code, its output
    passed on to sys.stdout / sys.stderr (for capsys)."""
    def call(argv: list[str]) -> int:
        result = run(*argv, env=env)
        sys.stdout.write(result.stdout)
        sys.stderr.write(result.stderr)
        return result.returncode
    return call


def mt_bench_subprocess(*args: str | os.PathLike[str], env: Mapping[str, str] | None = None,
                        cwd: str | os.PathLike[str] | None = None, timeout: float = 300,
                        entry_point: bool = False) -> CliResult:
    """`mt-bench ARGS` as a real process: `python -m mt_bench_task.cli.main`, or with
    `entry_point=True` the installed `mt-bench` script next to this interpreter."""
    exe = [str(Path(sys.executable).parent / "mt-bench")] if entry_point else [
        sys.executable, "-m", "mt_bench_task.cli.main"]
    p = subprocess.run([*exe, *map(str, args)], capture_output=True, text=True, timeout=timeout,
                       env=None if env is None else dict(env), cwd=cwd, check=False)
    return CliResult(p.returncode, p.stdout, p.stderr)


def publish_offline(*args: str | os.PathLike[str]) -> CliResult:
    """`mt-bench publish ARGS` with the Hub offline and no token, in a subprocess: the Hub client
    reads HF_* at import time."""
    return mt_bench_subprocess("publish", *args, env={**os.environ, "OPENAI_API_KEY": "sk-test",
                                                      "HF_HUB_OFFLINE": "1", "HF_TOKEN": ""})


def _exit_code(code: object, err: io.StringIO | None = None) -> int:
    """sys.exit's rules: None is 0, an int is itself, anything else is printed and is 1."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    if err is not None:
        print(code, file=err)
    return 1


def _check_env(env: Mapping[str, str]) -> None:
    """A value the call sets that this process's HF libraries did not import with is refused (one
    the call leaves out is this process's: the libraries hold it already)."""
    differ = sorted(k for k in env if k.startswith(_IMPORT_TIME_ENV) and env[k] != os.environ.get(k))
    if differ:
        raise ValueError(f"{', '.join(differ)}: read at import time by the HF libraries; "
                         f"run this command with mt_bench_subprocess")


@contextlib.contextmanager
def _isolated(env: Mapping[str, str] | None, cwd: str | os.PathLike[str] | None,
              argv: list[str]) -> Iterator[None]:
    saved_env = dict(os.environ)
    saved_cwd = os.getcwd()
    saved_argv = sys.argv
    loggers = [logging.getLogger("mt_bench_task"), logging.getLogger()]
    saved_logs = [(lg, list(lg.handlers), lg.level) for lg in loggers]
    saved_sigint = signal.getsignal(signal.SIGINT)
    try:
        if env is not None:
            os.environ.clear()
            os.environ.update(env)
        if cwd is not None:
            os.chdir(cwd)
        sys.argv = ["mt-bench", *argv]
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved_env)
        os.chdir(saved_cwd)
        sys.argv = saved_argv
        for lg, handlers, level in saved_logs:
            lg.handlers[:] = handlers
            lg.setLevel(level)
        signal.signal(signal.SIGINT, saved_sigint)
