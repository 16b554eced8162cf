"""MT-bench as an inspect task: the judge prompts inspect sends are the ones `mt-bench judge` builds
for the same answers, byte for byte; the log's metrics are `mt-bench show`'s on the imported files.

The model under test and the grader are inspect's mockllm with custom outputs, or a real local
OpenAI-compatible server (tests/support/fake_openai.py) as the grader; `mt-bench` runs as a subprocess.
"""
from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

from support.inspect_helpers import (
    MockPair,
    is_pairwise,
    judge_requests,
    read_jsonl,
    require_inspect,
    server_judge,
)

require_inspect()

import pytest
from inspect_ai import eval as inspect_eval
from inspect_ai.model import get_model
from support.fake_openai import FakeOpenAI

from mt_bench_task.core.bench import load_bench, packaged_judge_prompts
from mt_bench_task.integrations import inspect_task

# inspect's own retry code (not ours) warns on every model call in this version
pytestmark = pytest.mark.filterwarnings("ignore:The 'initial' parameter is deprecated")

# one question per category, so every prompt kind (with and without reference) is sent
SUBSET = [81, 91, 101, 111, 121, 131, 141, 151]


@pytest.fixture(autouse=True)
def _key(monkeypatch: pytest.MonkeyPatch) -> None:
    """The key every CLI call of this module runs with."""
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")


def _run(tmp_path: Path, model, grader, **kw):
    logs = inspect_eval(inspect_task.mt_bench(**kw.pop("task_args", {})), model=model,
                        model_roles={"grader": grader}, log_dir=str(tmp_path / "logs"),
                        display="none", **kw)
    assert logs[0].status == "success", logs[0].error
    return logs[0]


def _sorted(rows: list[dict]) -> list[dict]:
    return sorted(rows, key=lambda r: (r["question_id"], r["turn"]))


def _metrics(log) -> dict[str, float]:
    return {k: v.value for k, v in log.results.scores[0].metrics.items()}


def _import(mt_bench, log, d: Path) -> None:
    p = mt_bench("import-inspect", log.location, "--data-dir", str(d))
    assert p.returncode == 0, p.stderr
    assert p.stderr == ""


def _judge_again(mt_bench, d: Path, d2: Path, *extra: str) -> list[dict]:
    """`mt-bench judge` on the imported answers (a fresh data dir), against the fake server."""
    shutil.copytree(d / "model_answer", d2 / "model_answer")
    with FakeOpenAI(responder=server_judge) as server:
        p = mt_bench("judge", "--data-dir", str(d2), "--judge-model", "gpt-4",
                     "--openai-api-base", server.url, "--parallel", "4", *extra)
        # question 81's answers are never rated (UNSCORABLE): judgments without a rating, exit 1
        assert p.returncode == 1 and "judgments have no rating" in p.stderr, p.stderr
        return list(server.requests)


@pytest.fixture(scope="module")
def single_run(tmp_path_factory):
    """All 80 questions, single grading, mockllm as the model and as the grader."""
    mocks = MockPair()
    return mocks, _run(tmp_path_factory.mktemp("single"), *mocks.models())


