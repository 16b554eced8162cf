"""What the scheduler (scheduler.py) is given and gives back, and how waiting requests are
grouped for one prefill: similar fresh lengths together, a continuation with the kept KV of the
turn it continues."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mt_bench_task.engine.base import GREEDY_BELOW

PAD_SLACK = 1.25  # a prefill computes at most this many tokens per real prompt token (+ PAD_FREE)
PAD_FREE = 32  # padding tokens a prefill may always add: one more call costs about that much


@dataclass(eq=False)
class Request:
    prompt_ids: list[int]
    temperature: float
    max_new_tokens: int
    generator: Any = None  # torch.Generator for sampled requests (None: greedy or global RNG)
    priority: bool = False  # admitted before the others (a question's later turns)
    owner: Any = None  # the caller's handle, returned untouched
    keep_cache: bool = False  # a later request continues this one: keep its KV when it ends
    after: Request | None = None  # the kept request whose tokens this prompt starts with
    # state the scheduler keeps on the request while it runs (set by scheduler.py and take_past)
    rng_state: Any = field(default=None, repr=False)  # generator state at admission (OOM retry)
    kept: Any = field(default=None, repr=False)  # this request's KV once ended: (token ids, columns)
    past: Any = field(default=None, repr=False)  # taken from `after`: (tokens reused, columns)

    @property
    def fresh_tokens(self) -> int:
        """Prompt tokens a prefill computes (the rest comes from the kept cache)."""
        return len(self.prompt_ids) - (self.past[0] if self.past else 0)

    @property
    def greedy(self) -> bool:
        return self.temperature < GREEDY_BELOW


@dataclass(eq=False)
class Finished:
    request: Request
    token_ids: list[int] | None  # None: a RuntimeError ended it (FastChat writes "ERROR")


def take_past(r: Request) -> None:
    """Move the kept KV of `r.after` to `r`, as far as their tokens agree (the last prompt token
    is always computed: its logits are the first token's)."""
    from mt_bench_task.engine.hf.kv_cache import shared_len

    prev, r.after = r.after, None
    if prev is None or prev.kept is None:
        return
    (ids, columns), prev.kept = prev.kept, None
    n = min(shared_len(ids, r.prompt_ids), len(r.prompt_ids) - 1)
    if n > 0:
        r.past = (n, columns)


def length_buckets(group: list[Request]) -> list[list[Request]]:
    """`group` in prefill calls of similar prompt lengths. A prefill is compute-bound on a CPU, so
    left padding is work thrown away (16 MT-bench turn-1 prompts of 49..243 SmolLM2 tokens: 1,395
    real tokens padded to 3,888), while one more call costs little."""
    parts: list[list[Request]] = []
    real = 0
    for r in sorted(group, key=lambda r: r.fresh_tokens):
        n = r.fresh_tokens
        if parts and (len(parts[-1]) + 1) * n <= PAD_SLACK * (real + n) + PAD_FREE:
            parts[-1].append(r)
            real += n
        else:
            parts.append([r])
            real = n
    return parts
