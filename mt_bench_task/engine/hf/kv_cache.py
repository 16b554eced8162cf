"""The scheduler's KV cache: a transformers DynamicCache whose layers append in place.

DynamicLayer appends a decode step's keys with torch.cat, which copies the whole cache every
step (measured: a quarter of a decode step for SmolLM2-135M at 16 rows on CPU). These layers keep
their keys/values in a buffer with room at the end and write each step into it; `keys`/`values`
are views of the filled part. Rows that ended, leading all-padding columns and newly prefilled
rows are dealt with together (`restack`): one copy into new buffers, at the rare steps where the
batch changes.

With attention.NAME (CPU), a one-token step gets the whole buffers instead: a view of the filled
part is not contiguous, and the decode matmuls would copy it (both keys and values, every layer,
every step: a sixth of a decode step). The columns past the filled part are zeros or stale keys,
and the attention masks them out (it knows the real length from the mask).
Imports transformers: load lazily.
"""
from __future__ import annotations

import inspect
from typing import Any

import torch
import torch.nn.functional as F
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer


def _room(n: int) -> int:
    # spare columns when a buffer grows: few, since a decode step reads all of them (the
    # 16-question bench read 1.92 columns per real token with n + 64 + n // 8; this: 3 % less
    # time, and rebuilds reset the room more often than steps use it up)
    return n + 16 + n // 32


class AppendLayer(DynamicLayer):
    def __init__(self, whole_buffer_steps: bool = False) -> None:
        self._k: Any = None
        self._v: Any = None
        self._n = 0
        self.whole_buffer_steps = whole_buffer_steps  # one-token updates return the buffers
        super().__init__()

    @property  # type: ignore[override]
    def keys(self) -> Any:
        return None if self._k is None else self._k[..., :self._n, :]

    @keys.setter
    def keys(self, value: Any) -> None:
        self._k, self._n = value, (0 if value is None or value.dim() < 4 else value.shape[-2])

    @property  # type: ignore[override]
    def values(self) -> Any:
        return None if self._v is None else self._v[..., :self._n, :]

    @values.setter
    def values(self, value: Any) -> None:
        self._v = value

    def lazy_initialization(self, key_states: Any, value_states: Any) -> None:
        self.device, self._k, self._v, self._n = key_states.device, None, None, 0
        self.is_initialized = True

    def update(self, key_states: Any, value_states: Any, *args: Any, **kwargs: Any
               ) -> tuple[Any, Any]:
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        need = self._n + key_states.shape[-2]
        if self._k is None or need > self._k.shape[-2]:
            self._k, self._v = (_grow(t, self._n, need, like) for t, like in
                                ((self._k, key_states), (self._v, value_states)))
        self._k[..., self._n:need, :] = key_states
        self._v[..., self._n:need, :] = value_states
        self._n = need
        if self.whole_buffer_steps and key_states.shape[-2] == 1:
            return self._k, self._v
        return self.keys, self.values

    def reserve(self, need: int) -> int:
        """Room for `need` columns in the buffers (grown as update would); their width."""
        if need > self._k.shape[-2]:
            self._k, self._v = (_grow(t, self._n, need, t) for t in (self._k, self._v))
        return int(self._k.shape[-2])

    def batch_select_indices(self, indices: Any) -> None:
        if self._k is not None:
            self._k, self._v = self._k[indices], self._v[indices]

    def set_buffers(self, keys: Any, values: Any, filled: int) -> None:
        """Take over `keys`/`values` (buffers whose first `filled` columns are the cache)."""
        self.device, self.is_initialized = keys.device, True
        self._k, self._v, self._n = keys, values, filled

    def crop_to(self, length: int) -> None:
        self._n = min(self._n, length)


def _grow(buf: Any, n: int, need: int, like: Any) -> Any:
    shape = list(like.shape)
    shape[-2] = _room(need)
    new = like.new_zeros(shape)  # zeros, not garbage: masked columns still enter p @ v
    if buf is not None and n:
        new[..., :n, :] = buf[..., :n, :]
    return new


def cache_kwarg(model: Any) -> str:
    """The forward's name for the KV cache: `cache` from transformers 5.20 on (`past_key_values`
    is deprecated there), `past_key_values` before (vLLM pins transformers < 5.20)."""
    params = inspect.signature(getattr(model, "forward", model.__call__)).parameters
    return "cache" if "cache" in params else "past_key_values"


def new_cache(config: Any) -> Any:
    from mt_bench_task.engine.hf.attention import NAME

    cache = DynamicCache(config=config)
    whole = getattr(config, "_attn_implementation", None) == NAME
    cache.layers = [AppendLayer(whole) for _ in cache.layers]
    return cache


def restack(config: Any, cache: Any, keep: list[int], first: int, added: list[Any]) -> Any:
    """`cache` (a new one if None) rebuilt as its rows `keep` (ascending) from column `first` on,
    then every row of each cache in `added`, all left-padded with zeros to the widest, in new
    buffers with room to grow. The kept rows are copied once (selecting rows, cutting leading
    columns and appending rows one after another copied them three times), a layer at a time:
    each layer's old buffers are freed as soon as its new ones are filled, so a rebuild needs
    one layer's worth of memory more, not a second cache."""
    parts = [(cache.layers, keep, first)] if cache is not None and keep else []
    parts += [(c.layers, list(range(c.layers[0].keys.shape[0])), 0) for c in added]
    width = max(layers[0].keys.shape[-2] - cut for layers, _, cut in parts)
    out = cache if cache is not None else new_cache(config)
    for i, layer in enumerate(out.layers):
        k, v = (_restacked([(getattr(layers[i], name)[..., cut:, :], rows)
                            for layers, rows, cut in parts], width) for name in ("keys", "values"))
        layer.set_buffers(k, v, width)
    return out


