"""A local judge: the judge model runs in-process with transformers, behind the ChatClient protocol.

Concurrent `complete()` calls are gathered by a micro-batcher into one batch, run in a worker
thread so the event loop (progress bar, record writing) keeps going. Each prompt is prefilled
alone (no padding), then the batch decodes together on the joint KV cache: greedy decoding (equal
to `generate(do_sample=False)`), then the rating fallback on the same cache. Small judges often
write no `[[rating]]`; then the most probable rating 1..10 after "Rating: [[" is returned as
`Completion.fallback_rating`, and judging marks the record with `score_source: rating_probability`.
"""
from __future__ import annotations

import asyncio
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any

from mt_bench_task.core.chat import ClientUsage, Completion
from mt_bench_task.core.prompts import extract_rating

log = logging.getLogger(__name__)

# FastChat asks judges for 2048 tokens; on a CPU that is minutes per batch, and a small judge
# either rates early or never, so local judges stop at 256 unless told otherwise.
LOCAL_MAX_NEW_TOKENS = 256
RATING_SUFFIX = "\nRating: [["
RATINGS = tuple(range(1, 11))
_COLLECT_S = 0.01  # wait this long after the first request so concurrent callers join its batch
# Every batch runs on this one thread, not asyncio.to_thread's pool: each pool thread got its own
# malloc arena for the batches' tensors (mt-bench run's judging: 5.6 GB peak RSS, 77 s; with
# one arena 4.1 GB, 59 s).
_MODEL_THREAD = ThreadPoolExecutor(max_workers=1, thread_name_prefix="local-judge")


@dataclass
class _Request:
    messages: list[dict[str, str]]
    max_new_tokens: int
    future: asyncio.Future


