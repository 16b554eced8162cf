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
from mt_bench_task.core.thoughts import strip_thoughts
from mt_bench_task.core.types import Judgment, PairJudgment, SingleJudgment
from mt_bench_task.judging.request import JUDGE_MAX_TOKENS, JUDGE_TEMPERATURE

T = TypeVar("T")
Job = tuple[Match, "int | None"]  # a match and its repeat index (None: judged once, no "repeat" key)


class BudgetLadder:
    """A run's judge budgets (`JudgeSpec.budgets`): a verdict the token limit cut is asked again
    with the next one; once a larger one was needed, later calls start there (a judge that
    thinks past 2048 tokens on one prompt does on the next)."""

    def __init__(self, budgets: tuple[int, ...]) -> None:
        self.budgets, self.start = budgets, 0

    def rest(self) -> tuple[int, ...]:
        return self.budgets[self.start:]

    def needed(self, budget: int) -> None:
        self.start = max(self.start, self.budgets.index(budget))


def verdict_text(c: Completion) -> str:
    """What the rating is read from: the judge's answer, less an inline thought (a judge that
    thinks in `<think>` tags may write `[[3]]` while thinking, then `Rating: [[7]]`)."""
    return strip_thoughts(c.text)


def cut_off(c: Completion, rated: Callable[[str], bool]) -> bool:
    """The judge's token limit cut the verdict: finish_reason "length" and no rating."""
    return not c.failed and c.finish_reason == "length" and not rated(verdict_text(c))


async def ask(client: ChatClient, judge: JudgeSpec, msgs: list[dict[str, str]],
              rated: Callable[[str], bool], ladder: BudgetLadder,
              on_completion: Callable[[Completion], None] | None = None) -> tuple[Completion, int]:
    """One judge call, asked again with a larger budget while the limit cut the verdict:
    (the last completion, the budget it had)."""
    # sent only when set: a custom client without the keyword keeps working
    effort = {"reasoning_effort": judge.reasoning_effort} if judge.reasoning_effort else {}
    for budget in ladder.rest():
        c = await client.complete(judge.api_model, msgs, temperature=JUDGE_TEMPERATURE,
                                  max_tokens=budget, **effort)
        if on_completion:
            on_completion(c)
        if not cut_off(c, rated):
            ladder.needed(budget)
            break
    return c, budget


async def judge_match(match: Match, client: ChatClient, judge: JudgeSpec,
                      repeat: int | None = None,
                      on_completion: Callable[[Completion], None] | None = None,
                      ladder: BudgetLadder | None = None) -> Judgment:
    """The judge call(s) of one match; pairwise makes two sequential calls (g1, then g2 swapped).
    The request is FastChat's: temperature 0, max_tokens 2048, n 1; a verdict the limit cut is
    asked again with a larger budget (`ask`), and the record says the budget used
    (`judge_max_tokens`) and a verdict still cut (`judge_finish_reason`: "length")."""
    ladder = ladder or BudgetLadder(judge.budgets)
    fmt = match.prompt.output_format
    if match.pairwise:
        def rated(t: str) -> bool:
            return extract_verdict(t, fmt) != "error"
    else:
        def rated(t: str) -> bool:
            return extract_rating(t) != -1
    done: list[Completion] = []
    budgets: list[int] = []
    prompts = user_prompts(match)
    for user_prompt in prompts:
        c, budget = await ask(client, judge, messages(match.prompt, user_prompt), rated, ladder,
                              on_completion)
        done.append(c)
        budgets.append(budget)
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
    score = extract_rating(verdict_text(done[0]))
    if not match.pairwise and score == -1 and done[0].fallback_rating is not None:
        score, extra["score_source"] = done[0].fallback_rating, "rating_probability"
    if repeat is not None:
        extra["repeat"] = repeat
    if max(budgets) != JUDGE_MAX_TOKENS and not judge.local:  # FastChat's budget: its record
        extra["judge_max_tokens"] = max(budgets)
    if any(cut_off(c, rated) for c in done):
        extra["judge_finish_reason"] = "length"  # no rating: the limit cut it, even the last
    if not match.pairwise:
        return SingleJudgment(qid, match.model_1, names, prompts[0], done[0].text, score, turn,
                              time.time(), extra)
    g1, g2 = (map_winner(extract_verdict(verdict_text(c), fmt), game)
              for game, c in zip((1, 2), done))
    assert match.model_2 is not None
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

    ladder = BudgetLadder(judge.budgets)

    async def one(job: Job) -> Judgment | None:
        if not await probe.admit():
            return None
        return await judge_match(job[0], client, judge, job[1], on_completion=probe.saw,
                                 ladder=ladder)

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
