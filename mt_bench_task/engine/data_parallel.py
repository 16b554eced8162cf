"""Data parallel generation, the same for any engine: N engine replicas, each in a process of its
own on its own GPU group, share the pending questions; one answer file in the bench's order.

- Shards: the pending questions dealt round-robin (neighbours, often of one category and length,
  go to different replicas), `min(N, pending)` of them. Each replica appends its answers to its
  own shard file beside the answer file (`MODEL.jsonl.shard-I-of-N`), as one engine does to the
  answer file, so a killed run loses at most the questions in flight.
- Merge: the shard files' complete lines are appended to the answer file, which is then sorted
  as FastChat's reorg_answer_file does (`driver.reorganize_answer_file`: one line per question,
  the last wins, bytes kept), and the shard files are removed. `fold_shards` runs after the
  replicas end (finished or not) and before the next run reads what is answered, so a rerun
  after a kill skips every question any shard finished, whatever N it is given.
- GPUs: replica i sees GPUs [i*k, (i+1)*k) of the visible ones (CUDA_VISIBLE_DEVICES, else all),
  k = the GPUs one engine uses (vLLM: tensor x pipeline parallel size). Without GPUs (vLLM's CPU
  build) the replicas split the CPU cores this process may use.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from mt_bench_task.core.bench import Bench
from mt_bench_task.core.errors import DataError
from mt_bench_task.core.ids import QuestionId
from mt_bench_task.core.jsonl import JsonlAppender
from mt_bench_task.core.types import Question
from mt_bench_task.engine.config import GenerationConfig
from mt_bench_task.engine.driver import reorganize_answer_file

WORKER = "mt_bench_task.engine.gen_worker"  # run by name in each replica, never imported here


@dataclass(frozen=True)
class Shard:
    index: int
    count: int
    questions: tuple[QuestionId, ...]  # question keys, in the bench's order
    path: Path  # its answer file
    gpus: str | None = None  # CUDA_VISIBLE_DEVICES for its process; None: leave as is
    cpus: tuple[int, ...] = ()  # the CPU cores its process may use; (): all


@dataclass(frozen=True)
class ShardRun:
    tokens: int
    seconds: float  # generation
    startup: float  # loading the model / starting the engine


# Runs the shards (each: cfg, model path, bench, shard) and returns what each did; raises when
# one failed, after all have ended. `run_processes` below; tests pass one that runs in-process.
Launcher = Callable[[GenerationConfig, str, Bench, Sequence[Shard]], list[ShardRun]]


def shard_path(out: Path, index: int, count: int) -> Path:
    return out.with_name(f"{out.name}.shard-{index}-of-{count}")


def leftover_shards(out: Path) -> list[Path]:
    return sorted(out.parent.glob(f"{out.name}.shard-*-of-*"))


def fold_shards(out: Path, order: Sequence[QuestionId] = ()) -> int:
    """Move the answers of any shard files beside `out` into it (a torn last line, cut by a kill,
    is dropped), sort it, remove the shard files; the number of answer lines moved."""
    shards = leftover_shards(out)
    if not shards:
        return 0
    moved = 0
    with JsonlAppender(out) as appender:
        for shard in shards:
            text = shard.read_text(encoding="utf-8")
            complete = text if text.endswith("\n") else text[: text.rfind("\n") + 1]
            for line in complete.split("\n"):
                if line.strip():
                    appender.write(line)
                    moved += 1
    if out.is_file():
        reorganize_answer_file(out, order)
    for shard in shards:  # after the sorted file is in place: a kill before this loses nothing
        shard.unlink()
    return moved


def plan_shards(out: Path, pending: Sequence[Question], count: int, gpus_per_engine: int,
                visible_gpus: Sequence[str], cpus: Sequence[int]) -> list[Shard]:
    """`count` replicas (fewer when fewer questions are pending), with their GPUs or CPU cores."""
    n = max(1, min(count, len(pending)))
    if visible_gpus and len(visible_gpus) < n * gpus_per_engine:
        raise DataError(f"--data-parallel-size {count} x {gpus_per_engine} GPUs per engine needs "
                        f"{count * gpus_per_engine} GPUs; {len(visible_gpus)} visible "
                        f"({','.join(visible_gpus)})")
    shards = []
    for i in range(n):
        group = visible_gpus[i * gpus_per_engine:(i + 1) * gpus_per_engine]
        own_cpus = tuple(cpus[i::n]) if not visible_gpus and len(cpus) >= n else ()
        shards.append(Shard(i, n, tuple(q.key for q in pending[i::n]), shard_path(out, i, n),
                            ",".join(group) if visible_gpus else None, own_cpus))
    return shards


def run_data_parallel(cfg: GenerationConfig, model_path: str, pending: Sequence[Question],
                      out: Path, bench: Bench, gpus_per_engine: int,
                      launch: Launcher | None = None) -> tuple[int, float, float]:
    """Answer `pending` in cfg.data_parallel_size replicas, into `out`: (tokens, generation s,
    start-up s), the slowest replica's times."""
    shards = plan_shards(out, pending, cfg.data_parallel_size, gpus_per_engine, visible_gpus(),
                         usable_cpus())
    one = replace(cfg, data_parallel_size=1)  # each replica is one engine
    try:
        runs = (launch or run_processes)(one, model_path, bench, shards)
    finally:  # finished or not: what the shards answered is in the answer file
        fold_shards(out, [q.key for q in bench.questions])
    return (sum(r.tokens for r in runs), max(r.seconds for r in runs),
            max(r.startup for r in runs))


