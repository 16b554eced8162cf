"""Stage 3, judging: send FastChat's judge prompts, write FastChat's judgment records.

Scorer: single grading 1-10 per turn, or pairwise verdicts in both answer orders (g1/g2).
Beyond FastChat: resume (only missing or failed judgments are sent), a torn last line after
kill -9 is repaired, bounded concurrent requests, a local judge, and a plan (`--dry-run`).
"""
from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from mt_bench_task.core import data
from mt_bench_task.core.bench import Bench, load_bench, with_references
from mt_bench_task.core.chat import ChatClient
from mt_bench_task.core.data import judgment_file
from mt_bench_task.core.errors import DataError, ParameterError
from mt_bench_task.core.jsonl import JsonlAppender, write_lines_atomic
from mt_bench_task.core.judge_runner import (
    JUDGE_MAX_TOKENS,
    JUDGE_TEMPERATURE,
    Job,
    job_key,
    judge_match,
    judge_matches,
    run_sync,
)
from mt_bench_task.core.judges import JudgeSpec, is_mt_bench_id, judge_spec
from mt_bench_task.core.judges import make_client as make_judge_client
from mt_bench_task.core.prompts import Match, Mode, build_matches, messages, user_prompts
from mt_bench_task.core.types import Answer, Judgment, Question, QuestionId, id_text

log = logging.getLogger(__name__)

__all__ = [  # judge_runner's names stay importable from here
    "JUDGE_MAX_TOKENS",
    "JUDGE_TEMPERATURE",
    "JudgeRun",
    "JudgeSummary",
    "check_answers",
    "describe_plan",
    "judge_answers",
    "judge_display_name",
    "judge_into",
    "judge_match",
    "judge_matches",
    "make_client",
    "plan",
    "repeat_jobs",
    "run_judging",
    "run_sync",
]


@dataclass(frozen=True)
class JudgeRun:
    """One `mt-bench judge` invocation (FastChat gen_judgment's flags plus ours)."""

    data_dir: Path
    judge_model: str = "gpt-4"
    mode: Mode = "single"
    judge_file: Path | None = None
    baseline_model: str = "gpt-3.5-turbo"
    model_list: list[str] | None = None
    parallel: int = 1
    first_n: int | None = None
    question_begin: int | None = None  # `mt-bench run` judges the slice it generated
    base_url: str | None = None
    allow_partial: bool = False
    dry_run: bool = False
    judge_repeats: int = 1  # each match judged K times; records carry "repeat" when K > 1
    references: str | None = None  # "inline" or a FastChat reference file (`bench.with_references`)

    @property
    def judge(self) -> JudgeSpec:
        return judge_spec(self.judge_model, self.judge_file)


@dataclass
class JudgeSummary:
    planned: int = 0
    already_done: int = 0
    sent: int = 0
    failed: int = 0
    skipped_partial: int = 0
    output: Path | None = None
    usage: Counter = field(default_factory=Counter)
    adaptations: list[str] = field(default_factory=list)  # request changes the judge required
    label: str | None = None  # "judged by X: not comparable with published MT-bench", or None

    @property
    def ok(self) -> bool:
        return self.failed == 0

    def closing_line(self) -> str:
        u = self.usage
        return (f"judged {self.sent} matches ({self.failed} failed after retries, "
                f"{self.already_done} already done; tokens used: {u['prompt_tokens']} prompt + "
                f"{u['completion_tokens']} completion) -> {self.output}")


