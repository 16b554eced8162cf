"""judging/execute.py: the one way a job is sent. It asks the client what it can do (pace, batch)
through the ChatClient protocol, and hands the records back in plan order."""
from __future__ import annotations

import asyncio

import pytest

from mt_bench_task.core.bench import load_bench
from mt_bench_task.core.chat import ChatClientBase, Completion
from mt_bench_task.core.errors import ParameterError
from mt_bench_task.core.judge_spec import judge_spec
from mt_bench_task.judging.call import job_key
from mt_bench_task.judging.execute import SendOptions, execute
from mt_bench_task.judging.job import JudgingJob
from mt_bench_task.outputs.calibration import reference_set


class SlowFirstJudge(ChatClientBase):
    """Answers the first requests last, so completion order is not plan order; records the
    limits it was asked to keep."""

    def __init__(self) -> None:
        super().__init__()
        self.limits: list[tuple[int | None, int | None]] = []
        self.calls = 0

    def limit_rate(self, max_requests_per_minute, max_tokens_per_minute, max_wait=None) -> None:
        self.limits.append((max_requests_per_minute, max_tokens_per_minute))

    async def complete(self, model, messages, *, temperature, max_tokens):
        self.calls += 1
        await asyncio.sleep(0.02 if self.calls <= 2 else 0)
        return Completion("Rating: [[7]]")


def _job(tmp_path=None) -> JudgingJob:
    bench = load_bench()
    models, answers = reference_set(["alpaca-13b"])
    return JudgingJob(bench, answers, tuple(models), judge_spec("gpt-4"), "single",
                      questions=tuple(bench.questions[:3]),
                      output=None if tmp_path is None else tmp_path / "gpt-4_single.jsonl")


def test_execute_paces_through_the_protocol_and_returns_records_in_plan_order():
    job, judge = _job(), SlowFirstJudge()
    plan = job.plan()
    s = execute(job, judge, SendOptions(parallel=4, max_requests_per_minute=60), plan,
                progress=False)
    assert judge.limits == [(60, None)]
    assert [r.key for r in s.records] == [job_key(*j) for j in plan.jobs]
    assert (s.sent, s.failed, s.planned) == (len(plan.jobs), 0, len(plan.jobs))


def test_a_client_without_a_batch_api_is_a_one_line_error_and_nothing_is_written(tmp_path):
    job, judge = _job(tmp_path), SlowFirstJudge()
    with pytest.raises(ParameterError, match="batch needs an OpenAI-compatible judge"):
        execute(job, judge, SendOptions(batch=True), progress=False)
    assert judge.calls == 0 and not (tmp_path / "gpt-4_single.jsonl").exists()
