"""Translated MT-benches as people publish them, built here (small, synthetic, in the real layouts
of the published sets; no third-party data copied): a German folder with string ids ("81_DE"),
a Japanese folder with int ids, string-id references and single-turn-only judge prompts that
name the rating in Japanese, a Chinese folder with FastChat's prompts plus a language sentence.
They run through gen-api, judge, show, report and publish against real local HTTP servers.

Every judge request is compared with the prompt rebuilt here from the raw files with FastChat's
rules (jp-stable's int() id cast for the Japanese set), independently of mt_bench_task.core.prompts.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from statistics import mean
from typing import Any

import pytest
from support.fake_openai import FakeOpenAI, prompt_hash
from support.mock_hub import MockHub

from mt_bench_task.cli import main as cli
from mt_bench_task.core.ids import question_key, sort_question_keys
from mt_bench_task.core.types import Question

REPO = Path(__file__).resolve().parents[2]
JUDGE_PROMPTS = REPO / "mt_bench_task" / "data" / "mt_bench" / "data" / "judge_prompts.jsonl"
NEED_REF_CATS = ["math", "reasoning", "coding", "arena-hard-200"]  # FastChat's common.py
KEY = "sk-test-translated"

# ---- the German set: string ids, compact separators, extra keys, a repr-string reference ----
GERMAN = [  # not in id order: string ids keep the question file's order
    {"question_id": "82_DE", "category": "writing", "lang": "de",
     "turns": ["Schreibe eine E-Mail an deinen Chef.", "Kürze sie auf zwei Sätze."]},
    {"question_id": "81_DE", "category": "writing", "lang": "de",
     "turns": ["Schreibe einen Reiseblog über Hawaii.", "Beginne jeden Satz mit A."]},
    {"question_id": "111_DE", "category": "math", "lang": "de",
     "turns": ["Die Ecken eines Dreiecks sind (0, 0), (-1, 1) und (3, 3). Wie groß ist die Fläche?",
               "Wie groß ist der Umkreis?"],
     "reference": "['Die Fläche ist 3', '5 pi']"},
]

# ---- the Japanese set: int ids sorted by category, string-id references, ja judge prompts ----
JAPANESE = [
    {"question_id": 1, "category": "coding", "turns": ["Pythonで階乗を計算して。", "再帰なしで。"]},
    {"question_id": 2, "category": "coding", "turns": ["リストを反転して。", "C++で。"]},
    {"question_id": 3, "category": "math", "turns": ["3 + 4 は？", "その2倍は？"]},
    {"question_id": 4, "category": "math", "turns": ["12 ÷ 4 は？", "その3倍は？"]},
    {"question_id": 5, "category": "writing", "turns": ["春の俳句を書いて。", "夏にして。"]},
    {"question_id": 6, "category": "writing", "turns": ["自己紹介を書いて。", "短くして。"]},
]
JA_RULE = ("[指示]\n公平な判断者として、以下のユーザーの質問に対するAIアシスタントの応答を評価してください。"
           "説明の後、このフォーマットに厳密に従って1から10で評価してください："
           "\"[[評価]]\"、例えば：\"評価：[[5]]\"。\n\n")
JA_PROMPTS = [  # jp-stable's layout: two single-turn prompts, its own key order, no pairwise
    {"name": "single-v1", "type": "single", "category": "general", "output_format": "[[評価]]",
     "description": "general", "system_prompt": "あなたは有益な助手です。",
     "prompt_template": JA_RULE + "[質問]\n{question}\n\n[アシスタントの回答の開始]\n{answer}\n"
                                  "[アシスタントの回答の終了]"},
    {"name": "single-math-v1", "type": "single", "category": "math", "output_format": "[[評価]]",
     "description": "math", "system_prompt": "あなたは有益な助手です。",
     "prompt_template": JA_RULE + "[質問]\n{question}\n\n[参考回答の開始]\n{ref_answer_1}\n"
                                  "[参考回答の終了]\n\n[アシスタントの回答の開始]\n{answer}\n"
                                  "[アシスタントの回答の終了]"},
]


def _jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _write(path: Path, rows: list[dict[str, Any]], **dumps: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, **dumps) + "\n" for r in rows), encoding="utf-8")


def german_bench(d: Path) -> None:
    _write(d / "question.jsonl", GERMAN, ensure_ascii=False, separators=(",", ":"))
    _write(d / "reference_answer" / "gpt-4.jsonl",
           [{"question_id": "111_DE", "model_id": "gpt-4",
             "choices": [{"index": 0, "turns": ["Referenz: 3", "Referenz: 5 pi"]}]}])


def japanese_bench(d: Path, prompts: bool = True) -> None:
    _write(d / "question.jsonl", [{**q, "lang": "ja"} for q in JAPANESE], ensure_ascii=False)
    _write(d / "reference_answer" / "gpt-4.jsonl",  # string ids, as jp-stable's file has
           [{"question_id": str(q["question_id"]), "answer_id": f"r{q['question_id']}",
             "model_id": "gpt-4", "choices": [{"index": 0, "turns": [f"参考{q['question_id']}a",
                                                                     f"参考{q['question_id']}b"]}],
             "tstamp": 1690770132.5} for q in JAPANESE if q["category"] in NEED_REF_CATS],
           ensure_ascii=False)
    if prompts:
        _write(d / "judge_prompts.jsonl", JA_PROMPTS, ensure_ascii=False)


def fastchat_messages(questions: list[dict], prompts: dict[str, dict], refs: dict,
                      answers: dict, turns: tuple[int, ...] = (1, 2)) -> list[list[dict[str, str]]]:
    return [msgs for _, _, _, msgs in fastchat_matches(questions, prompts, refs, answers, turns)]


def fastchat_matches(questions: list[dict], prompts: dict[str, dict], refs: dict, answers: dict,
                     turns: tuple[int, ...] = (1, 2)) -> list[tuple[dict, int, str, list]]:
    """FastChat's single-mode matches (make_match_single, run_judge_single) as (question, turn,
    prompt name, [system, user] messages), ids compared after jp-stable's int() cast."""
    key = question_key
    out = []
    for t in turns:
        for math in (False, True):
            for q in questions:
                if (q["category"] in NEED_REF_CATS) != math or (t == 2 and len(q["turns"]) != 2):
                    continue
                name = "single-" + ("math-" if math else "") + "v1" + ("-multi-turn" if t == 2 else "")
                a = answers[key(q["question_id"])]["choices"][0]["turns"]
                r = refs[key(q["question_id"])]["choices"][0]["turns"] if math else None
                if t == 2:
                    kw = dict(question_1=q["turns"][0], question_2=q["turns"][1],
                              answer_1=a[0], answer_2=a[1])
                    kw.update(dict(ref_answer_1=r[0], ref_answer_2=r[1]) if r else {})
                else:
                    kw = dict(question=q["turns"][0], answer=a[0], **({"ref_answer_1": r[0]} if r else {}))
                p = prompts[name]
                out.append((q, t, name, [{"role": "system", "content": p["system_prompt"]},
                                         {"role": "user", "content": p["prompt_template"].format(**kw)}]))
    return out


