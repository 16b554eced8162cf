"""The judge as one concept: who judges (`JudgeSpec`) and the one rule for whether scores compare
with published MT-bench (its clients are made by `mt_bench_task.clients.make_client`).

A `JudgeSpec` is built once from `--judge-model` (or the metric's settings) by `judge_spec()`:
- `name`: as given ("gpt-4", "gpt-5-mini", "default", "/models/my-judge");
- `api_model`: what is sent in each request (verbatim for an API, the model's name when local);
- `backend`: "openai" (any OpenAI-compatible server) or "local" (transformers in this process);
- `fastchat_prompts`: whether the judge prompts are FastChat's packaged ones (decided by the bench,
  `Bench.fastchat_prompts`: the judging job sets it, never the judge's name);
- `references`: None (FastChat's: the judge's reference file) or the `--references` choice;
- `mt_bench_questions`: whether the questions are MT-bench's (ids 81-160, as integers).

Published MT-bench numbers were judged by GPT-4 through OpenAI's API with FastChat's prompts and
references on MT-bench's questions, so only that is `comparable`; everything else is labelled by
`not_comparable_label()`.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from mt_bench_task.core.ids import QuestionId
from mt_bench_task.core.types import Judgment

Backend = Literal["openai", "local"]
# "gpt-4" is a floating alias; the published leaderboard was judged by gpt-4-0613 (FastChat #2284)
COMPARABLE_MODELS = ("gpt-4", "gpt-4-0613")
NOT_COMPARABLE = "not comparable with published MT-bench"
# FastChat's defaults, defined here once (the CLI, JudgeRun, the metric and inspect read them)
DEFAULT_JUDGE = "gpt-4"
DEFAULT_BASELINE = "gpt-3.5-turbo"
DEFAULT_MODE = "single"
MODES = ("single", "pairwise-baseline", "pairwise-all")
# the embedded model (engine/models.py loads it; it answers `run`'s demo and judges): "default"
# on the command line, its id in answer files, judgment files and records
EMBEDDED_JUDGE = "default"
EMBEDDED_JUDGE_NAME = "smollm2-135m-instruct"
JUDGE_TEMPERATURE = 0.0  # FastChat's request: greedy judging
JUDGE_MAX_TOKENS = 2048  # FastChat's request: completion tokens per judge call
# A verdict the token limit cut (a judge that thinks spent the budget) is asked again with the
# next budget: at most 2 more requests, 4x each (docs/thinking-models.md)
JUDGE_BUDGET_STEP, JUDGE_BUDGET_MAX, JUDGE_RETRIES = 4, 32768, 2
REASONING_EFFORTS = ("minimal", "low", "medium", "high")  # OpenAI's reasoning_effort values
# judge calls in flight for a local judge, so its batcher can group prompts of similar length
LOCAL_JUDGE_IN_FLIGHT = 128
# On a CPU 2048 new tokens are minutes per batch, and a small judge either rates early or never,
# so local judges stop at 256 unless told otherwise.
LOCAL_MAX_NEW_TOKENS = 256
# The embedded 135M judge almost never writes a rating: it gets 8 tokens and the rating fallback
# decides (the budget `mt-bench calibrate --judge-model default` measured: benchmarks/README.md).
EMBEDDED_JUDGE_TOKENS = 8
MT_BENCH_IDS = range(81, 161)  # MT-bench's question ids; a judgment on any other id is another bench's


def is_mt_bench_id(question_id: QuestionId) -> bool:
    """An MT-bench question id: an integer 81-160 (a translated set's "81" or "81_DE" is not)."""
    return (isinstance(question_id, int) and not isinstance(question_id, bool)
            and question_id in MT_BENCH_IDS)


@dataclass(frozen=True)
class JudgeSpec:
    name: str
    api_model: str
    backend: Backend = "openai"
    fastchat_prompts: bool = True
    references: str | None = None  # `--references`: "inline" or a file's name; None: FastChat's
    mt_bench_questions: bool = True  # False on another bench's question ids
    first_budget: int | None = None  # `--judge-max-tokens`; None: FastChat's 2048
    reasoning_effort: str | None = None  # `--judge-reasoning-effort`; None: not sent

    @property
    def local(self) -> bool:
        return self.backend == "local"

    @property
    def max_tokens(self) -> int:
        """Completion tokens per judge call: FastChat's (or `--judge-max-tokens`) for an
        endpoint, a local judge's budget."""
        return local_judge_budget(self.name) if self.local else self.budgets[0]

    @property
    def budgets(self) -> tuple[int, ...]:
        """The completion budgets a verdict may be asked with, in order: the first, then 4x
        while under 32,768 (2048 -> 8192 -> 32768), at most 2 more. A local judge: one."""
        first = self.first_budget or JUDGE_MAX_TOKENS
        if self.local:
            return (JUDGE_MAX_TOKENS,)  # the local client caps it at its own budget
        out = [first]
        while len(out) <= JUDGE_RETRIES and out[-1] < JUDGE_BUDGET_MAX:
            out.append(min(out[-1] * JUDGE_BUDGET_STEP, JUDGE_BUDGET_MAX))
        return tuple(out)

    @property
    def display_name(self) -> str:
        """The name written into records (`judge[0]`) and judgment file names."""
        return self.api_model

    @property
    def comparable(self) -> bool:
        return (is_comparable(self.api_model, self.backend, self.fastchat_prompts)
                and self.references is None and self.mt_bench_questions)

    @property
    def label(self) -> str | None:
        """The "not comparable" line for this judge, or None when it is comparable."""
        return None if self.comparable else not_comparable_label(self.display_name)


def is_local_model(judge_model: str) -> bool:
    """'default' (the embedded model) or an existing directory: judged in-process."""
    return judge_model == EMBEDDED_JUDGE or Path(judge_model).exists()


def local_judge_budget(judge_model: str) -> int:
    """New tokens per judgment of a local judge when not told otherwise."""
    return EMBEDDED_JUDGE_TOKENS if judge_model == EMBEDDED_JUDGE else LOCAL_MAX_NEW_TOKENS


def judge_spec(judge_model: str = DEFAULT_JUDGE, max_tokens: int | None = None,
               reasoning_effort: str | None = None) -> JudgeSpec:
    """The spec of `--judge-model`, with FastChat's prompts (the judging job marks a bench whose
    judge prompts are other, see `JudgingJob.spec`); `--judge-max-tokens` (the first budget)
    and `--judge-reasoning-effort` when given."""
    from mt_bench_task.core.errors import ParameterError

    if max_tokens is not None and max_tokens < 1:
        raise ParameterError(f"judge_max_tokens must be >= 1, got {max_tokens}", "judge_max_tokens")
    if reasoning_effort is not None and reasoning_effort not in REASONING_EFFORTS:
        raise ParameterError(f"judge_reasoning_effort must be one of {list(REASONING_EFFORTS)}, "
                             f"got {reasoning_effort!r}", "judge_reasoning_effort")
    local = is_local_model(judge_model)
    if judge_model == EMBEDDED_JUDGE:
        api_model = EMBEDDED_JUDGE_NAME
    else:
        api_model = Path(judge_model).name if local else judge_model
    return JudgeSpec(name=judge_model, api_model=api_model, backend="local" if local else "openai",
                     first_budget=max_tokens, reasoning_effort=reasoning_effort)


def is_comparable(api_model: str, backend: str = "openai", fastchat_prompts: bool = True) -> bool:
    """THE rule: GPT-4 through an OpenAI-compatible API with FastChat's judge prompts."""
    return backend == "openai" and api_model in COMPARABLE_MODELS and fastchat_prompts


def not_comparable_label(judge: str) -> str:
    """The one wording of the label, used by show, report, run, publish and the metric."""
    return f"judged by {judge}: {NOT_COMPARABLE}"


@dataclass(frozen=True)
class JudgeIdentity:
    """Who judged a set of records, and whether that compares with published MT-bench."""

    judge: str
    comparable: bool

    @property
    def label(self) -> str | None:
        return None if self.comparable else not_comparable_label(self.judge)


def identity_of_records(records: Iterable[Judgment], default_judge: str = DEFAULT_JUDGE) -> JudgeIdentity:
    """The judge(s) of judgment records: `judge[0]`, local when marked `local_judge`, other
    prompts when marked `fastchat_prompts: false` or named outside FastChat's prompt set, other
    references when marked `references`, another bench when a question id is not MT-bench's."""
    from mt_bench_task.core.prompts import PROMPT_NAMES

    names: list[str] = []
    comparable = True
    for r in records:
        name, prompt = r.judge[0], r.judge[1]
        if name not in names:
            names.append(name)
        served = (getattr(r, "extra", None) or {}).get("served_model")  # the model that answered
        comparable = comparable and is_comparable(
            served if isinstance(served, str) and served else name,
            "local" if r.local_judge else "openai",
            r.fastchat_prompts and prompt in PROMPT_NAMES.values()) and (
            r.references is None and is_mt_bench_id(r.question_id))
    if not names:
        return JudgeIdentity(default_judge, is_comparable(default_judge))
    return JudgeIdentity(", ".join(sorted(names)), comparable)
