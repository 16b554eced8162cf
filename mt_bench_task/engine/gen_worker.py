"""One process of a multi-process generation (hf/launch.py starts them under `accelerate launch`):
`python -m mt_bench_task.engine.gen_worker CONFIG_JSON STATS_JSON` answers this process's share
through `generate_answers`; the main process writes the run's stats.
"""
from __future__ import annotations

import json
import os
import sys
from dataclasses import asdict
from pathlib import Path

from mt_bench_task.core.workspace import open_workspace
from mt_bench_task.engine.config import GenerationConfig
from mt_bench_task.engine.generate import generate_answers


def main(argv: list[str] | None = None) -> int:
    cfg_file, stats_file = (argv if argv is not None else sys.argv[1:])[:2]
    d = json.loads(Path(cfg_file).read_text())
    workspace = open_workspace(d.pop("bench_name"), d["data_dir"])
    cfg = GenerationConfig(**{**d, "data_dir": Path(d["data_dir"]),
                              "answer_file": Path(d["answer_file"])})
    stats = generate_answers(cfg, workspace)
    if os.environ.get("RANK", "0") == "0":
        Path(stats_file).write_text(json.dumps(asdict(stats)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
