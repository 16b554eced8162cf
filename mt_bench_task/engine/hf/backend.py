"""The hf engine's entry points (registry.Backend): what it refuses, generation (in this process,
or in `num_processes` accelerate workers: launch.py), the judge."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from mt_bench_task.core.errors import DataError
from mt_bench_task.engine.config import EngineOptions, GenerationConfig

if TYPE_CHECKING:
    from mt_bench_task.core.bench import Bench
    from mt_bench_task.core.types import Question
    from mt_bench_task.engine.hf.judge_decoder import HfJudge


class HfBackend:
    name = "hf"

    def check(self, cfg: GenerationConfig) -> None:
        """--data-parallel-size is --num-processes here (accelerate processes): one value.
        vLLM's other options are ignored, as before."""
        if 1 < cfg.num_processes != cfg.data_parallel_size > 1:
            raise DataError(f"--data-parallel-size {cfg.data_parallel_size} and --num-processes "
                            f"{cfg.num_processes}: on the hf engine they are one setting (the "
                            "accelerate processes); give one")

    def check_judge(self, options: EngineOptions) -> None:
        """Nothing to refuse."""

    def generate(self, cfg: GenerationConfig, model_path: str, pending: list[Question], out: Path,
                 bench: Bench) -> tuple[int, float, float]:
        from mt_bench_task.engine.hf.launch import launched, relaunch

        processes = max(cfg.num_processes, cfg.data_parallel_size)
        if processes > 1 and not launched():
            stats = relaunch(replace(cfg, engine=self.name, num_processes=processes,
                                     data_parallel_size=1), model_path, bench)
            return stats.tokens, stats.seconds, stats.startup
        from mt_bench_task.engine.hf.engine import run_hf

        return run_hf(cfg, model_path, pending, out, bench.temperature,
                      [q.key for q in bench.questions])

    def start_judge(self, judge_model: str, options: EngineOptions) -> HfJudge:
        from mt_bench_task.engine.hf.judge_decoder import HfJudge

        return HfJudge.load(judge_model, options)


HF = HfBackend()
