"""Ctrl-C while the local judge's engine works on a batch (batches run on the event loop's thread):
the command exits 130 at once, the records of the batches before stay, and a re-run judges only
the rest. A stand-in engine takes the model's place; its step for batch 2 is where the SIGINT is
raised, so it lands in the engine's work on any host. (tests/e2e does it to a real process and
the real model.)"""
from __future__ import annotations

import json
import signal
from collections.abc import Sequence

from support.answer_dirs import MODEL, answer_dir

from mt_bench_task.core.judge_spec import EMBEDDED_JUDGE_NAME
from mt_bench_task.engine.hf.backend import HfBackend
from mt_bench_task.engine.local_judge import JudgeCall, JudgeReply


class StandInEngine:
    name = "stand-in"

    def __init__(self, interrupt_at: int | None) -> None:
        self.interrupt_at = interrupt_at
        self.batches: list[int] = []

    def judge(self, calls: Sequence[JudgeCall]) -> list[JudgeReply]:
        self.batches.append(len(calls))
        if len(self.batches) == self.interrupt_at:
            signal.raise_signal(signal.SIGINT)  # Ctrl-C; its handler runs before this returns
            raise AssertionError("Ctrl-C did not stop the engine's step")
        return [JudgeReply(text="Fine. Rating: [[7]]", prompt_tokens=3, completion_tokens=4)
                for _ in calls]

    def close(self) -> None:
        pass


def test_ctrl_c_in_a_batch_exits_130_keeps_the_finished_batch_and_the_next_run_resumes(
        mt_bench, tmp_path, monkeypatch):
    engine = StandInEngine(interrupt_at=2)
    monkeypatch.setattr(HfBackend, "start_judge", lambda *args, **kwargs: engine)
    d = answer_dir(tmp_path)
    out = d / "model_judgment" / f"{EMBEDDED_JUDGE_NAME}_single.jsonl"
    args = ("judge", "--judge-model", "default", "--data-dir", d, "--first-n", "12")

    first = mt_bench(*args)
    assert first.returncode == 130 and "Traceback" not in first.stderr, first.stderr
    assert "interrupted" in first.stderr
    kept = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(kept) == engine.batches[0] < 24 and all(r["model"] == MODEL for r in kept)
    assert len(engine.batches) == 2  # stopped in batch 2, not after the rest

    engine.interrupt_at = None
    again = mt_bench(*args)
    assert again.returncode == 0, again.stderr
    assert f"{len(kept)} already judged, {24 - len(kept)} to judge" in again.stderr
    assert len(out.read_text().splitlines()) == 24
