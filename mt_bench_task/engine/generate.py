"""Stage 2, generate: answer the questions with a local model (FastChat's gen_model_answer).

Dataset: the bench's questions (`bench.Bench`); output: FastChat's answer JSONL, one line per
question, whatever the engine. Paper: Zheng et al., arXiv:2306.05685.
Kept from FastChat: per-category temperatures, a seed per choice, greedy below 1e-4, output
cleaning, "ERROR" on a RuntimeError, the answer record and the sorted final file.
Changed on purpose: the model's own chat template (FastChat picks one by model id and silently
falls back to "one_shot"); every (question, choice, turn) is a request to one engine, a
question's turn 2 entering as soon as its turn 1 is done (driver.py); answered questions are
skipped (resume). Engines (`--engine`, registry.py): `hf` (hf/engine.py: our continuous batcher,
accelerate processes instead of ray workers) and `vllm` (vllm/engine.py: vLLM's engine, tensor and
pipeline parallel, one GPU to many nodes); `auto` picks vllm when it is installed and a GPU is
present.
"""
from __future__ import annotations

from pathlib import Path

from mt_bench_task.core import data
from mt_bench_task.core.bench import Bench
from mt_bench_task.core.errors import DataError
from mt_bench_task.core.thoughts import check_think_tags
from mt_bench_task.core.types import Question
from mt_bench_task.core.workspace import Workspace, workspace_at
from mt_bench_task.core.writer_lock import one_writer
from mt_bench_task.engine.config import EngineOptions, GenerationConfig, GenerationStats
from mt_bench_task.engine.data_parallel import fold_shards
from mt_bench_task.engine.hf.launch import launched
from mt_bench_task.engine.models import resolve_model_path
from mt_bench_task.engine.registry import Backend, check_engine_name, engine_backend

__all__ = ["EngineOptions", "GenerationConfig", "GenerationStats", "generate_answers"]


def generate_answers(cfg: GenerationConfig, workspace: Workspace | None = None, *,
                     backend: Backend | None = None) -> GenerationStats:
    """Answer every selected question of the workspace's bench (default: cfg.data_dir's,
    `workspace_at`) not yet in the answer file, on `backend` (default: cfg.engine's); return
    what this run did."""
    _validate(cfg)
    bench = workspace_at(cfg.data_dir, workspace).bench
    out = cfg.output_path
    questions = bench.select(cfg.question_begin, cfg.question_end)
    if not questions:
        return GenerationStats(0, 0, 0.0, 0, str(out))
    if launched():  # an accelerate worker: the process that launched it holds the lock
        return _generate_pending(cfg, bench, out, questions, backend)
    with one_writer(out, cfg.wait_for_lock):  # another run on this file: wait, then resume
        return _generate_pending(cfg, bench, out, questions, backend)


def _generate_pending(cfg: GenerationConfig, bench: Bench, out: Path, questions: list[Question],
                      backend: Backend | None) -> GenerationStats:
    fold_shards(out, [q.key for q in bench.questions])  # a killed data-parallel run's answers
    pending = data.pending_questions(questions, out, cfg.num_choices)  # DataError before any work
    if not pending:
        return GenerationStats(0, 0, 0.0, len(questions), str(out))
    backend = backend or engine_backend(cfg.engine)
    backend.check(cfg)
    model_path = resolve_model_path(cfg.model_path, cfg.revision)  # converts 'default' once, here
    tokens, seconds, startup = backend.generate(cfg, model_path, pending, out, bench)
    return GenerationStats(len(pending), tokens, seconds, len(questions), str(out), startup,
                           backend.name)


def _validate(cfg: GenerationConfig) -> None:
    for name in ("max_new_token", "num_choices", "batch_size", "num_processes",
                 "data_parallel_size"):  # vLLM's own options: its backend's check
        if getattr(cfg, name) < 1:
            raise DataError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(cfg, name)}")
    if cfg.max_thinking_tokens < 0:
        raise DataError(f"--max-thinking-tokens must be >= 0, got {cfg.max_thinking_tokens}")
    check_think_tags(cfg.think_tags)
    check_engine_name(cfg.engine)  # an unknown name is an error before any work (resolved once: below)
