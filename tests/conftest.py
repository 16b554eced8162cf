"""Shared fixtures. Model fixtures use the embedded default model (converted once, then cached)."""
from __future__ import annotations

import importlib.util
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path


def _bytecode_cache_outside_the_trees() -> None:
    """With PYTHONDONTWRITEBYTECODE (no .pyc in the source trees), every interpreter the tests
    start compiles each module it imports again: about half of a fresh `mt-bench`'s start-up
    (openai, pandas, matplotlib, huggingface_hub). The tests' interpreters, this one included,
    keep their bytecode in a cache of their own outside the trees instead (PYTHONPYCACHEPREFIX).
    A prefix the caller chose stays; without PYTHONDONTWRITEBYTECODE nothing changes."""
    if not sys.dont_write_bytecode or sys.pycache_prefix or os.environ.get("PYTHONPYCACHEPREFIX"):
        return
    prefix = str(Path(tempfile.gettempdir()) / f"mt-bench-tests-pycache-{os.getuid()}")
    sys.pycache_prefix, sys.dont_write_bytecode = prefix, False
    os.environ["PYTHONPYCACHEPREFIX"] = prefix
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)


def _a_share_of_the_cores_per_worker() -> None:
    """Under pytest-xdist (`-n auto`, pyproject's addopts) the workers run side by side: each
    gets its share of the cores for torch's threads (OMP_NUM_THREADS, read when torch is first
    imported, and inherited by the subprocesses it starts) instead of every worker spinning a
    thread per core. A value the caller set stays."""
    workers = os.environ.get("PYTEST_XDIST_WORKER_COUNT")
    if workers and "OMP_NUM_THREADS" not in os.environ:
        os.environ["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // int(workers)))


_bytecode_cache_outside_the_trees()  # before the heavy imports of the test modules
_a_share_of_the_cores_per_worker()  # before torch is imported

import pytest
from support.cli import run_in_process
from support.mock_hub import mock_hub  # noqa: F401  (the Hub-server fixture, for every test module)

# tests/vllm_engine/ runs vLLM for real: only where it is installed (CI: a venv of its own, .ci/run;
# tests/engine/test_engine_seam.py checks that CI runs it)
collect_ignore = [] if importlib.util.find_spec("vllm") else ["vllm_engine"]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    """Under CI (CI=true) a skipped test is a failed one: a test that cannot run there must say so."""
    outcome = yield
    report = outcome.get_result()
    if report.skipped and os.environ.get("CI", "").lower() in ("1", "true") \
            and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = f"skipped under CI, which counts as a failure: {report.longrepr}"


@pytest.fixture
def mt_bench():  # type: ignore[no-untyped-def]
    """`mt_bench(*args, env=None, cwd=None) -> (returncode, stdout, stderr)`: the CLI in this
    process, its exit code as the entry point gives it, the process's state put back after
    (tests/support/cli.py). Subprocesses only where the process itself is the point: tests/e2e."""
    return run_in_process


@pytest.fixture(scope="session")
def default_model_dir() -> Path:
    """The converted SmolLM2-135M-Instruct dir (bf16 safetensors); converts on first use (~25 s)."""
    from mt_bench_task.engine.models import default_model_dir as _default_model_dir

    return _default_model_dir()


@pytest.fixture(scope="session")
def model_dir_without_chat_template(default_model_dir: Path,
                                    tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the default model whose tokenizer has no chat template (weights symlinked)."""
    out = tmp_path_factory.mktemp("no-template-model")
    for f in default_model_dir.iterdir():
        if f.name == "chat_template.jinja":
            continue
        if f.suffix == ".safetensors":
            (out / f.name).symlink_to(f)
        else:
            shutil.copy2(f, out / f.name)
    cfg_path = out / "tokenizer_config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg.pop("chat_template", None)
    cfg_path.write_text(json.dumps(cfg, indent=2))
    return out
