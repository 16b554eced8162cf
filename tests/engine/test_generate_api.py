"""gen-api end to end: the real CLI and client against tests/support/fake_openai.py, real answer files."""
from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

import pytest
from support.cli import CliResult
from support.fake_openai import FakeOpenAI

from mt_bench_task.clients.openai_client import OpenAIChatClient
from mt_bench_task.core.errors import DataError
from mt_bench_task.engine.api import SYSTEM_MESSAGE, generate_api_answers

SECRET = "sk-test-SECRET-1234567890"
REPO = Path(__file__).resolve().parents[2]
FASTCHAT_KEYS = ["question_id", "answer_id", "model_id", "choices", "tstamp"]


def gen_api(mt_bench, url: str, data_dir: Path, *extra: str) -> CliResult:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
    env["OPENAI_API_KEY"] = SECRET
    return mt_bench("gen-api", "--model", "m", "--openai-api-base", url, "--data-dir", data_dir,
                    *extra, env=env, cwd=REPO)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def assert_no_secret(tmp_path: Path, *texts: str) -> None:
    for text in texts:
        assert SECRET not in text
    for f in tmp_path.rglob("*"):
        assert not f.is_file() or SECRET.encode() not in f.read_bytes()


def write_questions(data_dir: Path, questions: list[dict]) -> None:
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / "question.jsonl").write_text("".join(json.dumps(q) + "\n" for q in questions))


def test_cli_end_to_end_then_resume_makes_no_requests(mt_bench, tmp_path):
    with FakeOpenAI("echo", latency=0.05) as server:
        first = gen_api(mt_bench, server.url, tmp_path, "--question-end", "4", "--parallel", "4")
        assert first.returncode == 0, first.stderr
        assert server.total == 8  # 4 questions x 2 turns
        second = gen_api(mt_bench, server.url, tmp_path, "--question-end", "4", "--parallel", "4")
        assert second.returncode == 0, second.stderr
        assert server.total == 8 and "nothing to do" in second.stdout
    path = tmp_path / "model_answer" / "m.jsonl"
    assert first.stdout.strip().splitlines()[-1] == f"answered 4 questions (0 failed) -> {path}"
    records = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r["question_id"] for r in records] == [81, 82, 83, 84]
    for r in records:
        assert list(r) == FASTCHAT_KEYS and r["model_id"] == "m"
        # FastChat's keys, then each turn's finish reason (no thought: no "reasoning" key)
        assert [list(c) for c in r["choices"]] == [["index", "turns", "finish_reasons"]]
        assert r["choices"][0]["finish_reasons"] == ["stop", "stop"]
        assert len(r["choices"][0]["turns"]) == 2 and r["choices"][0]["turns"][0].startswith("Echo")
    by_turn2 = {req["messages"][3]["content"]: req for req in server.requests
                if len(req["messages"]) == 4}
    assert len(by_turn2) == 4
    for req in by_turn2.values():  # turn 2 sees the turn-1 answer, as FastChat sends it
        roles = [m["role"] for m in req["messages"]]
        assert roles == ["system", "user", "assistant", "user"]
        assert req["messages"][0]["content"] == SYSTEM_MESSAGE
        assert req["messages"][2]["content"].startswith("Echo")
        assert (req["model"], req["n"], req["temperature"], req["max_tokens"]) == (
            "m", 1, 0.7, 1024)
    assert_no_secret(tmp_path, first.stdout, first.stderr)
    assert set(server.auth_headers) == {f"Bearer {SECRET}"}


def test_cli_unreachable_server_fails_fast_and_writes_nothing(mt_bench, tmp_path):
    url = f"http://127.0.0.1:{closed_port()}/v1"
    start = time.perf_counter()
    result = gen_api(mt_bench, url, tmp_path, "--question-end", "2")
    assert time.perf_counter() - start < 15
    assert result.returncode == 2
    assert result.stderr.strip() == (f"mt-bench gen-api: error: cannot reach OpenAI-compatible "
                                     f"server at {url}: connection refused")
    assert not (tmp_path / "model_answer").exists()


