"""MT-bench's packaged official data as the calibration tests read it: the GPT-4 grades and which
answer a judge prompt belongs to (a fake judge sees text only)."""
from __future__ import annotations

import json
from pathlib import Path

from mt_bench_task.core import data
from mt_bench_task.core.bench import load_bench
from mt_bench_task.core.prompts import build_matches, user_prompts

PKG = Path(__file__).resolve().parents[2] / "mt_bench_task" / "data"
GRADES = PKG / "official_grades" / "gpt-4_single_scores.jsonl"
# the six models whose official answers are packaged
SIX = ["gpt-4", "gpt-3.5-turbo", "claude-v1", "vicuna-13b-v1.3", "alpaca-13b", "llama-13b"]


def grade_rows() -> list[dict]:
    return [json.loads(line) for line in GRADES.read_text(encoding="utf-8").splitlines() if line]


def official_grades() -> dict[tuple, float]:
    """(model, question_id, turn) -> the official GPT-4 grade; unrated (-1) ones left out."""
    return {(r["model"], r["question_id"], r["turn"]): r["score"] for r in grade_rows()
            if r["score"] != -1}


def prompt_owner(models: list[str]) -> dict[str, tuple]:
    """user prompt -> the first (model, qid, turn) that sends it (a server sees text only)."""
    answers = {m: {a.question_id: a for a in data.read_answers(PKG / "official_answers" / f"{m}.jsonl")}
               for m in models}
    mt = load_bench("mt_bench")
    matches = build_matches(mt.select(), answers, models, mt.judge_prompts, "single", "x",
                            mt.references)
    owner: dict[str, tuple] = {}
    for m in matches:
        owner.setdefault(user_prompts(m)[0], (m.model_1, m.question.question_id, m.turn))
    return owner
