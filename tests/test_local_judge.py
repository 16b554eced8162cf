"""The local judge: micro-batching, batch == one-by-one, the rating fallback, judging end to end.

These load the real default model (SmolLM2-135M) on the CPU, with few prompts and few new tokens.
"""
from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from mt_bench_task import data
from mt_bench_task.judging import judge_answers
from mt_bench_task.local_judge import RATING_SUFFIX, RATINGS, LocalJudgeClient
from mt_bench_task.prompts import extract_rating
from mt_bench_task.types import Choice, Completion

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
    from mt_bench_task.models import default_model_dir

    # fp32: in bf16 a batched greedy run need not equal a batch-1 run (HF_STACK_NOTES section 7)
    return LocalJudgeClient(str(default_model_dir()), max_new_tokens=12, dtype="float32")


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


def test_concurrent_requests_share_one_generate(judge, batched) -> None:
    out, sizes = batched
    assert sizes == [6]  # 6 concurrent requests, batch_size 8: one generate() call
    assert all(c.prompt_tokens > 0 and 0 < c.completion_tokens <= 12 for c in out)
    assert judge.usage["requests"] >= 6
    assert judge.is_local


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


def _rating_scores(judge: LocalJudgeClient, messages: list[dict[str, str]],
                   text: str) -> list[float]:
    """Independently of the client's KV-cache path: one full forward per candidate string."""
    import torch

    tok, model = judge._tok, judge._model
    prompt = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    seqs = [tok(prompt + text + RATING_SUFFIX + f"{r}]]", add_special_tokens=False)["input_ids"]
            for r in RATINGS]
    start = next(i for i in range(len(seqs[0])) if any(s[i] != seqs[0][i] for s in seqs))
    scores = []
    with torch.inference_mode():
        for s in seqs:
            logp = torch.log_softmax(model(torch.tensor([s])).logits[0].float(), -1)
            scores.append(sum(logp[j - 1, s[j]].item() for j in range(start, len(s))))
    return scores


def test_fallback_rating_is_the_most_probable_rating(judge) -> None:
    messages = REQUESTS[1]
    (c,) = _complete_all(judge, [messages], max_tokens=3)
    assert extract_rating(c.text) == -1  # 3 tokens of SmolLM2 hold no [[rating]]
    scores = _rating_scores(judge, messages, c.text)
    assert isinstance(c.fallback_rating, int) and 1 <= c.fallback_rating <= 10
    assert c.fallback_rating == RATINGS[scores.index(max(scores))]


def test_no_fallback_for_pairwise_prompts(judge) -> None:
    messages = [{"role": "system", "content": 'Output "[[A]]" if assistant A is better, '
                                              '"[[B]]" if B is better, "[[C]]" for a tie.'},
                {"role": "user", "content": "[The Start of Assistant A's Answer]\nParis\n..."}]
    (c,) = _complete_all(judge, [messages], max_tokens=3)
    assert c.fallback_rating is None


def test_overlong_prompt_keeps_its_end(judge, monkeypatch) -> None:
    monkeypatch.setattr(judge, "_context_limit", lambda: 64)
    messages = _msgs("Summarise: " + "word " * 200, "ok")
    ids = judge._prompt_ids(messages, room=16)
    full = judge._tok(judge._tok.apply_chat_template(messages, tokenize=False,
                                                     add_generation_prompt=True),
                      add_special_tokens=False)["input_ids"]
    assert ids == full[-48:]
    assert judge.truncated_prompts >= 1


def test_load_failure_reaches_every_caller(tmp_path: Path) -> None:
    client = LocalJudgeClient(str(tmp_path))  # an empty dir: no model there

    async def go() -> list[Any]:
        calls = [client.complete("j", REQUESTS[0], temperature=0.0, max_tokens=4) for _ in range(3)]
        return await asyncio.wait_for(asyncio.gather(*calls, return_exceptions=True), 60)

    results = asyncio.run(go())
    assert len(results) == 3 and all(isinstance(r, Exception) for r in results)


def test_judge_answers_with_the_default_local_judge() -> None:
    questions = data.load_questions()[:2]
    answers = data.load_answers(Path(__file__).parent / "conformance" / "jxiw", "mamba_0_5_dpo_ep1")
    # the answers cut to 300 characters: the plumbing is the same, the CPU prefill 3x shorter
    answers = {qid: replace(a, choices=[Choice(0, [t[:300] for t in a.turns])])
               for qid, a in answers.items()}
    client = LocalJudgeClient("default", max_new_tokens=8)
    records = judge_answers(questions, {"m": answers}, client, judge_model="smollm2-135m-instruct")
    assert len(records) == 4
    assert client.batch_sizes == [4]  # turns 1 and 2 of both questions in one batch
    for r in records:
        assert r["local_judge"] is True
        assert isinstance(r["score"], int) and 1 <= r["score"] <= 10
        if extract_rating(r["judgment"]) == -1:
            assert r["score_source"] == "rating_probability"
