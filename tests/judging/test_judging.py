"""The judge runner: FastChat records, resume, torn-line repair, partial answers, dry run.
(HTTP-level faults and kill -9 are in test_judge_faults.py against a real local server.)"""
from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import pytest

from mt_bench_task.cli.main import main
from mt_bench_task.core import data
from mt_bench_task.core.bench import load_bench
from mt_bench_task.core.chat import ChatClientBase, Completion
from mt_bench_task.core.errors import DataError
from mt_bench_task.core.types import SingleJudgment
from mt_bench_task.judging.execute import SendOptions
from mt_bench_task.judging.run import JudgeRun, judge_answers, run_judging

CONF = Path(__file__).parents[1] / "conformance"
SINGLE_KEYS = ["question_id", "model", "judge", "user_prompt", "judgment", "score", "turn", "tstamp"]
PAIR_KEYS = ["question_id", "model_1", "model_2", "g1_winner", "g2_winner", "judge", "g1_user_prompt",
             "g1_judgment", "g2_user_prompt", "g2_judgment", "turn", "tstamp"]


class ReplayJudge(ChatClientBase):
    """Answers each prompt with the judgment FastChat stored for it; counts calls."""

    def __init__(self, judgments: dict[str, str], fail_first: set[str] = frozenset()):
        super().__init__()
        self.judgments, self.fail_first, self.calls, self.requests = judgments, set(fail_first), 0, []

    async def complete(self, model, messages, *, temperature, max_tokens):
        self.calls += 1
        self.requests.append((model, messages, temperature, max_tokens))
        await asyncio.sleep(0)
        user = messages[-1]["content"]
        if user in self.fail_first:
            self.fail_first.discard(user)
            return Completion("$ERROR$", failed=True)
        text = self.judgments[user]
        if isinstance(text, list):  # identical prompts (equal answers) judged differently: in order
            text = text.pop(0) if len(text) > 1 else text[0]
        return Completion(text)


def _replay_single(run: str) -> tuple[ReplayJudge, list[dict]]:
    rows = [json.loads(l) for l in (CONF / run / "model_judgment/gpt-4_single.jsonl").read_text().splitlines()]
    return ReplayJudge({r["user_prompt"]: r["judgment"] for r in rows}), rows


def _data_dir(tmp_path: Path, run: str) -> Path:
    d = tmp_path / run
    shutil.copytree(CONF / run / "model_answer", d / "model_answer")
    return d


def test_end_to_end_single_reproduces_stored_scores(tmp_path):
    judge, rows = _replay_single("instructlab")
    d = _data_dir(tmp_path, "instructlab")
    summary = run_judging(JudgeRun(d, send=SendOptions(parallel=4)), client=judge)
    out = [json.loads(l) for l in (d / "model_judgment/gpt-4_single.jsonl").read_text().splitlines()]
    assert summary.sent == len(out) == 160 and judge.calls == 160
    assert all(list(r) == SINGLE_KEYS for r in out)
    stored = {(r["question_id"], r["turn"]): (r["score"], r["judge"]) for r in rows}
    for r in out:
        assert (r["score"], r["judge"]) == stored[(r["question_id"], r["turn"])]
        assert type(r["score"]) is type(stored[(r["question_id"], r["turn"])][0])
    model, msgs, temperature, max_tokens = judge.requests[0]
    assert (model, temperature, max_tokens) == ("gpt-4", 0.0, 2048)
    assert [m["role"] for m in msgs] == ["system", "user"]
    # stored $ERROR$ judgments count as failures: the summary says so and exit code is 1
    assert summary.failed == 10 and not summary.ok


def test_rerun_sends_only_missing_and_failed(tmp_path):
    judge, rows = _replay_single("jxiw")
    d = _data_dir(tmp_path, "jxiw")
    failing = {rows[0]["user_prompt"], rows[5]["user_prompt"]}
    judge.fail_first = set(failing)
    first = run_judging(JudgeRun(d, model_list=["mamba_0_5_dpo_ep1", "mamba_0_5_dpo_ep3"],
                                 send=SendOptions(parallel=8)),
                        client=judge)
    assert first.sent == 320
    calls = judge.calls
    second = run_judging(JudgeRun(d, model_list=["mamba_0_5_dpo_ep1", "mamba_0_5_dpo_ep3"]), client=judge)
    assert second.already_done == 320 - len(failing) and judge.calls - calls == len(failing)
    calls = judge.calls
    third = run_judging(JudgeRun(d, model_list=["mamba_0_5_dpo_ep1", "mamba_0_5_dpo_ep3"]), client=judge)
    assert third.sent == 0 and judge.calls == calls
    out = [json.loads(l) for l in (d / "model_judgment/gpt-4_single.jsonl").read_text().splitlines()]
    assert len(out) == 320 and not any(r["judgment"] == "$ERROR$" for r in out)  # superseded rows gone


