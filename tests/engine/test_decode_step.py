"""decode_step: the scheduler's own decode step for Llama-shaped models (Llama, Qwen2 with its
q/k/v biases, Mistral) computes, bit for bit, the logits of the model's forward (fp32, and bf16
with packed linears), on a left-padded batch whose rows sit at different positions, across a
buffer growth; other models (and sliding windows) get the forward."""
from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

LENGTHS = [9, 4, 12]  # real tokens per row, left-padded to 12
STEPS = 24  # the prefill's buffer (12 columns + room) grows during these


def _tiny(family: str, dtype, attn: str | None = None, **overrides):
    import transformers

    from mt_bench_task.engine.hf.attention import NAME

    torch.manual_seed(0)
    config = getattr(transformers, f"{family}Config")(
        vocab_size=97, hidden_size=64, intermediate_size=128, num_hidden_layers=3,
        num_attention_heads=8, num_key_value_heads=2, max_position_embeddings=256,
        attn_implementation=attn or NAME, **overrides)
    model = getattr(transformers, f"{family}ForCausalLM")(config).to(dtype).eval()
    with torch.no_grad():  # random q/k/v biases (Qwen2 has them; the init zeroes them)
        for layer in model.model.layers:
            for proj in (layer.self_attn.q_proj, layer.self_attn.k_proj, layer.self_attn.v_proj):
                if proj.bias is not None:
                    proj.bias.normal_()
    return model


def _tiny_llama(dtype, attn: str | None = None, **overrides):
    return _tiny("Llama", dtype, attn, **overrides)


def _prefill(model):
    from mt_bench_task.engine.hf.kv_cache import cache_kwarg, new_cache

    ids = torch.zeros((3, 12), dtype=torch.long)
    mask = torch.zeros((3, 12), dtype=torch.long)
    g = torch.Generator().manual_seed(1)
    for i, n in enumerate(LENGTHS):
        ids[i, 12 - n:] = torch.randint(1, 97, (n,), generator=g)
        mask[i, 12 - n:] = 1
    cache = new_cache(model.config)
    out = model(input_ids=ids, attention_mask=mask, **{cache_kwarg(model): cache}, use_cache=True,
                position_ids=(mask.cumsum(-1) - 1).clamp(min=0), logits_to_keep=1)
    return cache, mask, out.logits[:, -1].argmax(-1)[:, None]


def _steps_both_ways(model, step) -> tuple[list[tuple], set[int]]:
    """Decode STEPS tokens (the forward's argmax) with the forward on one cache and `step` on
    another built by the same prefill: each step's logits from both, and the buffer widths."""
    from mt_bench_task.engine.hf.decode_step import decode_logits
    from mt_bench_task.engine.hf.kv_cache import buffer_width

    pairs, widths = [], set()
    with torch.inference_mode():
        cache_a, mask, nxt = _prefill(model)
        cache_b, _, _ = _prefill(model)
        for step_no in range(STEPS):
            column = torch.ones((3, 1), dtype=torch.long)
            if step_no >= STEPS // 2:
                column[1] = 0  # row 1 stopped, as the local judge masks a finished row's columns
            mask = torch.cat([mask, column], dim=1)
            pos = (mask.cumsum(-1) - 1).clamp(min=0)[:, -1:]
            want = decode_logits(model, None, nxt, pos, cache_a, mask)  # the model's forward
            got = decode_logits(model, step, nxt, pos, cache_b, mask)
            widths.add(buffer_width(cache_b))  # the buffer, room included
            pairs.append((want, got))
            nxt = want.argmax(-1)[:, None]
    return pairs, widths


# the fast loop: every family in fp32, and the packed bf16 path on Llama (packing with biases:
# test_packed_linear); the other bf16 families run with the slow tests
@pytest.mark.parametrize("family,dtype", [
    ("Llama", "float32"), ("Qwen2", "float32"), ("Mistral", "float32"), ("Llama", "bfloat16"),
    pytest.param("Qwen2", "bfloat16", marks=pytest.mark.slow),
    pytest.param("Mistral", "bfloat16", marks=pytest.mark.slow)])
