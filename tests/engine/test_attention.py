"""The CPU decode attention (attention.py) gives SDPA's numbers: a left-padded batch decoded step
by step on a small random Llama (fp32, grouped-query heads) matches transformers' own SDPA."""
from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")


def _tiny_llama(attn: str):
    from transformers import LlamaConfig, LlamaForCausalLM

    import mt_bench_task.engine.hf.attention  # noqa: F401  (registers attention.NAME)

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=97, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=8, num_key_value_heads=2, max_position_embeddings=256,
                         attn_implementation=attn)
    return LlamaForCausalLM(config).eval()


def _decode(model, steps: int = 6) -> list:
    from mt_bench_task.engine.hf.kv_cache import cache_kwarg, new_cache

    lengths = [9, 4, 12]
    ids = torch.zeros((3, 12), dtype=torch.long)
    mask = torch.zeros((3, 12), dtype=torch.long)
    g = torch.Generator().manual_seed(1)
    for i, n in enumerate(lengths):  # left padding, as the scheduler and the local judge use
        ids[i, 12 - n:] = torch.randint(1, 97, (n,), generator=g)
        mask[i, 12 - n:] = 1
    cache = new_cache(model.config)
    logits = []
    with torch.inference_mode():
        out = model(input_ids=ids, attention_mask=mask, position_ids=(mask.cumsum(-1) - 1).clamp(min=0),
                    **{cache_kwarg(model): cache}, use_cache=True, logits_to_keep=1)
        for _ in range(steps):
            logits.append(out.logits[:, -1])
            nxt = out.logits[:, -1].argmax(-1)[:, None]
            mask = torch.cat([mask, torch.ones((3, 1), dtype=torch.long)], dim=1)
            out = model(input_ids=nxt, attention_mask=mask,
                        position_ids=(mask.cumsum(-1) - 1)[:, -1:], **{cache_kwarg(model): cache}, use_cache=True,
                        logits_to_keep=1)
    return logits


def test_decode_steps_equal_sdpa_with_left_padding() -> None:
    from mt_bench_task.engine.hf.attention import NAME

    ours, sdpa = _decode(_tiny_llama(NAME)), _decode(_tiny_llama("sdpa"))
    assert len(ours) == len(sdpa) == 6
    for a, b in zip(ours, sdpa):
        assert torch.allclose(a, b, atol=1e-5), (a - b).abs().max()
        assert torch.equal(a.argmax(-1), b.argmax(-1))


def test_prompt_after_a_reused_prefix_equals_sdpa() -> None:
    """A multi-token query after cached columns takes a mask (the judge's prompt after a reused
    opening, the rating fallback's tree); attention.NAME shares the key/value heads there
    (enable_gqa) where transformers repeats them: the same logits as SDPA on the whole prompt."""
    from mt_bench_task.engine.hf.attention import NAME
    from mt_bench_task.engine.hf.kv_cache import cache_kwarg, new_cache

    ids = torch.randint(1, 97, (1, 19), generator=torch.Generator().manual_seed(2))
    whole = _tiny_llama("sdpa")
    ours = _tiny_llama(NAME)
    with torch.inference_mode():
        want = whole(input_ids=ids).logits[:, 7:]
        cache = new_cache(ours.config)
        ours(input_ids=ids[:, :7], **{cache_kwarg(ours): cache}, use_cache=True)
        got = ours(input_ids=ids[:, 7:], **{cache_kwarg(ours): cache}, use_cache=True).logits
    assert got.shape == want.shape == (1, 12, 97)
    assert torch.allclose(got, want, atol=1e-5), (got - want).abs().max()


def test_cpu_models_load_with_it(tmp_path) -> None:
    from mt_bench_task.engine.hf.attention import NAME
    from mt_bench_task.engine.hf.models import _use_cpu_decode_attention

    model = _tiny_llama("sdpa")
    _use_cpu_decode_attention(model)
    assert model.config._attn_implementation == NAME
    eager = _tiny_llama("eager")  # a user's explicit choice other than SDPA is left alone
    _use_cpu_decode_attention(eager)
    assert eager.config._attn_implementation == "eager"


def test_decode_steps_get_the_whole_cache_buffer() -> None:
    """With attention.NAME the cache hands a one-token step its whole (contiguous) buffers; the
    columns past the filled ones are zeros, and the decode test above shows they are masked."""
    from mt_bench_task.engine.hf.attention import NAME
    from mt_bench_task.engine.hf.kv_cache import new_cache

    config = _tiny_llama(NAME).config
    layer = new_cache(config).layers[0]
    k = torch.randn(2, 2, 5, 8)
    keys, _ = layer.update(k, k.clone())
    assert keys.shape[-2] == 5  # a prompt gets exactly its keys (SDPA)
    keys, values = layer.update(k[..., :1, :], k[..., :1, :])
    assert keys.is_contiguous() and values.is_contiguous() and keys.shape[-2] > 6
    assert torch.equal(keys[..., :5, :], k) and not keys[..., 6:, :].any()
    assert layer.keys.shape[-2] == 6  # what the rest of the cache API sees

    # a rebuild (row 1 kept without its 2 leading columns, a 3-column row added): one contiguous
    # buffer, each row right-aligned and zero-padded, room left for the next step
    from mt_bench_task.engine.hf.kv_cache import restack

    cache, added = new_cache(config), new_cache(config)
    extra = torch.randn(1, 2, 3, 8)
    cache.layers[0] = layer
    for mine, theirs in zip(cache.layers[1:], added.layers[1:]):
        mine.update(k, k.clone())
        mine.update(k[..., :1, :], k[..., :1, :])
        theirs.update(extra, extra.clone())
    added.layers[0].update(extra, extra.clone())
    rebuilt = restack(config, cache, [1], 2, [added]).layers[0]
    assert rebuilt.keys.shape == (2, 2, 4, 8)  # widest part: row 1's 6 - 2 columns
    assert torch.equal(rebuilt.keys[0], torch.cat([k[1, :, 2:], k[1, :, :1]], dim=1))
    assert not rebuilt.keys[1, :, :1].any() and torch.equal(rebuilt.keys[1, :, 1:], extra[0])
    step = torch.randn(2, 2, 1, 8)
    keys, values = rebuilt.update(step, step.clone())
    assert keys.is_contiguous() and values.is_contiguous() and rebuilt.keys.shape[-2] == 5
    assert torch.equal(keys[..., 4:5, :], step) and not keys[..., 5:, :].any()
    sdpa = new_cache(_tiny_llama("sdpa").config).layers[0]
    sdpa.update(k, k.clone())
    assert sdpa.update(k[..., :1, :], k[..., :1, :])[0].shape[-2] == 6
