"""scheduler: one continuous batch of all temperatures gives FastChat's batch-1 answers.

The reference is FastChat's algorithm run here with transformers directly: one question at a time,
`torch.manual_seed(choice)`, one `generate()` per turn with do_sample = temperature >= 1e-4,
turn 2 seeing the cleaned turn-1 answer. fp32, the embedded SmolLM2-135M, few new tokens.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from mt_bench_task.core.bench import load_bench
from mt_bench_task.engine.base import clean_output as _clean_output
from mt_bench_task.engine.generate import GenerationConfig, generate_answers
from mt_bench_task.engine.hf.batch_requests import Request
from mt_bench_task.engine.hf.scheduler import ContinuousBatcher

pytestmark = pytest.mark.slow
NEW_TOKENS = 6
# one question per temperature: writing 0.7, stem 0.1, math 0.0, humanities 0.1, roleplay 0.7
MIXED_IDS = [81, 141, 111, 151, 91]


@pytest.fixture(scope="module")
def fp32_model(default_model_dir: Path) -> tuple[Any, Any]:
    from mt_bench_task.engine.hf.models import load_model_and_tokenizer

    return load_model_and_tokenizer(str(default_model_dir), "float32")


def _fastchat_loop(model: Any, tok: Any, question: Any, choice: int) -> list[str]:
    import torch

    torch.manual_seed(choice)
    temperature = load_bench().temperature(question.category)
    messages: list[dict[str, str]] = []
    turns = []
    for turn in question.turns:
        messages.append({"role": "user", "content": turn})
        text = tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        enc = tok([text], return_tensors="pt", add_special_tokens=False)
        kw: dict[str, Any] = {"do_sample": temperature >= 1e-4}
        if kw["do_sample"]:
            kw["temperature"] = temperature
        out = model.generate(**enc, max_new_tokens=NEW_TOKENS, pad_token_id=tok.pad_token_id, **kw)
        answer, _ = _clean_output(tok, out[0, enc["input_ids"].shape[1]:].tolist(),
                                  {tok.eos_token_id})
        messages.append({"role": "assistant", "content": answer})
        turns.append(answer)
    return turns


def test_all_temperatures_in_one_batch_equal_fastchats_batch_1_loop(
        fp32_model: tuple[Any, Any], tmp_path: Path) -> None:
    model, tok = fp32_model
    by_id = {q.question_id: q for q in load_bench().questions}
    questions = [by_id[i] for i in MIXED_IDS]
    (tmp_path / "question.jsonl").write_text("".join(q.to_json() + "\n" for q in questions))
    cfg = GenerationConfig(data_dir=tmp_path, max_new_token=NEW_TOKENS, num_choices=2,
                           dtype="float32", batch_size=4)  # 20 requests through 4 rows
    stats = generate_answers(cfg)
    assert stats.questions == 5 and stats.selected == 5
    rows = [json.loads(x) for x in cfg.output_path.read_text().splitlines()]
    got = {r["question_id"]: [c["turns"] for c in r["choices"]] for r in rows}
    want = {q.question_id: [_fastchat_loop(model, tok, q, c) for c in range(2)]
            for q in questions}
    assert got == want


class _Wrapped:
    """The real model, seen through the scheduler's interface, with a fault to inject."""

    def __init__(self, model: Any, fail: Any) -> None:
        self.model, self.fail = model, fail
        self.config, self.device = model.config, model.device
        self.generation_config = model.generation_config
        self.forward = model.forward  # its signature names the cache argument (`cache`)
        self.rows_seen: list[int] = []

    def __call__(self, **kw: Any) -> Any:
        rows = kw["input_ids"].shape[0]
        self.rows_seen.append(rows)
        self.fail(rows, kw)
        return self.model(**kw)


def _requests(tok: Any, n: int, temperature: float = 0.0) -> list[Request]:
    import torch

    qs = load_bench().select(20, 20 + n)
    out = []
    for q in qs:
        text = tok.apply_chat_template([{"role": "user", "content": q.turns[0]}],
                                       add_generation_prompt=True, tokenize=False)
        out.append(Request(tok(text, add_special_tokens=False)["input_ids"], temperature,
                           NEW_TOKENS, generator=torch.Generator().manual_seed(0),
                           owner=q.question_id))
    return out


def _run(batcher: ContinuousBatcher, requests: list[Request]) -> dict[int, Any]:
    for r in requests:
        batcher.add(r)
    got = {}
    while batcher.busy:
        assert batcher.in_flight <= batcher.max_rows
        for fin in batcher.step():
            got[fin.request.owner] = fin.token_ids
    return got


