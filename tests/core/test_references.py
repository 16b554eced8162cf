"""`--references inline|FILE`: the corrected references as an opt-in (FastChat issue #3053,
PR #3158). FastChat's question.jsonl carries short inline `reference` lists that its judge never
reads; `inline` fills the reference slots from them, a FILE is any FastChat reference file.
Either is recorded in every judgment and makes the run not comparable with published MT-bench.
Expected prompts are rebuilt here from the raw packaged files, independently of core.prompts."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from support.fake_openai import FakeOpenAI

from mt_bench_task.cli import main as cli
from mt_bench_task.core.chat import ChatClientBase, Completion

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "mt_bench_task" / "data" / "mt_bench" / "data"
OFFICIAL = REPO / "mt_bench_task" / "data" / "official_answers"
PR_3158 = (104, 105, 109, 111, 113, 114, 120, 122, 124, 125, 126, 128, 130)


def _jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


QUESTIONS = {q["question_id"]: q for q in _jsonl(DATA / "question.jsonl")}
PACKAGED_REFS = {r["question_id"]: r["choices"][0]["turns"] for r in _jsonl(DATA / "reference_answer_gpt-4.jsonl")}
PROMPTS = {p["name"]: p for p in _jsonl(DATA / "judge_prompts.jsonl")}
GPT4 = {a["question_id"]: a["choices"][0]["turns"] for a in _jsonl(OFFICIAL / "gpt-4.jsonl")}


def _math_prompt(qid: int, turn: int, ref: list[str]) -> str:
    q, a = QUESTIONS[qid]["turns"], GPT4[qid]
    if turn == 1:
        return PROMPTS["single-math-v1"]["prompt_template"].format(
            question=q[0], ref_answer_1=ref[0], answer=a[0])
    return PROMPTS["single-math-v1-multi-turn"]["prompt_template"].format(
        question_1=q[0], question_2=q[1], ref_answer_1=ref[0], ref_answer_2=ref[1],
        answer_1=a[0], answer_2=a[1])


def test_inline_references_fill_the_slots_and_are_recorded(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    d = tmp_path / "mt_bench"
    base = ["judge", "--data-dir", str(d), "--model-list", "gpt-4", "--references", "inline"]
    assert cli.main([*base, "--dry-run"]) == 0
    err = capsys.readouterr().err
    assert "references: inline (question.jsonl's `reference`); question 123 without one keep" in err
    assert "NOTE: judged by gpt-4: not comparable with published MT-bench" in err
    with FakeOpenAI("judge") as server:
        assert cli.main([*base, "--openai-api-base", server.url, "--parallel", "8"]) == 0
        sent = {r["messages"][-1]["content"] for r in server.requests}
    records = _jsonl(d / "model_judgment" / "gpt-4_single.jsonl")
    assert len(records) == 160 and all(r["references"] == "inline" for r in records)
    for qid in PR_3158:  # the corrected answers reach the judge, the packaged ones do not
        inline = QUESTIONS[qid]["reference"]
        assert inline != PACKAGED_REFS[qid]
        for turn in (1, 2):
            assert _math_prompt(qid, turn, inline) in sent
            assert _math_prompt(qid, turn, PACKAGED_REFS[qid]) not in sent
    assert "David has no brother" in _math_prompt(104, 1, QUESTIONS[104]["reference"])
    assert _math_prompt(123, 1, PACKAGED_REFS[123]) in sent  # no inline reference: the file's

    capsys.readouterr()
    assert cli.main(["show", "--data-dir", str(d), "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["comparable"] is False and res["references"] == "inline"
    (d / "model_answer").mkdir()
    (d / "model_answer" / "gpt-4.jsonl").write_bytes((OFFICIAL / "gpt-4.jsonl").read_bytes())
    assert cli.main(["report", "--data-dir", str(d), "--out", str(tmp_path / "r.html")]) == 0
    html = (tmp_path / "r.html").read_text(encoding="utf-8")
    assert '"ref":["David has no brother.' in html and '"reference":"inline"' in html
    # resuming with FastChat's references would mix two reference sets in one file
    assert cli.main(["judge", "--data-dir", str(d), "--model-list", "gpt-4", "--dry-run"]) == 2
    assert "judged with references 'inline'" in capsys.readouterr().err


def test_reference_file_made_for_another_judge(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    alt = tmp_path / "gpt-4-0125-preview.jsonl"  # string ids: 101 and "101" are one question
    alt.write_text("".join(json.dumps({"question_id": str(q), "model_id": "gpt-4-0125-preview",
                                       "choices": [{"index": 0, "turns": [f"Korrigiert {q}a",
                                                                          f"Korrigiert {q}b"]}]}) + "\n"
                           for q in range(101, 131)))
    d = tmp_path / "mt_bench"
    with FakeOpenAI("judge") as server:
        assert cli.main(["judge", "--data-dir", str(d), "--model-list", "gpt-4", "--first-n", "30",
                         "--references", str(alt), "--openai-api-base", server.url]) == 0
        sent = [r["messages"][-1]["content"] for r in server.requests]
    assert _math_prompt(105, 2, ["Korrigiert 105a", "Korrigiert 105b"]) in sent
    records = _jsonl(d / "model_judgment" / "gpt-4_single.jsonl")
    assert len(records) == 60 and {r["references"] for r in records} == {"gpt-4-0125-preview.jsonl"}


def test_calibrate_dry_run_with_inline_references_is_labelled(tmp_path, capsys):
    assert cli.main(["calibrate", "--judge-model", "gpt-4", "--data-dir", str(tmp_path),
                     "--references", "inline", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "960 judgments" in out and "NOTE: judged by gpt-4: not comparable" in out


def test_metric_with_inline_references():
    from mt_bench_task.integrations import metric

    seen: list[str] = []

    class Judge(ChatClientBase):
        async def complete(self, model, messages, *, temperature, max_tokens):
            seen.append(messages[-1]["content"])
            return Completion("[[6]]")

    questions = [QUESTIONS[81], QUESTIONS[104]]
    res = metric.compute([GPT4[81], GPT4[104]], questions, return_judgments=True,
                         judge=metric.JudgeSettings(client=Judge(), references="inline"))
    assert _math_prompt(104, 1, QUESTIONS[104]["reference"]) in seen
    assert res["comparable"] is False and "not comparable" in res["label"]
    assert {j["references"] for j in res["judgments"]} == {"inline"} and res["score"] == 6
    plain = metric.compute([GPT4[81], GPT4[104]], questions,
                           judge=metric.JudgeSettings(client=Judge()))
    assert plain["comparable"] is True and plain["label"] is None


def test_inspect_task_with_inline_references():
    pytest.importorskip("inspect_ai")
    from mt_bench_task.integrations import inspect_task

    task = inspect_task.mt_bench(references="inline")
    assert task.metadata["mt_bench_task"]["references"] == "inline"
    sample = next(s for s in task.dataset if s.id == 104)
    assert sample.metadata["reference"] == QUESTIONS[104]["reference"]
    assert inspect_task.mt_bench().metadata["mt_bench_task"]["references"] is None


def test_docs_table_of_the_13_corrected_references_is_generated():
    import subprocess
    import sys

    table = subprocess.run([sys.executable, str(REPO / "datasets_scripts" / "reference_table.py")],
                           check=True, capture_output=True, text=True, timeout=600).stdout
    assert table.count("\n| 1") == len(PR_3158) and "David has no brother" in table
    assert table in (REPO / "docs" / "benches.md").read_text(encoding="utf-8")
