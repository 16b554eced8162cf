"""The local judge: micro-batching, batch == one-by-one, the rating fallback, judging end to end.

These load the real default model (SmolLM2-135M) on the CPU, with few prompts and few new tokens.
"""
from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from support.rating_logprobs import candidate_logprobs

from mt_bench_task.clients.local_judge import LocalJudgeClient
from mt_bench_task.core import data
from mt_bench_task.core.bench import load_bench
from mt_bench_task.core.chat import Completion
from mt_bench_task.core.judge_spec import judge_spec
from mt_bench_task.core.prompts import extract_rating
from mt_bench_task.core.types import Choice, SingleJudgment
from mt_bench_task.engine.base import stop_token_ids
from mt_bench_task.engine.config import EngineOptions
from mt_bench_task.engine.hf.judge_decoder import HfJudge
from mt_bench_task.engine.local_judge import RATING_SUFFIX, RATINGS, JudgeCall
from mt_bench_task.judging.run import judge_answers

pytestmark = pytest.mark.slow

SYSTEM = "You are a helpful assistant."
RATE = ("Rate the answer from 1 to 10, strictly in this format: \"[[rating]]\".\n"
        "Question: {q}\nAnswer: {a}")
QA = [("What is the capital of France?", "Paris."),
      ("What is 2 + 2?", "5"),
      ("Name a primary colour.", "Blue is a primary colour of light and of pigment."),
      ("Translate 'hello' to Spanish.", "Hola."),
      ("Who wrote Hamlet?", "Charles Dickens wrote Hamlet in 1850, in London."),
      ("Is the earth flat?", "No.")]


def _msgs(q: str, a: str) -> list[dict[str, str]]:
    return [{"role": "system", "content": SYSTEM},
            {"role": "user", "content": RATE.format(q=q, a=a)}]


REQUESTS = [_msgs(q, a) for q, a in QA]


def _as_call(messages: list[dict[str, str]]) -> JudgeCall:
    return JudgeCall(tuple((m["role"], m["content"]) for m in messages), 1)


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """One torch thread: on a shared 2-core box, 2 OpenMP threads made a 16-token batch take 13 s
    instead of 1 s. Restored afterwards."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def judge() -> LocalJudgeClient:
    from mt_bench_task.engine.models import default_model_dir

    # fp32: in bf16 a batched greedy run need not equal a batch-1 run (HF_STACK_NOTES section 7)
    client = LocalJudgeClient(str(default_model_dir()), max_new_tokens=12)
    client.engine = HfJudge.load(str(default_model_dir()), EngineOptions(dtype="float32"))
    return client


def _complete_all(client: LocalJudgeClient, requests: list[Any], max_tokens: int = 2048,
                  concurrent: bool = True) -> list[Completion]:
    async def go() -> list[Completion]:
        calls = (client.complete("j", m, temperature=0.0, max_tokens=max_tokens) for m in requests)
        if concurrent:
            return list(await asyncio.gather(*calls))
        return [await c for c in calls]

    return asyncio.run(go())


@pytest.fixture(scope="module")
def batched(judge: LocalJudgeClient) -> tuple[list[Completion], list[int]]:
    before = len(judge.batch_sizes)
    out = _complete_all(judge, REQUESTS)
    return out, judge.batch_sizes[before:]


def test_concurrent_requests_share_one_batch(judge, batched) -> None:
    out, sizes = batched
    assert sizes == [6]  # 6 concurrent requests, batch_size 8: one batch, one prefill
    assert all(c.prompt_tokens > 0 and 0 < c.completion_tokens <= 12 for c in out)
    assert judge.usage.requests >= 6


def test_batch_equals_one_by_one(judge, batched) -> None:
    before = len(judge.batch_sizes)
    single = _complete_all(judge, REQUESTS, concurrent=False)
    assert judge.batch_sizes[before:] == [1] * 6
    assert [c.text for c in single] == [c.text for c in batched[0]]
    assert [c.fallback_rating for c in single] == [c.fallback_rating for c in batched[0]]
    assert [c.completion_tokens for c in single] == [c.completion_tokens for c in batched[0]]


def test_batch_size_caps_a_batch(judge) -> None:
    before, judge.batch_size = len(judge.batch_sizes), 4
    try:
        out = _complete_all(judge, REQUESTS, max_tokens=2)  # the request's max_tokens is honoured
    finally:
        judge.batch_size = 8
    assert judge.batch_sizes[before:] == [4, 2]
    assert all(c.completion_tokens <= 2 for c in out)


HI = [{"role": "user", "content": "Hi"}]  # SmolLM2 answers in 10 tokens, then stops (EOS)
PAIRWISE = [{"role": "system", "content": 'Output "[[A]]" if assistant A is better, '
                                          '"[[B]]" if B is better, "[[C]]" for a tie.'},
            {"role": "user", "content": "[The Start of Assistant A's Answer]\nParis\n..."}]


def _generated_ids(judge: LocalJudgeClient, messages: list[dict[str, str]],
                   max_tokens: int) -> list[int]:
    """Independently of the client's decoding loop: generate() at batch 1, cut before its EOS."""
    import torch


    tok, model = judge.engine.tok, judge.engine.model
    ids = tok.apply_chat_template(messages, add_generation_prompt=True, return_dict=True,
                                  return_tensors="pt")["input_ids"]
    with torch.inference_mode():
        out = model.generate(ids, max_new_tokens=max_tokens, do_sample=False,
                             pad_token_id=tok.pad_token_id)[0, ids.shape[1]:].tolist()
    eos = stop_token_ids(model.generation_config, tok)
    return out[: next((i for i, t in enumerate(out) if t in eos), len(out))]