# ---- planning: which matches, what is already done ----
def check_answers(questions: list[Question], answers: dict[str, dict[QuestionId, Answer]],
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


def plan(run: JudgeRun, bench: Bench) -> tuple[list[Job], list[Job], Path, int]:
    """(all jobs, those still to send, output file, turns skipped for partial answers).
    A job is a match and its repeat (None when judged once: FastChat's record, no "repeat")."""
    if run.judge_repeats < 1:
        raise ParameterError(f"judge_repeats must be >= 1, got {run.judge_repeats}", "judge_repeats")
    all_questions = list(bench.questions)
    questions = all_questions[run.question_begin: run.first_n]
    models = run.model_list or data.list_answer_models(run.data_dir)
    if run.mode == "pairwise-baseline":
        models_needed = list(dict.fromkeys(models + [run.baseline_model]))
    else:
        models_needed = models
    if not models:
        raise DataError(f"no answer files in {run.data_dir / 'model_answer'}")
    answers = {m: data.load_answers(run.data_dir, m, bench.official_answers) for m in models_needed}
    known = {q.key for q in all_questions}
    for m, by_qid in answers.items():
        unknown = id_text(set(by_qid) - known)
        if unknown:  # answers to another bench, or a typo'd id: judging them would mislead
            raise DataError(f"{data.answer_file(run.data_dir, m)}: answers for unknown question "
                            f"id(s) {unknown[:5]} (not in {bench.sources['questions']})")
    skipped = check_answers(questions, answers, models_needed, run.allow_partial,
                            2 if bench.judges_turn_2(run.mode) else 1)
    judge_name = run.judge.display_name
    matches = build_matches(questions, answers, models, bench.judge_prompts, run.mode, judge_name,
                            bench.references, run.baseline_model, bench.need_ref_categories)
    jobs = repeat_jobs(matches, run.judge_repeats)
    out = judgment_file(run.data_dir, judge_name, run.mode)
    done: set[tuple] = set()
    if out.exists():
        records = data.read_judgments(out, run.mode, repair_torn_tail=not run.dry_run)
        check_references(out, records, bench.references_label)
        done = {r.key for r in records if not r.failed}
    return jobs, [j for j in jobs if job_key(*j) not in done], out, skipped


def check_references(out: Path, records: Sequence[Judgment], label: str | None) -> None:
    """A judgment file holds one choice of references: resuming with another would mix them."""
    other = {r.references for r in records} - {label}
    if other:
        def name(x: str | None) -> str:
            return "FastChat's (the judge's reference file)" if x is None else repr(x)

        raise DataError(f"{out}: judged with references {', '.join(sorted(map(name, other)))}; "
                        f"this run uses {name(label)}: judge into another data dir")


def repeat_jobs(matches: list[Match], repeats: int) -> list[Job]:
    """Each match `repeats` times (repeat-major, so K -> K+1 appends whole rounds)."""
    if repeats == 1:
        return [(m, None) for m in matches]
    return [(m, i) for i in range(repeats) for m in matches]


def judge_display_name(judge_model: str) -> str:
    """The name written into records and file names (see `judges.JudgeSpec.display_name`)."""
    return judge_spec(judge_model).display_name


def describe_plan(run: JudgeRun, jobs: list[Job], todo: list[Job], out: Path,
                  bench: Bench | None = None) -> str:
    """The plan `--dry-run` prints: matches, calls (repeats included) and a prompt token estimate."""
    calls = len(todo) * (2 if run.mode != "single" else 1)
    by_prompt = Counter(m.prompt.name for m, _ in todo)
    chars = sum(len(msg["content"]) for m, _ in todo for up in user_prompts(m)
                for msg in messages(m.prompt, up))
    spec = bench_spec(run.judge, bench) if bench is not None else run.judge
    lines = [(f"judge: {run.judge_model}  mode: {run.mode}  repeats: {run.judge_repeats}  "
              f"output: {out}")]
    if bench is not None:  # which files make up the bench (a data dir's own win)
        lines.append(f"bench: {bench.name}  "
                     + "  ".join(f"{k}: {v}" for k, v in bench.sources.items()))
        if bench.turn_2_note(run.mode):
            lines.append(str(bench.turn_2_note(run.mode)))
    if spec.label:
        lines.append(f"NOTE: {spec.label}")
    lines += [(f"matches: {len(jobs)} planned, {len(jobs) - len(todo)} already judged, "
               f"{len(todo)} to judge ({calls} judge calls)"),
              (f"prompt tokens: about {chars // 4} (estimate: characters / 4), plus up to "
               f"{JUDGE_MAX_TOKENS} completion tokens per call")]
    lines += [f"  {name}: {n}" for name, n in sorted(by_prompt.items())]
    return "\n".join(lines)


def make_client(run: JudgeRun) -> ChatClient:
    return make_judge_client(run.judge, base_url=run.base_url)


def run_judging(run: JudgeRun, client: ChatClient | None = None, *,
                bench: Bench | None = None,
                on_plan: Callable[[str], None] | None = None) -> JudgeSummary:
    """Plan, send what is missing, append each record as it completes, then tidy the file.
    `bench` defaults to `load_bench("mt_bench", run.data_dir, run.judge_file)`; `on_plan` gets
    the plan's text (calls, token estimate) before anything is sent."""
    bench = bench or load_bench(data_dir=run.data_dir, judge_file=run.judge_file)
    bench = with_references(bench, run.references)
    jobs, todo, out, skipped = plan(run, bench)
    spec = bench_spec(run.judge, bench)
    summary = JudgeSummary(planned=len(jobs), already_done=len(jobs) - len(todo),
                           skipped_partial=skipped, output=out, label=spec.label)
    if on_plan is not None:
        on_plan(describe_plan(run, jobs, todo, out, bench))
    if run.dry_run or not todo:
        return summary
    chat = client or make_client(run)
    parallel = max(run.parallel, 8) if spec.local and run.parallel == 1 else run.parallel
    records = judge_into(out, todo, chat, spec, parallel, run.mode)
    summary.sent = len(records)
    summary.failed = sum(r.failed for r in records)
    summary.usage.update(vars(chat.usage))
    summary.adaptations = list(chat.adaptations)
    return summary


def judge_into(out: Path, todo: list[Job], chat: ChatClient, spec: JudgeSpec,
               parallel: int, mode: str = "single") -> list[Judgment]:
    """Check the judge answers, judge `todo`, append each record to `out` as it completes, then
    drop the $ERROR$ rows a later success superseded (shared by `judge` and `calibrate`)."""
    with JsonlAppender(out) as sink:
        async def go() -> list[Judgment]:
            try:
                await chat.check_reachable()
                return await judge_matches(todo, chat, spec, parallel,
                                           on_record=lambda r: sink.write(r.to_json()))
            finally:
                await chat.close()
        records = run_sync(go)
    _drop_superseded_failures(out, mode)
    return records


def bench_spec(spec: JudgeSpec, bench: Bench) -> JudgeSpec:
    """A bench whose judge prompts are not FastChat's (a data dir's own) makes any judge not
    comparable, as `--judge-file` does; so do `--references` (recorded in every judgment) and
    question ids that are not MT-bench's."""
    return replace(spec, fastchat_prompts=spec.fastchat_prompts and bench.fastchat_prompts,
                   references=bench.references_label,
                   mt_bench_questions=all(is_mt_bench_id(q.question_id) for q in bench.questions))


def _drop_superseded_failures(path: Path, mode: str) -> None:
    """Remove $ERROR$ rows whose match was judged successfully later; raw bytes of others kept."""
    lines = data.judgment_lines(path, mode)
    good = {r.key for _, r in lines if not r.failed}
    keep = [ln for ln, r in lines if not (r.failed and r.key in good)]
    if len(keep) != len(lines):
        write_lines_atomic(path, keep)


def judge_answers(questions: list[Question], answers: dict[str, dict[QuestionId, Answer]],
                  client: ChatClient, judge: JudgeSpec | str = "gpt-4", mode: Mode = "single",
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
    spec = judge if isinstance(judge, JudgeSpec) else judge_spec(judge, judge_file)
    spec = bench_spec(spec, bench)
    models = [m for m in answers if mode != "pairwise-baseline" or m != baseline_model]
    check_answers(questions, answers, list(answers), allow_partial=False,
                  max_turn=2 if bench.judges_turn_2(mode) else 1)
    matches = build_matches(questions, answers, models, bench.judge_prompts, mode,
                            spec.display_name, bench.references, baseline_model,
                            bench.need_ref_categories)
    jobs = repeat_jobs(matches, judge_repeats)

    async def go() -> list[Judgment]:
        try:
            return await judge_matches(jobs, client, spec, parallel, progress=progress)
        finally:
            await client.close()  # in this loop: HTTP sessions cannot outlive it (client reopens)

    records = run_sync(go)
    order = {job_key(*j): i for i, j in enumerate(jobs)}  # deterministic, whatever finished first
    return sorted(records, key=lambda r: order[r.key])
