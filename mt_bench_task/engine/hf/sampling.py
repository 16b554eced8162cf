"""One decode step's token choice for every row of a mixed batch, as transformers' generate()
would make it for that row alone: logits in float32; greedy rows take the argmax; sampled rows get
the repetition penalty, their own temperature, then top-k and top-p, then one torch.multinomial
draw with the request's own generator (so a row's draws do not depend on the rest of the batch).
Imports torch: load lazily."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from transformers import TopKLogitsWarper, TopPLogitsWarper

if TYPE_CHECKING:
    from mt_bench_task.engine.hf.batch_requests import Request


def pick_tokens(logits: Any, requests: list[Request], generated: list[list[int]], top_k: int,
                top_p: float, repetition_penalty: float) -> list[int]:
    """The next token of each row: `logits` [rows, vocab], `generated` the row's tokens so far."""
    scores = logits.float()
    if repetition_penalty != 1.0:
        for i, (req, tokens) in enumerate(zip(requests, generated)):
            seen = torch.tensor(req.prompt_ids + tokens, device=scores.device)
            s = scores[i].gather(0, seen)
            s = torch.where(s < 0, s * repetition_penalty, s / repetition_penalty)
            scores[i].scatter_(0, seen, s)
    # max's indices: argmax's (the first maximum), and faster on a CPU (benchmarks/README.md)
    picked = scores.max(dim=-1).indices.tolist()
    sampled = [i for i, req in enumerate(requests) if not req.greedy]
    if sampled:
        idx = torch.tensor(sampled, device=scores.device)
        temps = torch.tensor([requests[i].temperature for i in sampled], device=scores.device,
                             dtype=scores.dtype)
        s = scores[idx] / temps[:, None]
        s = TopKLogitsWarper(top_k=top_k)(None, s)
        if top_p < 1.0:
            s = TopPLogitsWarper(top_p=top_p)(None, s)
        probs = torch.softmax(s, dim=-1)
        for j, i in enumerate(sampled):
            picked[i] = int(torch.multinomial(probs[j:j + 1], 1,
                                              generator=requests[i].generator))
    return picked
