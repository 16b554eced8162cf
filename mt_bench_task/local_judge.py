"""A local judge: the judge model runs in-process with transformers, behind the ChatClient protocol.

Concurrent `complete()` calls are gathered by a micro-batcher into one left-padded greedy
`generate()`, run in a worker thread so the event loop (progress bar, record writing) keeps going.
Small judges often write no `[[rating]]`; then the most probable rating 1..10 after
"Rating: [[" is returned as `Completion.fallback_rating`, and judging marks the record with
`score_source: rating_probability`.
"""
from __future__ import annotations

import asyncio
import sys
import threading
from collections import Counter
from dataclasses import dataclass
from typing import Any

from .prompts import extract_rating
from .types import Completion

# FastChat asks judges for 2048 tokens; on a CPU that is minutes per batch, and a small judge
# either rates early or never, so local judges stop at 256 unless told otherwise.
LOCAL_MAX_NEW_TOKENS = 256
RATING_SUFFIX = "\nRating: [["
RATINGS = tuple(range(1, 11))
_COLLECT_S = 0.01  # wait this long after the first request so concurrent callers join its batch


@dataclass
class _Request:
    messages: list[dict[str, str]]
    max_new_tokens: int
    future: asyncio.Future


class LocalJudgeClient:
    """ChatClient running `judge_model` ("default", a model dir or a cached hub id) locally."""

    is_local = True

    def __init__(self, judge_model: str, *, batch_size: int = 8, max_new_tokens: int | None = None,
                 dtype: str | None = None) -> None:
        self.judge_model = judge_model
        self.batch_size = max(1, batch_size)
        self.max_new_tokens = max_new_tokens or LOCAL_MAX_NEW_TOKENS
        self.dtype = dtype
        self.usage: Counter = Counter()  # prompt_tokens, completion_tokens, requests
        self.batch_sizes: list[int] = []  # one entry per generate() call
        self.truncated_prompts = 0
        self._model: Any = None
        self._tok: Any = None
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

    async def close(self) -> None:
        """Stop the batcher; the model stays loaded for a later run (it holds no OS resources)."""
        if self._worker is not None and not self._worker.done():
            self._worker.cancel()
        self._worker = None

    async def _serve(self) -> None:
        assert self._queue is not None
        queue = self._queue
        while True:
            batch = [await queue.get()]
            await asyncio.sleep(_COLLECT_S)
            while len(batch) < self.batch_size and not queue.empty():
                batch.append(queue.get_nowait())
            batch = [r for r in batch if not r.future.done()]  # cancelled callers
            if not batch:
                continue
            try:
                results = await asyncio.to_thread(self._locked_batch, batch)
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
            return self._run_batch(batch)

    def _load(self) -> None:
        from .models import load_model_and_tokenizer

        self._model, self._tok = load_model_and_tokenizer(self.judge_model, self.dtype)

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
            print(f"local judge: prompt of {len(ids)} tokens truncated to its last {limit}",
                  file=sys.stderr)
            ids = ids[-limit:]
        return ids

    def _run_batch(self, batch: list[_Request]) -> list[Completion]:
        import torch

        tok, model = self._tok, self._model
        max_new = max(r.max_new_tokens for r in batch)
        # room for the answer and for the fallback's "Rating: [[10]]" suffix
        prompts = [self._prompt_ids(r.messages, max_new + 16) for r in batch]
        enc = tok.pad({"input_ids": prompts}, padding=True, return_tensors="pt")
        with torch.inference_mode():
            out = model.generate(**enc, max_new_tokens=max_new, do_sample=False,
                                 pad_token_id=tok.pad_token_id)
        self.batch_sizes.append(len(batch))
        eos = _eos_ids(model, tok)
        results = []
        for r, ids, row in zip(batch, prompts, out[:, enc["input_ids"].shape[1]:].tolist()):
            row = row[: r.max_new_tokens]
            end = next((i for i, t in enumerate(row) if t in eos), None)
            gen = row if end is None else row[:end]
            text = tok.decode(gen, skip_special_tokens=True)
            fallback = None
            if extract_rating(text) == -1 and _single_rating_prompt(r.messages):
                fallback = self._most_probable_rating(r.messages, text)
            n_out = len(row) if end is None else end + 1  # the stop token counts, as in APIs
            self.usage.update(prompt_tokens=len(ids), completion_tokens=n_out, requests=1)
            results.append(Completion(text=text, prompt_tokens=len(ids), completion_tokens=n_out,
                                      fallback_rating=fallback))
        return results

    def _most_probable_rating(self, messages: list[dict[str, str]], text: str) -> int:
        """argmax over r in 1..10 of log P("r]]" | prompt + text + "\\nRating: [["), summed over
        its tokens: one pass over the shared context, then the 10 tails on a copy of its cache."""
        import torch

        tok, model = self._tok, self._model
        prompt_text = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        cands = [tok(prompt_text + text + RATING_SUFFIX + f"{r}]]", add_special_tokens=False)
                 ["input_ids"] for r in RATINGS]
        # the tokens all candidates share (tokenising the joined text may merge at the seams)
        shared = _common_prefix_len(cands)
        cut = max(0, max(map(len, cands)) - self._context_limit())  # keep the end, as the prompt
        cands = [c[cut:] for c in cands]
        shared -= cut
        tails = [c[shared:] for c in cands]
        width = max(map(len, tails))
        pad = tok.pad_token_id
        with torch.inference_mode():
            ctx = torch.tensor([cands[0][:shared]])
            first = model(ctx, use_cache=True, logits_to_keep=1)  # not L x vocab logits
            cache = first.cache
            cache.batch_repeat_interleave(len(tails))
            # right-padded tails: pads come after every scored token, so causality hides them
            tail_ids = torch.tensor([t + [pad] * (width - len(t)) for t in tails])
            mask = torch.ones(len(tails), shared + width, dtype=torch.long)
            logits = model(tail_ids, cache=cache, attention_mask=mask).logits
            logp_first = torch.log_softmax(first.logits[0, -1].float(), -1)
            logp_rest = torch.log_softmax(logits.float(), -1)
        scores = []
        for i, t in enumerate(tails):
            s = logp_first[t[0]].item()
            s += sum(logp_rest[i, j - 1, t[j]].item() for j in range(1, len(t)))
            scores.append(s)
        return RATINGS[max(range(len(RATINGS)), key=scores.__getitem__)]


def _single_rating_prompt(messages: list[dict[str, str]]) -> bool:
    """Pairwise prompts ("[[A]]" verdicts, or two ratings) get no rating fallback."""
    text = "\n".join(m["content"] for m in messages)
    return "[[A]]" not in text and "[[rating_a" not in text


def _eos_ids(model: Any, tok: Any) -> set[int]:
    ids = getattr(model.generation_config, "eos_token_id", None)
    ids = ids if isinstance(ids, list) else [ids]
    return {i for i in ids + [tok.eos_token_id] if i is not None}


def _common_prefix_len(seqs: list[list[int]]) -> int:
    n = min(map(len, seqs)) - 1  # every candidate keeps at least one scored token
    for i in range(n):
        if any(s[i] != seqs[0][i] for s in seqs):
            return i
    return n
