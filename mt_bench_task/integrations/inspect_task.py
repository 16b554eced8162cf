"""MT-bench as an inspect_ai task, FastChat-exact (needs the `[inspect]` extra).

Name: mt_bench. Dataset: the packaged MT-bench questions (80, two turns each) and GPT-4 references.
Paper: Zheng et al., "Judging LLM-as-a-judge with MT-Bench and Chatbot Arena", arXiv:2306.05685.
Scored: FastChat llm_judge's single grading (1-10 per turn) by the `grader` model role
(default openai/gpt-4, temperature 0, max_tokens 2048), or pairwise verdicts against the packaged
gpt-3.5-turbo answers. Prompts, prompt choice, rating extraction and aggregation are the ones
`mt-bench judge` / `mt-bench show` use (prompts.py, scoring.py); nothing is copied here.

    inspect eval mt_bench_task/integrations/inspect_task.py --model openai/my-model \
        --model-role grader=openai/gpt-4
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

# absolute imports: `inspect eval mt_bench_task/integrations/inspect_task.py` loads this file as a bare module
from inspect_ai import Task, task
from inspect_ai.dataset import MemoryDataset, Sample
from inspect_ai.model import (
    ChatMessage,
    ChatMessageSystem,
    ChatMessageUser,
    GenerateConfig,
    Model,
    get_model,
)
from inspect_ai.model._generate_config import (
    active_generate_config,  # eval's --temperature
)
from inspect_ai.scorer import (
    Score,
    Scorer,
    Target,
    scorer,
)
from inspect_ai.solver import Generate, Solver, TaskState, solver

from mt_bench_task.core import data
from mt_bench_task.core.bench import DEFAULT_BENCH, REFERENCE_JUDGE, Bench, with_references
from mt_bench_task.core.chat import ChatClientBase, Completion
from mt_bench_task.core.errors import DataError
from mt_bench_task.core.ids import QuestionId
from mt_bench_task.core.judge_spec import DEFAULT_BASELINE, JudgeSpec, judge_spec
from mt_bench_task.core.prompts import messages
from mt_bench_task.core.scoring import summarize_pairwise
from mt_bench_task.core.types import Answer, Choice, JudgePrompt, Judgment, PairJudgment, SingleJudgment
from mt_bench_task.core.workspace import open_bench
from mt_bench_task.integrations.inspect_metrics import (
    MODEL,
    category,
    loss_rate,
    overall,
    stderr,
    turn_1,
    turn_2,
    win_rate,
    win_rate_adjusted,
)
from mt_bench_task.judging.execute import SendOptions, aexecute
from mt_bench_task.judging.job import JudgingJob

GRADER_ROLE = "grader"
DEFAULT_GRADER = "openai/gpt-4"
MAX_TOKENS = 1024  # FastChat's --max-new-token / --max-tokens default


def resolve_bench(bench: str | Path | Bench, references: str | None = None) -> Bench:
    """A packaged bench name ("mt_bench", "vicuna_bench") or a FastChat bench folder (its
    question.jsonl, reference_answer/ and judge_prompts.jsonl win over the packaged ones), with
    the `references` choice ("inline" or a reference file; `bench.with_references`)."""
    return with_references(open_bench(bench), references)


# ---- dataset ----
def mt_bench_dataset(bench: Bench) -> MemoryDataset:
    """One sample per question; metadata: category, all turns, the judge's reference turns."""
    refs = bench.reference_for(REFERENCE_JUDGE)[1]
    samples = [Sample(id=q.question_id, input=q.turns[0],
                      metadata={"question_id": q.question_id, "category": q.category,
                                "turns": list(q.turns),
                                "reference": refs[q.key].turns
                                if q.key in refs else None})
               for q in bench.questions]
    return MemoryDataset(samples, name=bench.name)


# ---- solver: FastChat's two-turn protocol ----
@solver
def fastchat_turns(bench: str = DEFAULT_BENCH, system_message: str | None = None) -> Solver:
    """Each turn sees the conversation so far (turn 2 gets the model's own turn-1 answer).
    Temperature: the category's (FastChat's temperature_config) unless --temperature is given.
    System message: FastChat's chatgpt template's, as `mt-bench gen-api` sends."""
    from mt_bench_task.engine.api import SYSTEM_MESSAGE

    temperature_for = resolve_bench(bench).temperature
    system = SYSTEM_MESSAGE if system_message is None else system_message

    async def solve(state: TaskState, generate: Generate) -> TaskState:
        forced = active_generate_config().temperature
        temperature = forced if forced is not None else temperature_for(state.metadata["category"])
        state.messages = [ChatMessageSystem(content=system)] if system else []
        answers: list[str] = []
        for turn in state.metadata["turns"]:
            state.messages.append(ChatMessageUser(content=turn))
            state = await generate(state, temperature=temperature)
            answers.append(state.output.completion)
        state.metadata["answers"] = answers
        state.metadata["temperature"] = temperature
        return state

    return solve


