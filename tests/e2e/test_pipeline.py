"""`mt-bench run`: gen + judge + show in one command, with the embedded model as answerer and judge."""
from __future__ import annotations

import json

import pytest

from mt_bench_task.cli.main import main


@pytest.mark.slow
def test_run_generates_judges_and_shows(tmp_path, capsys, default_model_dir):
    code = main(["run", "--data-dir", str(tmp_path), "--question-end", "2", "--max-new-token", "4",
                 "--dtype", "float32"])
    out = capsys.readouterr()
    assert code == 0, out.err
    answers = (tmp_path / "model_answer/smollm2-135m-instruct.jsonl").read_text().splitlines()
    assert [json.loads(l)["question_id"] for l in answers] == [81, 82]
    rows = [json.loads(l) for l in
            (tmp_path / "model_judgment/smollm2-135m-instruct_single.jsonl").read_text().splitlines()]
    assert len(rows) == 4 and all(r["local_judge"] for r in rows)
    assert all(isinstance(r["score"], int) and 1 <= r["score"] <= 10 for r in rows)
    assert "########## Average ##########" in out.out
    assert "not comparable with published MT-bench" in out.out
    assert (tmp_path / "radar.png").read_bytes()[:4] == b"\x89PNG"
    # a second run resumes both stages: nothing generated, nothing judged again
    assert main(["run", "--data-dir", str(tmp_path), "--question-end", "2", "--max-new-token", "4",
                 "--dtype", "float32"]) == 0
    err = capsys.readouterr().err
    assert "0 to judge" in err


@pytest.mark.slow
def test_run_on_vicuna_bench_is_single_turn(tmp_path, capsys, default_model_dir):
    code = main(["run", "--bench-name", "vicuna_bench", "--data-dir", str(tmp_path),
                 "--question-begin", "66", "--question-end", "69", "--max-new-token", "4",
                 "--dtype", "float32"])
    out = capsys.readouterr()
    assert code == 0, out.err
    answers = [json.loads(l) for l in
               (tmp_path / "model_answer/smollm2-135m-instruct.jsonl").read_text().splitlines()]
    assert [a["question_id"] for a in answers] == [67, 68, 69]  # coding, then math
    assert all(len(a["choices"][0]["turns"]) == 1 for a in answers)
    rows = [json.loads(l) for l in
            (tmp_path / "model_judgment/smollm2-135m-instruct_single.jsonl").read_text().splitlines()]
    assert {r["judge"][1] for r in rows} == {"single-math-v1"} and len(rows) == 3
    assert "First turn" in out.out and "Second turn" not in out.out
