"""Attention for batched decoding on a CPU: SDPA for prompts, two small matmuls for decode steps.

PyTorch's CPU SDPA runs a one-token query through its flash kernel, which is slow for it
(slower than transformers' eager attention, whose prefill is in turn slower than SDPA's; the
timings: benchmarks/README.md, "Design notes from measurements").
This implementation keeps SDPA (and its masks) for prompts, with the key/value heads shared rather
than repeated when a mask is given, and, for a one-token query, groups the query heads by their
key/value head (no repeated keys) and does scores, softmax (float32) and the weighted sum as
matmuls. Registered with transformers under NAME; load a model with
`attn_implementation=NAME`. Imports transformers: load lazily.
"""
from __future__ import annotations

from typing import Any

import torch
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

NAME = "sdpa_matmul_decode"
_SDPA_ONLY = ("softcap", "s_aux", "sinks", "position_bias")  # features this fast path does not do


def attention_forward(module: Any, query: Any, key: Any, value: Any, attention_mask: Any,
                      dropout: float = 0.0, scaling: float | None = None, **kwargs: Any
                      ) -> tuple[Any, None]:
    if (query.shape[2] != 1 or dropout or key.shape[-1] != value.shape[-1]
            or any(kwargs.get(k) is not None for k in _SDPA_ONLY)):
        if (attention_mask is not None and not dropout and key.shape[1] != query.shape[1]
                and not any(kwargs.get(k) is not None for k in _SDPA_ONLY)):
            return _masked_grouped_sdpa(query, key, value, attention_mask, scaling), None
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout,
                                      scaling=scaling, **kwargs)
    scores = _grouped_scores(query, key).float().mul_(_scaling(query, scaling))
    if attention_mask is not None:  # (batch, 1, 1, keys): bool (True = attend) or additive
        filled = min(attention_mask.shape[-1], key.shape[-2])
        mask = attention_mask[..., -filled:]
        head = scores[..., :filled]
        if mask.dtype == torch.bool:
            head.masked_fill_(~mask, float("-inf"))
        else:
            head.add_(mask.float())
        scores[..., filled:] = float("-inf")
    return _grouped_output(scores, value, query.shape), None


def _masked_grouped_sdpa(query: Any, key: Any, value: Any, attention_mask: Any,
                         scaling: float | None) -> Any:
    """SDPA for a masked multi-token query (a prompt after a reused prefix, the rating
    fallback's tree) with the key/value heads shared (enable_gqa). transformers repeats them per
    query head whenever a mask is given, off CUDA too: the keys copied and read once per query
    head, which slowed the rating fallback's forward (benchmarks/README.md)."""
    out = torch.nn.functional.scaled_dot_product_attention(
        query, key, value, attn_mask=attention_mask, scale=scaling,
        enable_gqa=True)
    return out.transpose(1, 2).contiguous()


def grouped_decode_attention(query: Any, key: Any, value: Any, bias: Any, scaling: float
                             ) -> Any:
    """attention_forward's one-token path with the mask given once for all layers: `bias` float32
    (batch, 1, 1, key columns), 0 where a column is attended, -inf where not. One operation does
    the float conversion, the scaling and the masking: bias + scaling * scores, the same values
    (adding 0 is exact, -inf stays -inf)."""
    scores = torch.add(bias, _grouped_scores(query, key), alpha=_scaling(query, scaling))
    return _grouped_output(scores, value, query.shape)


def _scaling(query: Any, scaling: float | None) -> float:
    return scaling if scaling is not None else query.shape[-1] ** -0.5


def _grouped_scores(query: Any, key: Any) -> Any:
    """q @ k^T in the model's dtype, the query heads grouped by their key/value head:
    (batch, kv_heads, group, key columns)."""
    batch, heads, _, dim = query.shape
    kv_heads = key.shape[1]
    q = query.reshape(batch, kv_heads, heads // kv_heads, dim)  # heads sharing a key/value head
    # kv_cache hands over its whole buffers (contiguous: q @ k^T on a strided view copies it
    # first); columns past the mask's length are not filled and are masked out
    return torch.matmul(q, key.contiguous().transpose(-1, -2))


def _grouped_output(scores: Any, value: Any, shape: Any) -> Any:
    batch, heads, _, dim = shape
    probs = torch.softmax(scores, dim=-1).to(value.dtype)
    out = torch.matmul(probs, value.contiguous())  # (batch, kv_heads, group, dim)
    return out.reshape(batch, heads, 1, dim).transpose(1, 2).contiguous()


def _decode_mask(*args: Any, **kwargs: Any) -> Any:
    """sdpa_mask, always built for a one-token query: its length tells the attention how many
    of the cache buffer's columns are filled."""
    if kwargs.get("q_length", args[1] if len(args) > 1 else 2) == 1:
        kwargs["allow_is_causal_skip"] = False
    return sdpa_mask(*args, **kwargs)


AttentionInterface.register(NAME, attention_forward)
AttentionMaskInterface.register(NAME, _decode_mask)
