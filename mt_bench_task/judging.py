"""Stage 3, judging: send FastChat's judge prompts, write FastChat's judgment records.

Scorer: single grading 1-10 per turn, or pairwise verdicts in both answer orders (g1/g2).
Beyond FastChat: resume (only missing or failed judgments are sent), a torn last line after
kill -9 is repaired, bounded concurrent requests, a local judge, and a plan (`--dry-run`).
"""
from __future__ import annotations

import asyncio
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Awaitable, Callable, TypeVar

from . import data
from .jsonl import DataError, JsonlAppender, read_jsonl, write_lines_atomic
from .prompts import (API_ERROR_OUTPUT, Match, Mode, build_matches, extract_rating,
                      extract_verdict, map_winner, messages, user_prompts)
from .scoring import judgment_file
from .types import Answer, ChatClient, Completion, PairJudgment, Question, SingleJudgment

JUDGE_TEMPERATURE = 0.0
JUDGE_MAX_TOKENS = 2048
T = TypeVar("T")


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

    @classmethod
    def from_args(cls, args: Any, data_dir: Path) -> "JudgeRun":
        return cls(data_dir=data_dir, judge_model=args.judge_model, mode=args.mode,
                   judge_file=Path(args.judge_file) if args.judge_file else None,
                   baseline_model=args.baseline_model, model_list=args.model_list,
                   parallel=max(1, args.parallel), first_n=args.first_n,
                   base_url=args.openai_api_base, allow_partial=args.allow_partial,
                   dry_run=args.dry_run)


@dataclass
class JudgeSummary:
    planned: int = 0
    already_done: int = 0
    sent: int = 0
    failed: int = 0
    skipped_partial: int = 0
    output: Path | None = None
    usage: Counter = field(default_factory=Counter)

    @property
    def ok(self) -> bool:
        return self.failed == 0


# ---- one match -> one record ----
def _is_local(judge_model: str) -> bool:
    return judge_model == "default" or Path(judge_model).exists()


async def judge_match(match: Match, client: ChatClient, judge_model: str,
                      local: bool = False) -> SingleJudgment | PairJudgment:
    """The judge call(s) of one match; pairwise makes two sequential calls (g1, then g2 swapped)."""
    done: list[Completion] = []
    prompts = user_prompts(match)
    for user_prompt in prompts:
        done.append(await client.complete(judge_model, messages(match.prompt, user_prompt),
                                          temperature=JUDGE_TEMPERATURE, max_tokens=JUDGE_MAX_TOKENS))
    judge = [judge_model, match.prompt.name]
    extra: dict[str, Any] = {"local_judge": True} if local else {}
    qid, turn = match.question.question_id, match.turn
    if not match.pairwise:
        c = done[0]
        score = extract_rating(c.text)
        if score == -1 and c.fallback_rating is not None:
            score, extra["score_source"] = c.fallback_rating, "rating_probability"
        return SingleJudgment(qid, match.model_1, judge, prompts[0], c.text, score, turn,
                              time.time(), extra)
    g1, g2 = (map_winner(extract_verdict(c.text, match.prompt.output_format), game)
              for game, c in zip((1, 2), done))
    assert match.model_2 is not None
    return PairJudgment(qid, match.model_1, match.model_2, g1, g2, judge, prompts[0], done[0].text,
                        prompts[1], done[1].text, turn, time.time(), extra)


def is_failed(record: dict[str, Any]) -> bool:
    """An API failure ($ERROR$) is not a judgment: resume sends it again."""
    texts = [record.get("judgment"), record.get("g1_judgment"), record.get("g2_judgment")]
    return API_ERROR_OUTPUT in texts


def record_key(record: dict[str, Any]) -> tuple:
    """Same identity as `Match.key`, read off a stored record."""
    model_1 = record.get("model", record.get("model_1"))
    return (record["question_id"], record["turn"], model_1, record.get("model_2", ""),
            record["judge"][1])


async def judge_matches(matches: list[Match], client: ChatClient, judge_model: str, parallel: int,
                        on_record: Callable[[Any], None] | None = None, local: bool = False,
                        progress: bool = True) -> list[Any]:
    """Judge with at most `parallel` matches in flight; records in completion order."""
    from tqdm.auto import tqdm

    sem = asyncio.Semaphore(parallel)
    bar = tqdm(total=len(matches), desc=f"judging ({judge_model})", unit="match",
               disable=not progress, file=sys.stderr)
    failed = 0
    records: list[Any] = []

    async def one(m: Match) -> None:
        nonlocal failed
        async with sem:
            rec = await judge_match(m, client, judge_model, local)
        failed += is_failed(rec.to_dict())
        records.append(rec)
        if on_record:
            on_record(rec)
        usage = usage_of(client)
        bar.set_postfix(failed=failed, tokens=f"{usage.get('prompt_tokens', 0)}+"
                                             f"{usage.get('completion_tokens', 0)}", refresh=False)
        bar.update(1)

    try:
        await asyncio.gather(*(one(m) for m in matches))
    finally:
        bar.close()
    return records