def test_its_logits_equal_the_forwards_bit_for_bit(family: str, dtype: str) -> None:
    from mt_bench_task.engine.hf.decode_step import fast_decode_step
    from mt_bench_task.engine.hf.packed_linear import pack_linears

    extra = {"sliding_window": None} if family == "Mistral" else {}
    model = _tiny(family, getattr(torch, dtype), **extra)
    if family == "Qwen2":
        assert model.model.layers[0].self_attn.q_proj.bias.abs().sum() > 0
    if dtype == "bfloat16":
        assert pack_linears(model, fuse_siblings=True) == 3 * 7 + 1  # the bf16 path: oneDNN-packed weights
        assert all(hasattr(layer.self_attn, "packed_qkv") and hasattr(layer.mlp, "packed_gate_up")
                   for layer in model.model.layers)  # the step's q/k/v and gate/up: one call each
    step = fast_decode_step(model)
    assert step is not None
    if dtype == "bfloat16":  # the step reads them: q/k/v (and gate/up) are slices of one output
        x = torch.randn(3, 1, 64).bfloat16()
        for outputs in (step.layers[0].qk_v(x), step.layers[0].gate_up(x)):
            assert len({t.untyped_storage().data_ptr() for t in outputs}) == 1
    pairs, widths = _steps_both_ways(model, step)
    assert len(pairs) == STEPS
    assert len(widths) > 1  # the buffers grew past their first room
    for i, (want, got) in enumerate(pairs):
        assert got.dtype == want.dtype and got.shape == want.shape == (3, 97)
        assert torch.equal(got, want), (i, (got.float() - want.float()).abs().max())


def test_rope_scaling_comes_from_the_models_own_rotary_embedding() -> None:
    from mt_bench_task.engine.hf.decode_step import fast_decode_step

    model = _tiny_llama(torch.float32, rope_parameters={"rope_type": "linear", "factor": 2.0,
                                                        "rope_theta": 10000.0})
    step = fast_decode_step(model)
    assert step is not None
    for want, got in _steps_both_ways(model, step)[0]:
        assert torch.equal(got, want)


def test_models_it_does_not_know_get_none() -> None:
    from mt_bench_task.engine.hf.decode_step import fast_decode_step

    assert fast_decode_step(_tiny_llama(torch.float32, attn="sdpa")) is None  # masks not ours
    assert fast_decode_step(_tiny("Qwen3", torch.float32)) is None  # q/k norms: not Llama's
    assert fast_decode_step(_tiny("Mistral", torch.float32, sliding_window=8)) is None
    assert fast_decode_step(_tiny("Qwen2", torch.float32, use_sliding_window=True,
                                  sliding_window=8, max_window_layers=0)) is None
    model = _tiny_llama(torch.float32)
    model.model.layers[1].mlp = torch.nn.Identity()  # a changed layer: its forward would differ
    assert fast_decode_step(model) is None
    hooked = _tiny_llama(torch.float32)
    hooked.model.layers[2].mlp.down_proj.register_forward_hook(lambda *a: None)
    assert fast_decode_step(hooked) is None  # a step that bypasses modules would skip it
    assert fast_decode_step(_tiny_llama(torch.float32)) is not None


def test_a_class_that_only_borrows_llamas_names_gets_none() -> None:
    from transformers.models.llama.modeling_llama import LlamaMLP

    from mt_bench_task.engine.hf.decode_step import fast_decode_step

    class LlamaMLP(LlamaMLP):  # noqa: F811  (remote code that copies the name, not the math)
        def forward(self, x):
            return super().forward(x) * 2

    model = _tiny_llama(torch.float32)
    model.model.layers[0].mlp = LlamaMLP(model.config)
    assert type(model.model.layers[0].mlp).__name__ == "LlamaMLP"
    assert fast_decode_step(model) is None


@pytest.mark.slow
def test_the_scheduler_uses_it_for_the_default_model(default_model_dir: Path) -> None:
    from mt_bench_task.engine.hf.models import load_model_and_tokenizer
    from mt_bench_task.engine.hf.scheduler import ContinuousBatcher

    model, tok = load_model_and_tokenizer(str(default_model_dir), "bfloat16")
    batcher = ContinuousBatcher(model, 4, {tok.eos_token_id}, tok.pad_token_id)
    assert batcher._fast_step is not None


def test_a_projection_replaced_after_packing_is_called_not_the_fused_weight() -> None:
    from mt_bench_task.engine.hf.decode_step import fast_decode_step
    from mt_bench_task.engine.hf.packed_linear import PackedLinear, pack_linears

    model = _tiny_llama(torch.bfloat16)
    assert pack_linears(model, fuse_siblings=True) == 3 * 7 + 1
    attn, mlp = model.model.layers[1].self_attn, model.model.layers[1].mlp
    torch.manual_seed(5)  # new weights, as a merged adapter would bring
    attn.k_proj = PackedLinear(torch.nn.Linear(64, 16, bias=False).bfloat16())
    mlp.up_proj = PackedLinear(torch.nn.Linear(64, 128, bias=False).bfloat16())
    step = fast_decode_step(model)
    assert step is not None
    for want, got in _steps_both_ways(model, step)[0]:
        assert torch.equal(got, want)  # the forward calls the new modules: so does the step
