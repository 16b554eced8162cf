"""Benches end to end: vicuna_bench and a user's own bench folder through gen-api, judge, show,
report and publish, against real local HTTP servers (tests/support/fake_openai.py, tests/support/mock_hub.py).

Every judge request is compared with the prompt FastChat's llm_judge builds, rebuilt here from
the raw data files with FastChat's own rules (common.py: NEED_REF_CATS, make_judge_single,
run_judge_single), independently of mt_bench_task.core.prompts.
"""
from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from pathlib import Path
from statistics import mean
from typing import Any

import pytest
from support.cli import mt_bench_subprocess
from support.fake_openai import FakeOpenAI
from support.mock_hub import MockHub

from mt_bench_task.cli import main as cli
from mt_bench_task.core.chat import ChatClientBase
from mt_bench_task.core.workspace import Workspace

REPO = Path(__file__).resolve().parents[2]
PACKAGED = REPO / "mt_bench_task" / "data"
JUDGE_PROMPTS = PACKAGED / "mt_bench" / "data" / "judge_prompts.jsonl"
VICUNA = PACKAGED / "vicuna_bench" / "data"
# FastChat's common.NEED_REF_CATS and gen_model_answer.temperature_config, copied from FastChat
FASTCHAT_NEED_REF_CATS = ["math", "reasoning", "coding", "arena-hard-200"]
FASTCHAT_TEMPERATURES = {"writing": 0.7, "roleplay": 0.7, "extraction": 0.0, "math": 0.0,
                         "coding": 0.0, "reasoning": 0.0, "stem": 0.1, "humanities": 0.1,
                         "arena-hard-200": 0.0}
MT_BENCH_ONLY = ["writing", "roleplay", "reasoning", "coding", "extraction", "stem", "humanities"]
KEY = "sk-test-bench"


def _jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def fastchat_judge_messages(questions: list[dict], ref_file: Path | None,
                            answers: dict[int, dict]) -> list[list[dict[str, str]]]:
    """The [system, user] messages FastChat sends in single mode for one model's answers."""
    prompts = {p["name"]: p for p in _jsonl(JUDGE_PROMPTS)}
    refs = {r["question_id"]: r for r in _jsonl(ref_file)} if ref_file else {}
    out = []
    for q in questions:
        turns = answers[q["question_id"]]["choices"][0]["turns"]
        math = q["category"] in FASTCHAT_NEED_REF_CATS
        ref = refs[q["question_id"]]["choices"][0]["turns"] if math else None
        for multi in ([False, True] if len(q["turns"]) == 2 else [False]):
            name = "single-" + ("math-" if math else "") + "v1" + ("-multi-turn" if multi else "")
            if multi:
                kw = dict(question_1=q["turns"][0], question_2=q["turns"][1],
                          answer_1=turns[0], answer_2=turns[1])
                if math:
                    kw.update(ref_answer_1=ref[0], ref_answer_2=ref[1])
            else:
                kw = dict(question=q["turns"][0], answer=turns[0])
                if math:
                    kw["ref_answer_1"] = ref[0]
            p = prompts[name]
            out.append([{"role": "system", "content": p["system_prompt"]},
                        {"role": "user", "content": p["prompt_template"].format(**kw)}])
    return out


def _canon(messages_list: list[list[dict[str, str]]]) -> Counter:
    return Counter(json.dumps(m, sort_keys=True) for m in messages_list)


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "HF_"))}
    return {**env, "OPENAI_API_KEY": KEY, **extra}


