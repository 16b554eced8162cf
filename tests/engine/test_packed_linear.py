"""bf16 CPU linears with pre-packed weights (packed_linear.py): they replace nn.Linear in bf16
models only, compute what F.linear computes, and a model with them decodes greedily as the
unpacked model does."""
from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")


def _tiny_llama(dtype):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=97, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=8, num_key_value_heads=2, max_position_embeddings=256)
    return LlamaForCausalLM(config).to(dtype).eval()


def _packs() -> bool:
    """Whether this torch build and CPU pack bf16 weights (x86 with oneDNN's bf16 kernels: the
    development and CI machines); elsewhere the tests check that models are left alone."""
    from mt_bench_task.engine.hf.packed_linear import packing_works

    return packing_works()


def test_packed_linear_computes_f_linear() -> None:
    from mt_bench_task.engine.hf.packed_linear import PackedLinear, pack_linears

    if not _packs():  # nothing packed here: the model keeps F.linear
        model = _tiny_llama(torch.bfloat16)
        assert pack_linears(model) == 0 and not any(isinstance(m, PackedLinear)
                                                    for m in model.modules())
        return

    g = torch.Generator().manual_seed(0)
    linear = torch.nn.Linear(64, 96, bias=True).bfloat16()
    packed = PackedLinear(linear)
    for shape in ((1, 1, 64), (16, 1, 64), (3, 50, 64)):
        x = torch.randn(*shape, generator=g).bfloat16()
        want = torch.nn.functional.linear(x, linear.weight, linear.bias)
        got = packed(x)
        assert got.shape == want.shape and got.dtype == torch.bfloat16
        assert torch.allclose(got.float(), want.float(), rtol=1e-2, atol=1e-2)


def test_only_bf16_models_are_packed() -> None:
    from mt_bench_task.engine.hf.packed_linear import PackedLinear, pack_linears

    fp32 = _tiny_llama(torch.float32)
    assert pack_linears(fp32) == 0  # fp32 keeps F.linear: its greedy output is the reference
    assert not any(isinstance(m, PackedLinear) for m in fp32.modules())
    bf16 = _tiny_llama(torch.bfloat16)
    per_model = 2 * 7 + 1 if _packs() else 0  # q, k, v, o, gate, up, down per layer + lm_head
    assert pack_linears(bf16) == per_model
    assert not any(hasattr(m, "packed_qkv") or hasattr(m, "packed_gate_up")  # not asked for
                   for m in bf16.modules())
    assert pack_linears(bf16) == 0  # already packed (or not packable): nothing left to do
    assert (type(bf16.lm_head) is PackedLinear) == _packs()


def test_packed_model_decodes_as_the_unpacked_one() -> None:
    from mt_bench_task.engine.hf.packed_linear import pack_linears

    plain, packed = _tiny_llama(torch.bfloat16), _tiny_llama(torch.bfloat16)
    pack_linears(packed)
    ids = torch.tensor([[5, 17, 42, 8, 91, 3]])
    with torch.inference_mode():
        a = plain.generate(ids, max_new_tokens=12, do_sample=False, pad_token_id=0)
        b = packed.generate(ids, max_new_tokens=12, do_sample=False, pad_token_id=0)
        la, lb = plain(input_ids=a).logits, packed(input_ids=a).logits
    assert torch.equal(a, b)
    assert torch.allclose(la.float(), lb.float(), atol=0.05)


def test_cpu_loader_packs_bf16(tmp_path) -> None:
    from mt_bench_task.engine.hf.models import load_model_and_tokenizer
    from mt_bench_task.engine.hf.packed_linear import PackedLinear

    model, _ = load_model_and_tokenizer("default", dtype="bfloat16")
    packed = sum(isinstance(m, PackedLinear) for m in model.modules())
    assert packed == (30 * 7 + 1 if _packs() else 0)
    # the default model is one decode_step.py steps: its q/k/v and gate/up packed together too
    assert all(hasattr(layer.self_attn, "packed_qkv") and hasattr(layer.mlp, "packed_gate_up")
               for layer in model.model.layers) == _packs()
    model32, _ = load_model_and_tokenizer("default", dtype="float32")
    assert not any(isinstance(m, PackedLinear) for m in model32.modules())


def test_siblings_fed_the_same_input_get_one_packed_weight_within_the_budget(monkeypatch) -> None:
    import mt_bench_task.engine.hf.packed_linear as pl

    model = _tiny_llama(torch.bfloat16)
    if not _packs():  # nothing packed, nothing fused
        assert pl.pack_linears(model, fuse_siblings=True) == 0
        assert not any(hasattr(m, "packed_qkv") for m in model.modules())
        return
    attn, mlp = model.model.layers[0].self_attn, model.model.layers[0].mlp
    x = torch.randn(16, 1, 64, generator=torch.Generator().manual_seed(1)).bfloat16()
    with torch.inference_mode():
        want_qkv = torch.cat([attn.q_proj(x), attn.k_proj(x), attn.v_proj(x)], dim=-1)
        want_gu = torch.cat([mlp.gate_proj(x), mlp.up_proj(x)], dim=-1)
    pl.pack_linears(model, fuse_siblings=True)
    op = torch.ops.mkldnn._linear_pointwise
    for parent, want in ((attn, want_qkv), (mlp, want_gu)):
        packed, bias, modules = parent.packed_qkv if parent is attn else parent.packed_gate_up
        assert bias is None  # Llama's projections have none
        names = ("q_proj", "k_proj", "v_proj") if parent is attn else ("gate_proj", "up_proj")
        assert modules == tuple(getattr(parent, n) for n in names)  # the packed modules
        got = op(x, packed, bias, "none", [], "")
        assert got.shape == want.shape
        assert torch.allclose(got.float(), want.float(), rtol=1e-2, atol=1e-2)

    # q/k/v of the tiny model: (64 + 2 * 16) x 64 bf16 weights = 12,288 bytes a layer
    monkeypatch.setattr(pl, "FUSED_BUDGET", 2 * 12_288)  # q/k/v of both layers, no gate/up
    small = _tiny_llama(torch.bfloat16)
    pl.pack_linears(small, fuse_siblings=True)
    assert all(hasattr(layer.self_attn, "packed_qkv") and not hasattr(layer.mlp, "packed_gate_up")
               for layer in small.model.layers)
    monkeypatch.setattr(pl, "FUSED_BUDGET", 2 * 12_288 - 1)  # not even that: none at all
    none = _tiny_llama(torch.bfloat16)
    pl.pack_linears(none, fuse_siblings=True)
    assert not any(hasattr(m, "packed_qkv") or hasattr(m, "packed_gate_up")
                   for m in none.modules())


def test_siblings_with_and_without_bias_are_not_fused() -> None:
    from mt_bench_task.engine.hf.packed_linear import pack_linears

    model = _tiny_llama(torch.bfloat16)
    attn = model.model.layers[0].self_attn
    attn.q_proj.bias = torch.nn.Parameter(torch.ones(64, dtype=torch.bfloat16))  # k, v: none
    pack_linears(model, fuse_siblings=True)
    assert not hasattr(attn, "packed_qkv")  # one bias for three outputs would be wrong
    assert hasattr(model.model.layers[1].self_attn, "packed_qkv") == _packs()
