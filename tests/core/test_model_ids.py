"""Repo ids as model names (issue 33, item 4): one flat answer file per id, found by every reader
without --model-list; ids that would leave the data dir refused by every command that writes."""
from __future__ import annotations

import json
import os

import pytest
from support.answer_dirs import CONF, MODEL, answer_dir
from support.fake_openai import FakeOpenAI

from mt_bench_task.core import data
from mt_bench_task.core.errors import DataError
from mt_bench_task.core.ids import model_file_stem, model_id_of_stem

REPO_ID = "meta-llama/Llama-3.1-8B-Instruct"


@pytest.mark.parametrize("model_id, stem", [
    ("gpt-4", "gpt-4"),  # FastChat's names keep their file name
    (REPO_ID, "meta-llama%2FLlama-3.1-8B-Instruct"),
    ("accounts/fireworks/models/x", "accounts%2Ffireworks%2Fmodels%2Fx"),
    ("100%/b", "100%25%2Fb"),
    ("a%2Fb", "a%252Fb"),  # an id that looks escaped stays distinct from "a/b"
])
def test_the_file_name_rule_is_flat_and_reverses_exactly(model_id, stem):
    assert model_file_stem(model_id) == stem and "/" not in stem
    assert model_id_of_stem(stem) == model_id


@pytest.mark.parametrize("bad", ["", "  ", "..", "../../x", "a/../../b", "/etc/x", "a\x00b",
                                 "a//b", "org/", "./x", "C:x"])
def test_ids_that_would_leave_the_data_dir_are_refused(bad, tmp_path):
    with pytest.raises(DataError, match="cannot name an answer file"):
        data.answer_file(tmp_path, bad)


ENV = {**{k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")},
       "OPENAI_API_KEY": "sk-test-ids"}


def test_a_repo_id_goes_from_gen_api_to_judge_show_report_and_publish(tmp_path, mt_bench):
    d = tmp_path / "d"
    with FakeOpenAI("echo") as server:
        assert mt_bench("gen-api", "--model", REPO_ID, "--openai-api-base", server.url,
                        "--data-dir", d, "--question-end", "2", env=ENV).returncode == 0
    assert [p.name for p in (d / "model_answer").iterdir()] == ["meta-llama%2FLlama-3.1-8B-Instruct.jsonl"]
    record = json.loads((d / "model_answer/meta-llama%2FLlama-3.1-8B-Instruct.jsonl").read_text()
                        .splitlines()[0])
    assert record["model_id"] == REPO_ID
    assert server.requests[0]["model"] == REPO_ID

    with FakeOpenAI("judge") as judge:  # no --model-list: found by listing the data dir
        assert mt_bench("judge", "--data-dir", d, "--openai-api-base", judge.url,
                        "--first-n", "2", env=ENV).returncode == 0
    judged = data.read_single_judgments(d / "model_judgment/gpt-4_single.jsonl")
    assert len(judged) == 4 and {r.model for r in judged} == {REPO_ID}

    shown = mt_bench("show", "--data-dir", d, "--json")
    assert shown.returncode == 0 and list(json.loads(shown.stdout)["models"]) == [REPO_ID]
    assert mt_bench("report", "--data-dir", d, "--out", tmp_path / "r.html").returncode == 0
    assert REPO_ID in (tmp_path / "r.html").read_text()
    card = mt_bench("publish", "--data-dir", d, "--dry-run")
    assert card.returncode == 0 and REPO_ID in card.stdout


@pytest.mark.parametrize("argv", [
    ["gen-api", "--model", "../../x", "--openai-api-base", "http://127.0.0.1:9/v1"],
    ["gen-api", "--model", "/tmp/abs", "--openai-api-base", "http://127.0.0.1:9/v1"],
    ["gen", "--model-id", "../x"],
    ["run", "--model-id", "a/../../x"],
    ["judge", "--model-list", "../x", "--openai-api-base", "http://127.0.0.1:9/v1"],
])
def test_every_writing_command_refuses_such_ids_in_one_line_exit_2(argv, tmp_path, mt_bench):
    d = answer_dir(tmp_path, name="d")
    before = sorted(p for p in tmp_path.rglob("*"))
    result = mt_bench(*argv, "--data-dir", d, env=ENV)
    err = result.stderr.strip().splitlines()
    assert result.returncode == 2
    assert len(err) == 1 and "cannot name an answer file" in err[0], err
    assert sorted(p for p in tmp_path.rglob("*")) == before  # nothing written anywhere


def test_fastchats_nested_answer_dir_is_found_and_resumed_in_place(tmp_path, mt_bench):
    """FastChat's gen_api_answer writes model_answer/org/name.jsonl for a repo id: judge lists it
    as org/name and gen-api resumes into that file instead of starting a second one."""
    d = tmp_path / "d"
    nested = d / "model_answer/org/name.jsonl"
    nested.parent.mkdir(parents=True)
    lines = (CONF / "jxiw/model_answer" / f"{MODEL}.jsonl").read_text().splitlines()
    nested.write_text("\n".join(lines[1:]) + "\n")  # question 81 missing
    assert data.list_answer_models(d) == ["org/name"]
    assert data.answer_file(d, "org/name") == nested
    plan = mt_bench("judge", "--data-dir", d, "--dry-run", "--allow-partial", env=ENV)
    assert plan.returncode == 0 and "158 to judge" in plan.stderr  # 79 questions x 2 turns
    with FakeOpenAI("echo") as server:
        assert mt_bench("gen-api", "--model", "org/name", "--openai-api-base", server.url,
                        "--data-dir", d, "--question-end", "3", env=ENV).returncode == 0
        assert server.total == 2  # only question 81, both turns
    assert [p.relative_to(d).as_posix() for p in sorted(d.rglob("*.jsonl"))] == [
        "model_answer/org/name.jsonl"]
    assert len(nested.read_text().splitlines()) == 80