# ---- scorer: FastChat's judge through the grader role ----
class GraderClient(ChatClientBase):
    """inspect's grader model as a `ChatClient`: the scorer judges through the same judging job
    as `mt-bench judge`, so its records are the same typed records."""

    def __init__(self, grader: Model) -> None:
        super().__init__()
        self.grader = grader

    async def complete(self, model: str, messages: list[dict[str, str]], *, temperature: float,
                       max_tokens: int, reasoning_effort: str | None = None) -> Completion:
        chat: list[ChatMessage] = [ChatMessageSystem(content=m["content"]) if m["role"] == "system"
                                   else ChatMessageUser(content=m["content"]) for m in messages]
        config = GenerateConfig(temperature=temperature, max_tokens=max_tokens)
        if reasoning_effort:  # one of OpenAI's values (judge_spec checks), as inspect takes them
            config = config.model_copy(update={"reasoning_effort": reasoning_effort})
        out = await self.grader.generate(chat, config=config)
        usage = out.usage
        # a grader that thinks past the budget: the judging call asks again with a larger one
        cut = out.stop_reason in ("max_tokens", "model_length")
        return Completion(out.completion, usage.input_tokens if usage else 0,
                          usage.output_tokens if usage else 0,
                          finish_reason="length" if cut else out.stop_reason)


def _job(bench: Bench, state: TaskState, judge: JudgeSpec, baseline: str,
         baseline_answers: dict[QuestionId, Answer] | None) -> JudgingJob:
    """This one question's judging job: the prompt choice and references of `mt-bench judge`
    (single, or pairwise-baseline when there are baseline answers)."""
    q = next(q for q in bench.questions if q.question_id == state.metadata["question_id"])
    answers: dict[str, dict[QuestionId, Answer]] = {MODEL: {q.key: Answer(
        q.question_id, "", MODEL, [Choice(0, list(state.metadata["answers"]))], 0.0)}}
    if baseline_answers is None:
        return JudgingJob(bench, answers, (MODEL,), judge, "single", questions=(q,))
    answers[baseline] = baseline_answers
    return JudgingJob(bench, answers, (MODEL,), judge, "pairwise-baseline", baseline, (q,))


def _turn_metadata(record: Judgment, prompt: JudgePrompt) -> dict[str, Any]:
    """One turn of the score's metadata (what `mt-bench import-inspect` reads back)."""
    rec: dict[str, Any] = {"turn": record.turn, "prompt_name": prompt.name}
    if isinstance(record, SingleJudgment):
        return {**rec, "messages": messages(prompt, record.user_prompt or ""),
                "user_prompt": record.user_prompt, "judgment": record.judgment,
                "score": record.score}
    assert isinstance(record, PairJudgment)
    for g, (up, text, winner) in enumerate(((record.g1_user_prompt, record.g1_judgment,
                                             record.g1_winner),
                                            (record.g2_user_prompt, record.g2_judgment,
                                             record.g2_winner)), 1):
        rec.update({f"g{g}_messages": messages(prompt, up or ""), f"g{g}_user_prompt": up,
                    f"g{g}_judgment": text, f"g{g}_winner": winner})
    return rec