@pytest.mark.slow  # all 80 questions and three mt-bench subprocesses (~20 s): out of the fast loop
def test_single_all_80_questions_prompts_records_and_metrics_match_mt_bench(mt_bench, tmp_path, single_run):
    mocks, log = single_run
    questions = {q.question_id: q for q in load_bench().questions}

    # the model: FastChat's protocol (system, turn 1, own answer, turn 2), category temperatures
    assert len(mocks.model_calls) == 160
    for msgs, config in mocks.model_calls:
        q = next(q for q in questions.values() if q.turns[0] == msgs[1]["content"])
        assert msgs[0] == {"role": "system", "content": "You are a helpful assistant."}
        assert config.temperature == load_bench().temperature(q.category) and config.max_tokens == 1024
        if len(msgs) == 4:  # turn 2 sees the model's own turn-1 answer, then the second question
            assert msgs[2]["role"] == "assistant" and msgs[3]["content"] == q.turns[1]

    # the grader: temperature 0, max_tokens 2048, and exactly mt-bench judge's requests
    assert len(mocks.grader_calls) == 160
    assert {(c.temperature, c.max_tokens) for _, c in mocks.grader_calls} == {(0.0, 2048)}
    d = tmp_path / "data"
    _import(mt_bench, log, d)
    requests = _judge_again(mt_bench, d, tmp_path / "again")
    assert judge_requests(requests) == sorted(json.dumps(m) for m, _ in mocks.grader_calls)
    assert {(r["model"], r["temperature"], r["max_tokens"]) for r in requests} == {
        ("gpt-4", 0, 2048)}

    # the imported judgments equal mt-bench judge's own records (same judge texts), except the
    # judge's name (a mockllm is not OpenAI's gpt-4) and the tstamp
    imported = _sorted(read_jsonl(d / "model_judgment/mockllm__gpt-4_single.jsonl"))
    judged = _sorted(read_jsonl(tmp_path / "again/model_judgment/gpt-4_single.jsonl"))
    assert {r["judge"][0] for r in imported} == {"mockllm/gpt-4"}
    assert [{**r, "tstamp": 0, "judge": r["judge"][1]} for r in imported] == \
        [{**r, "tstamp": 0, "judge": r["judge"][1]} for r in judged]
    assert list(imported[0]) == ["question_id", "model", "judge", "user_prompt", "judgment",
                                 "score", "turn", "tstamp"]
    dropped = sum(r["score"] == -1 for r in imported)
    assert 0 < dropped < len(imported)  # the test judge exercises the parse-failure path
    assert any(isinstance(r["score"], float) for r in imported)  # "8.5" stays a float

    # metrics: mt-bench show on the imported files
    p = mt_bench("show", "--data-dir", str(d), "--judge-model", "mockllm/gpt-4", "--json")
    assert p.returncode == 0, p.stderr
    assert "judged by mockllm/gpt-4: not comparable with published MT-bench" in p.stderr
    shown = json.loads(p.stdout)
    assert shown["rows_dropped"] == dropped
    m, metrics = shown["models"]["model"], _metrics(log)
    assert metrics["turn_1"] == m["turn_1"] and metrics["turn_2"] == m["turn_2"]
    assert metrics["overall"] == m["average"]
    assert {c: metrics[c] for c in m["categories"]} == m["categories"]
    assert set(m["categories"]) == set(load_bench().categories)
    assert 0 < metrics["stderr"] < 1


@pytest.mark.slow
def test_parse_failure_is_unscored_with_reason_and_judgment_kept(single_run):
    _, log = single_run
    by_id = {s.id: s.scores["fastchat_judge"] for s in log.samples}
    turns_failed = 0
    for score in by_id.values():
        meta = score.metadata
        failed = [t["turn"] for t in meta["turns"] if t["score"] == -1]
        turns_failed += len(failed)
        for t in meta["turns"]:  # the judge prompt and its raw judgment, always
            assert t["messages"][-1] == {"role": "user", "content": t["user_prompt"]}
            assert t["judgment"] and t["prompt_name"].startswith("single-")
        if len(failed) == len(meta["turns"]):
            assert math.isnan(score.value) and "no [[rating]]" in score.reason
        elif failed:
            key = f"turn_{failed[0]}"
            assert math.isnan(score.value[key]) and key in score.reason
        else:
            assert score.reason is None and not any(math.isnan(v) for v in score.value.values())
    unscored = sum(isinstance(s.value, float) for s in by_id.values())
    assert log.results.scores[0].unscored_samples == unscored >= 1
    assert math.isnan(by_id[81].value)
    assert by_id[81].reason == "no [[rating]] in the judgment (turn_1, turn_2)"
    assert turns_failed > 0


