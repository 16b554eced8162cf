"""The engine seam's judging face: a local judge model answers judge prompts on an engine.

`clients/local_judge.py` (a ChatClient) gathers concurrent judge calls into batches of
`JudgeCall`s and hands them to a `LocalJudgeEngine`, which the command's engine starts
(`Backend.start_judge`, registry.py): `hf` (hf/judge_decoder.py, on the hf engine's model loading
and decode step) or `vllm` (vllm/judge_decoder.py, on the same vLLM engine as generation). Both
apply the seam's rules: the model's chat template, greedy decoding (FastChat judges at
temperature 0), `stop_token_ids` and `clean_output`.

The rating fallback, our addition for small judges that often write no `[[rating]]`: the most
probable r in 1..10 of "r]]" after the prompt, the judge's own tokens and "\\nRating: [[". It is
defined here once; each engine computes the log-probabilities its own way.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from mt_bench_task.core.prompts import extract_rating
from mt_bench_task.engine.base import chat_prompt_ids, clean_output

log = logging.getLogger(__name__)
RATING_SUFFIX = "\nRating: [["
RATINGS = tuple(range(1, 11))
FALLBACK_ROOM = 16  # context kept free after the reply for "\nRating: [[10]]"


@dataclass(frozen=True)
class JudgeCall:
    messages: tuple[tuple[str, str], ...]  # (role, content) pairs
    max_new_tokens: int

    def chat(self) -> list[dict[str, str]]:
        return [{"role": role, "content": content} for role, content in self.messages]

    def needs_fallback(self, reply: str) -> bool:
        """The reply holds no rating, and this is a single-answer prompt (pairwise verdicts,
        "[[A]]" or two ratings, get none)."""
        prompt = "\n".join(content for _, content in self.messages)
        return extract_rating(reply) == -1 and "[[A]]" not in prompt and "[[rating_a" not in prompt


@dataclass(frozen=True)
class JudgeReply:
    text: str  # cleaned (clean_output)
    prompt_tokens: int
    completion_tokens: int  # the stop token counts, as in APIs
    fallback_rating: int | None = None  # set only when the text holds no rating


class LocalJudgeEngine(Protocol):
    name: str

    def judge(self, calls: Sequence[JudgeCall]) -> list[JudgeReply]:
        """Greedy replies to `calls` (one batch), with the fallback where a reply has no rating."""
        ...

    def close(self) -> None: ...


def judge_prompt_ids(tok: Any, call: JudgeCall, context_limit: int, room: int) -> tuple[list[int], bool]:
    """The call's chat-templated prompt ids, and whether they were cut: a prompt longer than
    `context_limit - room` keeps its end (the rating instruction)."""
    ids = chat_prompt_ids(tok, call.chat())
    limit = max(1, context_limit - room)
    if len(ids) <= limit:
        return ids, False
    log.warning("local judge: prompt of %d tokens truncated to its last %d", len(ids), limit)
    return ids[-limit:], True


def reply_of(tok: Any, row: Sequence[int], stop_ids: frozenset[int], prompt_tokens: int) -> tuple[JudgeReply, int]:
    """The reply to a generated `row` (the seam's clean_output), and its tokens before the stop."""
    text, kept = clean_output(tok, row, stop_ids)
    return JudgeReply(text, prompt_tokens, min(len(row), kept + 1)), kept


def best_rating(logprobs: Sequence[float]) -> int:
    """The rating of the largest log-probability (the first of equals)."""
    return RATINGS[max(range(len(RATINGS)), key=lambda i: (logprobs[i], -i))]


def rating_candidates(tok: Any) -> tuple[list[int], list[tuple[int, ...]]]:
    """The suffix's token ids and each "r]]"'s, each tokenised on its own."""
    suffix = tok(RATING_SUFFIX, add_special_tokens=False)["input_ids"]
    return suffix, [tuple(tok(f"{r}]]", add_special_tokens=False)["input_ids"]) for r in RATINGS]