def usage_of(client: Any) -> dict[str, int]:
    """Token and request counters of a client (a dataclass or a dict), for progress and summaries."""
    usage = getattr(client, "usage", None) or {}
    return dict(usage) if isinstance(usage, dict) else dict(vars(usage))


def run_sync(make_coro: Callable[[], Awaitable[T]]) -> T:
    """asyncio.run, or a worker thread when a loop is already running (Jupyter, evaluate)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(make_coro())  # type: ignore[arg-type]
    import concurrent.futures

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(lambda: asyncio.run(make_coro())).result()  # type: ignore[arg-type]


# ---- planning: which matches, what is already done ----
def check_answers(questions: list[Question], answers: dict[str, dict[int, Answer]],
                  models: list[str], allow_partial: bool) -> int:
    """FastChat's check_data, as an error before any API call instead of a crash halfway."""
    problems, skipped = [], 0
    for m in models:
        missing = [q.question_id for q in questions if q.question_id not in answers[m]]
        short = [q.question_id for q in questions if q.question_id in answers[m]
                 and len(answers[m][q.question_id].turns) < len(q.turns)]
        skipped += sum(len(q.turns) for q in questions if q.question_id in missing)
        skipped += len(short)
        if missing or short:
            problems.append(f"model {m!r}: {len(missing)} of {len(questions)} questions unanswered"
                            f"{_ids(missing)}, {len(short)} answers missing turn 2{_ids(short)}")
    if problems and not allow_partial:
        raise DataError("incomplete answers (judge what exists with --allow-partial): "
                        + "; ".join(problems))
    for p in problems:
        print(f"--allow-partial: {p}", file=sys.stderr)
    return skipped


def _ids(ids: list[int]) -> str:
    return f" (e.g. {', '.join(map(str, ids[:5]))}{', ...' if len(ids) > 5 else ''})" if ids else ""


def plan(run: JudgeRun) -> tuple[list[Match], list[Match], Path, int]:
    """(all matches, those still to send, output file, turns skipped for partial answers)."""
    all_questions = data.load_questions(run.data_dir)
    questions = all_questions[run.question_begin: run.first_n]
    models = run.model_list or data.list_answer_models(run.data_dir)
    if run.mode == "pairwise-baseline":
        models_needed = list(dict.fromkeys(models + [run.baseline_model]))
    else:
        models_needed = models
    if not models:
        raise DataError(f"no answer files in {run.data_dir / 'model_answer'}")
    answers = {m: data.load_answers(run.data_dir, m) for m in models_needed}
    known = {q.question_id for q in all_questions}
    for m, by_qid in answers.items():
        unknown = sorted(set(by_qid) - known)
        if unknown:  # answers to another bench, or a typo'd id: judging them would mislead
            raise DataError(f"{data.answer_file(run.data_dir, m)}: answers for unknown question "
                            f"id(s) {unknown[:5]} (not in {data.questions_file(run.data_dir)})")
    skipped = check_answers(questions, answers, models_needed, run.allow_partial)
    judge_name = judge_display_name(run.judge_model)
    matches = build_matches(questions, answers, models, data.load_judge_prompts(run.judge_file),
                            run.mode, judge_name, data.load_references(run.data_dir),
                            run.baseline_model)
    out = judgment_file(run.data_dir, judge_name, run.mode)
    done = set()
    if out.exists():
        done = {record_key(r) for r in read_jsonl(out, repair_torn_tail=not run.dry_run)
                if not is_failed(r)}
    return matches, [m for m in matches if m.key not in done], out, skipped


def judge_display_name(judge_model: str) -> str:
    """The name written into records and file names; the embedded judge is named by its model."""
    if judge_model == "default":
        return "smollm2-135m-instruct"
    return Path(judge_model).name if _is_local(judge_model) else judge_model


def describe_plan(run: JudgeRun, matches: list[Match], todo: list[Match], out: Path) -> str:
    calls = len(todo) * (2 if run.mode != "single" else 1)
    by_prompt = Counter(m.prompt.name for m in todo)
    lines = [f"judge: {run.judge_model}  mode: {run.mode}  output: {out}",
             f"matches: {len(matches)} planned, {len(matches) - len(todo)} already judged, "
             f"{len(todo)} to judge ({calls} judge calls)"]
    lines += [f"  {name}: {n}" for name, n in sorted(by_prompt.items())]
    return "\n".join(lines)