def test_temperature_option_overrides_the_category_table(tmp_path):
    mocks = MockPair()
    _run(tmp_path, *mocks.models(), temperature=0.5, sample_id=SUBSET)
    assert {c.temperature for _, c in mocks.model_calls} == {0.5}
    assert {c.temperature for _, c in mocks.grader_calls} == {0.0}  # the judge keeps its own


@pytest.mark.slow  # end to end; the fast loop covers the feature
def test_pairwise_against_gpt35_prompts_and_win_rates_match_mt_bench(mt_bench, tmp_path):
    mocks = MockPair()
    log = _run(tmp_path, *mocks.models(), sample_id=SUBSET, task_args={"judge_mode": "pairwise"})
    assert len(mocks.grader_calls) == 4 * len(SUBSET)  # 2 turns x (g1, g2 swapped)
    assert all(is_pairwise(m[0]["content"]) for m, _ in mocks.grader_calls)
    d = tmp_path / "data"
    _import(mt_bench, log, d)
    requests = _judge_again(mt_bench, d, tmp_path / "again", "--mode", "pairwise-baseline",
                                      "--model-list", "model", "--allow-partial")
    assert judge_requests(requests) == sorted(json.dumps(m) for m, _ in mocks.grader_calls)
    rows = read_jsonl(d / "model_judgment/mockllm__gpt-4_pair.jsonl")
    assert {(r["model_1"], r["model_2"]) for r in rows} == {("model", "gpt-3.5-turbo")}
    p = mt_bench("show", "--data-dir", str(d), "--mode", "pairwise-baseline", "--judge-model",
                 "mockllm/gpt-4", "--json")
    assert p.returncode == 0, p.stderr
    shown, metrics = json.loads(p.stdout)["models"]["model"], _metrics(log)
    for k in ("win_rate", "loss_rate", "win_rate_adjusted"):
        assert metrics[k] == shown[k]


@pytest.mark.slow  # end to end; the fast loop covers the feature
def test_real_local_openai_server_as_grader_sends_mt_bench_judge_requests(mt_bench, tmp_path):
    mocks = MockPair()
    model, _ = mocks.models()
    with FakeOpenAI(responder=server_judge) as server:
        grader = get_model("openai/gpt-4", base_url=server.url, api_key="sk-test", memoize=False)
        log = _run(tmp_path, model, grader, sample_id=SUBSET)
        sent = list(server.requests)
    assert len(sent) == 2 * len(SUBSET)
    assert {(r["model"], r["temperature"], r.get("max_tokens", r.get("max_completion_tokens")))
            for r in sent} == {("gpt-4", 0, 2048)}
    d = tmp_path / "data"
    _import(mt_bench, log, d)
    again = _judge_again(mt_bench, d, tmp_path / "again", "--allow-partial")
    assert judge_requests(sent) == judge_requests(again)
    # OpenAI's gpt-4 through inspect: records equal mt-bench judge's, the judge name included
    imported = _sorted(read_jsonl(d / "model_judgment/gpt-4_single.jsonl"))
    judged = _sorted(read_jsonl(tmp_path / "again/model_judgment/gpt-4_single.jsonl"))
    assert [{**r, "tstamp": 0} for r in imported] == [{**r, "tstamp": 0} for r in judged]
    p = mt_bench("show", "--data-dir", str(d), "--json")
    assert p.returncode == 0 and "not comparable" not in p.stderr, p.stderr
    m = json.loads(p.stdout)["models"]["model"]
    assert _metrics(log)["overall"] == m["average"] and _metrics(log)["turn_2"] == m["turn_2"]