def test_torn_last_line_is_repaired_and_completed(tmp_path):
    judge, _ = _replay_single("jxiw")
    d = _data_dir(tmp_path, "jxiw")
    run = JudgeRun(d, model_list=["mamba_0_5_dpo_ep1"])
    run_judging(run, client=judge)
    path = d / "model_judgment/gpt-4_single.jsonl"
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) - 40])  # kill -9 mid-write: last line cut, no newline
    calls = judge.calls
    s = run_judging(run, client=judge)
    assert s.sent == 1 and judge.calls == calls + 1
    assert len(path.read_text().splitlines()) == 160


def test_malformed_line_in_the_middle_is_an_error_and_file_untouched(tmp_path):
    judge, _ = _replay_single("jxiw")
    d = _data_dir(tmp_path, "jxiw")
    path = d / "model_judgment/gpt-4_single.jsonl"
    path.parent.mkdir(parents=True)
    path.write_text('{"question_id": 81}\nnot json\n{"a": 1}\n')
    before = path.read_bytes()
    code = main(["judge", "--data-dir", str(d), "--model-list", "mamba_0_5_dpo_ep1"])
    assert code == 2 and path.read_bytes() == before


def test_partial_answers_error_names_model_and_ids_before_any_call(tmp_path, caplog):
    d = _data_dir(tmp_path, "jxiw")
    f = d / "model_answer/mamba_0_5_dpo_ep1.jsonl"
    lines = f.read_text().splitlines()
    drop_turn = json.loads(lines[3])
    drop_turn["choices"][0]["turns"] = drop_turn["choices"][0]["turns"][:1]
    f.write_text("\n".join(lines[:2] + [json.dumps(drop_turn)] + lines[10:]) + "\n")
    with pytest.raises(DataError) as e:
        run_judging(JudgeRun(d, model_list=["mamba_0_5_dpo_ep1"]), client=None)
    msg = str(e.value)
    assert "mamba_0_5_dpo_ep1" in msg and "7 of 80 questions unanswered" in msg and "83" in msg
    assert "1 answers missing turn 2" in msg
    assert not (d / "model_judgment").exists()
    assert e.value.params == ("allow_partial",)  # the CLI says --allow-partial
    judge, _ = _replay_single("jxiw")
    with caplog.at_level("WARNING", logger="mt_bench_task"):
        s = run_judging(JudgeRun(d, model_list=["mamba_0_5_dpo_ep1"], allow_partial=True), client=judge)
    assert s.sent == 160 - 7 * 2 - 1 and s.skipped_partial == 15
    assert "allow_partial: model 'mamba_0_5_dpo_ep1': 7 of 80 questions unanswered" in caplog.text


def test_unknown_model_and_missing_reference_are_clear_errors(tmp_path):
    d = _data_dir(tmp_path, "jxiw")
    assert main(["judge", "--data-dir", str(d), "--model-list", "nope", "--dry-run"]) == 2
    (d / "reference_answer").mkdir()
    (d / "reference_answer/gpt-4.jsonl").write_text("")
    with pytest.raises(DataError, match="no reference answer for question 101"):
        run_judging(JudgeRun(d, model_list=["mamba_0_5_dpo_ep1"], dry_run=True))


@pytest.mark.parametrize("line,fmt", [(4, "[[A]]"), (4, "Rating: [[5]]"), (4, "[[5]]"),
                                      (0, "[[rating]]"), (0, "[[評価]]")])
def test_judge_file_with_unknown_output_format_is_rejected(tmp_path, line, fmt):
    d = _data_dir(tmp_path, "jxiw")
    prompts = [json.loads(l) for l in Path(load_bench().sources['judge_prompts']).read_text().splitlines()]
    prompts[line]["output_format"] = fmt
    bad = tmp_path / "judge_prompts.jsonl"
    bad.write_text("\n".join(json.dumps(p) for p in prompts) + "\n")
    name = prompts[line]["name"]
    with pytest.raises(DataError, match=rf"judge_prompts.jsonl:{line + 1}: .*{name}.*output_format"):
        run_judging(JudgeRun(d, judge_file=bad, dry_run=True))


