"""Stage 3, judging: send FastChat's judge prompts, write FastChat's judgment records.

Scorer: single grading 1-10 per turn, or pairwise verdicts in both answer orders (g1/g2).
`JudgeRun` is `mt-bench judge`'s flags; it builds the one `job.JudgingJob` that `calibrate`, the
evaluate metric and the inspect scorer use too, sent by the one `execute.execute`.
Beyond FastChat: resume (only missing or failed judgments are sent), a torn last line after
kill -9 is repaired, bounded concurrent requests, a local judge, and a plan (`--dry-run`).
"""
from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from mt_bench_task.core import data
from mt_bench_task.core.bench import Bench, load_bench, with_references
from mt_bench_task.core.chat import ChatClient
from mt_bench_task.core.data import judgment_file
from mt_bench_task.core.errors import DataError, ParameterError
from mt_bench_task.core.ids import QuestionId, id_text
from mt_bench_task.core.judge_spec import DEFAULT_BASELINE, DEFAULT_JUDGE, JudgeSpec, judge_spec
from mt_bench_task.core.prompts import Mode, messages, user_prompts
from mt_bench_task.core.types import Answer, Judgment, Question
from mt_bench_task.core.workspace import Workspace, open_workspace
from mt_bench_task.core.writer_lock import one_writer
from mt_bench_task.judging.cost import plan_line
from mt_bench_task.judging.execute import SendOptions, execute, run_price
from mt_bench_task.judging.job import JudgeSummary, JudgingJob, JudgingPlan, check_answers

log = logging.getLogger(__name__)

__all__ = ["JudgeRun", "describe_plan", "judge_answers", "run_judging"]


@dataclass(frozen=True)
class JudgeRun:
    """One `mt-bench judge` invocation (FastChat gen_judgment's flags plus ours)."""

    data_dir: Path
    judge_model: str = DEFAULT_JUDGE
    mode: Mode = "single"
    judge_file: Path | None = None
    baseline_model: str = DEFAULT_BASELINE
    model_list: list[str] | None = None
    first_n: int | None = None
    question_begin: int | None = None  # `mt-bench run` judges the slice it generated
    base_url: str | None = None
    allow_partial: bool = False
    dry_run: bool = False
    judge_repeats: int = 1  # each match judged K times; records carry "repeat" when K > 1
    # how the matches are sent (judging/execute.py): parallel, the Batch API, price, pacing
    send: SendOptions = SendOptions()
    references: str | None = None  # "inline" or a FastChat reference file (`bench.with_references`)
    judge_max_tokens: int | None = None  # the judge's first budget; None: FastChat's 2048
    judge_reasoning_effort: str | None = None  # sent as reasoning_effort when set
    request_timeout: float | None = None  # seconds for one answer (None: the client's 120)
    wait_for_lock: bool = True  # another run writing the output: wait for it (False: DataError)

    @property
    def judge(self) -> JudgeSpec:
        return judge_spec(self.judge_model, self.judge_max_tokens, self.judge_reasoning_effort)

    def job(self, bench: Bench) -> JudgingJob:
        """The judging job of these flags on `bench`: the answers read from the data dir and
        checked (FastChat's check_data), the output file to resume from and append to."""
        if self.judge_repeats < 1:
            raise ParameterError(f"judge_repeats must be >= 1, got {self.judge_repeats}",
                                 "judge_repeats")
        questions = bench.questions[self.question_begin: self.first_n]
        models = self.model_list or data.list_answer_models(self.data_dir)
        if not models:
            raise DataError(f"no answer files in {self.data_dir / 'model_answer'}")
        needed = list(dict.fromkeys(models + [self.baseline_model]
                                    if self.mode == "pairwise-baseline" else models))
        answers = {m: data.load_answers(self.data_dir, m, bench.official_answers) for m in needed}
        known = {q.key for q in bench.questions}
        for m, by_qid in answers.items():
            unknown = id_text(set(by_qid) - known)
            if unknown:  # answers to another bench, or a typo'd id: judging them would mislead
                raise DataError(f"{data.answer_file(self.data_dir, m)}: answers for unknown "
                                f"question id(s) {unknown[:5]} (not in {bench.sources['questions']})")
        skipped = check_answers(list(questions), answers, needed, self.allow_partial,
                                2 if bench.judges_turn_2(self.mode) else 1)
        spec = self.judge
        return JudgingJob(bench, answers, tuple(models), spec, self.mode, self.baseline_model,
                          tuple(questions), self.judge_repeats,
                          judgment_file(self.data_dir, spec.display_name, self.mode),
                          repair=not self.dry_run, skipped_partial=skipped)


