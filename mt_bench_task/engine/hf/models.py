"""The hf engine's model loading: a transformers model on a device in the right dtype, and the
CPU allocator tuning its KV cache needs. Which model and its tokenizer: engine/models.py."""
from __future__ import annotations

import functools
import os
from typing import TYPE_CHECKING, Any

from mt_bench_task.core.errors import DataError
from mt_bench_task.engine.models import load_tokenizer, one_line, resolve_model_path

if TYPE_CHECKING:  # heavy imports stay out of `mt-bench --help`
    import torch

_DTYPES = ("float32", "float16", "bfloat16")


def default_dtype(device: str = "cpu") -> str:
    """bfloat16 where the device supports it (recent CPU torch, CUDA with bf16); else fp16/fp32."""
    import torch

    if device.startswith("cuda"):
        return "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
    try:
        torch.ones(2, dtype=torch.bfloat16) @ torch.ones(2, dtype=torch.bfloat16)
        return "bfloat16"
    except RuntimeError:
        return "float32"


def torch_dtype(name: str | None, device: str = "cpu") -> torch.dtype:
    import torch

    name = name or default_dtype(device)
    if name not in _DTYPES:
        raise DataError(f"unknown dtype {name!r} (expected one of {list(_DTYPES)})")
    return getattr(torch, name)


def load_model_and_tokenizer(path: str, dtype: str | None = None, revision: str = "main",
                             chat_template_file: str | None = None,
                             device: str = "cpu") -> tuple[Any, Any]:
    """(model in eval mode on `device`, tokenizer); `path`: 'default', a dir or a cached hub id."""
    from transformers import AutoModelForCausalLM

    resolved = resolve_model_path(path, revision)
    tok = load_tokenizer(resolved, revision, chat_template_file)
    try:
        model: Any = AutoModelForCausalLM.from_pretrained(resolved, revision=revision,
                                                          dtype=torch_dtype(dtype, device),
                                                          local_files_only=True)
    except (OSError, ValueError) as e:  # no weights, an unknown architecture, a broken config
        raise DataError(f"model {resolved}: it does not load: {one_line(e)}") from None
    model.to(device)
    model.eval()
    if device == "cpu":
        _large_buffers_outside_the_heap()
        _use_cpu_decode_attention(model)
        from mt_bench_task.engine.hf.decode_step import has_fast_step
        from mt_bench_task.engine.hf.packed_linear import pack_linears

        # bf16: weights laid out for oneDNN once, not on every call
        pack_linears(model, fuse_siblings=has_fast_step(model))
    return model, tok


MMAP_THRESHOLD = 8 << 20  # bytes; see _large_buffers_outside_the_heap


@functools.cache
def _glibc() -> Any:
    """The C library, where it is glibc (whose allocator the two functions below tune)."""
    import ctypes
    import platform

    if platform.libc_ver()[0] != "glibc":
        return None
    try:
        return ctypes.CDLL("libc.so.6")
    except OSError:
        return None


def _large_buffers_outside_the_heap() -> bool:
    """glibc: blocks of MMAP_THRESHOLD bytes or more get their own mapping, returned to the
    system when freed. By default glibc raises that threshold (up to 32 MB) after a large
    free, and the KV cache's buffers (megabytes, a new size whenever a row joins or ends or the
    cache grows) then come from the heap and fragment it; this cuts the peak RSS at the same
    speed (benchmarks/README.md). Process-wide; a
    MALLOC_MMAP_THRESHOLD_ set by the user wins. False where it does not apply (not glibc)."""
    libc = _glibc()
    if os.environ.get("MALLOC_MMAP_THRESHOLD_") or libc is None:
        return False
    return bool(libc.mallopt(-3, MMAP_THRESHOLD))  # -3: M_MMAP_THRESHOLD


RSS_GROWTH_WORTH_A_TRIM = 256 << 20  # below it, returning pages costs more than it saves
_rss_after_trim: list[int] = []  # the process's RSS after its last trim (glibc's heap is global)


def release_free_heap(device: Any = "cpu", min_growth: int = RSS_GROWTH_WORTH_A_TRIM) -> bool:
    """glibc: give the heap's free pages back to the system (malloc_trim), once the process's
    RSS has grown by `min_growth` bytes since the last time. Freed blocks under MMAP_THRESHOLD
    stay with the process, and the sizes a growing KV cache asks for rarely fit the holes: the
    scheduler calls this after rebuilding or growing its cache, the local judge after a batch.
    Pages given back fault in again when memory is next needed, so a trim at every rebuild costs
    more than it saves: hence the growth it waits for (benchmarks/README.md). False where it
    does not apply (a model on `device` other than the CPU keeps its tensors elsewhere) or did
    not trim."""
    libc = _glibc()
    if libc is None or str(device).split(":")[0] != "cpu" or (
            _rss_after_trim and _rss_bytes() < _rss_after_trim[-1] + min_growth):
        return False
    trimmed = bool(libc.malloc_trim(0))
    _rss_after_trim[:] = [_rss_bytes()]
    return trimmed


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _use_cpu_decode_attention(model: Any) -> None:
    """SDPA models on a CPU get `attention.NAME`: the same SDPA for prompts, matmuls for the
    one-token decode steps (faster steps at hundreds of cached tokens, see attention.py)."""
    if model.config._attn_implementation != "sdpa" or not model._can_set_attn_implementation():
        return
    from mt_bench_task.engine.hf.attention import NAME

    model.set_attn_implementation(NAME)