def _rating_scores(judge: LocalJudgeClient, messages: list[dict[str, str]],
                   gen: list[int]) -> list[float]:
    """Independently of the client's KV-cache path: one full forward per candidate sequence,
    tokenised as the client documents it: prompt ids + generated ids + ids("\nRating: [[")
    + ids("r]]"), the log-probs of the candidate's tokens summed."""
    tok, model = judge.engine.tok, judge.engine.model
    prompt = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    context = (tok(prompt, add_special_tokens=False)["input_ids"] + gen
               + tok(RATING_SUFFIX, add_special_tokens=False)["input_ids"])
    return candidate_logprobs(model, tok, context)


def test_fallback_rating_is_the_most_probable_rating(judge) -> None:
    # one batch: different max_tokens, an early EOS (HI), a pairwise prompt (no fallback, so the
    # fallback runs on a selection of the batch's rows)
    calls = [(REQUESTS[1], 3), (REQUESTS[4], 12), (PAIRWISE, 3), (HI, 12), (REQUESTS[0], 5)]
    before = len(judge.batch_sizes)

    async def go() -> list[Completion]:
        return list(await asyncio.gather(*(judge.complete("j", m, temperature=0.0, max_tokens=n)
                                           for m, n in calls)))

    out = asyncio.run(go())
    assert judge.batch_sizes[before:] == [5]
    assert out[2].fallback_rating is None
    assert out[3].completion_tokens < 12  # HI stopped at its EOS
    rows = [i for i, (m, _) in enumerate(calls) if m is not PAIRWISE]
    expected = []
    for i in rows:
        (messages, n), c = calls[i], out[i]
        assert extract_rating(c.text) == -1  # SmolLM2 wrote no [[rating]] in these tokens
        gen = _generated_ids(judge, messages, n)
        assert c.text == judge.engine.tok.decode(gen, skip_special_tokens=True).strip()
        scores = _rating_scores(judge, messages, gen)
        expected.append(scores)
        assert isinstance(c.fallback_rating, int) and 1 <= c.fallback_rating <= 10
        assert c.fallback_rating == RATINGS[scores.index(max(scores))]
    # not only the argmax: every candidate's log-prob, through the client's internals
    import torch


    prompts = [judge.engine.prompt_ids(_as_call(m), 12 + 16) for m, _ in calls]
    with torch.inference_mode():
        state = judge.engine.greedy(prompts, [n for _, n in calls])
        got = judge.engine.rating_logprobs(state, rows)
    assert torch.allclose(got, torch.tensor(expected, dtype=got.dtype), atol=1e-3)


