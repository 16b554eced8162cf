"""Bare-name loading of the metric: `evaluate.load("mt_bench_judge")` from any directory, offline.

For a bare name that is neither `./mt_bench_judge/mt_bench_judge.py` nor reachable on the Hub,
evaluate 0.4.6 falls back to its modules cache and imports the newest (by mtime)
$HF_MODULES_CACHE/evaluate_modules/metrics/evaluate-metric--mt_bench_judge/<64 hex>/
mt_bench_judge.py.
`register_metric()` copies our script there; it does not import evaluate (or torch), so it is
cheap enough to run on `import mt_bench_task`. The cache dir is computed as evaluate computes it:
$HF_MODULES_CACHE, else $HF_HOME/modules, else ${XDG_CACHE_HOME:-~/.cache}/huggingface/modules.
This relies on evaluate's cache layout; `evaluate.load("<path to>/metrics/mt_bench_judge")` is
the route that needs no registration.
"""
from __future__ import annotations

import hashlib
import os
import sys
import tempfile
import time
from pathlib import Path

METRIC_NAME = "mt_bench_judge"
CACHE_ENTRY = f"evaluate-metric--{METRIC_NAME}"
NO_REGISTER_ENV = "MT_BENCH_NO_REGISTER"  # set to 1 to keep `import mt_bench_task` from writing
_PACKAGE = Path(__file__).resolve().parent.parent  # mt_bench_task/


def metric_script() -> Path:
    """The evaluate script: shipped inside the package if the build put it there, else the
    checkout's `metrics/mt_bench_judge/` (source and editable installs)."""
    candidates = [_PACKAGE / "metrics" / METRIC_NAME / f"{METRIC_NAME}.py",
                  _PACKAGE.parent / "metrics" / METRIC_NAME / f"{METRIC_NAME}.py"]
    for path in candidates:
        if path.is_file():
            return path
    raise FileNotFoundError(f"the {METRIC_NAME} metric script is not installed (looked in "
                            f"{', '.join(str(p.parent) for p in candidates)})")


def modules_cache() -> Path:
    """evaluate's `config.HF_MODULES_CACHE`, without importing evaluate."""
    if os.environ.get("HF_MODULES_CACHE"):
        return Path(os.environ["HF_MODULES_CACHE"])
    xdg = os.environ.get("XDG_CACHE_HOME", "~/.cache")
    hf_home = os.path.expanduser(os.environ.get("HF_HOME", os.path.join(xdg, "huggingface")))
    return Path(hf_home) / "modules"


def register_metric(cache: Path | str | None = None, script: Path | str | None = None) -> Path:
    """Put the metric script into evaluate's modules cache (if absent); returns its cached path.

    Idempotent and safe to run from several processes at once (atomic writes)."""
    src = Path(script) if script else metric_script()
    body = src.read_bytes()
    root = Path(cache) if cache else modules_cache()
    entry = root / "evaluate_modules" / "metrics" / CACHE_ENTRY
    target = entry / hashlib.sha256(body).hexdigest() / f"{METRIC_NAME}.py"
    if not (target.is_file() and target.read_bytes() == body):
        target.parent.mkdir(parents=True, exist_ok=True)
        for pkg in (root, root / "evaluate_modules", entry.parent, entry, target.parent):
            (pkg / "__init__.py").touch(exist_ok=True)
        _write_atomic(target, body)
    _make_newest(entry, target)
    return target


def register_quietly() -> Path | None:
    """For `import mt_bench_task`: register unless $MT_BENCH_NO_REGISTER is set; never raises
    (a read-only home or a wheel without the script only means no bare-name loading)."""
    if os.environ.get(NO_REGISTER_ENV, "") not in ("", "0"):
        return None
    try:
        return register_metric()
    except OSError:
        return None


def _write_atomic(target: Path, body: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-", suffix=".py")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(body)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _make_newest(entry: Path, target: Path) -> None:
    """evaluate picks the newest hash dir by script mtime: make ours the newest."""
    mine = target.stat().st_mtime
    others = [p / target.name for p in entry.iterdir() if p.is_dir() and p != target.parent]
    if any(o.is_file() and o.stat().st_mtime >= mine for o in others):
        now = time.time()
        newest = max(o.stat().st_mtime for o in others if o.is_file())
        os.utime(target, (now, max(now, newest + 1)))


def main() -> int:
    """`python -m mt_bench_task.integrations.register`: print where the metric was registered."""
    try:
        print(register_metric())
    except OSError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