@pytest.mark.slow  # end to end; the fast loop covers the feature
def test_vicuna_bench_end_to_end_with_fastchats_prompts(mt_bench, tmp_path, capsys):
    questions = _jsonl(VICUNA / "question.jsonl")
    assert hashlib.sha256((VICUNA / "question.jsonl").read_bytes()).hexdigest() == (
        "c248c5c98ba45bb0c2aadae2f270e643bd32679c6c306a3b2a503ac4254cdaa5")  # FastChat's file
    d = tmp_path / "vicuna"
    # model "m": answered through the API by gen-api; model "lean": a minimal FastChat answer file
    # as found in public repositories (no answer_id, no tstamp)
    (d / "model_answer").mkdir(parents=True)
    lean = {q["question_id"]: {"question_id": q["question_id"], "model_id": "lean",
                               "choices": [{"index": 0, "turns": [f"Kurz: {q['question_id']}"]}]}
            for q in questions}
    (d / "model_answer" / "lean.jsonl").write_text("".join(json.dumps(a) + "\n" for a in lean.values()))
    with FakeOpenAI("echo") as answers_server:
        gen = mt_bench("gen-api", "--bench-name", "vicuna_bench", "--data-dir", str(d), "--model", "m",
                       "--openai-api-base", answers_server.url, "--parallel", "4", env=_env())
        assert gen.returncode == 0, gen.stderr
        temps = {r["messages"][1]["content"]: r["temperature"] for r in answers_server.requests}
    assert answers_server.total == 80  # one turn per question
    assert temps == {q["turns"][0]: FASTCHAT_TEMPERATURES.get(q["category"], 0.7) for q in questions}

    with FakeOpenAI("judge") as judge_server:
        code = cli.main(["judge", "--bench-name", "vicuna_bench", "--data-dir", str(d),
                         "--openai-api-base", judge_server.url, "--parallel", "8"])
        assert code == 0
        requests = list(judge_server.requests)
    answers = {m: {a["question_id"]: a for a in _jsonl(d / "model_answer" / f"{m}.jsonl")}
               for m in ("m", "lean")}
    want = [msgs for m in ("m", "lean")
            for msgs in fastchat_judge_messages(questions, VICUNA / "reference_answer_gpt-4.jsonl",
                                                answers[m])]
    assert len(requests) == len(want) == 160
    assert _canon([r["messages"] for r in requests]) == _canon(want)
    assert {(r["model"], r["temperature"], r["max_tokens"]) for r in requests} == {("gpt-4", 0, 2048)}
    assert (d / "model_answer" / "lean.jsonl").read_text() == "".join(
        json.dumps(a) + "\n" for a in lean.values())  # the minimal file is left as it was

    capsys.readouterr()
    assert cli.main(["show", "--bench-name", "vicuna_bench", "--data-dir", str(d)]) == 0
    text = capsys.readouterr().out
    assert "########## First turn ##########" in text
    assert "Second turn" not in text and "########## Average ##########" not in text
    assert cli.main(["show", "--bench-name", "vicuna_bench", "--data-dir", str(d), "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    rows = _jsonl(d / "model_judgment" / "gpt-4_single.jsonl")
    cat = {q["question_id"]: q["category"] for q in questions}
    for m in ("m", "lean"):
        mine = [r for r in rows if r["model"] == m and r["score"] != -1]
        assert res["models"][m]["turn_2"] is None and res["models"][m]["n_turn_2"] == 0
        assert res["models"][m]["turn_1"] == mean(r["score"] for r in mine)
        assert set(res["models"][m]["categories"]) == set(cat.values())
        writing = [r["score"] for r in mine if cat[r["question_id"]] == "writing"]
        assert res["models"][m]["categories"]["writing"] == mean(writing)

    out = tmp_path / "r.html"
    assert cli.main(["report", "--bench-name", "vicuna_bench", "--data-dir", str(d),
                     "--out", str(out)]) == 0
    from mt_bench_task.core.workspace import open_workspace
    from mt_bench_task.outputs.report import build_payload

    payload = build_payload(d, workspace=open_workspace("vicuna_bench", d))
    assert payload["single"]["categories"] == list(dict.fromkeys(cat.values()))
    assert len(payload["questions"]) == 80 and out.stat().st_size > 0


GERMAN = [
    {"question_id": 1, "category": "schreiben", "turns": ["Schreibe ein Gedicht über Kiel.",
                                                          "Jetzt als Limerick."]},
    {"question_id": 2, "category": "math", "turns": ["Was ist 17 * 23?", "Und geteilt durch 7?"]},
    {"question_id": 3, "category": "wissen", "turns": ["Wer schrieb den Faust?", "Wann?"]},
    {"question_id": 4, "category": "schreiben", "turns": ["Verfasse eine Absage.", "Kürzer."]},
    {"question_id": 5, "category": "math", "turns": ["Löse x + 3 = 10.", "Und 2x + 3 = 10?"]},
    {"question_id": 6, "category": "wissen", "turns": ["Wie hoch ist die Zugspitze?", "In Fuß?"]},
]


def _german_bench(d: Path) -> None:
    (d / "reference_answer").mkdir(parents=True)
    (d / "question.jsonl").write_text("".join(json.dumps(q, ensure_ascii=False) + "\n" for q in GERMAN))
    refs = [{"question_id": q["question_id"], "choices": [{"turns": [f"Ref {q['question_id']}a",
                                                                     f"Ref {q['question_id']}b"]}]}
            for q in GERMAN if q["category"] == "math"]
    (d / "reference_answer" / "gpt-4.jsonl").write_text("".join(json.dumps(r) + "\n" for r in refs))


@pytest.mark.slow  # end to end; the fast loop covers the feature
def test_user_bench_folder_with_new_categories_end_to_end(mt_bench, tmp_path, capsys):
    d = tmp_path / "german"
    _german_bench(d)
    with FakeOpenAI("echo") as answers_server:
        gen = mt_bench("gen-api", "--bench-name", "german", "--data-dir", str(d), "--model", "m",
                       "--openai-api-base", answers_server.url, env=_env())
        assert gen.returncode == 0, gen.stderr
        temps = {r["messages"][1]["content"]: r["temperature"] for r in answers_server.requests
                 if len(r["messages"]) == 2}
    assert temps == {q["turns"][0]: FASTCHAT_TEMPERATURES.get(q["category"], 0.7) for q in GERMAN}
    assert set(temps.values()) == {0.7, 0.0}  # schreiben and wissen: 0.7, as FastChat

    with FakeOpenAI("judge") as judge_server:
        judge = mt_bench("judge", "--bench-name", "german", "--data-dir", str(d),
                         "--openai-api-base", judge_server.url, "--parallel", "4", env=_env())
        assert judge.returncode == 0, judge.stderr
        assert f"questions: {d / 'question.jsonl'}" in judge.stderr  # says which files it used
        requests = list(judge_server.requests)
    answers = {a["question_id"]: a for a in _jsonl(d / "model_answer" / "m.jsonl")}
    want = fastchat_judge_messages(GERMAN, d / "reference_answer" / "gpt-4.jsonl", answers)
    assert len(want) == 12 and _canon([r["messages"] for r in requests]) == _canon(want)

    capsys.readouterr()
    plot = tmp_path / "radar.png"
    assert cli.main(["show", "--bench-name", "german", "--data-dir", str(d), "--plot", str(plot)]) == 0
    text = capsys.readouterr().out
    assert "Second turn" in text and plot.read_bytes()[:4] == b"\x89PNG"
    per_cat = text.split("Per category (both turns)")[1].splitlines()[1]
    assert per_cat.split()[1:] == ["schreiben", "math", "wissen"]  # the bench's order
    assert cli.main(["show", "--bench-name", "german", "--data-dir", str(d), "--json"]) == 0
    res = json.loads(capsys.readouterr().out)["models"]["m"]
    assert list(res["categories"]) and set(res["categories"]) == {"schreiben", "math", "wissen"}
    assert res["turn_2"] is not None

    assert cli.main(["report", "--bench-name", "german", "--data-dir", str(d),
                     "--out", str(tmp_path / "r.html")]) == 0

    with MockHub() as hub:
        hub.create_repo("user/german-model")
        env = _env(**hub.env(str(tmp_path / "hf_home")))
        pub = mt_bench_subprocess("publish", "--bench-name", "german", "--data-dir", d, "--repo-id",
                                  "user/german-model", "--dry-run", cwd=tmp_path, env=env)  # HF_ENDPOINT
    assert pub.returncode == 0, pub.stderr
    card = pub.stdout
    for c in ("schreiben", "math", "wissen"):
        assert f"| {c} |" in card and f"      config: {c}\n" in card  # table row + model-index
    for c in MT_BENCH_ONLY:
        assert c not in card, c
    assert "      type: german\n" in card and "revision `sha256:" in card


def test_stripped_fastchat_answer_records_judge_like_the_full_ones(tmp_path):
    """Answer files from public repositories often carry only question_id, model_id, choices."""
    conf = REPO / "tests" / "conformance" / "jxiw"
    stored = _jsonl(conf / "model_judgment" / "gpt-4_single.jsonl")
    replies = {r["user_prompt"]: r["judgment"] for r in stored}

    class Replay(ChatClientBase):
        async def complete(self, model, messages, *, temperature, max_tokens):
            from mt_bench_task.core.chat import Completion

            return Completion(replies[messages[-1]["content"]])

    d = tmp_path / "d"
    (d / "model_answer").mkdir(parents=True)
    for a in _jsonl(conf / "model_answer" / "mamba_0_5_dpo_ep1.jsonl"):
        lean = {"question_id": a["question_id"], "model_id": a["model_id"], "choices": a["choices"]}
        with open(d / "model_answer" / "mamba_0_5_dpo_ep1.jsonl", "a") as f:
            f.write(json.dumps(lean) + "\n")
    from mt_bench_task.judging.execute import SendOptions
    from mt_bench_task.judging.run import JudgeRun, run_judging

    summary = run_judging(JudgeRun(d, send=SendOptions(parallel=8)), client=Replay())
    assert summary.sent == 160 and summary.ok
    got = {(r["question_id"], r["turn"]): r["score"]
           for r in _jsonl(d / "model_judgment" / "gpt-4_single.jsonl")}
    assert got == {(r["question_id"], r["turn"]): r["score"] for r in stored
                   if r["model"] == "mamba_0_5_dpo_ep1"}


def test_metric_takes_the_bench_for_references_and_prompts():
    """`evaluate.load("mt_bench_judge", bench="vicuna_bench")`: vicuna's GPT-4 references, not
    MT-bench's, and FastChat's prompts for them (metric.compute is what the script calls)."""
    from mt_bench_task.core.chat import Completion
    from mt_bench_task.integrations import metric

    questions = _jsonl(VICUNA / "question.jsonl")[58:72]  # ids 59-72: knowledge, coding, math, writing
    seen: list[list[dict[str, str]]] = []

    class Judge(ChatClientBase):
        async def complete(self, model, messages, *, temperature, max_tokens):
            seen.append(messages)
            return Completion("[[7]]")

    answers = {q["question_id"]: {"choices": [{"turns": [f"A{q['question_id']}"]}]} for q in questions}
    res = metric.compute([[f"A{q['question_id']}"] for q in questions], questions,
                         judge=metric.JudgeSettings(client=Judge(), bench="vicuna_bench"))
    want = fastchat_judge_messages(questions, VICUNA / "reference_answer_gpt-4.jsonl", answers)
    assert _canon(seen) == _canon(want) and len(seen) == len(questions)
    assert res["score"] == 7 and res["turn_2"] is None
    assert set(res["categories"]) == {q["category"] for q in questions}


def test_vicuna_bench_pairwise_uses_single_turn_pair_prompts(tmp_path):
    """pairwise-all on vicuna_bench: pair-v2 / pair-math-v1 (with the reference), both orders."""
    from mt_bench_task.core.bench import load_bench
    from mt_bench_task.core.chat import Completion
    from mt_bench_task.judging.execute import SendOptions
    from mt_bench_task.judging.run import JudgeRun, run_judging

    questions = _jsonl(VICUNA / "question.jsonl")
    refs = {r["question_id"]: r for r in _jsonl(VICUNA / "reference_answer_gpt-4.jsonl")}
    prompts = {p["name"]: p for p in _jsonl(JUDGE_PROMPTS)}
    d = tmp_path / "v"
    (d / "model_answer").mkdir(parents=True)
    for m in ("a", "b"):
        (d / "model_answer" / f"{m}.jsonl").write_text("".join(
            json.dumps({"question_id": q["question_id"], "choices": [{"turns": [f"{m}{q['question_id']}"]}]})
            + "\n" for q in questions))
    want = []
    for q in questions:
        math = q["category"] in FASTCHAT_NEED_REF_CATS
        p = prompts["pair-math-v1" if math else "pair-v2"]
        for first, second in (("a", "b"), ("b", "a")):  # g1, then g2 with the answers swapped
            kw = dict(question=q["turns"][0], answer_a=f"{first}{q['question_id']}",
                      answer_b=f"{second}{q['question_id']}")
            if math:
                kw["ref_answer_1"] = refs[q["question_id"]]["choices"][0]["turns"][0]
            want.append([{"role": "system", "content": p["system_prompt"]},
                         {"role": "user", "content": p["prompt_template"].format(**kw)}])
    seen = []

    class Judge(ChatClientBase):
        async def complete(self, model, messages, *, temperature, max_tokens):
            seen.append(messages)
            return Completion("[[A]]")

    s = run_judging(JudgeRun(d, mode="pairwise-all", send=SendOptions(parallel=4)), client=Judge(),
                    workspace=Workspace(load_bench("vicuna_bench", d), d))
    assert s.sent == 80 and _canon(seen) == _canon(want)
    rows = _jsonl(d / "model_judgment" / "gpt-4_pair.jsonl")
    assert {r["turn"] for r in rows} == {1}


def test_data_dir_judge_prompts_win_and_mark_the_judge_not_comparable(tmp_path, capsys):
    """A bench folder's own judge_prompts.jsonl (here lighteval's typo fix) is what the judge
    gets; the records and `show` say the scores are not comparable with published MT-bench."""
    from mt_bench_task.core.bench import load_bench
    from mt_bench_task.core.chat import Completion
    from mt_bench_task.judging.run import JudgeRun, run_judging

    d = tmp_path / "fixed"
    (d / "model_answer").mkdir(parents=True)
    (d / "question.jsonl").write_text(json.dumps(GERMAN[0]) + "\n")
    (d / "judge_prompts.jsonl").write_text(
        JUDGE_PROMPTS.read_text().replace("You evaluation", "Your evaluation"))
    (d / "model_answer" / "m.jsonl").write_text(
        json.dumps({"question_id": 1, "choices": [{"turns": ["a", "b"]}]}) + "\n")
    seen = []

    class Judge(ChatClientBase):
        async def complete(self, model, messages, *, temperature, max_tokens):
            seen.append(messages[0]["content"])
            return Completion("[[6]]")

    bench = load_bench("fixed", d)
    assert bench.sources["judge_prompts"] == str(d / "judge_prompts.jsonl")
    run_judging(JudgeRun(d), client=Judge(), workspace=Workspace(bench, d))
    assert len(seen) == 2 and "Your evaluation" in seen[1] and "You evaluation" not in "".join(seen)
    rows = _jsonl(d / "model_judgment" / "gpt-4_single.jsonl")
    assert [r.get("fastchat_prompts") for r in rows] == [False, False]
    capsys.readouterr()
    assert cli.main(["show", "--bench-name", "fixed", "--data-dir", str(d)]) == 0
    assert "not comparable with published MT-bench" in capsys.readouterr().out