def test_greedy_loop_equals_generate(judge) -> None:
    """The client's decoding loop on the batch's KV cache is token for token generate()'s greedy
    output (fp32), with rows stopping early by EOS or by their own limit."""
    import torch


    tok, model = judge.engine.tok, judge.engine.model
    msgs = [REQUESTS[2], HI, _msgs("Summarise: " + "word " * 40, "ok"), REQUESTS[4]]
    prompts = [judge.engine.prompt_ids(_as_call(m), 32) for m in msgs]
    assert len({len(p) for p in prompts}) == 4
    enc = tok.pad({"input_ids": prompts}, padding=True, return_tensors="pt")
    eos = stop_token_ids(model.generation_config, tok)
    with torch.inference_mode():
        out = model.generate(**enc, max_new_tokens=16, do_sample=False,
                             pad_token_id=tok.pad_token_id)[:, enc["input_ids"].shape[1]:].tolist()
        full = judge.engine.greedy(prompts, [16] * 4).rows
        capped = judge.engine.greedy(prompts, [16, 16, 5, 3]).rows
    expected = [row[: next((i + 1 for i, t in enumerate(row) if t in eos), len(row))]
                for row in out]
    assert any(len(e) < 16 for e in expected)  # a row stopped at EOS while others went on
    assert full == expected
    assert capped == [e[:n] for e, n in zip(expected, [16, 16, 5, 3])]


def test_no_fallback_for_pairwise_prompts(judge) -> None:
    (c,) = _complete_all(judge, [PAIRWISE], max_tokens=3)
    assert c.fallback_rating is None


def test_overlong_prompt_keeps_its_end(judge, monkeypatch) -> None:
    monkeypatch.setattr(judge.engine, "context_limit", lambda: 64)
    messages = _msgs("Summarise: " + "word " * 200, "ok")
    ids = judge.engine.prompt_ids(_as_call(messages), room=16)
    full = judge.engine.tok(judge.engine.tok.apply_chat_template(messages, tokenize=False,
                                                     add_generation_prompt=True),
                      add_special_tokens=False)["input_ids"]
    assert ids == full[-48:]
    assert judge.engine.truncated_prompts >= 1


def test_load_failure_reaches_every_caller(tmp_path: Path) -> None:
    client = LocalJudgeClient(str(tmp_path))  # an empty dir: no model there

    async def go() -> list[Any]:
        calls = [client.complete("j", REQUESTS[0], temperature=0.0, max_tokens=4) for _ in range(3)]
        return await asyncio.wait_for(asyncio.gather(*calls, return_exceptions=True), 60)

    results = asyncio.run(go())
    assert len(results) == 3 and all(isinstance(r, Exception) for r in results)


def test_judge_answers_with_the_default_local_judge() -> None:
    questions = load_bench().select(0, 2)
    answers = data.load_answers(Path(__file__).parents[1] / "conformance" / "jxiw", "mamba_0_5_dpo_ep1")
    # the answers cut to 300 characters: the plumbing is the same, the CPU prefill 3x shorter
    answers = {qid: replace(a, choices=[Choice(0, [t[:300] for t in a.turns])])
               for qid, a in answers.items()}
    client = LocalJudgeClient("default", max_new_tokens=8)
    records = judge_answers(questions, {"m": answers}, client, judge=judge_spec("default"))
    assert len(records) == 4
    assert client.batch_sizes == [4]  # turns 1 and 2 of both questions in one batch
    for r in records:
        assert isinstance(r, SingleJudgment) and r.local_judge and r.extra["local_judge"] is True
        assert isinstance(r.score, int) and 1 <= r.score <= 10
        if extract_rating(r.judgment) == -1:
            assert r.extra["score_source"] == "rating_probability"