def test_cuda_out_of_memory_halves_the_rows_and_gives_the_same_tokens(
        fp32_model: tuple[Any, Any]) -> None:
    import torch

    model, tok = fp32_model
    want = _run(ContinuousBatcher(model, 8, {tok.eos_token_id}, tok.pad_token_id),
                _requests(tok, 6, temperature=0.7))
    fired = []

    def oom_once_above_two_rows(rows: int, kw: dict[str, Any]) -> None:
        if rows > 2 and kw["input_ids"].shape[1] == 1 and not fired:
            fired.append(rows)
            raise torch.OutOfMemoryError("CUDA out of memory (injected)")

    wrapped = _Wrapped(model, oom_once_above_two_rows)
    batcher = ContinuousBatcher(wrapped, 8, {tok.eos_token_id}, tok.pad_token_id)
    got = _run(batcher, _requests(tok, 6, temperature=0.7))
    assert fired and batcher.max_rows == 3  # 6 rows in flight -> 3
    assert got == want  # retried rows were rewound, sampled ones included


def test_runtime_error_ends_the_rows_in_flight_with_no_tokens(fp32_model: tuple[Any, Any]) -> None:
    model, tok = fp32_model

    def broken_decode(rows: int, kw: dict[str, Any]) -> None:
        if kw["input_ids"].shape[1] == 1:
            raise RuntimeError("boom")

    batcher = ContinuousBatcher(_Wrapped(model, broken_decode), 2, {tok.eos_token_id},
                                tok.pad_token_id)
    got = _run(batcher, _requests(tok, 3))
    assert list(got.values()) == [None, None, None]


def test_finished_rows_are_refilled_without_exceeding_the_limit(
        fp32_model: tuple[Any, Any]) -> None:
    model, tok = fp32_model
    wrapped = _Wrapped(model, lambda rows, kw: None)
    requests = _requests(tok, 5)
    requests[0].max_new_tokens = 1  # ends at its prefill: its row is refilled at once
    got = _run(ContinuousBatcher(wrapped, 3, {tok.eos_token_id}, tok.pad_token_id), requests)
    assert len(got) == 5 and len(got[requests[0].owner]) == 1
    assert max(wrapped.rows_seen) == 3 and wrapped.rows_seen[0] == 3


def test_a_continuation_prefills_only_what_its_kept_cache_lacks(
        fp32_model: tuple[Any, Any]) -> None:
    """Turn 2 reuses turn 1's KV (prompt and answer) and computes only the rest; its tokens are
    those of a full prefill. Three continuations of different lengths share one prefill call,
    next to a request with nothing kept."""
    model, tok = fp32_model
    first = _requests(tok, 3)
    for r in first:
        r.keep_cache = True
    ended = _run(ContinuousBatcher(model, 4, {tok.eos_token_id}, tok.pad_token_id), first)
    assert all(r.kept is not None for r in first)

    def follow_ups(reuse: bool) -> list[Request]:
        out = []
        for i, r in enumerate(first):
            ids = r.prompt_ids + ended[r.owner] + tok(" And then?" * (i + 1))["input_ids"]
            out.append(Request(ids, 0.0, NEW_TOKENS, owner=r.owner, after=r if reuse else None))
        return out + _requests(tok, 4)[3:]  # a fresh one in the same admission

    want = _run(ContinuousBatcher(model, 4, {tok.eos_token_id}, tok.pad_token_id),
                follow_ups(reuse=False))
    wrapped = _Wrapped(model, lambda rows, kw: None)
    fed: list[int] = []
    wrapped.fail = lambda rows, kw: fed.append(kw["input_ids"].numel())
    requests = follow_ups(reuse=True)
    got = _run(ContinuousBatcher(wrapped, 4, {tok.eos_token_id}, tok.pad_token_id), requests)
    assert got == want
    assert all(r.kept is None for r in first)  # handed over, not kept twice
    full = sum(len(r.prompt_ids) for r in requests)
    assert sum(n for n in fed if n > 4) < full / 2  # prefills computed under half the prompts


def test_rows_that_end_keep_their_place_until_a_rebuild_without_changing_the_others(
        fp32_model: tuple[Any, Any]) -> None:
    """A row that ends stays in the cache (its outputs ignored) until new rows join or enough
    rows have ended; the rows still in flight get the tokens they get alone."""
    model, tok = fp32_model
    budgets = [3, 9, 4, 7, 2, 8, 5, 6, 16, 10, 15, 11, 14, 12, 13, 17]  # one row ends per step

    def requests() -> list[Request]:
        out = _requests(tok, 16)
        for r, n in zip(out, budgets):
            r.max_new_tokens = n
        return out

    alone = {}
    for r in requests():
        alone.update(_run(ContinuousBatcher(model, 1, set(), tok.pad_token_id), [r]))
    batcher = ContinuousBatcher(model, 16, set(), tok.pad_token_id)  # rebuild at 2 ended rows
    lingered, got = [], {}
    for r in requests():
        batcher.add(r)
    while batcher.busy:
        for fin in batcher.step():
            got[fin.request.owner] = fin.token_ids
        lingered.append(len(batcher._rows) - batcher.in_flight)
    assert got == alone and [len(got[r.owner]) for r in requests()] == budgets
    assert 1 in lingered and max(lingered) < 2  # an ended row stayed, never two
