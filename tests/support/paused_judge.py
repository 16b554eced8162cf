"""`mt-bench ARGS` whose local judge stops at the start of its second batch, for a test that sends
Ctrl-C there (tests/e2e/test_interrupts.py):

    python -m support.paused_judge MARKER ARGS...   (tests/ on PYTHONPATH)

The engine's step for batch 2 writes the size of batch 1 to MARKER (batch 1's records are in the
judgment file by then: the batcher lets its callers write them before it forms the next batch),
then waits where the model's work would run, until a signal ends the process.
"""
from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mt_bench_task.cli.main import main
from mt_bench_task.engine.hf.backend import HfBackend


def pause_at_the_second_batch(marker: Path) -> None:
    start = HfBackend.start_judge

    def paused_start(*args: Any, **kwargs: Any) -> Any:
        engine = start(*args, **kwargs)
        judge, sizes = engine.judge, []

        def step(calls: Sequence[Any]) -> Any:
            if sizes:
                marker.write_text(str(sizes[0]))
                while True:  # the model's work, as long as the test wants
                    time.sleep(0.05)
            sizes.append(len(calls))
            return judge(calls)

        engine.judge = step
        return engine

    HfBackend.start_judge = paused_start  # type: ignore[method-assign]


if __name__ == "__main__":
    pause_at_the_second_batch(Path(sys.argv[1]))
    sys.exit(main(sys.argv[2:]))
