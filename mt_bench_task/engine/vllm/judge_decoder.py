"""The vllm engine's judging face: judge prompts on vLLM's engine (a 70B judge on the user's
GPUs), started as generation starts it (engine.py), greedy, with the seam's stop tokens and
post-processing.

The rating fallback asks vLLM for prompt log-probabilities: one request per candidate, the
context (prompt, the judge's tokens up to its stop, "\\nRating: [[") then "r]]", one token
generated; vLLM's prefix cache computes the shared context once.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from itertools import count
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
from mt_bench_task.engine.vllm.engine import start_llm_engine, step_until_done


class VllmJudge:
    name = "vllm"

    def __init__(self, llm: Any, tok: Any, generation_config: Any) -> None:
        self.llm, self.tok = llm, tok
        self.stop_ids = stop_token_ids(generation_config, tok)
        self.max_model_len = int(llm.model_config.max_model_len)
        self.truncated_prompts = 0
        self._ids = count()

    @classmethod
    def start(cls, options: EngineOptions, model_path: str) -> VllmJudge:
        return cls(*start_llm_engine(options, model_path))

    def close(self) -> None:
        self.llm.engine_core.shutdown()

    def _run(self, prompts: list[list[int]], params: list[Any]) -> list[Any]:
        from vllm.inputs import TokensPrompt

        rids = [f"judge-{next(self._ids)}" for _ in prompts]
        for rid, ids, p in zip(rids, prompts, params):
            self.llm.add_request(rid, TokensPrompt(prompt_token_ids=ids), p)
        done = step_until_done(self.llm, set(rids))
        return [done[rid] for rid in rids]

    def judge(self, calls: Sequence[JudgeCall]) -> list[JudgeReply]:
        from vllm import SamplingParams
        from vllm.sampling_params import RequestOutputKind

        room = max(c.max_new_tokens for c in calls) + FALLBACK_ROOM
        prompts = []
        for c in calls:
            ids, cut = judge_prompt_ids(self.tok, c, self.max_model_len, room)
            self.truncated_prompts += cut
            prompts.append(ids)
        outs = self._run(prompts, [SamplingParams(
            temperature=0.0, max_tokens=c.max_new_tokens, stop_token_ids=sorted(self.stop_ids),
            detokenize=False, output_kind=RequestOutputKind.FINAL_ONLY) for c in calls])
        replies, contexts = [], {}
        suffix, cands = rating_candidates(self.tok)
        for i, (c, ids, out) in enumerate(zip(calls, prompts, outs)):
            row = list(out.outputs[0].token_ids)
            reply, kept = reply_of(self.tok, row, self.stop_ids, len(ids))
            replies.append(reply)
            if c.needs_fallback(reply.text):
                contexts[i] = ids + row[:kept] + suffix
        if contexts:
            scored = self._run([ctx + list(cand) for ctx in contexts.values() for cand in cands],
                               [SamplingParams(max_tokens=1, temperature=0.0, prompt_logprobs=0,
                                               detokenize=False,
                                               output_kind=RequestOutputKind.FINAL_ONLY)
                                for _ in range(len(contexts) * len(cands))])
            for n, (i, ctx) in enumerate(contexts.items()):
                logprobs = [_continuation_logprob(out, len(ctx))
                            for out in scored[n * len(cands):(n + 1) * len(cands)]]
                replies[i] = replace(replies[i], fallback_rating=best_rating(logprobs))
        return replies


def _continuation_logprob(out: Any, start: int) -> float:
    """log P(prompt tokens start.. | the tokens before them), from vLLM's prompt log-probs."""
    ids = out.prompt_token_ids
    return sum(out.prompt_logprobs[j][ids[j]].logprob for j in range(start, len(ids)))