def _ja_judge(req: dict[str, Any]) -> str:
    """A Japanese judge: "評価：[[k]]", a backup-pattern "[k]" for question 3, nothing for 6."""
    user = req["messages"][-1]["content"]
    k = int(prompt_hash(user), 16) % 10 + 1
    if "3 + 4" in user:
        return f"正しい。評価：[{k}]"
    if "自己紹介" in user:
        return "評価できません。"
    return f"良い回答です。評価：[[{k}]]"


def _rating(text: str) -> int:
    import re

    m = re.search(r"\[\[(\d+\.?\d*)\]\]", text) or re.search(r"\[(\d+\.?\d*)\]", text)
    return int(m.group(1)) if m else -1


@pytest.fixture(autouse=True)
def _api_key(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)


# ---- ids ----
def test_question_key_matches_int_and_string_ids_and_keeps_other_strings():
    assert question_key(1) == question_key("1") == question_key(" 1") == 1
    assert question_key("81_DE") == "81_DE" and question_key("a1") == "a1"
    assert sort_question_keys([10, 2, 81]) == [2, 10, 81]  # FastChat's sort, by number
    assert sort_question_keys(["1_DE", "b", "10_DE"], ["b", "10_DE", "1_DE"]) == ["b", "10_DE", "1_DE"]


def test_inline_reference_reads_lists_repr_strings_and_never_crashes():
    def ref(value: Any) -> list[str] | None:
        return Question.from_dict({"question_id": 1, "category": "math", "turns": ["q"],
                                   "reference": value}).inline_reference

    assert ref(["a", "b"]) == ["a", "b"]
    assert ref("['Die Fläche ist 3', '5 pi']") == ["Die Fläche ist 3", "5 pi"]
    assert ref('["x", "y"]') == ["x", "y"]
    assert ref("just one text") == ["just one text"]
    assert ref("[not a list") == ["[not a list"]
    for odd in ({"a": 1}, 3, [1, 2], [], None, "__import__('os')"):
        assert ref(odd) in (None, [odd]), odd  # read, never run, never a crash


