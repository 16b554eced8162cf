"""Stage 2, generate: answer the questions with a local model (FastChat's gen_model_answer).

Dataset: the bench's questions (`bench.Bench`); output: FastChat's answer JSONL, one line per
question, whatever the engine. Paper: Zheng et al., arXiv:2306.05685.
Kept from FastChat: per-category temperatures, a seed per choice, greedy below 1e-4, output
cleaning, "ERROR" on a RuntimeError, the answer record and the sorted final file.
Changed on purpose: the model's own chat template (FastChat picks one by model id and silently
falls back to "one_shot"); every (question, choice, turn) is a request to one engine, a
question's turn 2 entering as soon as its turn 1 is done (driver.py); answered questions are
skipped (resume). Engines (`--engine`): `hf` (hf/engine.py: our continuous batcher, accelerate
processes instead of ray workers) and `vllm` (vllm.py: vLLM's engine, tensor and pipeline
parallel, one GPU to many nodes); `auto` picks vllm when it is installed and a GPU is present.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from mt_bench_task.core import data
from mt_bench_task.core.bench import DEFAULT_BENCH, Bench, load_bench
from mt_bench_task.core.jsonl import DataError
from mt_bench_task.core.types import Question
from mt_bench_task.engine.base import choose_engine, require_vllm
from mt_bench_task.engine.hf.models import DEFAULT_MODEL, DEFAULT_MODEL_ID, resolve_model_path
from mt_bench_task.engine.judge import EngineOptions


@dataclass(frozen=True)
class GenerationConfig:
    model_path: str = DEFAULT_MODEL
    model_id: str = DEFAULT_MODEL_ID
    data_dir: Path = Path("data") / DEFAULT_BENCH
    answer_file: Path | None = None  # None: DATA_DIR/model_answer/MODEL_ID.jsonl
    question_begin: int | None = None
    question_end: int | None = None
    max_new_token: int = 1024
    num_choices: int = 1
    dtype: str | None = None  # None: bfloat16 where supported, else float32
    revision: str = "main"
    batch_size: int = 32  # most rows (question x choice x turn) in flight at once
    chat_template: str | None = None  # Jinja file for tokenizers without a template
    num_processes: int = 1  # hf: accelerate processes
    engine: str = "auto"  # auto | hf | vllm
    # vllm only (EngineArgs); None: vLLM's default
    tensor_parallel_size: int = 1
    pipeline_parallel_size: int = 1
    data_parallel_size: int = 1  # > 1 is refused: vLLM runs data parallel as separate processes
    gpu_memory_utilization: float | None = None
    max_model_len: int | None = None

    @property
    def engine_options(self) -> EngineOptions:
        """The options a local judge of the same run is loaded with."""
        return EngineOptions(self.dtype, self.revision, None, self.tensor_parallel_size,
                             self.pipeline_parallel_size, self.gpu_memory_utilization,
                             self.max_model_len)

    @property
    def output_path(self) -> Path:
        return self.answer_file or data.answer_file(self.data_dir, self.model_id)


@dataclass(frozen=True)
class GenerationStats:
    questions: int  # questions answered in this run (resumed ones not counted)
    tokens: int  # generated tokens, all turns and choices, stop token excluded
    seconds: float  # generation wall time, model loading excluded
    selected: int = 0  # questions in the selected range
    path: str = ""  # the answer file
    startup: float = 0.0  # seconds to load the model / start the engine
    engine: str = ""

    @property
    def tokens_per_second(self) -> float:
        return self.tokens / self.seconds if self.seconds > 0 else 0.0

    def summary(self) -> str:
        """One line for the CLI to print."""
        if not self.selected:
            return "no questions selected; nothing to do"
        if not self.questions:
            return f"all {self.selected} questions already answered in {self.path}; nothing to do"
        resumed = self.selected - self.questions
        note = f" ({resumed} already answered, kept)" if resumed else ""
        return (f"generated {self.questions} questions{note}, {self.tokens} tokens in "
                f"{self.seconds:.1f} s ({self.tokens_per_second:.1f} tok/s) -> {self.path}")


def generate_answers(cfg: GenerationConfig, bench: Bench | None = None) -> GenerationStats:
    """Answer every selected question of `bench` (default: MT-bench, or DATA_DIR's own
    question.jsonl) not yet in the answer file; return what this run did."""
    _validate(cfg)
    bench = bench or load_bench(data_dir=cfg.data_dir)
    out = cfg.output_path
    questions = bench.select(cfg.question_begin, cfg.question_end)
    if not questions:
        return GenerationStats(0, 0, 0.0, 0, str(out))
    pending = data.pending_questions(questions, out, cfg.num_choices)  # DataError before any work
    if not pending:
        return GenerationStats(0, 0, 0.0, len(questions), str(out))
    engine = choose_engine(cfg.engine)
    if engine == "vllm":
        _check_vllm(cfg)
    model_path = resolve_model_path(cfg.model_path, cfg.revision)  # converts 'default' once, here
    if engine == "hf" and cfg.num_processes > 1 and not _launched():
        from mt_bench_task.engine.gen_worker import relaunch

        return relaunch(replace(cfg, engine="hf"), model_path, bench)
    return _generate(engine, cfg, model_path, questions, pending, out, bench)


def _generate(engine: str, cfg: GenerationConfig, model_path: str, questions: Sequence[Question],
              pending: list[Question], out: Path, bench: Bench) -> GenerationStats:
    if engine == "vllm":
        from mt_bench_task.engine.vllm import run_vllm as run
    else:
        from mt_bench_task.engine.hf.engine import run_hf as run
    tokens, seconds, startup = run(cfg, model_path, pending, out, bench.temperature,
                                   [q.key for q in bench.questions])
    return GenerationStats(len(pending), tokens, seconds, len(questions), str(out), startup, engine)


def _validate(cfg: GenerationConfig) -> None:
    for name in ("max_new_token", "num_choices", "batch_size", "num_processes",
                 "data_parallel_size"):  # vLLM's own options: require_vllm
        if getattr(cfg, name) < 1:
            raise DataError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(cfg, name)}")
    choose_engine(cfg.engine)  # an unknown name is an error before any work


def _check_vllm(cfg: GenerationConfig) -> None:
    """What the vllm engine cannot do, said before anything loads."""
    require_vllm(cfg)
    if cfg.data_parallel_size > 1:
        raise DataError("--data-parallel-size > 1: vLLM's offline engine runs data parallel only as "
                        "separate processes; start one `mt-bench gen --engine vllm` per replica on "
                        "its own GPUs and question slice (README, vLLM engine)")
    if cfg.num_processes > 1:
        raise DataError("--num-processes is the hf engine's (accelerate); with --engine vllm use "
                        "--tensor-parallel-size / --pipeline-parallel-size")


def _launched() -> bool:
    """True inside `accelerate launch` / torchrun workers (they set WORLD_SIZE)."""
    return "WORLD_SIZE" in os.environ
