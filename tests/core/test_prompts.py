"""Conformance: for every stored FastChat judgment, our prompt builder and parsers give the stored
bytes and values (tests/conformance holds real runs by other people; see its README)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from mt_bench_task.core import data
from mt_bench_task.core.bench import load_bench
from mt_bench_task.core.prompts import (
    build_matches,
    extract_rating,
    extract_verdict,
    map_winner,
    messages,
    user_prompts,
)

CONF = Path(__file__).parents[1] / "conformance"
BENCH = load_bench()
SINGLE_RUNS = ["jxiw", "instructlab"]


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _answers(run: str) -> dict:
    return {p.stem: data.load_answers(CONF / run, p.stem)
            for p in (CONF / run / "model_answer").glob("*.jsonl")}


def _matches_by_key(run: str, mode: str, judge: str) -> dict:
    answers = _answers(run)
    models = sorted(answers)
    ms = build_matches(BENCH.select(), answers, models, BENCH.judge_prompts, mode,
                       judge, BENCH.references)
    return {(m.question.question_id, m.turn, m.model_1, m.model_2 or ""): m for m in ms}


@pytest.mark.parametrize("run", SINGLE_RUNS)
def test_single_prompts_scores_and_types_match_fastchat(run):
    rows = _rows(CONF / run / "model_judgment" / "gpt-4_single.jsonl")
    matches = _matches_by_key(run, "single", "gpt-4")
    assert len(rows) == len(matches)  # one stored judgment per match, none missing
    for row in rows:
        m = matches[(row["question_id"], row["turn"], row["model"], "")]
        assert m.prompt.name == row["judge"][1]
        assert user_prompts(m) == [row["user_prompt"]]
        score = extract_rating(row["judgment"])
        assert score == row["score"] and type(score) is type(row["score"]), row["judgment"][-80:]


def test_pairwise_prompts_and_verdicts_match_fastchat_both_orders():
    path = next((CONF / "lesnikow" / "model_judgment").glob("*_pair.jsonl"))
    rows = _rows(path)
    matches = _matches_by_key("lesnikow", "pairwise-all", "gpt-4-turbo")
    assert len(rows) == len(matches) == 480
    for row in rows:
        m = matches[(row["question_id"], row["turn"], row["model_1"], row["model_2"])]
        assert m.prompt.name == row["judge"][1]
        assert user_prompts(m) == [row["g1_user_prompt"], row["g2_user_prompt"]]
        for game in (1, 2):
            verdict = extract_verdict(row[f"g{game}_judgment"], m.prompt.output_format)
            assert map_winner(verdict, game) == row[f"g{game}_winner"]


def test_match_order_is_fastchats_blocks():
    ms = build_matches(BENCH.select(), {"m": data.load_answers(CONF / "jxiw", "mamba_0_5_dpo_ep1")},
                       ["m"], BENCH.judge_prompts, "single", "gpt-4", BENCH.references)
    names = [m.prompt.name for m in ms]
    assert names == (["single-v1"] * 50 + ["single-math-v1"] * 30
                     + ["single-v1-multi-turn"] * 50 + ["single-math-v1-multi-turn"] * 30)


def test_request_messages_are_system_then_user():
    prompt = BENCH.judge_prompts["single-v1"]
    assert messages(prompt, "U") == [{"role": "system", "content": "You are a helpful assistant."},
                                     {"role": "user", "content": "U"}]


RATING_CASES = [  # judgment text -> FastChat's rating (type matters)
    ("Rating: [[8]]", 8), ("Rating: [[8.5]]", 8.5), ("[[10.]]", 10.0), ("[[8/10]]", -1),
    ("see [3]. Rating: [[7]]", 7), ("see [3]. Rating: 7", 3), ("$ERROR$", -1),
    ("[[2]] then [[9]]", 2), ("Rating: [[11]]", 11), ("[[ 8 ]]", -1), ("", -1),
]


@pytest.mark.parametrize("text,expected", RATING_CASES)
def test_extract_rating_table(text, expected):
    got = extract_rating(text)
    assert got == expected and type(got) is type(expected)


VERDICT_CASES = [
    ("[[A]]", "A"), ("[[B]]", "B"), ("[[C]]", "tie"), ("no verdict", "error"),
    ('format: "[[A]]" ... final [[B]]', "A"), ("[[B]] or [[C]]", "B"), ("$ERROR$", "error"),
]


@pytest.mark.parametrize("text,expected", VERDICT_CASES)
def test_extract_verdict_table(text, expected):
    assert extract_verdict(text, "[[A]]") == expected


@pytest.mark.parametrize("text,expected", [("[[8, 7]]", "A"), ("[[7,8]]", "B"), ("[[7.05, 7]]", "tie"),
                                           ("[7, 9]", "B"), ("none", "error")])
def test_extract_score_pair_table(text, expected):
    assert extract_verdict(text, "[[rating_a,rating_b]]") == expected


def test_game_two_maps_letters_inversely():
    assert [map_winner(v, 1) for v in "AB"] == ["model_1", "model_2"]
    assert [map_winner(v, 2) for v in "AB"] == ["model_2", "model_1"]
    assert map_winner("tie", 2) == "tie" and map_winner("error", 1) == "error"