# ---- German: string ids end to end ----
def test_german_string_ids_end_to_end_with_resume_report_and_card(mt_bench, tmp_path, capsys):
    d = tmp_path / "german"
    german_bench(d)
    with FakeOpenAI("echo") as answers_server:
        args = ["gen-api", "--bench-name", "german", "--data-dir", str(d), "--model", "m",
                "--openai-api-base", answers_server.url]
        assert cli.main(args) == 0
        assert answers_server.total == 6
        assert cli.main(args) == 0 and answers_server.total == 6  # resume with string ids
    answers = _jsonl(d / "model_answer" / "m.jsonl")
    assert [a["question_id"] for a in answers] == ["82_DE", "81_DE", "111_DE"]  # the file's order

    with FakeOpenAI("judge") as judge_server:
        args = ["judge", "--bench-name", "german", "--data-dir", str(d),
                "--openai-api-base", judge_server.url, "--parallel", "3"]
        assert cli.main(args) == 0
        requests = [r["messages"] for r in judge_server.requests]
        assert cli.main(args) == 0 and judge_server.total == 6  # resume: nothing sent again
    prompts = {p["name"]: p for p in _jsonl(JUDGE_PROMPTS)}
    refs = {question_key(r["question_id"]): r for r in _jsonl(d / "reference_answer" / "gpt-4.jsonl")}
    want = fastchat_messages(GERMAN, prompts, refs, {question_key(a["question_id"]): a for a in answers})
    assert sorted(map(json.dumps, requests)) == sorted(map(json.dumps, want))
    records = _jsonl(d / "model_judgment" / "gpt-4_single.jsonl")
    assert {r["question_id"] for r in records} == {"81_DE", "82_DE", "111_DE"}
    assert all("references" not in r and "fastchat_prompts" not in r for r in records)

    capsys.readouterr()
    assert cli.main(["show", "--bench-name", "german", "--data-dir", str(d), "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["comparable"] is False  # gpt-4 and FastChat's prompts, but not MT-bench's questions
    m = res["models"]["m"]
    assert m["average"] == pytest.approx(mean(r["score"] for r in records))
    assert m["turn_2"] is not None and set(m["categories"]) == {"writing", "math"}

    out = tmp_path / "r.html"
    assert cli.main(["report", "--bench-name", "german", "--data-dir", str(d), "--out", str(out)]) == 0
    html = out.read_text(encoding="utf-8")
    # questions, answers and judgments by string id; the reference matched by its string id
    assert '{"id":"81_DE","category":"writing"' in html and '"111_DE":{"0":{"1":[' in html
    assert '"ref":["Referenz: 3","Referenz: 5 pi"]' in html

    with MockHub() as hub, hub.in_this_process(str(tmp_path / "hf")):
        hub.create_repo("user/german-model")
        env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
        pub = mt_bench("publish", "--bench-name", "german", "--data-dir", d, "--repo-id",
                       "user/german-model", "--dry-run", cwd=tmp_path, env=env)
    assert pub.returncode == 0, pub.stderr
    assert "not comparable with published MT-bench" in pub.stdout and "      type: german\n" in pub.stdout


# ---- Japanese: single-turn judge prompts in Japanese, string-id references ----
def test_japanese_single_turn_prompts_judge_turn_1_only(tmp_path, capsys):
    d = tmp_path / "japanese_mt_bench"
    japanese_bench(d)
    answers = [{"question_id": str(q["question_id"]), "model_id": "m",  # only turn 1, string ids
                "choices": [{"index": 0, "turns": [f"回答{q['question_id']}"]}]} for q in JAPANESE]
    _write(d / "model_answer" / "m.jsonl", answers, ensure_ascii=False)
    base = ["judge", "--bench-name", "japanese_mt_bench", "--data-dir", str(d)]
    capsys.readouterr()
    assert cli.main([*base, "--dry-run"]) == 0
    err = capsys.readouterr().err
    assert "turn 1 only: the judge prompts have no multi-turn prompt" in err
    assert "6 to judge (6 judge calls)" in err and "not comparable" in err

    with FakeOpenAI(responder=_ja_judge) as server:
        # question 6's verdict has no rating: not a score, so the run exits 1 and says so
        assert cli.main([*base, "--openai-api-base", server.url]) == 1
        assert "1 of 6 judgments have no rating" in capsys.readouterr().err
        requests = [r["messages"] for r in server.requests]
        assert cli.main([*base, "--openai-api-base", server.url]) == 0 and server.total == 6
    refs = {question_key(r["question_id"]): r for r in _jsonl(d / "reference_answer" / "gpt-4.jsonl")}
    want = fastchat_messages(JAPANESE, {p["name"]: p for p in JA_PROMPTS}, refs,
                             {question_key(a["question_id"]): a for a in answers}, turns=(1,))
    assert requests == want  # byte for byte, in FastChat's order (parallel 1)
    records = _jsonl(d / "model_judgment" / "gpt-4_single.jsonl")
    assert [r["question_id"] for r in records] == [5, 6, 1, 2, 3, 4]  # as question.jsonl writes them
    assert [r["score"] for r in records] == [_rating(r["judgment"]) for r in records]
    assert {r["score"] for r in records if r["question_id"] == 6} == {-1}
    assert all(r["turn"] == 1 and r["fastchat_prompts"] is False for r in records)

    assert cli.main(["show", "--bench-name", "japanese_mt_bench", "--data-dir", str(d)]) == 0
    text = capsys.readouterr().out
    assert "First turn" in text and "Second turn" not in text
    assert cli.main(["show", "--bench-name", "japanese_mt_bench", "--data-dir", str(d), "--json"]) == 0
    m = json.loads(capsys.readouterr().out)["models"]["m"]
    assert m["turn_2"] is None and m["turn_1"] == pytest.approx(
        mean(r["score"] for r in records if r["score"] != -1))


def test_japanese_prompts_answers_missing_turn_1_still_need_allow_partial(tmp_path):
    d = tmp_path / "ja"
    japanese_bench(d)
    _write(d / "model_answer" / "m.jsonl", [{"question_id": 1, "choices": [{"turns": ["a"]}]}])
    with pytest.raises(Exception, match="5 of 6 questions unanswered"):
        from mt_bench_task.judging.run import JudgeRun, run_judging

        run_judging(JudgeRun(d, dry_run=True))


def test_published_japanese_judgments_replay_byte_for_byte(tmp_path, capsys):
    """Stability's published Japanese judgments were made with FastChat's English prompts on the
    Japanese questions (int ids) with a string-id reference file: replaying them gives every
    judge prompt byte for byte, every score, and the same tables."""
    d = tmp_path / "japanese_mt_bench"
    japanese_bench(d, prompts=False)
    answers = [{"question_id": q["question_id"], "answer_id": f"a{q['question_id']}", "model_id": "m",
                "choices": [{"index": 0, "turns": [f"回答{q['question_id']}", f"続き{q['question_id']}"]}],
                "tstamp": 1.0} for q in JAPANESE]
    _write(d / "model_answer" / "m.jsonl", answers)
    prompts = {p["name"]: p for p in _jsonl(JUDGE_PROMPTS)}
    refs = {question_key(r["question_id"]): r for r in _jsonl(d / "reference_answer" / "gpt-4.jsonl")}
    matches = fastchat_matches(JAPANESE, prompts, refs, {a["question_id"]: a for a in answers})
    want = [msgs for _, _, _, msgs in matches]
    published = []  # FastChat's records, as gen_judgment.py writes them (json.dumps defaults)
    for q, turn, name, msgs in matches:
        user = msgs[1]["content"]
        judgment = f"Explanation.\n\nRating: [[{int(prompt_hash(user), 16) % 10 + 1}]]"
        published.append({"question_id": q["question_id"], "model": "m", "judge": ["gpt-4", name],
                          "user_prompt": user, "judgment": judgment, "score": _rating(judgment),
                          "turn": turn, "tstamp": 1.0})
    pub_file = tmp_path / "published" / "gpt-4_single.jsonl"
    _write(pub_file, published)
    by_prompt = {r["user_prompt"]: r["judgment"] for r in published}

    with FakeOpenAI(responder=lambda req: by_prompt[req["messages"][-1]["content"]]) as server:
        assert cli.main(["judge", "--bench-name", "japanese_mt_bench", "--data-dir", str(d),
                         "--openai-api-base", server.url]) == 0
        assert [r["messages"] for r in server.requests] == want
    ours = _jsonl(d / "model_judgment" / "gpt-4_single.jsonl")
    fields = ("question_id", "model", "judge", "user_prompt", "judgment", "score", "turn")
    assert [{k: r[k] for k in fields} for r in ours] == [{k: r[k] for k in fields} for r in published]

    tables = []
    for extra in ([], ["--input-file", str(pub_file)]):
        capsys.readouterr()
        assert cli.main(["show", "--bench-name", "japanese_mt_bench", "--data-dir", str(d), *extra]) == 0
        out = capsys.readouterr().out
        tables.append(out.split("\n", 1)[1])  # after "Input file: ..."
    assert tables[0] == tables[1] and "Second turn" in tables[0]
    assert cli.main(["show", "--data-dir", str(d), "--input-file", str(pub_file), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["comparable"] is False  # ids 1-80: not MT-bench's


# ---- Chinese: FastChat's prompts with a language sentence, inline reference lists ----
def test_chinese_bench_with_language_sentence_prompts(tmp_path, capsys):
    d = tmp_path / "mt_bench_zh"
    zh = [{"question_id": 81, "category": "writing", "turns": ["写一篇关于夏威夷的博客。", "每句以A开头。"]},
          {"question_id": 111, "category": "math", "turns": ["三角形面积是多少？", "外接圆面积？"],
           "reference": ["3", "5pi"]}]
    _write(d / "question.jsonl", zh, ensure_ascii=False)
    _write(d / "reference_answer" / "gpt-4.jsonl",
           [{"question_id": 111, "choices": [{"index": 0, "turns": ["面积为3", "5pi"]}]}], ensure_ascii=False)
    lines = JUDGE_PROMPTS.read_text(encoding="utf-8").replace(
        "factors such as the helpfulness",
        "factors such as the language in use (i.e., English or Chinese), helpfulness")
    (d / "judge_prompts.jsonl").write_text(lines, encoding="utf-8")
    _write(d / "model_answer" / "m.jsonl",
           [{"question_id": q["question_id"], "choices": [{"turns": ["答1", "答2"]}]} for q in zh],
           ensure_ascii=False)
    with FakeOpenAI("judge") as server:
        assert cli.main(["judge", "--bench-name", "mt_bench_zh", "--data-dir", str(d),
                         "--openai-api-base", server.url]) == 0
        requests = [r["messages"] for r in server.requests]
    prompts = {p["name"]: p for p in _jsonl(d / "judge_prompts.jsonl")}
    refs = {111: _jsonl(d / "reference_answer" / "gpt-4.jsonl")[0]}
    answers = {r["question_id"]: r for r in _jsonl(d / "model_answer" / "m.jsonl")}
    assert requests == fastchat_messages(zh, prompts, refs, answers)
    assert "language in use" in requests[0][1]["content"] or "language in use" in requests[0][0]["content"]
    capsys.readouterr()
    assert cli.main(["show", "--bench-name", "mt_bench_zh", "--data-dir", str(d), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["comparable"] is False  # its own prompts


# ---- bad input: exit 2, one line naming file:line ----
@pytest.mark.parametrize("fix,where", [
    (lambda p: p[1].update(output_format="評価：[[5]]"), "judge_prompts.jsonl:2: "),
    (lambda p: p[0].update(type="pairwise"), "judge_prompts.jsonl:1: "),
])
def test_bad_localized_judge_prompt_is_exit_2_naming_file_and_line(mt_bench, tmp_path, fix, where):
    d = tmp_path / "ja"
    japanese_bench(d)
    prompts = [dict(p) for p in JA_PROMPTS]
    fix(prompts)
    _write(d / "judge_prompts.jsonl", prompts, ensure_ascii=False)
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
    proc = mt_bench("judge", "--bench-name", "ja", "--data-dir", d, "--dry-run", cwd=REPO,
                    env={**env, "OPENAI_API_KEY": KEY})
    assert proc.returncode == 2
    assert proc.stderr.startswith(f"mt-bench judge: error: {d / where}".rstrip()) and proc.stderr.count("\n") == 1
    assert not (d / "model_judgment").exists()


def test_duplicate_ids_across_forms_are_one_question(tmp_path):
    d = tmp_path / "dup"
    _write(d / "question.jsonl", [{"question_id": 1, "category": "writing", "turns": ["a"]},
                                  {"question_id": "1", "category": "writing", "turns": ["b"]}])
    assert cli.main(["judge", "--bench-name", "dup", "--data-dir", str(d), "--dry-run"]) == 2


def test_metric_on_a_japanese_folder_takes_turn_1_answers(tmp_path):
    from mt_bench_task.core.chat import ChatClientBase, Completion
    from mt_bench_task.integrations import metric

    d = tmp_path / "ja"
    japanese_bench(d)
    seen: list[str] = []

    class Judge(ChatClientBase):
        async def complete(self, model, messages, *, temperature, max_tokens):
            seen.append(messages[-1]["content"])
            return Completion("良い。評価：[[7]]")

    res = metric.compute([[f"回答{q['question_id']}"] for q in JAPANESE], JAPANESE,
                         judge=metric.JudgeSettings(client=Judge(), bench=str(d)))
    assert len(seen) == 6 and res["score"] == 7 and res["turn_2"] is None
    assert res["comparable"] is False
