"""The judge's per-match function and its bounded concurrent map (used by the judging job, `job`).

`judge_match` turns one match (and repeat) into one FastChat record; `judge_matches` runs many with
at most `parallel` in flight. A judge that refuses the first requests of a run with the same error
(HTTP 400: a wrong model family, a gateway refusing the payload) stops the run with that error
instead of writing 160 "$ERROR$" judgments: until the first request is answered, at most
`probe_window(parallel)` matches start, and their records are held back, so nothing is written.
"""
from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from mt_bench_task.core.chat import ChatClient, Completion
from mt_bench_task.core.concurrency import bounded_map
from mt_bench_task.core.errors import DataError
from mt_bench_task.core.judge_spec import JudgeSpec
from mt_bench_task.core.prompts import (
    Match,
    extract_rating,
    extract_verdict,
    map_winner,
    messages,
    user_prompts,
)
from mt_bench_task.core.types import Judgment, PairJudgment, SingleJudgment
from mt_bench_task.judging.request import JUDGE_MAX_TOKENS, JUDGE_TEMPERATURE

T = TypeVar("T")
Job = tuple[Match, "int | None"]  # a match and its repeat index (None: judged once, no "repeat" key)


async def judge_match(match: Match, client: ChatClient, judge: JudgeSpec,
                      repeat: int | None = None,
                      on_completion: Callable[[Completion], None] | None = None) -> Judgment:
    """The judge call(s) of one match; pairwise makes two sequential calls (g1, then g2 swapped).
    The request is FastChat's: temperature 0, max_tokens 2048, n 1."""
    done: list[Completion] = []
    prompts = user_prompts(match)
    for user_prompt in prompts:
        c = await client.complete(judge.api_model, messages(match.prompt, user_prompt),
                                  temperature=JUDGE_TEMPERATURE, max_tokens=JUDGE_MAX_TOKENS)
        if on_completion:
            on_completion(c)
        done.append(c)
    names = [judge.display_name, match.prompt.name]
    extra: dict[str, Any] = {"local_judge": True} if judge.local else {}
    if not judge.fastchat_prompts:
        extra["fastchat_prompts"] = False
    served = list(dict.fromkeys(c.model for c in done if c.model and not c.failed))
    if served and served != [judge.api_model]:  # the alias's snapshot (gpt-4 -> gpt-4-0613);
        extra["served_model"] = ", ".join(served)  # a server echoing the name: FastChat's record
    if judge.references is not None:  # `--references`: which reference answers filled the slots
        extra["references"] = judge.references
    qid, turn = match.question.question_id, match.turn
    if not match.pairwise:
        c = done[0]
        score = extract_rating(c.text)
        if score == -1 and c.fallback_rating is not None:
            score, extra["score_source"] = c.fallback_rating, "rating_probability"
        if repeat is not None:
            extra["repeat"] = repeat
        return SingleJudgment(qid, match.model_1, names, prompts[0], c.text, score, turn,
                              time.time(), extra)
    g1, g2 = (map_winner(extract_verdict(c.text, match.prompt.output_format), game)
              for game, c in zip((1, 2), done))
    assert match.model_2 is not None
    if repeat is not None:
        extra["repeat"] = repeat
    return PairJudgment(qid, match.model_1, match.model_2, g1, g2, names, prompts[0], done[0].text,
                        prompts[1], done[1].text, turn, time.time(), extra)


def job_key(match: Match, repeat: int | None) -> tuple:
    """The identity of a job; equal to the `.key` of the record it produces (resume)."""
    return (*match.key, repeat or 0)


def probe_window(parallel: int) -> int:
    """Matches started before the judge has answered anything: a judge refusing all of them
    stops the run within 3 x `parallel` requests (adapted resends included: at most 2 each)."""
    return max(1, parallel)


class _Probe:
    """Tracks the start of a run until the judge answers once (open) or refuses a whole window
    with the same error (refused: the run stops with that error)."""

    def __init__(self, window: int):
        self.window = window
        self.started = 0
        self.rejections: list[str] = []
        self.open = asyncio.Event()
        self.refused: str | None = None

    def saw(self, c: Completion) -> None:
        if self.open.is_set() or self.refused:
            return
        if c.rejection is None or (self.rejections and c.rejection != self.rejections[0]):
            self.open.set()  # an answer, or failures that differ: not "the judge refuses all"
            return
        self.rejections.append(c.rejection)
        if len(self.rejections) >= self.window:
            self.refused = c.rejection
            self.open.set()

    async def admit(self) -> bool:
        """Wait until this match may start; False when the run stops."""
        while not self.open.is_set() and self.started >= self.window:
            await self.open.wait()
        self.started += 1
        return self.refused is None


async def judge_matches(jobs: list[Job], client: ChatClient, judge: JudgeSpec, parallel: int,
                        on_record: Callable[[Judgment], None] | None = None,
                        progress: bool = True) -> list[Judgment]:
    """Judge with at most `parallel` matches in flight; records in completion order.
    Raises DataError (nothing passed to `on_record`) when the judge refuses every request."""
    probe = _Probe(min(probe_window(parallel), len(jobs)) or 1)
    failed = 0
    records: list[Judgment] = []
    held: list[Judgment] = []  # records finished before the judge answered once

    def emit(rec: Judgment) -> None:
        records.append(rec)
        if on_record:
            on_record(rec)

    async def one(job: Job) -> Judgment | None:
        if not await probe.admit():
            return None
        return await judge_match(job[0], client, judge, job[1], on_completion=probe.saw)

    def done(rec: Judgment | None) -> None:
        nonlocal failed, held
        if rec is None or probe.refused:
            return
        failed += rec.failed
        if not probe.open.is_set():
            held.append(rec)
        else:
            for r in held + [rec]:
                emit(r)
            held = []

    def usage() -> dict[str, Any]:
        u = client.usage
        return {"failed": failed, "tokens": f"{u.prompt_tokens}+{u.completion_tokens}"}

    await bounded_map(jobs, one, parallel, done, desc=f"judging ({judge.display_name})",
                      unit="match", progress=progress, postfix=usage)
    if probe.refused:
        raise DataError(f"the judge refused the first {len(probe.rejections)} requests with the "
                        f"same error, so the run stopped: {probe.refused}")
    for r in held:  # every match finished before an answer (fewer matches than the window)
        emit(r)
    return records


def run_sync(make_coro: Callable[[], Awaitable[T]]) -> T:
    """asyncio.run, or a worker thread when a loop is already running (Jupyter, evaluate)."""
    try:
        asyncio.get_running_loop()
        running = True
    except RuntimeError:
        running = False
    if not running:  # outside the except: its RuntimeError would be every error's __context__
        return asyncio.run(make_coro())  # type: ignore[arg-type]
    import concurrent.futures

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(lambda: asyncio.run(make_coro())).result()  # type: ignore[arg-type]
