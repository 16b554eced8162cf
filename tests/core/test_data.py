"""The packaged MT-bench dataset: loads offline with `datasets`, equal to FastChat's files."""
from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from mt_bench_task.core import data
from mt_bench_task.core.bench import dataset_path, load_bench, official_answers_dir
from mt_bench_task.core.errors import DataError
from mt_bench_task.core.jsonl import read_jsonl

BUILDER = Path(__file__).parents[2] / "datasets_scripts" / "build_dataset.py"
SHA256 = {
    "question.jsonl": "119565adbab82227089cefdb44c8d7e2cf04dc0a0ec233634c82e7d4e2a944f7",
    "reference_answer_gpt-4.jsonl": "f957a5bc977badb66885ec970e6cd08527845780313f0995764260e5777b9b3f",
    "judge_prompts.jsonl": "fd283293406d024f44c174b094ef48031d0687a4682fd3a56b29b138f80281b6",
}


@pytest.mark.parametrize("name,sha", SHA256.items())
def test_packaged_files_are_fastchats_bytes(name, sha):
    assert hashlib.sha256((dataset_path() / "data" / name).read_bytes()).hexdigest() == sha


@pytest.fixture(scope="module")
def loaded() -> dict:
    """load_dataset in a fresh, offline process (no network, no cache of ours), once for the
    module: every config of mt_bench, and vicuna_bench's row counts."""
    code = """
import json
from datasets import load_dataset
from mt_bench_task import dataset_path
out = {}
for cfg, split in [("question", "train"), ("reference_answer", "gpt_4"), ("judge_prompts", "train")]:
    out[cfg] = [dict(r) for r in load_dataset(str(dataset_path()), cfg, split=split)]
f = str(dataset_path("vicuna_bench"))
out["vicuna_bench"] = [len(load_dataset(f, "question", split="train")),
                       len(load_dataset(f, "reference_answer", split="gpt_4"))]
print(json.dumps(out))
"""
    import os
    import tempfile

    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
               "HF_DATASETS_CACHE": cache}
        p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                           check=True)
    return json.loads(p.stdout.splitlines()[-1])


def test_load_dataset_offline_equals_the_original_files_string_for_string(loaded):
    files = {"question": "question.jsonl", "reference_answer": "reference_answer_gpt-4.jsonl",
             "judge_prompts": "judge_prompts.jsonl"}
    assert [len(loaded[c]) for c in files] == [80, 30, 8]
    for cfg, name in files.items():
        original = read_jsonl(dataset_path() / "data" / name)
        for row, orig in zip(loaded[cfg], original):
            for key, value in orig.items():
                assert row[key] == value, (cfg, key)  # typos included ("You evaluation ...")
    assert loaded["question"][0]["reference"] is None and loaded["question"][20]["reference"]
    assert sum("You evaluation should" in p["system_prompt"] for p in loaded["judge_prompts"]) == 2


def test_questions_categories_and_references():
    bench = load_bench()
    qs = bench.questions
    assert [q.question_id for q in qs] == list(range(81, 161))
    assert [q.category for q in qs[::10]] == list(bench.categories) == [
        "writing", "roleplay", "reasoning", "math", "coding", "extraction", "stem", "humanities"]
    assert sorted(bench.references["gpt-4"]) == list(range(101, 131))
    assert bench.temperature("writing") == 0.7 and bench.temperature("math") == 0.0
    assert bench.temperature("stem") == 0.1 and bench.temperature("unknown") == 0.7


def test_official_answers_are_packaged_for_the_default_baseline(tmp_path):
    answers = data.load_answers(tmp_path, "gpt-3.5-turbo", load_bench().official_answers)  # the packaged copy
    assert sorted(answers) == list(range(81, 161))
    assert all(len(a.turns) == 2 for a in answers.values())
    assert len(data.load_answers(tmp_path, "gpt-4", official_answers_dir())) == 80


def test_answer_records_round_trip_byte_for_byte():
    path = official_answers_dir() / "gpt-4.jsonl"
    from mt_bench_task.core.types import Answer

    for line in path.read_text().splitlines()[:20]:
        assert Answer.from_dict(json.loads(line)).to_json() == line


def test_malformed_jsonl_names_file_and_line(tmp_path):
    f = tmp_path / "question.jsonl"
    f.write_text('{"question_id": 1, "category": "writing", "turns": ["a", "b"]}\n{oops\n')
    with pytest.raises(DataError, match=r"question.jsonl:2: malformed"):
        load_bench("mine", tmp_path)
    f.write_text('{"question_id": 1, "turns": ["a"]}\n')
    with pytest.raises(DataError, match=r"question.jsonl:1: .*category"):
        load_bench("mine", tmp_path)


def test_unknown_model_answers_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="no answers for model 'nope'"):
        data.load_answers(tmp_path, "nope")


