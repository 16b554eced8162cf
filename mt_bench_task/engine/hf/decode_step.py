"""One decode step of a Llama-shaped model (transformers' Llama, Qwen2, Mistral) on a CPU: the
same arithmetic as transformers' forward with fewer operations around it.

Why: at a decode step's few rows, much of a step through the model's forward is not the linears or
the attention's matmuls but ~1,500 small operations and the Python around them: transformers'
per-call machinery (output capture, mask building, kwargs plumbing, module calls), RoPE's
rotate_half (slices, negation, concatenation) for queries and keys apart, and the attention's
masking in three steps per layer. This step computes the same values with fewer operations: RoPE
for queries and keys at once as x*cos + swap_halves(x)*sin_signed (the same products and sum, the
sign moved into sin: exact), one padding mask per step for all layers, packed linears called
directly; q/k/v and gate/up as one call each where pack_linears packed them together (the same
values at a decode step's row counts: oneDNN blocks the sum over the input the same way; a long
prefill may differ in the last bit, and the step never does one), and the mask as an additive bias
that converts, scales and masks the scores in one operation. The timings that decided each step:
benchmarks/README.md, "Design notes from measurements".
The logits are bit-equal to the model's own forward (tests/engine/test_decode_step.py); a model this
step does not know gets None from `fast_decode_step`, and `decode_logits` uses its forward.
Imports torch: load lazily.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from mt_bench_task.engine.hf.attention import NAME, grouped_decode_attention

# transformers' model families whose decoder is Llama's, operation for operation (Qwen2: biases on
# q/k/v, which the linears carry; both: a sliding window, refused below)
_FAMILIES = {"transformers.models.llama.modeling_llama": "Llama",
             "transformers.models.qwen2.modeling_qwen2": "Qwen2",
             "transformers.models.mistral.modeling_mistral": "Mistral"}
_LAYER_PARTS = {"self_attn": "Attention", "mlp": "MLP", "input_layernorm": "RMSNorm",
                "post_attention_layernorm": "RMSNorm"}


def fast_decode_step(model: Any) -> DecodeStep | None:
    """The fast step for `model`, or None where it would not compute what the model does."""
    return DecodeStep(model) if has_fast_step(model) else None


def has_fast_step(model: Any) -> bool:
    """Whether the step computes what `model` does: not for anything but transformers' own
    Llama, Qwen2 or Mistral classes (remote code that borrows their names included), a sliding
    window, another attention, a device other than the CPU, or hooks (accelerate's offloading,
    user hooks), which a step that bypasses the modules skips."""
    import sys

    config, module = model.config, type(model).__module__
    family = _FAMILIES.get(module)
    classes = sys.modules.get(module)
    if (family is None or classes is None
            or type(model) is not getattr(classes, f"{family}ForCausalLM", None)
            or model.device.type != "cpu"
            or getattr(config, "_attn_implementation", None) != NAME
            or getattr(config, "pretraining_tp", 1) != 1
            or (family == "Mistral" and getattr(config, "sliding_window", None) is not None)):
        return False
    for layer in model.model.layers:
        if type(layer) is not getattr(classes, f"{family}DecoderLayer") or any(
                type(getattr(layer, part, None)) is not getattr(classes, family + kind)
                for part, kind in _LAYER_PARTS.items()):
            return False
        if getattr(layer.self_attn, "sliding_window", None) is not None:
            return False
    if any(m._forward_hooks or m._forward_pre_hooks or hasattr(m, "_hf_hook")
           for m in model.modules()):
        return False
    return True


def decode_logits(model: Any, fast: DecodeStep | None, ids: Any, positions: Any, cache: Any,
                  mask: Any, cache_kw: str | None = None) -> Any:
    """The last position's logits of a one-token step: `fast` (fast_decode_step's) where there is
    one, else the model's forward. `mask` covers the cache's columns and this step's."""
    if fast is not None:
        return fast(ids, positions, cache, mask)
    if cache_kw is None:
        from mt_bench_task.engine.hf.kv_cache import cache_kwarg

        cache_kw = cache_kwarg(model)
    length = mask.shape[1] - 1
    return model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True,
                 logits_to_keep=1, cache_position=torch.arange(length, length + 1,
                                                               device=ids.device),
                 **{cache_kw: cache}).logits[:, -1]


def _linear(module: Any) -> Callable[[Any], Any]:
    """The module's forward without nn.Module's call machinery (211 calls a step)."""
    packed = getattr(module, "packed", None)
    if packed is not None:  # packed_linear.PackedLinear
        op, bias = torch.ops.mkldnn._linear_pointwise, module.bias
        return lambda x: op(x, packed, bias, "none", [], "")
    if type(module) is torch.nn.Linear:
        weight, bias = module.weight, module.bias
        return lambda x: F.linear(x, weight, bias)
    return module  # type: ignore[no-any-return]