@scorer(metrics=[])
def fastchat_judge(bench: str = DEFAULT_BENCH, judge_mode: str = "single",
                   baseline_model: str = DEFAULT_BASELINE, references: str | None = None) -> Scorer:
    """Single: value {"turn_1": rating, "turn_2": rating} (NaN where no rating was found; a sample
    with none is unscored, with the reason). Pairwise: per turn 1 win / 0.5 tie / 0 loss against
    the baseline, under show_result's rule (g1 tie or g1 != g2 is a tie; an error is unscored)."""
    if judge_mode not in ("single", "pairwise"):
        raise DataError(f"judge_mode must be 'single' or 'pairwise', got {judge_mode!r}")
    the_bench = resolve_bench(bench, references)
    own_answers = Path(the_bench.sources.get("questions", ".")).parent
    baseline_answers = (data.load_answers(own_answers, baseline_model, the_bench.official_answers)
                        if judge_mode == "pairwise" else None)  # a missing baseline fails here

    async def score(state: TaskState, target: Target) -> Score:
        grader = get_model(role=GRADER_ROLE, default=DEFAULT_GRADER)
        job = _job(the_bench, state, judge_spec(judge_name(grader)), baseline_model,
                   baseline_answers)
        plan = job.plan()
        # inspect's event loop, inspect's model: sent as every job is, records in plan order
        records = (await aexecute(job, GraderClient(grader), SendOptions(len(plan.todo) or 1),
                                  plan, progress=False, check_reachable=False)).records
        turns = [_turn_metadata(r, the_bench.judge_prompts[r.judge[1]]) for r in records]
        score = _to_score(state, job.spec.display_name, judge_mode, baseline_model, records, turns)
        assert score.metadata is not None
        score.metadata["fastchat_prompts"] = job.spec.fastchat_prompts
        if the_bench.references_label is not None:  # recorded as `mt-bench judge` records it
            score.metadata["references"] = the_bench.references_label
        return score

    return score


def judge_name(grader: Model) -> str:
    """The judge as FastChat records it: "gpt-4" for OpenAI's models (as `mt-bench judge`), the
    provider-qualified name otherwise ("anthropic/claude-...", "mockllm/gpt-4"), so judge_spec.py's
    comparability rule sees who really judged."""
    return grader.name if str(grader) == f"openai/{grader.name}" else str(grader)


def _turn_value(record: Judgment, baseline: str) -> float | int:
    if isinstance(record, SingleJudgment):
        return math.nan if record.score == -1 else record.score
    assert isinstance(record, PairJudgment)
    res = summarize_pairwise([record], "pairwise-baseline", None, baseline)
    return math.nan if MODEL not in res.models else res.rates(MODEL).win_rate_adjusted


def _to_score(state: TaskState, judge: str, mode: str, baseline: str, records: list[Judgment],
              turns: list[dict[str, Any]]) -> Score:
    value = {f"turn_{r.turn}": _turn_value(r, baseline) for r in records}
    meta = {"judge": judge, "mode": mode, "model": str(state.model),
            "answers": state.metadata["answers"], "turns": turns,
            **({"baseline_model": baseline} if mode == "pairwise" else {})}
    failed = [k for k, v in value.items() if isinstance(v, float) and math.isnan(v)]
    what = "no [[rating]] in the judgment" if mode == "single" else "judge verdict 'error'"
    reason = f"{what} ({', '.join(failed)})" if failed else None
    if len(failed) == len(value):
        return Score.unscored(reason=reason, answer=state.metadata["answers"][-1], metadata=meta)
    return Score(value=value, answer=state.metadata["answers"][-1], reason=reason, metadata=meta,
                 explanation="\n\n".join(str(r.get("judgment", r.get("g1_judgment")))
                                         for r in turns))


@task
def mt_bench(bench: str = DEFAULT_BENCH, judge_mode: str = "single",
             baseline_model: str = DEFAULT_BASELINE, system_message: str | None = None,
             references: str | None = None) -> Task:
    """MT-bench, FastChat-exact: `-T judge_mode=pairwise` judges against gpt-3.5-turbo's answers;
    `-T bench=PATH` runs a FastChat bench folder; `-T references=inline` (or a reference file)
    chooses the reference answers. The judge is the `grader` role."""
    the_bench = resolve_bench(bench, references)
    two_turns = the_bench.multi_turn if judge_mode == "single" else any(
        len(q.turns) == 2 for q in the_bench.questions) and the_bench.judges_turn_2(judge_mode)
    if judge_mode == "pairwise":
        metrics: list[Any] = [win_rate(), loss_rate(), win_rate_adjusted(), stderr()]
    else:
        metrics = [turn_1(), *([turn_2()] if two_turns else []), overall(), stderr(), category()]
    return Task(dataset=mt_bench_dataset(the_bench),
                solver=fastchat_turns(bench, system_message),
                scorer=fastchat_judge(bench, judge_mode, baseline_model, references),
                metrics=metrics, config=GenerateConfig(max_tokens=MAX_TOKENS),
                metadata={"mt_bench_task": {"bench": the_bench.name, "judge_mode": judge_mode,
                                            "baseline_model": baseline_model,
                                            "references": the_bench.references_label}})