def test_dataset_builder_reproduces_the_shipped_folder(tmp_path):
    # FastChat's layout, rebuilt from the packaged copies (the one copy in the repo); the builder
    # checks FastChat's sha256 sums and must give the same folder, card included
    src, packaged = tmp_path / "src", dataset_path() / "data"
    (src / "reference_answer").mkdir(parents=True)
    for name in ("question.jsonl", "judge_prompts.jsonl"):
        (src / name).write_bytes((packaged / name).read_bytes())
    (src / "reference_answer" / "gpt-4.jsonl").write_bytes(
        (packaged / "reference_answer_gpt-4.jsonl").read_bytes())
    subprocess.run([sys.executable, str(BUILDER), "--source", str(src), "--out", str(tmp_path / "out")],
                   check=True, capture_output=True)
    for f in ["README.md", *(f"data/{n}" for n in SHA256)]:
        assert (tmp_path / "out" / f).read_bytes() == (dataset_path() / f).read_bytes(), f


VICUNA_SHA256 = {  # FastChat's vicuna_bench files (SOURCE.md)
    "question.jsonl": "c248c5c98ba45bb0c2aadae2f270e643bd32679c6c306a3b2a503ac4254cdaa5",
    "reference_answer_gpt-4.jsonl": "f7542dc25a5a869b32197486f5699a14eb5682ab3c7264518402399ec09ab470",
}


def test_vicuna_bench_is_packaged_loads_offline_and_rebuilds(tmp_path, loaded):
    folder = dataset_path("vicuna_bench")
    for name, sha in VICUNA_SHA256.items():
        assert hashlib.sha256((folder / "data" / name).read_bytes()).hexdigest() == sha
    assert (folder / "SOURCE.md").is_file()
    assert loaded["vicuna_bench"] == [80, 10]
    # FastChat's layout, rebuilt from the packaged copies: the builder gives the same folder
    src = tmp_path / "src"
    (src / "reference_answer").mkdir(parents=True)
    (src / "question.jsonl").write_bytes((folder / "data" / "question.jsonl").read_bytes())
    (src / "reference_answer" / "gpt-4.jsonl").write_bytes(
        (folder / "data" / "reference_answer_gpt-4.jsonl").read_bytes())
    subprocess.run([sys.executable, str(BUILDER), "--bench",
                    "vicuna_bench", "--source", str(src), "--out", str(tmp_path / "out")],
                   check=True, capture_output=True)
    for f in ["README.md", *(f"data/{n}" for n in VICUNA_SHA256)]:
        assert (tmp_path / "out" / f).read_bytes() == (folder / f).read_bytes(), f


def test_load_bench_resolves_packaged_benches_and_data_dir_overrides(tmp_path):
    vicuna = load_bench("vicuna_bench")
    assert len(vicuna.questions) == 80 and not vicuna.multi_turn
    assert len(vicuna.categories) == 9 and vicuna.categories[0] == "generic"
    assert sorted(vicuna.references["gpt-4"]) == list(range(61, 71))
    assert vicuna.official_answers is None and vicuna.dataset_id.endswith("vicuna_bench")
    # a data dir's own files win, one by one, and the bench says which were used
    d = tmp_path / "mt_bench"
    (d / "reference_answer").mkdir(parents=True)
    own_ref = {"question_id": 101, "choices": [{"turns": ["mine", "mine too"]}]}
    (d / "reference_answer" / "claude-v1.jsonl").write_text(json.dumps(own_ref) + "\n")
    b = load_bench("mt_bench", d)
    assert b.sources["questions"] == str(dataset_path() / "data" / "question.jsonl")
    assert str(d / "reference_answer" / "claude-v1.jsonl") in b.sources["references"]
    assert b.reference_for("claude-v1")[1][101].turns == ["mine", "mine too"]
    assert b.reference_for("gpt-4-turbo")[0] == "gpt-4"  # other judges reuse gpt-4's
    prompts = (dataset_path() / "data" / "judge_prompts.jsonl").read_text()
    (d / "judge_prompts.jsonl").write_text(prompts.replace("You evaluation", "Your evaluation"))
    (d / "question.jsonl").write_text('{"question_id": 7, "category": "neu", "turns": ["x"]}\n')
    b = load_bench("mt_bench", d)
    assert b.sources["judge_prompts"] == str(d / "judge_prompts.jsonl")
    assert b.judge_prompts_version.startswith("judge_prompts.jsonl@sha256:")
    assert [q.question_id for q in b.questions] == [7] and b.categories == ("neu",)
    assert b.dataset_id == "mt_bench" and b.dataset_revision.startswith("sha256:")
    assert b.temperature("neu") == 0.7
    with pytest.raises(DataError, match="unknown bench 'nope'"):
        load_bench("nope", tmp_path / "empty")


def test_unknown_bench_name_is_one_line_exit_2(mt_bench, tmp_path):
    p = mt_bench("show", "--bench-name", "nope", "--data-dir", tmp_path)
    assert p.returncode == 2 and p.stderr.startswith("mt-bench show: error: unknown bench 'nope'")
    assert p.stderr.count("\n") == 1
