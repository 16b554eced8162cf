"""bf16 linear layers on a CPU with their weights packed once for oneDNN.

`F.linear` on a bf16 CPU tensor runs oneDNN, which lays the weight out for its kernel on every
call; in a decode step (a few rows times a few hundred weight matrices) that is much of the
work. torch.compile's CPU "freezing" packs each weight once instead
(`torch.ops.mkldnn._reorder_linear_weight`) and calls `_linear_pointwise`; we do the same
without compiling: cheaper decode steps and prefills (benchmarks/README.md, "Design notes from
measurements").

Numbers: the same bf16 kernels with float32 accumulation. The result equals F.linear's bit for
bit for most shapes and row counts (every decode-sized call of SmolLM2-135M); for some (long
prefills, a few weight shapes) oneDNN picks another blocking and the last bf16 bit can differ,
as it does in bf16 whenever the batch size changes. fp32 models are left alone (fp32 greedy
output stays token for token the batch-1 loop's). Imports torch: load lazily.
"""
from __future__ import annotations

import functools
from typing import Any, NamedTuple

import torch

ROWS_HINT = 16  # the row count oneDNN tunes the layout for (any count works)
# sibling linears that read the same input, packed once more as one weight for decode steps
# (decode_step.py): one call instead of three (two) saves oneDNN's fixed cost per call (timings:
# benchmarks/README.md, "Design notes from measurements").
# The copies cost memory (the modules keep their own weights for the forward), so a
# model gets them only within FUSED_BUDGET bytes, q/k/v first: on a large model a call's fixed
# cost is small next to its weight's read time anyway.
FUSED_GROUPS = (("packed_qkv", ("q_proj", "k_proj", "v_proj")),
                ("packed_gate_up", ("gate_proj", "up_proj")))
FUSED_BUDGET = 256 << 20


class FusedLinears(NamedTuple):
    """Sibling linears packed as one weight (`parent.packed_qkv`, `parent.packed_gate_up`)."""
    packed: Any  # the concatenated weights, packed
    bias: Any  # the concatenated biases, or None
    modules: tuple[Any, ...]  # the modules it stands for, in order (a replaced one is not)


class PackedLinear(torch.nn.Module):
    """nn.Linear's forward on a packed copy of its weight; the unpacked weight is not kept."""

    def __init__(self, linear: torch.nn.Linear) -> None:
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.register_buffer("packed", _pack(linear.weight.detach()), persistent=False)
        self.bias = linear.bias

    def forward(self, x: Any) -> Any:
        return torch.ops.mkldnn._linear_pointwise(x, self.packed, self.bias, "none", [], "")

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, packed"


def _pack(weight: Any) -> Any:
    return torch.ops.mkldnn._reorder_linear_weight(weight, ROWS_HINT)


@functools.cache  # once per process: every model load asks
def packing_works() -> bool:
    """Whether this torch build packs bf16 weights and the packed call computes F.linear."""
    if not torch.backends.mkldnn.is_available():
        return False
    g = torch.Generator().manual_seed(0)
    weight = torch.randn(96, 64, generator=g).bfloat16()
    try:
        packed = _pack(weight)
        x = torch.randn(5, 3, 64, generator=g).bfloat16()
        fast = torch.ops.mkldnn._linear_pointwise(x, packed, None, "none", [], "")
    except (RuntimeError, AttributeError):  # an op this torch build lacks
        return False
    return torch.allclose(fast.float(), torch.nn.functional.linear(x, weight).float(),
                          rtol=1e-2, atol=1e-2)


def pack_linears(model: Any, fuse_siblings: bool = False) -> int:
    """Replace `model`'s bf16 CPU nn.Linear layers with PackedLinear; the number replaced (0
    where this torch build cannot). `fuse_siblings`: also FUSED_GROUPS' packed weights, for a
    model that decode_step.py steps (nothing else reads them)."""
    linears = [(parent, name, child) for parent in model.modules()
               for name, child in parent.named_children()
               if type(child) is torch.nn.Linear and child.weight.device.type == "cpu"
               and child.weight.dtype == torch.bfloat16]
    if not linears or not packing_works():
        return 0
    fused = _fused_packs(model) if fuse_siblings else []
    for parent, name, child in linears:
        setattr(parent, name, PackedLinear(child))
    for parent, name, parts, packed, bias in fused:
        setattr(parent, name, FusedLinears(packed, bias, tuple(getattr(parent, p) for p in parts)))
    return len(linears)


def _fused_packs(model: Any) -> list[tuple[Any, str, tuple[str, ...], Any, Any]]:
    """(parent, name, parts, packed weight, bias) for FUSED_GROUPS' bf16 siblings with the same
    input size and all or none biased (biases concatenated), within FUSED_BUDGET."""
    left = FUSED_BUDGET
    packs: list[tuple[Any, str, tuple[str, ...], Any, Any]] = []
    for name, parts in FUSED_GROUPS:
        groups = []
        for parent in model.modules():
            linears: list[Any] = [getattr(parent, part, None) for part in parts]
            if (all(type(m) is torch.nn.Linear and m.weight.dtype == torch.bfloat16
                    and m.weight.device.type == "cpu" for m in linears)
                    and len({m.in_features for m in linears}) == 1
                    and len({m.bias is None for m in linears}) == 1):
                groups.append((parent, linears))
        size = sum(m.weight.numel() * 2 for _, linears in groups for m in linears)
        if not groups or size > left:
            continue
        left -= size
        for parent, linears in groups:
            weight = torch.cat([m.weight.detach() for m in linears])
            bias = (None if linears[0].bias is None
                    else torch.cat([m.bias.detach() for m in linears]))
            packs.append((parent, name, parts, _pack(weight), bias))
    return packs