def test_a_bench_folder_single_turn_with_its_own_judge_prompts(mt_bench, tmp_path):
    folder = tmp_path / "my_bench"
    folder.mkdir()
    qs = [{"question_id": 1, "category": "schreiben", "turns": ["Schreib ein Gedicht."]},
          {"question_id": 2, "category": "wissen", "turns": ["Was ist Bier?"]}]
    (folder / "question.jsonl").write_text("".join(json.dumps(q) + "\n" for q in qs))
    prompts = read_jsonl(packaged_judge_prompts())
    for p in prompts:  # a translated bench's own judge prompt
        if p["name"] == "single-v1":
            p["system_prompt"] = "Du bist ein hilfreicher Assistent."
    (folder / "judge_prompts.jsonl").write_text("".join(json.dumps(p) + "\n" for p in prompts))
    mocks = MockPair()
    log = _run(tmp_path, *mocks.models(), task_args={"bench": str(folder)})
    assert len(mocks.model_calls) == len(mocks.grader_calls) == 2
    assert {c.temperature for _, c in mocks.model_calls} == {load_bench().temperature("unknown")}
    assert "turn_2" not in _metrics(log)
    assert [m[0]["content"] for m, _ in mocks.grader_calls] == [
        "Du bist ein hilfreicher Assistent."] * 2
    d = tmp_path / "data"
    _import(mt_bench, log, d)
    rows = read_jsonl(d / "model_judgment/mockllm__gpt-4_single.jsonl")
    assert [r["fastchat_prompts"] for r in rows] == [False, False]  # as mt-bench judge marks them


def test_a_translated_folder_string_ids_japanese_prompts_inline_references(mt_bench, tmp_path):
    """String ids, single-turn Japanese judge prompts naming the rating "[[評価]]", a repr-string
    inline reference chosen with `-T references=inline`: turn 1 only, imported with its ids."""
    folder = tmp_path / "ja_bench"
    folder.mkdir()
    qs = [{"question_id": "1_JA", "category": "coding", "lang": "ja",
           "turns": ["階乗を計算して。", "再帰なしで。"], "reference": "['def f(n): ...', 'ループで']"},
          {"question_id": "2_JA", "category": "writing", "lang": "ja",
           "turns": ["俳句を書いて。", "夏にして。"]}]
    (folder / "question.jsonl").write_text("".join(json.dumps(q, ensure_ascii=False) + "\n" for q in qs),
                                           encoding="utf-8")
    rule = '評価してください："[[評価]]"、例えば："評価：[[5]]"。\n\n[質問]\n{question}\n\n'
    prompts = [{"name": "single-v1", "type": "single", "category": "general", "output_format": "[[評価]]",
                "system_prompt": "あなたは有益な助手です。", "prompt_template": rule + "[回答]\n{answer}"},
               {"name": "single-math-v1", "type": "single", "category": "math", "output_format": "[[評価]]",
                "system_prompt": "あなたは有益な助手です。",
                "prompt_template": rule + "[参考回答]\n{ref_answer_1}\n\n[回答]\n{answer}"}]
    (folder / "judge_prompts.jsonl").write_text(
        "".join(json.dumps(p, ensure_ascii=False) + "\n" for p in prompts), encoding="utf-8")
    mocks = MockPair()
    log = _run(tmp_path, *mocks.models(), task_args={"bench": str(folder), "references": "inline"})
    assert len(mocks.model_calls) == 4 and len(mocks.grader_calls) == 2  # answers 2 turns, judged 1
    assert "turn_2" not in _metrics(log)
    users = sorted(m[-1]["content"] for m, _ in mocks.grader_calls)
    assert any("[参考回答]\ndef f(n): ...\n\n[回答]" in u for u in users)
    d = tmp_path / "data"
    _import(mt_bench, log, d)
    answers = read_jsonl(d / "model_answer/model.jsonl")
    rows = read_jsonl(d / "model_judgment/mockllm__gpt-4_single.jsonl")
    assert [a["question_id"] for a in answers] == ["1_JA", "2_JA"]
    assert sorted(r["question_id"] for r in rows) == ["1_JA", "2_JA"]
    assert {r["references"] for r in rows} == {"inline"} and {r["turn"] for r in rows} == {1}