def test_cli_rejected_key_is_one_line_without_the_key(mt_bench, tmp_path):
    with FakeOpenAI("echo", faults=["401"]) as server:  # the fake echoes the key it was sent
        result = gen_api(mt_bench, server.url, tmp_path, "--question-end", "1")
    assert result.returncode == 2 and server.total == 1  # not retried
    error = result.stderr.strip().splitlines()[-1]  # after the progress bar
    assert error.startswith("mt-bench gen-api: error: ") and result.stderr.count("error") == 1
    assert "HTTP 401" in error and "OPENAI_API_KEY" in error
    assert_no_secret(tmp_path, result.stdout, result.stderr)
    assert not (tmp_path / "model_answer" / "m.jsonl").exists()


def test_cli_malformed_answer_file_names_the_line_and_is_left_alone(mt_bench, tmp_path):
    path = tmp_path / "model_answer" / "m.jsonl"
    path.parent.mkdir(parents=True)
    good = json.dumps({"question_id": 81, "answer_id": "a", "model_id": "m",
                       "choices": [{"index": 0, "turns": ["x", "y"]}], "tstamp": 1.0})
    path.write_bytes(f"{good}\n{{not json\n{good}\n".encode())
    before = path.read_bytes()
    with FakeOpenAI("echo") as server:
        result = gen_api(mt_bench, server.url, tmp_path, "--question-end", "4")
    assert result.returncode == 2 and f"{path}:2" in result.stderr
    assert path.read_bytes() == before and server.total == 0


def test_error_text_on_exhaustion_is_counted_and_asked_again(tmp_path):
    write_questions(tmp_path, [{"question_id": 1, "category": "math", "turns": ["a1", "a2"]},
                               {"question_id": 2, "category": "writing", "turns": ["b1", "b2"]}])
    # parallel=1, max_retries=1: requests 0 and 1 are q1's turn 1; turn 2 still gets asked
    with FakeOpenAI("echo", faults=["500", "500"]) as server:
        client = OpenAIChatClient(server.url, SECRET, max_retries=1, backoff_base=0.01)
        stats = generate_api_answers("m", tmp_path, client=client)
        assert (stats.questions, stats.failed, server.total) == (2, 1, 5)
        path = tmp_path / "model_answer" / "m.jsonl"
        lines = path.read_text().splitlines()
        assert json.loads(lines[0])["choices"][0]["turns"][0] == "$ERROR$"
        assert stats.summary() == f"answered 2 questions (1 failed) -> {path}"
        kept = lines[1]

        again = generate_api_answers("m", tmp_path, client=client)  # only q1 is asked again
        assert (again.questions, again.failed, server.total) == (1, 0, 7)
    lines = path.read_text().splitlines()
    assert [json.loads(line)["question_id"] for line in lines] == [1, 2]
    assert "$ERROR$" not in lines[0] and lines[1] == kept  # raw bytes of q2 kept


def test_temperature_precedence_and_choices(tmp_path):
    write_questions(tmp_path, [
        {"question_id": 1, "category": "math", "turns": ["m"]},
        {"question_id": 2, "category": "humanities", "turns": ["h"]},
        {"question_id": 3, "category": "something-else", "turns": ["s"]},
        {"question_id": 4, "category": "math", "turns": ["r"], "required_temperature": 0.3}])
    with FakeOpenAI("echo") as server:
        generate_api_answers("m", tmp_path, server.url, parallel=3, max_tokens=16, num_choices=2)
        temps = {r["messages"][1]["content"]: r["temperature"] for r in server.requests}
        assert temps == {"m": 0.0, "h": 0.1, "s": 0.7, "r": 0.3}
        assert {r["max_tokens"] for r in server.requests} == {16} and server.total == 8
        answers = [json.loads(line) for line in (tmp_path / "model_answer" / "m.jsonl").open()]
        assert [[c["index"] for c in a["choices"]] for a in answers] == [[0, 1]] * 4

        generate_api_answers("m2", tmp_path, server.url, force_temperature=0.9, question_end=3)
        assert {r["temperature"] for r in server.requests[8:]} == {0.9}
        with pytest.raises(DataError, match="conflicts with question 4's required_temperature"):
            generate_api_answers("m3", tmp_path, server.url, force_temperature=0.9)
    assert not (tmp_path / "model_answer" / "m3.jsonl").exists()
