"""`mt-bench run`: generate, judge and show in one call.

With the defaults it is a quick, offline demonstration: the embedded SmolLM2-135M answers all 80
questions and the same model judges them (scores labelled not comparable with published MT-bench).
With a model of yours and `judge_model="gpt-4"` it is the real MT-bench with FastChat's defaults.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from mt_bench_task.core.workspace import Workspace, workspace_at
from mt_bench_task.engine.models import DEFAULT_MODEL

if TYPE_CHECKING:
    from mt_bench_task.core.chat import ChatClient
    from mt_bench_task.engine.generate import GenerationConfig, GenerationStats
    from mt_bench_task.judging.job import JudgeSummary
    from mt_bench_task.judging.run import JudgeRun
    from mt_bench_task.outputs.views import ShowOutput

# The embedded model's answer budget, so the quick run finishes in minutes on a 2-core CPU
# (FastChat's is 1024 new tokens; the embedded judge's is core/judges.py's). Explicit values win.
QUICK_ANSWER_TOKENS = 96


def is_embedded(model_path: str | None) -> bool:
    """The embedded default model (the quick run's budgets apply)."""
    return model_path in (None, DEFAULT_MODEL)  # DEFAULT_MODEL is the name "default"


@dataclass(frozen=True)
class RunSummary:
    generation: GenerationStats
    judging: JudgeSummary
    shown: ShowOutput | None  # None after a dry run

    @property
    def ok(self) -> bool:
        return self.judging.ok


def run_all(gen: GenerationConfig, judge: JudgeRun, *, workspace: Workspace | None = None,
            plot: Path | str | None = None, judge_client: ChatClient | None = None,
            on_generated: Callable[[GenerationStats], None] | None = None,
            on_plan: Callable[[str], None] | None = None) -> RunSummary:
    """Generate `gen`'s answers, judge that model's answers with `judge` (the same question
    slice), then score them; the radar goes to `plot` (default DATA_DIR/radar.png, single mode).
    A local judge runs on the generation's engine and options; `judge_client` replaces the
    client made here. The bench: the workspace's (default: gen.data_dir's, `workspace_at`)."""
    from mt_bench_task.clients import make_client
    from mt_bench_task.engine.generate import generate_answers
    from mt_bench_task.engine.registry import engine_backend
    from mt_bench_task.judging.run import run_judging
    from mt_bench_task.outputs.views import show

    workspace = workspace_at(gen.data_dir, workspace)
    backend = engine_backend(gen.engine)  # generation and a local judge: one engine
    generated = generate_answers(gen, workspace, backend=backend)
    if on_generated is not None:
        on_generated(generated)
    judge = replace(judge, data_dir=gen.data_dir, model_list=[gen.model_id],
                    question_begin=gen.question_begin,
                    first_n=gen.question_end if judge.first_n is None else judge.first_n)
    spec = judge.judge
    client = judge_client
    if client is None and not judge.dry_run:
        client = make_client(spec, base_url=judge.base_url, local_engine=backend,
                             local_options=gen.engine_options, timeout=judge.request_timeout)
    judged = run_judging(judge, client=client, workspace=workspace, on_plan=on_plan)
    if judge.dry_run or judged.batch_pending:  # --batch --no-wait: a later run shows
        return RunSummary(generated, judged, None)
    single = judge.mode == "single"
    shown = show(data_dir=gen.data_dir, input_file=None, judge_model=spec.display_name,
                 mode=judge.mode, model_list=None, baseline_model=judge.baseline_model,
                 plot=(plot or gen.data_dir / "radar.png") if single else None,
                 workspace=workspace)
    return RunSummary(generated, judged, shown)
