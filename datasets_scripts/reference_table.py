"""Print docs/benches.md's table of the 13 MT-bench questions whose packaged GPT-4 reference is wrong
in at least one turn (FastChat PR #3158; issue #3053), side by side with the question file's own
inline `reference` (what `--references inline` gives the judge). Generated from the packaged
files, never typed: `python datasets_scripts/reference_table.py`."""
from __future__ import annotations

import json
from pathlib import Path

DATA = Path(__file__).resolve().parents[1] / "mt_bench_task" / "data" / "mt_bench" / "data"
PR_3158 = (104, 105, 109, 111, 113, 114, 120, 122, 124, 125, 126, 128, 130)
WIDTH = 150


def _cell(text: str) -> str:
    flat = " ".join(text.split()).replace("|", "\\|").replace("<", "&lt;")
    return (flat[:WIDTH].rstrip() + " ...") if len(flat) > WIDTH else (flat or "(empty)")


def table() -> str:
    def rows(name: str) -> list[dict]:
        return [json.loads(x) for x in (DATA / name).read_text(encoding="utf-8").splitlines() if x]

    questions = {q["question_id"]: q for q in rows("question.jsonl")}
    packaged = {r["question_id"]: r["choices"][0]["turns"] for r in rows("reference_answer_gpt-4.jsonl")}
    lines = ["| question | turn | packaged `reference_answer/gpt-4.jsonl` (FastChat's judge reads this) "
             "| inline `reference` in `question.jsonl` (`--references inline`) |",
             "| --- | --- | --- | --- |"]
    for qid in PR_3158:
        inline = questions[qid]["reference"]
        for turn in (1, 2):
            first = f"{qid} ({questions[qid]['category']})" if turn == 1 else ""
            lines.append(f"| {first} | {turn} | {_cell(packaged[qid][turn - 1])} "
                         f"| {_cell(inline[turn - 1])} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(table(), end="")