def describe_plan(run: JudgeRun, job: JudgingJob, plan: JudgingPlan) -> str:
    """The plan `--dry-run` prints: matches, calls (repeats included) and a prompt token estimate."""
    todo = plan.todo
    calls = len(todo) * (2 if run.mode != "single" else 1)
    by_prompt = Counter(m.prompt.name for m, _ in todo)
    chars = sum(len(msg["content"]) for m, _ in todo for up in user_prompts(m)
                for msg in messages(m.prompt, up))
    bench = job.bench
    lines = [(f"judge: {run.judge_model}  mode: {run.mode}  repeats: {run.judge_repeats}  "
              f"output: {job.output}"),
             f"bench: {bench.name}  " + "  ".join(f"{k}: {v}" for k, v in bench.sources.items())]
    if bench.turn_2_note(run.mode):
        lines.append(str(bench.turn_2_note(run.mode)))
    if job.spec.label:
        lines.append(f"NOTE: {job.spec.label}")
    lines += [(f"matches: {len(plan.jobs)} planned, {plan.already_done} already judged, "
               f"{len(todo)} to judge ({calls} judge calls)"),
              (f"prompt tokens: about {chars // 4} (estimate: characters / 4), plus up to "
               f"{job.spec.max_tokens} completion tokens per call"),
              plan_line(calls, chars // 4, job.spec.max_tokens, run_price(run.send, job.spec))]
    lines += [f"  {name}: {n}" for name, n in sorted(by_prompt.items())]
    return "\n".join(lines)


# ---- the front doors ----
def run_judging(run: JudgeRun, client: ChatClient | None = None, *,
                workspace: Workspace | None = None,
                on_plan: Callable[[str], None] | None = None) -> JudgeSummary:
    """`mt-bench judge`: plan, send what is missing through `client`, append each record as it
    completes, then tidy the file. The bench: the workspace's (default: the data dir's, with
    `run.judge_file`'s prompts: `open_workspace`); `on_plan` gets the plan's text (calls, token
    estimate) before anything is sent. The client (`mt_bench_task.clients.make_client`) is needed only when there is
    something to send."""
    if run.send.batch and run.judge.local:  # before the plan: nothing printed, nothing loaded
        raise ParameterError(f"batch needs an OpenAI-compatible judge with a Batch API; "
                             f"{run.judge_model} is judged locally", "batch")
    if workspace is None:
        workspace = open_workspace(data_dir=run.data_dir, judge_file=run.judge_file)
    bench = with_references(workspace.bench, run.references)
    job = run.job(bench)
    if run.dry_run or job.output is None:
        return _judge_job(run, job, client, on_plan)
    with one_writer(job.output, run.wait_for_lock):  # planned under it: nothing sent twice
        return _judge_job(run, job, client, on_plan)


def _judge_job(run: JudgeRun, job: JudgingJob, client: ChatClient | None,
               on_plan: Callable[[str], None] | None) -> JudgeSummary:
    plan = job.plan()
    summary = job.summary(plan)
    if on_plan is not None:
        on_plan(describe_plan(run, job, plan))
    if run.dry_run or not plan.todo:
        return summary
    if client is None:
        raise ParameterError(f"{len(plan.todo)} judgments to send and no judge client given",
                             "client")
    return execute(job, client, run.send, plan)


def judge_answers(questions: list[Question], answers: dict[str, dict[QuestionId, Answer]],
                  client: ChatClient, judge: JudgeSpec | str = DEFAULT_JUDGE, mode: Mode = "single",
                  baseline_model: str | None = None, parallel: int = 8,
                  judge_file: Path | None = None, progress: bool = False,
                  judge_repeats: int = 1, *, bench: Bench | None = None) -> list[Judgment]:
    """In-memory judging (the evaluate metric's path): the records, in FastChat's order.

    `answers` maps model name -> {question_id: Answer}; in pairwise-baseline mode it must also
    hold the baseline's answers. References, judge prompts and the need-reference categories
    come from `bench` (default: packaged MT-bench; `judge_file` replaces its prompts). The judge
    client is passed in, never global.
    """
    if bench is None:
        bench = load_bench(judge_file=judge_file)
    elif judge_file is not None:
        bench = replace(bench, judge_prompts=data.read_judge_prompts(Path(judge_file)))
    spec = judge if isinstance(judge, JudgeSpec) else judge_spec(judge)
    models = tuple(m for m in answers if mode != "pairwise-baseline" or m != baseline_model)
    check_answers(questions, answers, list(answers), allow_partial=False,
                  max_turn=2 if bench.judges_turn_2(mode) else 1)
    job = JudgingJob(bench, answers, models, spec, mode, baseline_model, tuple(questions),
                     judge_repeats)
    # the caller checks the judge is reachable; the records in plan order, whatever finished first
    return execute(job, client, SendOptions(parallel=parallel), progress=progress,
                   check_reachable=False).records