def make_client(run: JudgeRun) -> ChatClient:
    if _is_local(run.judge_model):
        from .local_judge import LocalJudgeClient

        return LocalJudgeClient(run.judge_model)
    from .client import OpenAIChatClient

    return OpenAIChatClient(base_url=run.base_url)


def run_judging(run: JudgeRun, client: ChatClient | None = None) -> JudgeSummary:
    """Plan, send what is missing, append each record as it completes, then tidy the file."""
    matches, todo, out, skipped = plan(run)
    summary = JudgeSummary(planned=len(matches), already_done=len(matches) - len(todo),
                           skipped_partial=skipped, output=out)
    print(describe_plan(run, matches, todo, out), file=sys.stderr)
    if run.dry_run or not todo:
        return summary
    local = _is_local(run.judge_model)
    client = client or make_client(run)
    judge_name = judge_display_name(run.judge_model)
    parallel = max(run.parallel, 8) if local and run.parallel == 1 else run.parallel
    records = judge_into(out, todo, client, _request_model(run.judge_model, judge_name), parallel,
                         local)
    summary.sent = len(records)
    summary.failed = sum(is_failed(r.to_dict()) for r in records)
    summary.usage.update(usage_of(client))
    u = summary.usage
    print(f"judged {summary.sent} matches ({summary.failed} failed after retries, "
          f"{summary.already_done} already done; tokens {u['prompt_tokens']} prompt + "
          f"{u['completion_tokens']} completion) -> {out}", file=sys.stderr)
    return summary


def judge_into(out: Path, todo: list[Match], client: ChatClient, request_model: str,
               parallel: int, local: bool) -> list[Any]:
    """Check the judge answers, judge `todo`, append each record to `out` as it completes, then
    drop the $ERROR$ rows that a later success superseded (`judge` and `calibrate` share it)."""
    with JsonlAppender(out) as sink:
        async def go() -> list[Any]:
            check = getattr(client, "check_reachable", None)
            if check is not None:
                await check()
            try:
                return await judge_matches(todo, client, request_model, parallel,
                                           on_record=lambda r: sink.write(r.to_json()), local=local)
            finally:
                await _close(client)
        records = run_sync(go)
    _drop_superseded_failures(out)
    return records


async def _close(client: Any) -> None:
    close = getattr(client, "close", None)
    if close is not None:
        await close()


def _request_model(judge_model: str, judge_name: str) -> str:
    """The model name sent in the request: verbatim for APIs (FastChat), the name for local."""
    return judge_name if _is_local(judge_model) else judge_model


def _drop_superseded_failures(path: Path) -> None:
    """Remove $ERROR$ rows whose match was judged successfully later; raw bytes of others kept."""
    lines = [ln for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]
    import json

    parsed = [json.loads(ln) for ln in lines]
    good = {record_key(r) for r in parsed if not is_failed(r)}
    keep = [ln for ln, r in zip(lines, parsed) if not (is_failed(r) and record_key(r) in good)]
    if len(keep) != len(lines):
        write_lines_atomic(path, keep)


def judge_answers(questions: list[Question], answers: dict[str, dict[int, Answer]],
                  client: ChatClient, judge_model: str = "gpt-4", mode: Mode = "single",
                  baseline_model: str | None = None, parallel: int = 8,
                  judge_file: Path | None = None, progress: bool = False) -> list[dict[str, Any]]:
    """In-memory judging (the evaluate metric's path): records as dicts, FastChat key order.

    `answers` maps model name -> {question_id: Answer}; in pairwise-baseline mode it must also
    hold the baseline's answers. The judge client is passed in, never global.
    """
    models = [m for m in answers if mode != "pairwise-baseline" or m != baseline_model]
    check_answers(questions, answers, list(answers), allow_partial=False)
    matches = build_matches(questions, answers, models, data.load_judge_prompts(judge_file), mode,
                            judge_model, data.load_references(), baseline_model)
    local = getattr(client, "is_local", False)

    async def go() -> list[Any]:
        try:
            return await judge_matches(matches, client, judge_model, parallel, local=local,
                                       progress=progress)
        finally:
            await _close(client)  # in this loop: HTTP sessions cannot outlive it (client reopens)

    records = run_sync(go)
    order = {m.key: i for i, m in enumerate(matches)}  # deterministic order, whatever finished first
    dicts = [r.to_dict() for r in records]
    return sorted(dicts, key=lambda r: order[record_key(r)])
