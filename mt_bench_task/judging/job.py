"""The judging job: one value for every judging run (which answers to which questions of
which bench, by which judge, in which mode, how many repeats, where records go), with `plan()`
and `arun(client)`. `mt-bench judge` (`run.JudgeRun`), `calibrate`, the evaluate metric and the
inspect scorer all send one through `execute.execute`, so their records, labels and numbers agree.
"""
from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path

from mt_bench_task.core import data
from mt_bench_task.core.bench import Bench
from mt_bench_task.core.chat import ChatClient
from mt_bench_task.core.errors import DataError, ParameterError
from mt_bench_task.core.ids import QuestionId
from mt_bench_task.core.jsonl import JsonlAppender, write_lines_atomic
from mt_bench_task.core.judge_spec import (
    JUDGE_MAX_TOKENS,
    LOCAL_JUDGE_IN_FLIGHT,
    JudgeSpec,
    is_mt_bench_id,
)
from mt_bench_task.core.prompts import Match, Mode, build_matches
from mt_bench_task.core.types import Answer, Judgment, Question
from mt_bench_task.judging.call import Job, job_key, judge_matches
from mt_bench_task.judging.cost import Price, end_lines

log = logging.getLogger(__name__)


@dataclass
class JudgeSummary:
    planned: int = 0
    already_done: int = 0
    sent: int = 0
    failed: int = 0
    unrated: int = 0  # answered without a rating (score -1 / winner "error"): not failures
    skipped_partial: int = 0
    output: Path | None = None
    usage: Counter = field(default_factory=Counter)
    adaptations: list[str] = field(default_factory=list)  # request changes the judge required
    label: str | None = None  # "judged by X: not comparable with published MT-bench", or None
    batch_ids: list[str] = field(default_factory=list)
    batch_pending: bool = False  # submitted (or still running): a later --batch run collects
    unfinished: int = 0  # no result from an expired/cancelled/failed batch: sent by the next run
    batch_errors: list[str] = field(default_factory=list)  # batches that did not complete, why
    served_models: list[str] = field(default_factory=list)  # what the server said answered
    price: Price | None = None
    records: list[Judgment] = field(default_factory=list, repr=False)  # sent now, in plan order

    @property
    def ok(self) -> bool:
        return self.failed == 0 and self.unfinished == 0 and self.unrated == 0

    def cut_note(self) -> str:
        """Why some judgments have no rating: the judge's token limit cut the verdict (a judge
        that thinks), said with the budget it had; "" when none was cut."""
        cut = [r for r in self.records if r.unrated and r.verdict_cut]
        if not cut:
            return ""
        budget = max(r.judge_max_tokens or JUDGE_MAX_TOKENS for r in cut)
        return (f"; {len(cut)} of them cut by the judge's token limit at {budget} tokens (a judge "
                f"that thinks: set --judge-max-tokens or --judge-reasoning-effort low; the next "
                f"run sends them again)")

    def end_lines(self) -> list[str]:
        """The closing line, the batch's fate, who served, the cost, the failure share and the
        judgments without a rating; while a batch runs, the one line that says so (judge and
        calibrate alike)."""
        if self.batch_pending:
            return [f"batch {', '.join(self.batch_ids)} submitted or still running; run the same "
                    f"command with --batch again to collect it (nothing is sent twice)"]
        lines = [self.closing_line()]
        if self.served_models:
            lines.append(f"served by: {', '.join(self.served_models)}")
        u = self.usage
        lines += end_lines(u["requests"], u["prompt_tokens"], u["completion_tokens"],
                           self.failed, self.sent, self.price)
        if self.unfinished:  # instead of "failures: 0 of 0 judgments" when a batch failed
            why = "; ".join(self.batch_errors) or "the batch expired, was cancelled or failed"
            judged = f"{self.failed} of {self.sent} judgments failed, and " if self.sent else ""
            lines[-1] = (f"failures: {judged}{self.unfinished} of {self.sent + self.unfinished} "
                         f"matches got no result ({why}): the next run sends them")
        if self.unrated:
            lines.append(f"{self.unrated} of {self.sent} judgments have no rating (score -1 / "
                         f"winner \"error\"){self.cut_note()}; they are not scores")
        return lines

    def closing_line(self) -> str:
        u = self.usage
        return (f"judged {self.sent} matches ({self.failed} failed after retries, "
                f"{self.already_done} already done; tokens used: {u['prompt_tokens']} prompt + "
                f"{u['completion_tokens']} completion) -> {self.output}")


# ---- the judging job ----
@dataclass(frozen=True)
class JudgingPlan:
    """What a job will do: every (match, repeat) in FastChat's order, and those still to send."""

    jobs: list[Job]
    todo: list[Job]

    @property
    def already_done(self) -> int:
        return len(self.jobs) - len(self.todo)