def test_dry_run_prints_plan_and_calls_nothing(tmp_path, capsys):
    d = _data_dir(tmp_path, "jxiw")
    assert main(["judge", "--data-dir", str(d), "--mode", "pairwise-baseline", "--dry-run",
                 "--model-list", "mamba_0_5_dpo_ep1", "mamba_0_5_dpo_ep3"]) == 0
    err = capsys.readouterr().err
    assert "320 to judge (640 judge calls)" in err and "pair-math-v1-multi-turn: 60" in err
    assert not (d / "model_judgment").exists()


def test_pairwise_all_end_to_end_reproduces_stored_verdicts(tmp_path):
    path = next((CONF / "lesnikow/model_judgment").glob("*_pair.jsonl"))
    rows = [json.loads(l) for l in path.read_text().splitlines()]
    texts: dict[str, list[str]] = {}
    for r in rows:
        texts.setdefault(r["g1_user_prompt"], []).append(r["g1_judgment"])
        texts.setdefault(r["g2_user_prompt"], []).append(r["g2_judgment"])
    # equal answers give equal prompts that GPT-4 judged differently: compare unambiguous ones
    clear = {p for p, ts in texts.items() if len(set(ts)) == 1}
    judge = ReplayJudge(texts)
    d = _data_dir(tmp_path, "lesnikow")
    s = run_judging(JudgeRun(d, judge_model="gpt-4-turbo", mode="pairwise-all",
                             send=SendOptions(parallel=1)), client=judge)
    assert s.sent == 480 and judge.calls == 960
    out = [json.loads(l) for l in (d / "model_judgment/gpt-4-turbo_pair.jsonl").read_text().splitlines()]
    assert all(list(r) == PAIR_KEYS for r in out)
    want = {(r["question_id"], r["turn"], r["model_1"], r["model_2"]): (r["g1_winner"], r["g2_winner"])
            for r in rows if {r["g1_user_prompt"], r["g2_user_prompt"]} <= clear}
    got = {(r["question_id"], r["turn"], r["model_1"], r["model_2"]): (r["g1_winner"], r["g2_winner"])
           for r in out}
    assert len(want) >= 400 and {k: got[k] for k in want} == want
    assert set(got) == {(r["question_id"], r["turn"], r["model_1"], r["model_2"]) for r in rows}


def test_pairwise_baseline_uses_packaged_gpt35_answers(tmp_path):
    d = _data_dir(tmp_path, "jxiw")
    judge = ReplayJudge({}, set())
    judge.judgments = type("All", (dict,), {"__missing__": lambda self, k: "[[A]]"})()
    s = run_judging(JudgeRun(d, mode="pairwise-baseline", model_list=["mamba_0_5_dpo_ep1"], first_n=3),
                    client=judge)
    out = [json.loads(l) for l in (d / "model_judgment/gpt-4_pair.jsonl").read_text().splitlines()]
    assert s.sent == 6 and {r["model_2"] for r in out} == {"gpt-3.5-turbo"}
    assert all(r["g1_winner"] == "model_1" and r["g2_winner"] == "model_2" for r in out)


def test_judge_answers_in_memory_is_ordered_like_fastchat():
    judge, rows = _replay_single("jxiw")
    answers = {"mamba_0_5_dpo_ep1": data.load_answers(CONF / "jxiw", "mamba_0_5_dpo_ep1")}
    recs = judge_answers(load_bench().select(), answers, judge, parallel=16)
    assert [r.judge[1] for r in recs][:1] == ["single-v1"] and len(recs) == 160
    assert all(isinstance(r, SingleJudgment) for r in recs)
    stored = {(r["question_id"], r["turn"]): r["score"] for r in rows if r["model"] == "mamba_0_5_dpo_ep1"}
    assert {(r.question_id, r.turn): r.score for r in recs} == stored


def test_answers_to_unknown_question_ids_are_a_clear_error(tmp_path):
    d = _data_dir(tmp_path, "jxiw")
    f = d / "model_answer/mamba_0_5_dpo_ep1.jsonl"
    row = json.loads(f.read_text().splitlines()[0])
    row["question_id"] = 999
    before = f.read_text() + json.dumps(row) + "\n"
    f.write_text(before)
    with pytest.raises(DataError, match=r"mamba_0_5_dpo_ep1.jsonl: answers for unknown question id\(s\) \[999\]"):
        run_judging(JudgeRun(d, model_list=["mamba_0_5_dpo_ep1"], dry_run=True))
    assert f.read_text() == before
