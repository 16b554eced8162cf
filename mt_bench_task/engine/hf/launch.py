"""The hf engine on several processes: `accelerate launch` runs engine/gen_worker.py's `main` in
each worker, which calls `generate_answers` again (inside the launch it runs this process's share).

The parent writes the config to a JSON file and launches `python -m mt_bench_task.engine.gen_worker
CONFIG_JSON STATS_JSON` under accelerate (the config holds the bench's name; each worker loads it
with the same data dir); each worker answers its shard, the main worker writes the answer file and
the run's stats.
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path

from mt_bench_task.core.bench import Bench
from mt_bench_task.core.errors import DataError
from mt_bench_task.engine.config import GenerationConfig, GenerationStats

WORKER = "mt_bench_task.engine.gen_worker"  # run by name in each process, never imported here


def launched() -> bool:
    """True inside `accelerate launch` / torchrun workers (they set WORLD_SIZE)."""
    return "WORLD_SIZE" in os.environ


def relaunch(cfg: GenerationConfig, model_path: str, bench: Bench) -> GenerationStats:
    """Run the generation in cfg.num_processes accelerate workers; their stats."""
    cfg_dict = {**asdict(cfg), "model_path": model_path,
                "data_dir": str(Path(cfg.data_dir).resolve()),
                "answer_file": str(cfg.output_path.resolve()),
                "chat_template": str(Path(cfg.chat_template).resolve())
                if cfg.chat_template else None}
    with tempfile.TemporaryDirectory() as tmp:
        cfg_file, stats_file = Path(tmp) / "config.json", Path(tmp) / "stats.json"
        cfg_file.write_text(json.dumps({**cfg_dict, "bench_name": bench.name}))
        cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu",
               "--num_processes", str(cfg.num_processes), "--num_machines", "1",
               "--mixed_precision", "no", "--dynamo_backend", "no",
               # port 0 makes accelerate abort, so pick a free one ourselves
               "--main_process_port", str(_free_port()),
               "-m", WORKER, str(cfg_file), str(stats_file)]
        rc = subprocess.run(cmd, check=False).returncode
        if rc != 0:
            raise DataError(f"{cfg.num_processes} accelerate worker processes failed "
                            f"(exit code {rc}); see their output above")
        return GenerationStats(**json.loads(stats_file.read_text()))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
