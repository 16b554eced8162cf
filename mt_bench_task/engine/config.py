"""What a generation run and a local model are given: typed values, light to import (the CLI
builds them before any engine loads)."""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from mt_bench_task.core import data
from mt_bench_task.core.bench import DEFAULT_BENCH
from mt_bench_task.core.thoughts import DEFAULT_THINKING_TOKENS
from mt_bench_task.engine.models import DEFAULT_MODEL, DEFAULT_MODEL_ID


@dataclass(frozen=True)
class EngineOptions:
    """How a model is loaded, on any engine (the hf engine reads dtype, revision and the chat
    template; vLLM all, its pass-through EngineArgs None: vLLM's default)."""

    dtype: str | None = None
    revision: str = "main"
    chat_template: str | None = None
    tensor_parallel_size: int = 1
    pipeline_parallel_size: int = 1
    gpu_memory_utilization: float | None = None
    max_model_len: int | None = None
    think_tags: tuple[str, str] | None = None  # --think-tags OPEN CLOSE; None: the template's


@dataclass(frozen=True)
class GenerationConfig:
    model_path: str = DEFAULT_MODEL
    model_id: str = DEFAULT_MODEL_ID
    data_dir: Path = Path("data") / DEFAULT_BENCH
    answer_file: Path | None = None  # None: DATA_DIR/model_answer/MODEL_ID.jsonl
    question_begin: int | None = None
    question_end: int | None = None
    max_new_token: int = 1024  # FastChat's answer budget per turn
    max_thinking_tokens: int = DEFAULT_THINKING_TOKENS  # added for a model that thinks
    think_tags: tuple[str, str] | None = None  # --think-tags OPEN CLOSE; None: the template's
    num_choices: int = 1
    dtype: str | None = None  # None: bfloat16 where supported, else float32
    revision: str = "main"
    batch_size: int = 32  # most rows (question x choice x turn) in flight at once
    chat_template: str | None = None  # Jinja file for tokenizers without a template
    num_processes: int = 1  # hf: accelerate processes (--data-parallel-size is the same there)
    engine: str = "auto"  # auto | hf | vllm
    # vllm only (EngineArgs); None: vLLM's default
    tensor_parallel_size: int = 1
    pipeline_parallel_size: int = 1
    data_parallel_size: int = 1  # engine replicas, each on its own GPUs (data_parallel.py)
    gpu_memory_utilization: float | None = None
    max_model_len: int | None = None
    wait_for_lock: bool = True  # another run writing the answer file: wait (False: DataError)

    @property
    def engine_options(self) -> EngineOptions:
        """The options a local judge of the same run is loaded with (its own chat template)."""
        return EngineOptions(self.dtype, self.revision, None, self.tensor_parallel_size,
                             self.pipeline_parallel_size, self.gpu_memory_utilization,
                             self.max_model_len)

    @property
    def load_options(self) -> EngineOptions:
        """The options the answering model is loaded with."""
        return replace(self.engine_options, chat_template=self.chat_template,
                       think_tags=self.think_tags)

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