@dataclass(frozen=True)
class JudgingJob:
    """One judging run: `models`' answers to `questions` of `bench`, judged by `judge` in `mode`
    (`answers` holds the baseline's too in pairwise-baseline mode), each match `repeats` times.
    With `output`, records already there are not sent again and new ones are appended as they
    complete; without, the records come back in memory only."""

    bench: Bench
    answers: Mapping[str, Mapping[QuestionId, Answer]]
    models: tuple[str, ...]
    judge: JudgeSpec
    mode: Mode = "single"
    baseline_model: str | None = None
    questions: tuple[Question, ...] | None = None  # default: all the bench's
    repeats: int = 1
    output: Path | None = None
    repair: bool = True  # drop a torn last line of `output` (not in a dry run: it writes)
    skipped_partial: int = 0  # turns left out for partial answers (allow_partial)

    @cached_property  # read by plan, run and summary: the prompts file is compared once
    def spec(self) -> JudgeSpec:
        """The judge as its records name it. The bench decides, once, what makes any judge not
        comparable: judge prompts other than FastChat's, `--references` (recorded in every
        judgment), question ids that are not MT-bench's."""
        bench = self.bench
        return replace(self.judge, fastchat_prompts=self.judge.fastchat_prompts and bench.fastchat_prompts,
                       references=bench.references_label,
                       mt_bench_questions=all(is_mt_bench_id(q.question_id) for q in bench.questions))

    def plan(self) -> JudgingPlan:
        if self.repeats < 1:
            raise ParameterError(f"judge_repeats must be >= 1, got {self.repeats}", "judge_repeats")
        questions = list(self.bench.questions if self.questions is None else self.questions)
        answers = {m: dict(a) for m, a in self.answers.items()}
        matches = build_matches(questions, answers, list(self.models), self.bench.judge_prompts,
                                self.mode, self.spec.display_name, self.bench.references,
                                self.baseline_model, self.bench.need_ref_categories)
        jobs = _repeat(matches, self.repeats)
        done: set[tuple] = set()
        if self.output is not None and self.output.is_file():
            records = data.read_judgments(self.output, self.mode, repair_torn_tail=self.repair)
            check_references(self.output, records, self.bench.references_label)
            # $ERROR$ and verdicts the judge's limit cut are sent again (with a larger budget)
            done = {r.key for r in records if not r.failed and not r.verdict_cut}
        return JudgingPlan(jobs, [j for j in jobs if job_key(*j) not in done])

    async def arun(self, client: ChatClient, todo: list[Job] | None = None, parallel: int = 8,
                   progress: bool = True) -> list[Judgment]:
        """Judge `todo` (default: the plan's) in the caller's event loop; records in completion
        order, each appended to `output` as it completes."""
        todo = self.plan().todo if todo is None else todo
        if self.judge.local:
            parallel = max(parallel, LOCAL_JUDGE_IN_FLIGHT)
        if self.output is None:
            return await judge_matches(todo, client, self.spec, parallel, progress=progress)
        with JsonlAppender(self.output).open() as sink:  # unwritable: fails before any request
            records = await judge_matches(todo, client, self.spec, parallel, progress=progress,
                                          on_record=lambda r: sink.write(r.to_json()))
        drop_superseded_failures(self.output, self.mode)
        return records

    @staticmethod
    def in_plan_order(plan: JudgingPlan, records: Sequence[Judgment]) -> list[Judgment]:
        """`records` in the plan's (FastChat's) order, whatever finished first."""
        order = {job_key(*j): i for i, j in enumerate(plan.jobs)}
        return sorted(records, key=lambda r: order[r.key])

    def summary(self, plan: JudgingPlan) -> JudgeSummary:
        return JudgeSummary(planned=len(plan.jobs), already_done=plan.already_done,
                            skipped_partial=self.skipped_partial, output=self.output,
                            label=self.spec.label)


# ---- planning helpers ----
def check_answers(questions: list[Question], answers: Mapping[str, Mapping[QuestionId, Answer]],
                  models: list[str], allow_partial: bool, max_turn: int = 2) -> int:
    """FastChat's check_data, as an error before any API call instead of a crash halfway.
    `max_turn` 1: the judge prompts judge turn 1 only, so answers need only turn 1."""
    problems, skipped = [], 0
    for m in models:
        missing = [q.question_id for q in questions if q.key not in answers[m]]
        short = [q.question_id for q in questions if q.key in answers[m]
                 and len(answers[m][q.key].turns) < min(len(q.turns), max_turn)]
        skipped += sum(min(len(q.turns), max_turn) for q in questions if q.question_id in missing)
        skipped += len(short)
        if missing or short:
            problems.append(f"model {m!r}: {len(missing)} of {len(questions)} questions unanswered"
                            f"{_ids(missing)}, {len(short)} answers missing turn 2{_ids(short)}")
    if problems and not allow_partial:
        raise ParameterError("incomplete answers (judge what exists with allow_partial): "
                             + "; ".join(problems), "allow_partial")
    for p in problems:
        log.warning("allow_partial: %s", p)
    return skipped


def _ids(ids: list[QuestionId]) -> str:
    return f" (e.g. {', '.join(map(str, ids[:5]))}{', ...' if len(ids) > 5 else ''})" if ids else ""


def check_references(out: Path, records: Sequence[Judgment], label: str | None) -> None:
    """A judgment file holds one choice of references: resuming with another would mix them."""
    other = {r.references for r in records} - {label}
    if other:
        def name(x: str | None) -> str:
            return "FastChat's (the judge's reference file)" if x is None else repr(x)

        raise DataError(f"{out}: judged with references {', '.join(sorted(map(name, other)))}; "
                        f"this run uses {name(label)}: judge into another data dir")


def _repeat(matches: list[Match], repeats: int) -> list[Job]:
    """Each match `repeats` times (repeat-major, so K -> K+1 appends whole rounds); a match
    judged once has no repeat index (FastChat's record, no "repeat" key)."""
    if repeats == 1:
        return [(m, None) for m in matches]
    return [(m, i) for i in range(repeats) for m in matches]


def drop_superseded_failures(path: Path, mode: str) -> None:
    """Remove $ERROR$ rows whose match was judged later, and rows whose verdict the judge's
    limit cut that a later judgment replaced; raw bytes of the others kept."""
    lines = data.judgment_lines(path, mode)
    last = {r.key: i for i, (_, r) in enumerate(lines) if not r.failed}  # the last judgment
    keep = [ln for i, (ln, r) in enumerate(lines)
            if not (r.failed and r.key in last) and not (r.verdict_cut and last[r.key] != i)]
    if len(keep) != len(lines):
        write_lines_atomic(path, keep)
