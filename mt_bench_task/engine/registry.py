"""The engines, by name: `--engine` is resolved here once per command into one `Backend`, which
every stage of that command is handed (generation, the local judge).

Each engine is a folder (engine/hf/, engine/vllm/) whose `backend.py` is light to import: the
engine's heavy imports (torch, transformers, vLLM) happen only when it generates or loads a judge.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from mt_bench_task.core.errors import DataError

if TYPE_CHECKING:
    from mt_bench_task.core.bench import Bench
    from mt_bench_task.core.types import Question
    from mt_bench_task.engine.config import EngineOptions, GenerationConfig
    from mt_bench_task.engine.local_judge import LocalJudgeEngine

ENGINES = ("auto", "hf", "vllm")


class Backend(Protocol):
    """One engine's entry points."""

    name: str

    def check(self, cfg: GenerationConfig) -> None:
        """Refuse (DataError) what this engine cannot do with `cfg`, before anything loads."""
        ...

    def check_judge(self, options: EngineOptions) -> None:
        """The same for a local judge's options."""
        ...

    def generate(self, cfg: GenerationConfig, model_path: str, pending: list[Question], out: Path,
                 bench: Bench) -> tuple[int, float, float]:
        """Answer `pending` (questions of `bench`), appending to `out`: (tokens, generation s,
        start-up s)."""
        ...

    def start_judge(self, judge_model: str, options: EngineOptions) -> LocalJudgeEngine:
        """The judge model ('default', a dir or a cached hub id) loaded on this engine."""
        ...


def check_engine_name(name: str) -> None:
    if name not in ENGINES:
        raise DataError(f"unknown engine {name!r} (expected one of {list(ENGINES)})")


def choose_engine(name: str) -> str:
    """'auto' -> 'vllm' when vLLM is importable and a CUDA device is present, else 'hf'."""
    check_engine_name(name)
    if name != "auto":
        return name
    if importlib.util.find_spec("vllm") is None:
        return "hf"
    import torch

    return "vllm" if torch.cuda.is_available() else "hf"


def engine_backend(name: str) -> Backend:
    """The engine `name` ('auto', 'hf', 'vllm') stands for, resolved once."""
    if choose_engine(name) == "vllm":
        from mt_bench_task.engine.vllm.backend import VLLM

        return VLLM
    from mt_bench_task.engine.hf.backend import HF

    return HF