class LocalJudgeClient:
    """ChatClient running `judge_model` ("default", a model dir or a cached hub id) locally."""

    def __init__(self, judge_model: str, *, batch_size: int = 8, max_new_tokens: int | None = None,
                 dtype: str | None = None) -> None:
        self.judge_model = judge_model
        self.batch_size = max(1, batch_size)
        self.max_new_tokens = max_new_tokens or LOCAL_MAX_NEW_TOKENS
        self.dtype = dtype
        self.usage = ClientUsage()
        self.adaptations: list[str] = []  # a local model takes FastChat's request as it is
        self.batch_sizes: list[int] = []  # one entry per batch (one prefill)
        self.truncated_prompts = 0
        self._model: Any = None
        self._tok: Any = None
        self._prefixes: Any = None  # kv_cache.PrefixStore, made with the model in _load
        self._step: Any = None  # decode_step.DecodeStep where the model is one
        self._queue: asyncio.Queue[_Request] | None = None
        self._worker: asyncio.Task | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        # one model, possibly several event loops (run_sync from two threads): one batch at a time
        self._lock = threading.Lock()

    async def complete(self, model: str, messages: list[dict[str, str]], *, temperature: float,
                       max_tokens: int) -> Completion:
        # The judge is always greedy (FastChat judges at temperature 0); `model` is only a label.
        loop = asyncio.get_running_loop()
        if self._loop is not loop or self._worker is None or self._worker.done():
            # a new event loop (each run_sync is one) needs its own queue and worker
            self._loop, self._queue = loop, asyncio.Queue()
            self._worker = loop.create_task(self._serve())
        fut: asyncio.Future = loop.create_future()
        assert self._queue is not None
        self._queue.put_nowait(_Request(messages, min(max_tokens, self.max_new_tokens), fut))
        return await fut

    async def check_reachable(self) -> None:
        """Nothing to reach: the model loads on the first request."""

    async def close(self) -> None:
        """Stop the batcher; the model stays loaded for a later run (it holds no OS resources)."""
        if self._worker is not None and not self._worker.done():
            self._worker.cancel()
        self._worker = None

    async def _serve(self) -> None:
        assert self._queue is not None
        queue = self._queue
        waiting: list[_Request] = []
        while True:
            if not waiting:
                waiting.append(await queue.get())
                await asyncio.sleep(_COLLECT_S)
            while not queue.empty():
                waiting.append(queue.get_nowait())
            # similar lengths together: left padding is prefill work thrown away on a CPU
            waiting.sort(key=_prompt_chars)
            batch, waiting = waiting[: self.batch_size], waiting[self.batch_size:]
            batch = [r for r in batch if not r.future.done()]  # cancelled callers
            if not batch:
                continue
            try:
                results = await asyncio.get_running_loop().run_in_executor(
                    _MODEL_THREAD, self._locked_batch, batch)
            except Exception as e:  # the model failed to load or run: every waiting caller sees it
                for r in batch:
                    if not r.future.done():
                        r.future.set_exception(e)
                continue
            for r, c in zip(batch, results):
                if not r.future.done():
                    r.future.set_result(c)

    def _locked_batch(self, batch: list[_Request]) -> list[Completion]:
        with self._lock:
            if self._model is None:
                self._load()
            try:
                return self._run_batch(batch)
            finally:
                from mt_bench_task.engine.hf.models import release_free_heap

                release_free_heap(self._model.device)  # the batch's KV pages, back to the system

    def _load(self) -> None:
        from mt_bench_task.engine.hf.decode_step import fast_decode_step
        from mt_bench_task.engine.hf.kv_cache import PrefixStore
        from mt_bench_task.engine.hf.models import load_model_and_tokenizer

        self._model, self._tok = load_model_and_tokenizer(self.judge_model, self.dtype)
        self._prefixes = PrefixStore()  # prompt openings of this model, prefilled once
        self._step = fast_decode_step(self._model)  # the forward's logits, less overhead

    # ---- in the worker thread ----
    def _context_limit(self) -> int:
        return int(getattr(self._model.config, "max_position_embeddings", 0) or 2048)

    def _prompt_ids(self, messages: list[dict[str, str]], room: int) -> list[int]:
        """Chat-templated prompt ids; over-long prompts keep their end (the rating instruction)."""
        text = self._tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        ids = self._tok(text, add_special_tokens=False)["input_ids"]
        limit = max(1, self._context_limit() - room)
        if len(ids) > limit:
            self.truncated_prompts += 1
            log.warning("local judge: prompt of %d tokens truncated to its last %d", len(ids), limit)
            ids = ids[-limit:]
        return ids

    def _run_batch(self, batch: list[_Request]) -> list[Completion]:
        import torch

        tok = self._tok
        # room for the answer and for the fallback's "Rating: [[10]]" suffix
        prompts = [self._prompt_ids(r.messages, max(r.max_new_tokens for r in batch) + 16)
                   for r in batch]
        eos = _eos_ids(self._model, tok)
        with torch.inference_mode():
            state = self._greedy(prompts, [r.max_new_tokens for r in batch], eos)
            self.batch_sizes.append(len(batch))
            results, needs = [], []
            for i, (r, ids, row) in enumerate(zip(batch, prompts, state.rows)):
                end = next((j for j, t in enumerate(row) if t in eos), None)
                gen = row if end is None else row[:end]
                text = tok.decode(gen, skip_special_tokens=True)
                if extract_rating(text) == -1 and _single_rating_prompt(r.messages):
                    needs.append(i)
                n_out = len(row) if end is None else end + 1  # the stop token counts, as in APIs
                self.usage.prompt_tokens += len(ids)
                self.usage.completion_tokens += n_out
                self.usage.requests += 1
                results.append(Completion(text=text, prompt_tokens=len(ids),
                                          completion_tokens=n_out))
            if needs:
                best = self._rating_logprobs(state, needs).argmax(-1).tolist()  # first max wins
                for i, j in zip(needs, best):
                    results[i] = replace(results[i], fallback_rating=RATINGS[j])
        return results

    def _greedy(self, prompts: list[list[int]], limits: list[int], eos: set[int]) -> _Decoded:
        """Greedy decoding of the batch: each prompt prefilled alone, then one token per step for
        all rows on their joint KV cache (left-padded), token for token what
        `generate(do_sample=False)` gives. A row stops at an EOS or at its own limit; from then
        on its columns are masked out (0), so the cache of each row holds exactly its prompt and
        its kept tokens, ready for the rating fallback."""
        import torch

        from mt_bench_task.engine.hf.decode_step import decode_logits
        from mt_bench_task.engine.hf.kv_cache import concat

        model = self._model
        # Alone, a prompt needs no padding mask and SDPA runs its causal kernel: judge prompts
        # (300..2,000 tokens) prefill about twice as fast as in one left-padded batch.
        caches, last = zip(*(self._prefixes.prefill(model, ids) for ids in prompts))
        cache, mask = concat(list(caches), [len(ids) for ids in prompts])
        logits = torch.cat(last)
        rows: list[list[int]] = [[] for _ in limits]
        active = [n > 0 for n in limits]
        while True:
            nxt = logits.argmax(-1)
            feed = []  # per row: this token belongs to its text, so it goes into the cache
            for i, t in enumerate(nxt.tolist()):
                keep = active[i] and t not in eos
                feed.append(keep)
                if active[i]:
                    rows[i].append(t)
                    active[i] = keep and len(rows[i]) < limits[i]
            column = torch.tensor(feed, dtype=mask.dtype)[:, None]
            if not any(active):  # the last kept tokens wait for the fallback (if any) to feed them
                return _Decoded(rows, cache, mask, nxt[:, None], column)
            mask = torch.cat([mask, column], dim=1)
            pos = (mask.cumsum(-1) - 1).clamp(min=0)[:, -1:]
            logits = decode_logits(model, self._step, nxt[:, None], pos, cache, mask)

    def _rating_logprobs(self, state: _Decoded, rows: list[int]) -> Any:
        """(len(rows), 10) float64: log P("r]]" | prompt + answer + "\\nRating: [[") for r in
        1..10, summed over its tokens, on the decoding's own KV cache (no new prefill), which it
        consumes (selects its rows and extends them).

        The context is the row's prompt ids and generated ids (up to its stop, the EOS excluded),
        then the tokens of "\\nRating: [[" and of "r]]", each tokenised on its own. One forward
        for all `rows`: the pending last token and the suffix, then the candidates' prefix tree
        ("1", "1 0", "2", ..., "9" for SmolLM2's digit tokens), each tree token seeing the context
        and its own ancestors only (a 4D mask), so each candidate is scored as if alone after
        the context, without copying the cache 10 times."""
        import torch

        tok, model = self._tok, self._model
        suffix = tok(RATING_SUFFIX, add_special_tokens=False)["input_ids"]
        cands = [tuple(tok(f"{r}]]", add_special_tokens=False)["input_ids"]) for r in RATINGS]
        nodes = list(dict.fromkeys(c[:m] for c in cands for m in range(1, len(c))))
        at = {p: i for i, p in enumerate(nodes)}
        n, n_ctx, n_tree = len(rows), 1 + len(suffix), len(nodes)
        sel = torch.tensor(rows)
        cache = state.cache
        if n < len(state.rows):
            cache.batch_select_indices(sel)
        past = state.mask[sel].bool()  # (n, L): the cache's valid columns
        # the pending last token (masked out where the row stopped at an EOS), then the suffix
        ctx_ok = torch.cat([state.pending_mask[sel].bool(),
                            torch.ones(n, len(suffix), dtype=torch.bool)], dim=1)
        ids = torch.cat([state.pending[sel], torch.tensor([suffix] * n),
                         torch.tensor([[p[-1] for p in nodes]] * n, dtype=torch.long)], dim=1)
        pos = (torch.cat([past, ctx_ok], 1).long().cumsum(-1) - 1).clamp(min=0)[:, -n_ctx:]
        depth = torch.tensor([len(p) for p in nodes])
        pos = torch.cat([pos, pos[:, -1:] + depth], dim=1)
        # who sees whom among the new tokens: causal in the context, the tree by ancestry
        q = n_ctx + n_tree
        new = torch.zeros(q, q, dtype=torch.bool)
        new[:n_ctx, :n_ctx] = torch.ones(n_ctx, n_ctx, dtype=torch.bool).tril()
        new[n_ctx:, :n_ctx] = True
        for i, p in enumerate(nodes):
            for m in range(1, len(p) + 1):
                new[n_ctx + i, n_ctx + at[p[:m]]] = True
        new = new[None] & torch.cat([ctx_ok, torch.ones(n, n_tree, dtype=torch.bool)], 1)[:, None]
        see = torch.cat([past[:, None].expand(n, q, -1), new], dim=2)[:, None]  # (n, 1, q, L+q)
        mask = torch.zeros(see.shape, dtype=model.dtype).masked_fill(~see,
                                                                     torch.finfo(model.dtype).min)
        logits = model(input_ids=ids, attention_mask=mask, position_ids=pos, cache=cache,
                       use_cache=True, logits_to_keep=n_tree + 1).logits
        logp = torch.log_softmax(logits.double(), -1)  # [:, 0]: after the suffix, [:, 1+i]: node i
        scores = torch.zeros(n, len(cands), dtype=torch.float64)
        for j, c in enumerate(cands):
            scores[:, j] = logp[:, 0, c[0]]
            for m in range(1, len(c)):
                scores[:, j] += logp[:, 1 + at[c[:m]], c[m]]
        return scores


@dataclass
class _Decoded:
    """A decoded batch: the generated ids per row (the stop token included) and the KV cache of
    prompt + kept tokens, except each row's last kept token, `pending` (1 in `pending_mask`)."""

    rows: list[list[int]]
    cache: Any
    mask: Any  # attention mask of the cache's columns
    pending: Any  # (batch, 1) the last generated ids, not yet in the cache
    pending_mask: Any  # (batch, 1) 1 where that id is a kept token (not an EOS)


def _prompt_chars(r: _Request) -> int:
    return sum(len(m["content"]) for m in r.messages)


def _single_rating_prompt(messages: list[dict[str, str]]) -> bool:
    """Pairwise prompts ("[[A]]" verdicts, or two ratings) get no rating fallback."""
    text = "\n".join(m["content"] for m in messages)
    return "[[A]]" not in text and "[[rating_a" not in text


def _eos_ids(model: Any, tok: Any) -> set[int]:
    ids = getattr(model.generation_config, "eos_token_id", None)
    ids = ids if isinstance(ids, list) else [ids]
    return {i for i in ids + [tok.eos_token_id] if i is not None}
