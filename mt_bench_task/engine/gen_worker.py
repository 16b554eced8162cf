"""One process of a multi-process generation, run by name (never imported by the parent):
- `python -m mt_bench_task.engine.gen_worker CONFIG_JSON STATS_JSON`: an accelerate worker
  (hf/launch.py starts them); it answers this process's share through `generate_answers`, the
  main process writes the run's stats;
- `python -m mt_bench_task.engine.gen_worker --shard SPEC_JSON`: one data-parallel replica
  (data_parallel.py starts them); it answers its shard's questions into its shard file.
"""
from __future__ import annotations

import json
import os
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from mt_bench_task.core.errors import DataError
from mt_bench_task.core.ids import question_key
from mt_bench_task.core.workspace import open_workspace
from mt_bench_task.engine.config import GenerationConfig
from mt_bench_task.engine.generate import generate_answers


def main(argv: list[str] | None = None) -> int:
    args = argv if argv is not None else sys.argv[1:]
    if args[:1] == ["--shard"]:
        try:
            return run_shard(json.loads(Path(args[1]).read_text()))
        except DataError as e:  # a user error (vLLM refused an option, ...): one line, as the CLI
            print(f"mt-bench gen: data parallel replica: error: {e}", file=sys.stderr)
            return 2
    cfg_file, stats_file = args[:2]
    d = json.loads(Path(cfg_file).read_text())
    workspace = open_workspace(d.pop("bench_name"), d["data_dir"])
    stats = generate_answers(config_of(d), workspace)
    if os.environ.get("RANK", "0") == "0":
        Path(stats_file).write_text(json.dumps(asdict(stats)))
    return 0


def config_of(d: dict[str, Any]) -> GenerationConfig:
    return GenerationConfig(**{**d, "data_dir": Path(d["data_dir"]),
                               "answer_file": Path(d["answer_file"]),
                               "think_tags": tuple(d["think_tags"]) if d.get("think_tags") else None})


def run_shard(spec: dict[str, Any]) -> int:
    from mt_bench_task.engine.registry import engine_backend

    cfg = config_of(spec["config"])
    bench = open_workspace(spec["bench_name"], cfg.data_dir).bench
    keys = {question_key(k) for k in spec["questions"]}
    questions = [q for q in bench.questions if q.key in keys]
    tokens, seconds, startup = engine_backend(cfg.engine).generate(
        cfg, cfg.model_path, questions, cfg.output_path, bench)
    Path(spec["stats"]).write_text(json.dumps({"tokens": tokens, "seconds": seconds,
                                               "startup": startup}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
