"""The local judge's prompt-prefix reuse (kv_cache.PrefixStore): a prompt that opens like a
recent one prefills only its rest, and its cache and logits are those of a full prefill."""
from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")


def _tiny_llama():
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=97, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=8, num_key_value_heads=2, max_position_embeddings=256)
    return LlamaForCausalLM(config).eval()


def _full_prefill(model, ids):
    from mt_bench_task.engine.hf.kv_cache import cache_kwarg, new_cache

    cache = new_cache(model.config)
    out = model(input_ids=torch.tensor([ids]), **{cache_kwarg(model): cache}, use_cache=True, logits_to_keep=1)
    return cache, out.logits[:, -1]


def test_shared_openings_are_reused_and_give_the_full_prefills_numbers():
    from mt_bench_task.engine.hf.kv_cache import PrefixStore

    model = _tiny_llama()
    g = torch.Generator().manual_seed(2)
    system = torch.randint(1, 97, (40,), generator=g).tolist()  # a shared system prompt
    prompts = [system + torch.randint(1, 97, (n,), generator=g).tolist() for n in (7, 30, 1)]
    prompts.append(torch.randint(1, 97, (25,), generator=g).tolist())  # shares nothing
    prompts.append(list(prompts[1]))  # the same prompt again: all but its last token reused
    store = PrefixStore(min_shared=16)
    reused = []
    with torch.inference_mode():
        for ids in prompts:
            before = store.reused_tokens
            cache, logits = store.prefill(model, ids)
            reused.append(store.reused_tokens - before)
            want_cache, want_logits = _full_prefill(model, ids)
            torch.testing.assert_close(logits, want_logits)
            for got, want in zip(cache.layers, want_cache.layers):
                assert got.keys.shape == want.keys.shape == (1, 2, len(ids), 8)
                torch.testing.assert_close(got.keys, want.keys)
                torch.testing.assert_close(got.values, want.values)
    assert reused == [0, 40, 40, 0, len(prompts[1]) - 1]


def test_a_reused_cache_is_its_own_copy():
    """Decoding appends to (and the judge's batch join replaces) a row's cache in place: the
    store must not see those writes."""
    from mt_bench_task.engine.hf.kv_cache import PrefixStore

    model = _tiny_llama()
    ids = list(range(1, 30))
    store = PrefixStore(min_shared=4)
    with torch.inference_mode():
        cache, _ = store.prefill(model, ids)
        for layer in cache.layers:
            layer.keys.fill_(7.0)
            layer.update(torch.ones(1, 2, 3, 8), torch.ones(1, 2, 3, 8))
        again, logits = store.prefill(model, ids + [5])
        torch.testing.assert_close(logits, _full_prefill(model, ids + [5])[1])


def test_keep_0_stores_nothing():
    from mt_bench_task.engine.hf.kv_cache import PrefixStore

    model = _tiny_llama()
    store = PrefixStore(keep=0, min_shared=1)
    with torch.inference_mode():
        for _ in range(2):
            store.prefill(model, list(range(1, 20)))
    assert store.reused_tokens == 0
