"""The rating fallback computed the plain way, for the tests of both engines' fast paths."""
from __future__ import annotations

from typing import Any

from mt_bench_task.engine.local_judge import RATINGS


def candidate_logprobs(model: Any, tok: Any, context: list[int]) -> list[float]:
    """log P("r]]" | context) for r in 1..10: one full forward per candidate sequence, the
    candidate's tokens (tokenised on their own) summed."""
    import torch

    out = []
    with torch.inference_mode():
        for r in RATINGS:
            s = context + tok(f"{r}]]", add_special_tokens=False)["input_ids"]
            logp = torch.log_softmax(model(torch.tensor([s])).logits[0].double(), -1)
            out.append(sum(logp[j - 1, s[j]].item() for j in range(len(context), len(s))))
    return out