def _fused(parent: Any, name: str, outputs: list[list[Any]]) -> Callable[[Any], list[Any]]:
    """For linears that read the same input: each of `outputs` is its linears' results side by
    side; from one call where pack_linears packed these very modules as `parent.<name>`."""
    fused = getattr(parent, name, None)  # packed_linear.FusedLinears
    modules = [m for group in outputs for m in group]
    if fused is None or len(fused.modules) != len(modules) or any(
            a is not b for a, b in zip(fused.modules, modules)):
        calls = [[_linear(m) for m in group] for group in outputs]
        return lambda x: [c[0](x) if len(c) == 1 else torch.cat([f(x) for f in c], dim=-1)
                          for c in calls]
    packed, bias = fused.packed, fused.bias
    op, ends = torch.ops.mkldnn._linear_pointwise, [0]
    for group in outputs:
        ends.append(ends[-1] + sum(m.out_features for m in group))
    return lambda x: [out[..., a:b] for out in (op(x, packed, bias, "none", [], ""),)
                      for a, b in zip(ends, ends[1:])]


def _rms_norm(x: Any, weight: Any, eps: float) -> Any:
    # LlamaRMSNorm.forward (Qwen2's and Mistral's are copies), operation for operation
    dtype = x.dtype
    x = x.to(torch.float32)
    variance = x.pow(2).mean(-1, keepdim=True)
    x = x * torch.rsqrt(variance + eps)
    return weight * x.to(dtype)


class _Layer:
    def __init__(self, layer: Any) -> None:
        attn, mlp = layer.self_attn, layer.mlp
        self.norm1 = (layer.input_layernorm.weight, layer.input_layernorm.variance_epsilon)
        self.norm2 = (layer.post_attention_layernorm.weight,
                      layer.post_attention_layernorm.variance_epsilon)
        self.qk_v = _fused(attn, "packed_qkv", [[attn.q_proj, attn.k_proj], [attn.v_proj]])
        self.gate_up = _fused(mlp, "packed_gate_up", [[mlp.gate_proj], [mlp.up_proj]])
        self.o, self.down = _linear(attn.o_proj), _linear(mlp.down_proj)
        self.act = mlp.act_fn
        self.scaling = attn.scaling


class DecodeStep:
    """`step(ids, positions, cache, mask)` -> last-position logits [rows, vocab]."""

    def __init__(self, model: Any) -> None:
        inner, config = model.model, model.config
        self.embed, self.rotary = inner.embed_tokens.weight, inner.rotary_emb
        self.layers = [_Layer(layer) for layer in inner.layers]
        self.norm = (inner.norm.weight, inner.norm.variance_epsilon)
        self.lm_head = _linear(model.lm_head)
        self.heads = config.num_attention_heads
        self.kv_heads = config.num_key_value_heads
        self.head_dim = getattr(config, "head_dim", None) or config.hidden_size // self.heads

    def __call__(self, ids: Any, positions: Any, cache: Any, mask: Any) -> Any:
        """`ids`, `positions`: [rows, 1]; `cache` the scheduler's (kv_cache.new_cache); `mask`
        [rows, columns once this step's is written], 1 = a real token (the forward's mask)."""
        rows, heads, kv, dim = ids.shape[0], self.heads, self.kv_heads, self.head_dim
        # the attention reads the whole buffers: padding and unwritten columns masked, once
        width = [layer.reserve(mask.shape[1]) for layer in cache.layers][0]
        bias = torch.full((rows, 1, 1, width), float("-inf"), dtype=torch.float32,
                          device=mask.device)
        bias[..., :mask.shape[1]].masked_fill_((mask != 0)[:, None, None, :], 0.0)
        h = F.embedding(ids, self.embed)
        cos, sin = self.rotary(h, position_ids=positions)  # [rows, 1, dim]
        half = dim // 2
        # rotate_half(x) * sin == swap_halves(x) * sin_signed, element for element
        sin_signed = torch.cat((-sin[..., :half], sin[..., half:]), dim=-1)
        cos, sin_signed = cos.unsqueeze(2), sin_signed.unsqueeze(2)  # over heads
        for layer, cache_layer in zip(self.layers, cache.layers):
            x = _rms_norm(h, *layer.norm1)
            qk, v = layer.qk_v(x)
            qk = qk.view(rows, 1, heads + kv, dim)
            qk = qk * cos + torch.cat((qk[..., half:], qk[..., :half]), dim=-1) * sin_signed
            q, k = qk[:, :, :heads].transpose(1, 2), qk[:, :, heads:].transpose(1, 2)
            v = v.view(rows, 1, kv, dim).transpose(1, 2)
            keys, values = cache_layer.update(k, v)
            out = grouped_decode_attention(q, keys, values, bias, layer.scaling)
            h = h + layer.o(out.view(rows, 1, heads * dim))
            x = _rms_norm(h, *layer.norm2)
            gate, up = layer.gate_up(x)
            h = h + layer.down(layer.act(gate) * up)
        return self.lm_head(_rms_norm(h, *self.norm))[:, -1]