def _restacked(parts: list[tuple[Any, list[int]]], width: int) -> Any:
    """Rows `rows` of each tensor [rows, heads, columns, dim], right-aligned to `width` columns
    in one zero-filled buffer with room for more columns (copied by runs of consecutive rows)."""
    like = parts[0][0]
    total = sum(len(rows) for _, rows in parts)
    out = like.new_zeros((total, like.shape[1], _room(width), like.shape[3]))
    at = 0
    for t, rows in parts:
        start = width - t.shape[-2]
        for lo, hi in _runs(rows):
            out[at:at + hi - lo, :, start:width] = t[lo:hi]
            at += hi - lo
    return out


def _runs(rows: list[int]) -> list[tuple[int, int]]:
    """Ascending row indices as [lo, hi) runs of consecutive ones."""
    runs: list[tuple[int, int]] = []
    for r in rows:
        if runs and runs[-1][1] == r:
            runs[-1] = (runs[-1][0], r + 1)
        else:
            runs.append((r, r + 1))
    return runs


def concat(caches: list[Any], lengths: list[int]) -> tuple[Any, Any]:
    """One batch from single-row caches of `lengths` tokens, left-padded to the longest:
    (the first cache, now holding all rows; the attention mask, 1 = a real token)."""
    length = max(lengths)
    for i, layer in enumerate(caches[0].layers):
        parts = [c.layers[i] for c in caches]
        layer.keys, layer.values = (_left_padded([getattr(p, name) for p in parts], length)
                                    for name in ("keys", "values"))
    mask = torch.zeros((len(lengths), length), dtype=torch.long)
    for row, n in enumerate(lengths):
        mask[row, length - n:] = 1
    return caches[0], mask


def row_columns(cache: Any, row: int, start: int, end: int) -> list[tuple[Any, Any]]:
    """A copy of one row's columns [start, end) in every layer: (keys, values) [1, heads, n, dim]."""
    return [(layer.keys[row:row + 1, :, start:end].clone(),
             layer.values[row:row + 1, :, start:end].clone()) for layer in cache.layers]


def with_pasts(config: Any, pasts: list[list[tuple[Any, Any]] | None], kept: list[int]) -> Any:
    """A new cache whose rows hold the first `kept[i]` columns of `pasts[i]` (row_columns
    copies), left-padded with zeros to the longest."""
    cache = new_cache(config)
    width = max(kept)
    if not width:
        return cache
    some = next(p for p, n in zip(pasts, kept) if p and n)
    for i, layer in enumerate(cache.layers):
        blank = some[i][0][..., :0, :]  # a row with nothing kept: all padding
        k, v = (_restacked([((p[i][j] if p and n else blank)[..., :n, :], [0])
                            for p, n in zip(pasts, kept)], width) for j in (0, 1))
        layer.set_buffers(k, v, width)  # written once, into the buffers the prefill appends to
    return cache


def _left_padded(rows: list[Any], width: int) -> Any:
    """`rows` (keys or values, [rows, heads, columns, dim]) in one tensor, each left-padded with
    zeros to `width` columns."""
    return torch.cat([F.pad(t, (0, 0, width - t.shape[-2], 0)) for t in rows])


def buffer_width(cache: Any) -> int:
    """The columns the buffers of `cache` (new_cache's) hold, room included."""
    return int(cache.layers[0]._k.shape[-2])


def crop_to(cache: Any, length: int) -> None:
    for layer in cache.layers:
        layer.crop_to(length)


class PrefixStore:
    """The first tokens' KV of recently prefilled prompts, so a prompt that starts like one of
    them prefills only the rest. Judge prompts open with one of FastChat's few system prompts
    and templates: about a fifth of the local judge's prompt tokens. The reuse is exact up to
    float rounding (the same keys and values, the rest attends to them causally)."""

    def __init__(self, keep: int = 8, max_tokens: int = 512, min_shared: int = 16) -> None:
        self.keep, self.max_tokens, self.min_shared = keep, max_tokens, min_shared
        self._recent: list[tuple[list[int], list[tuple[Any, Any]]]] = []  # newest last
        self.reused_tokens = 0

    def prefill(self, model: Any, ids: list[int]) -> tuple[Any, Any]:
        """A single-row cache holding `ids` and the logits after its last token."""
        n, source = 0, None
        for prev, kv in self._recent:
            m = shared_len(prev, ids)
            if m > n:
                n, source = m, kv
        n = min(n, len(ids) - 1)  # the last token always runs: its logits are needed
        cache = new_cache(model.config)
        if source is None or n < self.min_shared:
            n = 0
        else:
            for layer, (k, v) in zip(cache.layers, source):
                layer.update(k[..., :n, :], v[..., :n, :])  # copied into the row's own buffer
            self.reused_tokens += n
        out = model(input_ids=torch.tensor([ids[n:]]), use_cache=True, logits_to_keep=1,
                    **{cache_kwarg(model): cache})
        if self.keep > 0:
            head = min(len(ids), self.max_tokens)
            self._recent.append((ids[:head], [(layer.keys[..., :head, :].clone(),
                                               layer.values[..., :head, :].clone())
                                              for layer in cache.layers]))
            del self._recent[:-self.keep]
        return cache, out.logits[:, -1]


def shared_len(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n
