"""A fake local engine behind the engine seam (engine/base.py): requests queue up as submitted and
come back one per `step`, answered by the subclass's `answer`; `submitted` keeps every request
in order for the test to read."""
from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from mt_bench_task.core.bench import load_bench
from mt_bench_task.core.thoughts import ThinkTags
from mt_bench_task.engine.base import GenRequest, GenResult
from mt_bench_task.engine.driver import AnswerSink, Work, drive


class QueuedEngine:
    name = "queued"
    stop_token_ids = frozenset({2})
    think_tags = ThinkTags()  # a model that does not think

    def __init__(self) -> None:
        self.waiting: list[GenRequest] = []
        self.submitted: list[GenRequest] = []
        self.closed = False

    @property
    def busy(self) -> bool:
        return bool(self.waiting)

    def submit(self, requests: Sequence[GenRequest]) -> None:
        self.waiting += requests
        self.submitted += requests

    def step(self) -> list[GenResult]:
        return [self.answer(self.waiting.pop(0))]

    def answer(self, r: GenRequest) -> GenResult:
        raise NotImplementedError

    def close(self) -> None:
        self.closed = True


def drive_questions(engine: QueuedEngine, out: Path, ids: Sequence[int], choices: int = 1,
                    **work: int) -> tuple[list[dict], int]:
    """MT-bench's questions `ids` through `engine` by the driver (answer budget 32, model "m"):
    the answer records written to `out`, and the tokens counted. `work`: Work's
    max_thinking_tokens."""
    bench = load_bench()
    questions = [q for q in bench.questions if q.question_id in ids]
    sink = AnswerSink(out, len(questions), "test")
    drive(engine, Work(engine, questions, bench.temperature, choices, 32, "m",
                       think_tags=engine.think_tags, **work), sink)
    sink.close()
    return [json.loads(line) for line in out.read_text().splitlines()], sink.tokens
