"""Reading every file FastChat reads: minimal answer and judgment records are accepted (only what
FastChat's judge and show_result use is required; other keys survive), and what FastChat would
crash on or silently misread is rejected with file:line, on one line, before anything is written."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from support.fake_openai import FakeOpenAI

from mt_bench_task.cli import main as cli
from mt_bench_task.clients.openai_client import OpenAIChatClient
from mt_bench_task.core import data
from mt_bench_task.core.types import Answer, PairJudgment, SingleJudgment
from mt_bench_task.engine.api import generate_api_answers

REPO = Path(__file__).resolve().parents[2]
Q = [{"question_id": i, "category": c, "turns": [f"q{i}"]}
     for i, c in [(1, "writing"), (2, "math"), (3, "wissen")]]


def _bench(d: Path) -> Path:
    (d / "model_answer").mkdir(parents=True)
    (d / "question.jsonl").write_text("".join(json.dumps(q) + "\n" for q in Q))
    (d / "reference_answer").mkdir()
    (d / "reference_answer" / "gpt-4.jsonl").write_text(
        json.dumps({"question_id": 2, "choices": [{"turns": ["4"]}]}) + "\n")
    return d


def test_minimal_answer_lines_are_read_and_their_other_keys_survive_a_resume(tmp_path):
    d = _bench(tmp_path / "b")
    path = d / "model_answer" / "m.jsonl"
    lines = [json.dumps({"question_id": 1, "choices": [{"turns": ["a1"]}]}),
             json.dumps({"question_id": 2, "model_id": "m", "generator": {"temp": 0.1},
                         "choices": [{"index": 0, "turns": ["a2"], "logprob": -1.5}]})]
    path.write_text("\n".join(lines) + "\n")
    records = data.read_answers(path)
    assert [r.turns for r in records] == [["a1"], ["a2"]]
    assert records[0].answer_id is None and records[1].extra == {"generator": {"temp": 0.1}}
    # written back with every key and nothing added (FastChat's keys first, then the others)
    assert [json.loads(r.to_json()) for r in records] == [json.loads(line) for line in lines]
    with FakeOpenAI("echo") as server:  # resume: only question 3 is asked
        client = OpenAIChatClient(server.url, api_key="sk-test")
        generate_api_answers("m", d, server.url, client=client)
        assert server.total == 1
    assert path.read_text().splitlines()[:2] == lines  # the lines already there: byte for byte


def test_minimal_judgment_lines_are_enough_for_show(tmp_path, capsys):
    d = _bench(tmp_path / "b")
    single = d / "model_judgment" / "gpt-4_single.jsonl"
    single.parent.mkdir()
    rows = [{"question_id": q, "model": "m", "judge": ["gpt-4", "single-v1"], "score": s, "turn": 1}
            for q, s in [(1, 8), (2, 5), (3, -1)]]
    single.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert [r.to_dict() for r in data.read_single_judgments(single)] == rows
    assert cli.main(["show", "--bench-name", "b", "--data-dir", str(d), "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["models"]["m"]["turn_1"] == (8 + 5) / 2 and res["rows_dropped"] == 1
    assert res["models"]["m"]["categories"] == {"writing": 8.0, "math": 5.0}
    pair = d / "model_judgment" / "gpt-4_pair.jsonl"
    prow = {"question_id": 1, "model_1": "m", "model_2": "n", "g1_winner": "model_1",
            "g2_winner": "model_1", "judge": ["gpt-4", "pair-v2"], "turn": 1}
    pair.write_text(json.dumps(prow) + "\n")
    assert data.read_pair_judgments(pair)[0].to_dict() == prow
    assert cli.main(["show", "--bench-name", "b", "--data-dir", str(d), "--mode", "pairwise-all",
                     "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["models"]["m"]["win"] == 1


BROKEN_ANSWERS = {
    "no choices": b'{"question_id": 2, "model_id": "m"}',
    "turns not a list": b'{"question_id": 2, "choices": [{"turns": "a2"}]}',
    "a turn not a string": b'{"question_id": 2, "choices": [{"turns": [null]}]}',
    "choice without turns": b'{"question_id": 2, "choices": [{"index": 0}]}',
    "empty choices": b'{"question_id": 2, "choices": []}',
    "float id": b'{"question_id": 2.0, "choices": [{"turns": ["a2"]}]}',
    "empty string id": b'{"question_id": " ", "choices": [{"turns": ["a2"]}]}',
    "binary": b'\x00\x9f\x92\x96 not json',
    "truncated": b'{"question_id": 2, "choices": [{"turns": ["a',
}


@pytest.mark.parametrize("what", sorted(BROKEN_ANSWERS))
def test_broken_answer_line_is_one_error_with_file_and_line(mt_bench, tmp_path, what):
    d = _bench(tmp_path / "b")
    path = d / "model_answer" / "m.jsonl"
    good = [json.dumps({"question_id": i, "choices": [{"turns": [f"a{i}"]}]}).encode()
            for i in (1, 3)]
    path.write_bytes(b"\n".join([good[0], BROKEN_ANSWERS[what], good[1]]) + b"\n")
    proc = mt_bench("judge", "--bench-name", "b", "--data-dir", d, "--openai-api-base",
                    "http://127.0.0.1:9/v1", cwd=REPO, env={"PATH": "/usr/bin:/bin", "OPENAI_API_KEY": "x"})
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith(f"mt-bench judge: error: {path}:2: ")
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert not (d / "model_judgment").exists()


BROKEN_SINGLE = {
    "score as text": {"score": "8"},
    "turn as text": {"turn": "1"},
    "turn 3": {"turn": 3},
    "judge as text": {"judge": "gpt-4"},
    "no model": {"model": None},
    "score NaN": {"score": float("nan")},  # json.dumps writes NaN: not JSON, never a rating
    "score Infinity": {"score": float("-inf")},
    "repeat as text": {"repeat": "1"},  # part of the resume key: "1" would never match job 1
    "repeat negative": {"repeat": -1},
    "local_judge not a bool": {"local_judge": "yes"},
    "fastchat_prompts not a bool": {"fastchat_prompts": 0},
}


@pytest.mark.parametrize("what", sorted(BROKEN_SINGLE))
def test_broken_judgment_line_is_one_error_with_file_and_line(tmp_path, capsys, what):
    d = _bench(tmp_path / "b")
    path = d / "model_judgment" / "gpt-4_single.jsonl"
    path.parent.mkdir()
    row = {"question_id": 1, "model": "m", "judge": ["gpt-4", "single-v1"], "score": 8, "turn": 1}
    bad = {k: v for k, v in {**row, **BROKEN_SINGLE[what]}.items() if v is not None}
    path.write_text(json.dumps(row) + "\n" + json.dumps(bad) + "\n")
    assert cli.main(["show", "--bench-name", "b", "--data-dir", str(d)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"mt-bench show: error: {path}:2: ") and err.count("\n") == 1


def test_our_keys_are_typed_and_lines_round_trip_byte_for_byte(tmp_path):
    """`repeat`, `local_judge` and `fastchat_prompts` read typed, wherever they are in the line."""
    path = tmp_path / "j.jsonl"
    lines = [json.dumps({"question_id": 1, "model": "m", "judge": ["j", "single-v1"], "score": 8,
                         "turn": 1, "local_judge": True, "score_source": "x", "repeat": 2}),
             json.dumps({"fastchat_prompts": False, "question_id": 1, "model": "m",
                         "judge": ["j", "single-v1"], "score": -1, "turn": 2,
                         "judgment": "$ERROR$"}),
             json.dumps({"question_id": 2, "model": "m", "judge": ["j", "single-v1"], "score": 3,
                         "turn": 1, "judgment": "a\u2028b"}, ensure_ascii=False)]  # raw U+2028
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    a, b, _ = data.read_single_judgments(path)
    assert (a.repeat, a.local_judge, a.fastchat_prompts, a.failed) == (2, True, True, False)
    assert (b.repeat, b.local_judge, b.fastchat_prompts, b.failed) == (0, False, False, True)
    assert a.key == (1, 1, "m", "", "single-v1", 2)
    assert a.to_json() == lines[0]  # key order of FastChat's fields, then the others as read
    assert [ln for ln, _ in data.judgment_lines(path, "single")] == lines  # split as read


def test_an_answer_is_failed_when_a_turn_is_a_failure_marker():
    def answer(*turns: str) -> Answer:
        return Answer.from_dict({"question_id": 7, "choices": [{"turns": list(turns)}]})

    assert answer("$ERROR$", "b").failed and answer("a", "ERROR").failed
    assert not answer("a", "ERROR: not a marker").failed and answer("a").key == 7


def test_records_name_what_is_missing():
    with pytest.raises(ValueError, match=r"missing key\(s\) \['choices'\]"):
        Answer.from_dict({"question_id": 1})
    with pytest.raises(ValueError, match=r"missing key\(s\) \['score'\]"):
        SingleJudgment.from_dict({"question_id": 1, "model": "m", "judge": ["j", "p"], "turn": 1})
    with pytest.raises(ValueError, match=r"g2_winner"):
        PairJudgment.from_dict({"question_id": 1, "model_1": "a", "model_2": "b",
                                "g1_winner": "tie", "judge": ["j", "p"], "turn": 1})


def test_judge_prompts_need_only_what_fastchat_reads(tmp_path):
    src = REPO / "mt_bench_task" / "data" / "mt_bench" / "data" / "judge_prompts.jsonl"
    rows = [json.loads(line) for line in src.read_text().splitlines()]
    lean = [{k: v for k, v in r.items() if k not in ("description", "category")} for r in rows]
    path = tmp_path / "judge_prompts.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in lean))
    prompts = data.read_judge_prompts(path)
    assert {n: p.prompt_template for n, p in prompts.items()} == {
        r["name"]: r["prompt_template"] for r in rows}
    lean[2]["system_prompt"] = None
    path.write_text("".join(json.dumps(r) + "\n" for r in lean))
    with pytest.raises(Exception, match=r"judge_prompts.jsonl:3: .*system_prompt must be a string"):
        data.read_judge_prompts(path)
