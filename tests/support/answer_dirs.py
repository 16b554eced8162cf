"""A data dir holding one conformance model's FastChat answers (shared by the judging tests)."""
from __future__ import annotations

import shutil
from pathlib import Path

CONF = Path(__file__).parents[1] / "conformance"
MODEL = "mamba_0_5_dpo_ep1"


def one_model_answers(tmp_path: Path, model: str = MODEL) -> Path:
    """tmp_path/bench with model_answer/<model>.jsonl from the jxiw run (80 questions)."""
    d = tmp_path / "bench"
    (d / "model_answer").mkdir(parents=True)
    shutil.copy(CONF / "jxiw/model_answer" / f"{model}.jsonl", d / "model_answer")
    return d
