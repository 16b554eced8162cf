"""The hf engine's judging face: greedy replies to a batch of judge prompts on a transformers
model, and the rating fallback on the same KV cache.

Each prompt is prefilled alone (no padding: SDPA's causal kernel beats a left-padded
batch on judge prompts; benchmarks/README.md), openings shared with recent prompts reused (PrefixStore);
then the batch decodes together on the joint cache, token for token `generate(do_sample=False)`.
The fallback scores "r]]" for r in 1..10 on that cache without a new prefill.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from mt_bench_task.engine.base import stop_token_ids
from mt_bench_task.engine.config import EngineOptions
from mt_bench_task.engine.local_judge import (
    FALLBACK_ROOM,
    JudgeCall,
    JudgeReply,
    best_rating,
    judge_prompt_ids,
    rating_candidates,
    reply_of,
)


class HfJudge:
    name = "hf"

    def __init__(self, model: Any, tok: Any) -> None:
        from mt_bench_task.engine.hf.decode_step import fast_decode_step
        from mt_bench_task.engine.hf.kv_cache import PrefixStore, cache_kwarg

        self.model, self.tok = model, tok
        self.stop_ids = stop_token_ids(model.generation_config, tok)
        self.prefixes = PrefixStore()  # prompt openings of this model, prefilled once
        self.step = fast_decode_step(model)  # the forward's logits, less overhead
        self.cache_kw = cache_kwarg(model)
        self.truncated_prompts = 0

    @classmethod
    def load(cls, judge_model: str, options: EngineOptions) -> HfJudge:
        from mt_bench_task.engine.hf.models import load_model_and_tokenizer

        return cls(*load_model_and_tokenizer(judge_model, options.dtype, options.revision,
                                             options.chat_template))

    def close(self) -> None:
        """Nothing held but memory."""

    def context_limit(self) -> int:
        return int(getattr(self.model.config, "max_position_embeddings", 0) or 2048)

    def prompt_ids(self, call: JudgeCall, room: int) -> list[int]:
        ids, cut = judge_prompt_ids(self.tok, call, self.context_limit(), room)
        self.truncated_prompts += cut
        return ids

    def judge(self, calls: Sequence[JudgeCall]) -> list[JudgeReply]:
        import torch

        from mt_bench_task.engine.hf.models import release_free_heap

        room = max(c.max_new_tokens for c in calls) + FALLBACK_ROOM
        prompts = [self.prompt_ids(c, room) for c in calls]
        try:
            with torch.inference_mode():
                state = self.greedy(prompts, [c.max_new_tokens for c in calls])
                replies, needs = [], []
                for i, (c, ids, row) in enumerate(zip(calls, prompts, state.rows)):
                    reply, _ = reply_of(self.tok, row, self.stop_ids, len(ids))
                    if c.needs_fallback(reply.text):
                        needs.append(i)
                    replies.append(reply)
                if needs:
                    for i, scores in zip(needs, self.rating_logprobs(state, needs).tolist()):
                        replies[i] = replace(replies[i], fallback_rating=best_rating(scores))
            return replies
        finally:
            release_free_heap(self.model.device)  # the batch's KV pages, back to the system

    def greedy(self, prompts: list[list[int]], limits: list[int]) -> Decoded:
        """Greedy decoding of the batch: each prompt prefilled alone, then one token per step for
        all rows on their joint KV cache (left-padded). A row stops at a stop token or at its own
        limit; from then on its columns are masked out (0), so the cache of each row holds
        exactly its prompt and its kept tokens, ready for the rating fallback."""
        import torch

        from mt_bench_task.engine.hf.decode_step import decode_logits
        from mt_bench_task.engine.hf.kv_cache import concat

        model, stop = self.model, self.stop_ids
        caches, last = zip(*(self.prefixes.prefill(model, ids) for ids in prompts))
        cache, mask = concat(list(caches), [len(ids) for ids in prompts])
        logits = torch.cat(last)
        rows: list[list[int]] = [[] for _ in limits]
        active = [n > 0 for n in limits]
        while True:
            nxt = logits.argmax(-1)
            feed = []  # per row: this token belongs to its text, so it goes into the cache
            for i, t in enumerate(nxt.tolist()):
                keep = active[i] and t not in stop
                feed.append(keep)
                if active[i]:
                    rows[i].append(t)
                    active[i] = keep and len(rows[i]) < limits[i]
            column = torch.tensor(feed, dtype=mask.dtype)[:, None]
            if not any(active):  # the last kept tokens wait for the fallback (if any) to feed them
                return Decoded(rows, cache, mask, nxt[:, None], column)
            mask = torch.cat([mask, column], dim=1)
            pos = (mask.cumsum(-1) - 1).clamp(min=0)[:, -1:]
            logits = decode_logits(model, self.step, nxt[:, None], pos, cache, mask,
                                   self.cache_kw)

    def rating_logprobs(self, state: Decoded, rows: list[int]) -> Any:
        """(len(rows), 10) float64: log P("r]]" | prompt + answer + "\\nRating: [[") for r in
        1..10, summed over its tokens, on the decoding's own KV cache (no new prefill), which it
        consumes (selects its rows and extends them).

        The context is the row's prompt ids and generated ids (up to its stop, the stop token
        excluded), then the suffix's tokens and the candidate's. One forward for all `rows`: the
        pending last token and the suffix, then the candidates' prefix tree ("1", "1 0", "2", ...,
        "9" for SmolLM2's digit tokens), each tree token seeing the context and its own ancestors
        only (a 4D mask), so each candidate is scored as if alone after the context, without
        copying the cache 10 times."""
        import torch

        model = self.model
        suffix, cands = rating_candidates(self.tok)
        nodes = list(dict.fromkeys(c[:m] for c in cands for m in range(1, len(c))))
        at = {p: i for i, p in enumerate(nodes)}
        n, n_ctx, n_tree = len(rows), 1 + len(suffix), len(nodes)
        sel = torch.tensor(rows)
        cache = state.cache
        if n < len(state.rows):
            cache.batch_select_indices(sel)
        past = state.mask[sel].bool()  # (n, L): the cache's valid columns
        # the pending last token (masked out where the row stopped at a stop token), the suffix
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
        logits = model(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=True,
                       logits_to_keep=n_tree + 1, **{self.cache_kw: cache}).logits
        logp = torch.log_softmax(logits.double(), -1)  # [:, 0]: after the suffix, [:, 1+i]: node i
        scores = torch.zeros(n, len(cands), dtype=torch.float64)
        for j, c in enumerate(cands):
            scores[:, j] = logp[:, 0, c[0]]
            for m in range(1, len(c)):
                scores[:, j] += logp[:, 1 + at[c[:m]], c[m]]
        return scores


@dataclass
class Decoded:
    """A decoded batch: the generated ids per row (the stop token included) and the KV cache of
    prompt + kept tokens, except each row's last kept token, `pending` (1 in `pending_mask`)."""

    rows: list[list[int]]
    cache: Any
    mask: Any  # attention mask of the cache's columns
    pending: Any  # (batch, 1) the last generated ids, not yet in the cache
    pending_mask: Any  # (batch, 1) 1 where that id is a kept token (not a stop token)
