"""A data dir holding conformance models' FastChat answers (shared by the judging tests)."""
from __future__ import annotations

import shutil
from pathlib import Path

CONF = Path(__file__).parents[1] / "conformance"
MODEL = "mamba_0_5_dpo_ep1"


def answer_dir(tmp_path: Path, *models: str, name: str = "bench") -> Path:
    """tmp_path/<name> with model_answer/<model>.jsonl for each model (default MODEL) from the
    jxiw run (80 questions each)."""
    d = tmp_path / name
    (d / "model_answer").mkdir(parents=True)
    for m in models or (MODEL,):
        shutil.copy(CONF / "jxiw/model_answer" / f"{m}.jsonl", d / "model_answer")
    return d