def visible_gpus() -> list[str]:
    """The CUDA devices this process may use, as CUDA_VISIBLE_DEVICES names them."""
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return [d.strip() for d in env.split(",") if d.strip()]
    import torch

    return [str(i) for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else []


def usable_cpus() -> list[int]:
    if hasattr(os, "sched_getaffinity"):
        return sorted(os.sched_getaffinity(0))
    return list(range(os.cpu_count() or 1))


def run_processes(cfg: GenerationConfig, model_path: str, bench: Bench,
                  shards: Sequence[Shard]) -> list[ShardRun]:
    """Each shard in a `python -m mt_bench_task.engine.gen_worker --shard SPEC` process with its
    GPUs (CUDA_VISIBLE_DEVICES) or CPU cores; all run at once, their output interleaved."""
    with tempfile.TemporaryDirectory() as tmp:
        procs = []
        for shard in shards:
            spec = Path(tmp) / f"shard-{shard.index}.json"
            spec.write_text(json.dumps(shard_spec(cfg, model_path, bench, shard,
                                                  Path(tmp) / f"stats-{shard.index}.json")))
            env = dict(os.environ)
            if shard.gpus is not None:
                env["CUDA_VISIBLE_DEVICES"] = shard.gpus
            procs.append(subprocess.Popen(
                [sys.executable, "-m", WORKER, "--shard", str(spec)], env=env,
                preexec_fn=_pin(shard.cpus) if shard.cpus else None))
        try:
            codes = [p.wait() for p in procs]
        except BaseException:  # Ctrl-C: the replicas stop too; each keeps what it wrote
            for p in procs:
                if p.poll() is None:
                    p.send_signal(signal.SIGINT)
            for p in procs:
                p.wait()
            raise
        failed = [f"{s.index} (exit code {c})" for s, c in zip(shards, codes) if c != 0]
        if failed:
            raise DataError(f"data parallel: replica {', '.join(failed)} of {len(shards)} failed "
                            "(see its output above); the answers written are kept, a rerun "
                            "resumes")
        return [ShardRun(**json.loads((Path(tmp) / f"stats-{s.index}.json").read_text()))
                for s in shards]


def _pin(cpus: tuple[int, ...]) -> Callable[[], None]:
    def pin() -> None:
        os.sched_setaffinity(0, cpus)
    return pin


def shard_spec(cfg: GenerationConfig, model_path: str, bench: Bench, shard: Shard,
               stats: Path) -> dict[str, object]:
    """What a replica process is given: the config (paths absolute), the bench by name and data
    dir (it loads the same bench), its questions and files."""
    return {"config": {**asdict(cfg), "model_path": model_path,
                       "data_dir": str(Path(cfg.data_dir).resolve()),
                       "answer_file": str(shard.path.resolve()),
                       "chat_template": str(Path(cfg.chat_template).resolve())
                       if cfg.chat_template else None},
            "bench_name": bench.name, "questions": list(shard.questions),
            "stats": str(stats)}
