"""Stage 2, generate: answer the questions with a local HF model (FastChat's gen_model_answer).

Dataset: the bench's questions (`bench.Bench`); output: FastChat's answer JSONL, one line per
question. Paper: Zheng et al., arXiv:2306.05685.
Kept from FastChat: per-category temperatures, `torch.manual_seed(choice index)`, greedy below
1e-4, output cleaning, "ERROR" on a RuntimeError, the answer record and the sorted final file.
Changed on purpose: the model's own chat template (FastChat picks one by model id and silently
falls back to "one_shot"); questions are batched in one left-padded generate() per turn; answered
questions are skipped (resume); accelerate processes instead of ray workers.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from . import data
from .bench import DEFAULT_BENCH, Bench, load_bench
from .jsonl import DataError, JsonlAppender, write_lines_atomic
from .models import DEFAULT_MODEL, DEFAULT_MODEL_ID, model_id_for, resolve_model_path
from .types import Answer, Choice, Question

GREEDY_BELOW = 1e-4  # FastChat: do_sample = temperature >= 1e-4
ERROR_TEXT = "ERROR"  # FastChat's turn text when generate() raises a RuntimeError
_STATS_ENV = "MT_BENCH_GEN_STATS_FILE"  # where launched workers report stats back to the parent
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GenerationConfig:
    model_path: str = DEFAULT_MODEL
    model_id: str = DEFAULT_MODEL_ID
    data_dir: Path = Path("data") / DEFAULT_BENCH
    answer_file: Path | None = None  # None: DATA_DIR/model_answer/MODEL_ID.jsonl
    question_begin: int | None = None
    question_end: int | None = None
    max_new_token: int = 1024
    num_choices: int = 1
    dtype: str | None = None  # None: bfloat16 where supported, else float32
    revision: str = "main"
    batch_size: int = 32
    chat_template: str | None = None  # Jinja file for tokenizers without a template
    num_processes: int = 1

    @classmethod
    def from_args(cls, args: argparse.Namespace, data_dir: Path) -> GenerationConfig:
        model_path = args.model_path or DEFAULT_MODEL
        answer_path = getattr(args, "answer_file", None)  # `mt-bench run` has no --answer-file
        return cls(model_path=model_path, model_id=args.model_id or model_id_for(model_path),
                   data_dir=Path(data_dir), answer_file=Path(answer_path) if answer_path else None,
                   question_begin=args.question_begin, question_end=args.question_end,
                   max_new_token=args.max_new_token, num_choices=args.num_choices,
                   dtype=args.dtype, revision=args.revision, batch_size=args.batch_size,
                   chat_template=args.chat_template, num_processes=args.num_processes)

    @property
    def output_path(self) -> Path:
        return self.answer_file or data.answer_file(self.data_dir, self.model_id)


@dataclass(frozen=True)
class GenerationStats:
    questions: int  # questions answered in this run (resumed ones not counted)
    tokens: int  # generated tokens, all turns and choices, stop token excluded
    seconds: float  # generation wall time, model loading excluded

    @property
    def tokens_per_second(self) -> float:
        return self.tokens / self.seconds if self.seconds > 0 else 0.0


def generate_answers(cfg: GenerationConfig, bench: Bench | None = None) -> GenerationStats:
    """Answer every selected question of `bench` (default: MT-bench, or DATA_DIR's own
    question.jsonl) not yet in the answer file; return what this run did."""
    _validate(cfg)
    bench = bench or load_bench(data_dir=cfg.data_dir)
    out = cfg.output_path
    questions = bench.select(cfg.question_begin, cfg.question_end)
    if not questions:
        _say(f"no questions selected (--question-begin {cfg.question_begin} "
             f"--question-end {cfg.question_end}); nothing to do")
        return GenerationStats(0, 0, 0.0)
    pending = data.pending_questions(questions, out, cfg.num_choices)  # DataError before any work
    if not pending:
        _say(f"all {len(questions)} questions already answered in {out}; nothing to do")
        return GenerationStats(0, 0, 0.0)
    model_path = resolve_model_path(cfg.model_path, cfg.revision)  # converts 'default' once, here
    if cfg.num_processes > 1 and not _launched():
        return _relaunch(cfg, model_path, bench)
    return _generate(cfg, model_path, questions, pending, out, bench)


def reorganize_answer_file(path: Path) -> None:
    """FastChat's reorg_answer_file: one line per question id (last wins), sorted, bytes kept."""
    by_qid: dict[int, str] = {}
    for line in path.read_text(encoding="utf-8").split("\n"):
        if line.strip():
            by_qid[json.loads(line)["question_id"]] = line
    write_lines_atomic(path, [by_qid[qid] for qid in sorted(by_qid)])


def _validate(cfg: GenerationConfig) -> None:
    for name in ("max_new_token", "num_choices", "batch_size", "num_processes"):
        if getattr(cfg, name) < 1:
            raise DataError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(cfg, name)}")


def _launched() -> bool:
    """True inside `accelerate launch` / torchrun workers (they set WORLD_SIZE)."""
    return "WORLD_SIZE" in os.environ


def _say(msg: str) -> None:
    if os.environ.get("RANK", "0") == "0":  # once, not once per worker
        print(msg)


# ---- several processes: re-run this command under `accelerate launch` ----
def _relaunch(cfg: GenerationConfig, model_path: str, bench: Bench) -> GenerationStats:
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu",
           "--num_processes", str(cfg.num_processes), "--num_machines", "1",
           "--mixed_precision", "no", "--dynamo_backend", "no",
           # port 0 makes accelerate abort, so pick a free one ourselves
           "--main_process_port", str(_free_port()),
           "-m", "mt_bench_task.cli", "gen", "--bench-name", bench.name,
           *_gen_cli_args(cfg, model_path)]
    with tempfile.TemporaryDirectory() as tmp:
        stats_file = Path(tmp) / "stats.json"
        rc = subprocess.run(cmd, env={**os.environ, _STATS_ENV: str(stats_file)}).returncode
        if rc != 0:
            raise DataError(f"{cfg.num_processes} accelerate worker processes failed "
                            f"(exit code {rc}); see their output above")
        if not stats_file.is_file():  # workers found nothing to do
            return GenerationStats(0, 0, 0.0)
        return GenerationStats(**json.loads(stats_file.read_text()))


def _gen_cli_args(cfg: GenerationConfig, model_path: str) -> list[str]:
    args = ["--model-path", model_path, "--model-id", cfg.model_id,
            "--data-dir", str(cfg.data_dir.resolve()),
            "--answer-file", str(cfg.output_path.resolve()),
            "--max-new-token", str(cfg.max_new_token), "--num-choices", str(cfg.num_choices),
            "--revision", cfg.revision, "--batch-size", str(cfg.batch_size),
            "--num-processes", str(cfg.num_processes)]
    template = str(Path(cfg.chat_template).resolve()) if cfg.chat_template else None
    optional = {"--question-begin": cfg.question_begin, "--question-end": cfg.question_end,
                "--dtype": cfg.dtype, "--chat-template": template}
    for flag, value in optional.items():
        if value is not None:
            args += [flag, str(value)]
    return args


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---- the generation loop (one process, or one of several) ----
def _generate(cfg: GenerationConfig, model_path: str, questions: Sequence[Question],
              pending: list[Question], out: Path, bench: Bench) -> GenerationStats:
    import torch
    from accelerate import PartialState
    from accelerate.utils import gather_object
    from tqdm import tqdm

    from .models import load_model_and_tokenizer

    # cpu=True is what makes `--multi_gpu` workers on a CPU machine real gloo processes
    state = PartialState(cpu=not torch.cuda.is_available())
    if len(pending) < len(questions):
        _say(f"resuming: {len(questions) - len(pending)} of {len(questions)} questions "
             f"already answered in {out}")
    model, tok = load_model_and_tokenizer(model_path, cfg.dtype, cfg.revision, cfg.chat_template,
                                          device=str(state.device))
    bar = tqdm(total=len(pending), desc=f"gen {cfg.model_id}", unit="q",
               disable=not state.is_main_process)
    appender = JsonlAppender(out) if state.is_main_process else None
    tokens = 0
    start = time.perf_counter()
    with state.split_between_processes(pending) as shard:
        batches = _make_batches(shard, tok, cfg.batch_size, bench)
        # every worker must join every gather, so all loop as often as the busiest one
        rounds = max(gather_object([len(batches)]))
        for r in range(rounds):
            mine = (_answer_batch(model, tok, batches[r], cfg, bench.temperature(batches[r][0].category))
                    if r < len(batches) else ([], 0))
            for answers, batch_tokens in gather_object([mine]):
                tokens += batch_tokens
                if appender is not None:
                    for answer in answers:
                        appender.write(answer.to_json())
                bar.update(len(answers))
    seconds = time.perf_counter() - start
    bar.close()
    stats = GenerationStats(len(pending), tokens, seconds)
    if appender is not None:
        appender.close()
        reorganize_answer_file(out)
        print(f"generated {stats.questions} questions, {stats.tokens} tokens in "
              f"{stats.seconds:.1f} s ({stats.tokens_per_second:.1f} tok/s) -> {out}")
        if os.environ.get(_STATS_ENV):
            Path(os.environ[_STATS_ENV]).write_text(json.dumps(asdict(stats)))
    if state.num_processes > 1:
        state.destroy_process_group()
    return stats


def _make_batches(shard: Sequence[Question], tok: Any, batch_size: int,
                  bench: Bench) -> list[list[Question]]:
    """Batches of one temperature each (one generate() call has one setting), similar prompt
    lengths together (less padding), and evenly sized within a temperature (no stragglers:
    40 questions at batch size 32 run as 20 + 20, not 32 + 8); the order is a pure function of
    the shard."""
    def key(q: Question) -> tuple[float, int, int]:
        length = len(tok(q.turns[0], add_special_tokens=False)["input_ids"])
        return (bench.temperature(q.category), length, q.question_id)

    groups: dict[float, list[Question]] = {}
    for q in sorted(shard, key=key):
        groups.setdefault(bench.temperature(q.category), []).append(q)
    batches: list[list[Question]] = []
    for group in groups.values():
        n = -(-len(group) // batch_size)  # ceil
        size, extra = divmod(len(group), n)
        start = 0
        for i in range(n):
            end = start + size + (i < extra)
            batches.append(group[start:end])
            start = end
    return batches


def _answer_batch(model: Any, tok: Any, batch: list[Question], cfg: GenerationConfig,
                  temperature: float) -> tuple[list[Answer], int]:
    """All turns of all choices of one batch (one temperature); turn j+1 sees each question's
    cleaned answer j."""
    import shortuuid
    import torch

    turns_by_choice: list[list[list[str]]] = []
    tokens = 0
    for choice in range(cfg.num_choices):
        torch.manual_seed(choice)  # FastChat seeds each choice with its index
        convs: list[list[dict[str, str]]] = [[] for _ in batch]
        turns: list[list[str]] = [[] for _ in batch]
        for j in range(max(len(q.turns) for q in batch)):
            rows = [k for k, q in enumerate(batch) if len(q.turns) > j]
            for k in rows:
                convs[k].append({"role": "user", "content": batch[k].turns[j]})
            texts, counts = _generate_turn(model, tok, [convs[k] for k in rows], temperature,
                                           cfg.max_new_token)
            for k, text in zip(rows, texts):
                convs[k].append({"role": "assistant", "content": text})
                turns[k].append(text)
            tokens += sum(counts)
        turns_by_choice.append(turns)
    answers = [Answer(question_id=q.question_id, answer_id=shortuuid.uuid(), model_id=cfg.model_id,
                      choices=[Choice(i, turns_by_choice[i][k]) for i in range(cfg.num_choices)],
                      tstamp=time.time())
               for k, q in enumerate(batch)]
    return answers, tokens


STATIC_CACHE_BUCKET = 256  # static KV cache lengths are rounded up to this (fewer recompiles)
_static_cache_failed = False  # set once the static-cache path raised: the rest of the run is eager


def _use_static_cache(model: Any, static_cache: bool | None) -> bool:
    """Static KV cache + torch.compile (transformers compiles the decode step itself): on CUDA
    only, unless MT_BENCH_STATIC_CACHE=0; CPU never (compiling costs more than it gains there)."""
    if static_cache is not None:
        return static_cache
    device = getattr(getattr(model, "device", None), "type", None)
    return (device == "cuda" and not _static_cache_failed
            and os.environ.get("MT_BENCH_STATIC_CACHE", "1") != "0")


def _generate_turn(model: Any, tok: Any, convs: list[list[dict[str, str]]], temperature: float,
                   max_new_tokens: int, static_cache: bool | None = None
                   ) -> tuple[list[str], list[int]]:
    """One left-padded generate() for a batch of conversations -> (clean texts, token counts).

    static_cache: None = on CUDA (see _use_static_cache). It changes speed, not the algorithm: the
    same greedy/sampled decoding; the cache length is rounded up to a multiple of
    STATIC_CACHE_BUCKET and transformers keeps the largest length seen, so later turns reuse the
    compiled decode step instead of recompiling for every prompt length. If that path raises, the
    batch is redone (and the run continues) with the ordinary dynamic cache.
    """
    global _static_cache_failed
    import torch

    prompts = tok.apply_chat_template(convs, add_generation_prompt=True, tokenize=False)
    enc = tok(prompts, return_tensors="pt", padding=True, add_special_tokens=False).to(model.device)
    do_sample = temperature >= GREEDY_BELOW
    # like FastChat, no top_p/top_k: the model's generation_config defaults apply
    kwargs: dict[str, Any] = {"max_new_tokens": max_new_tokens, "do_sample": do_sample,
                              "pad_token_id": tok.pad_token_id}
    if do_sample:
        kwargs["temperature"] = temperature
    output = None
    if _use_static_cache(model, static_cache):
        needed = enc["input_ids"].shape[1] + max_new_tokens
        bucket = -(-needed // STATIC_CACHE_BUCKET) * STATIC_CACHE_BUCKET
        try:
            with torch.inference_mode():
                output = model.generate(**enc, **kwargs, cache_implementation="static",
                                        max_cache_len=bucket)
        except Exception as e:  # compile or static-cache trouble: fall back, don't write ERROR
            log.warning("static-cache generate() failed (%s: %s); using the dynamic cache from "
                        "now on", type(e).__name__, e)
            _static_cache_failed = True
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
    try:
        if output is None:
            with torch.inference_mode():
                output = model.generate(**enc, **kwargs)
    except RuntimeError as e:
        log.error("generate() failed for a batch of %d conversations: %s; writing %r",
                  len(convs), e, ERROR_TEXT)
        return [ERROR_TEXT] * len(convs), [0] * len(convs)
    new_tokens = output[:, enc["input_ids"].shape[1]:].tolist()
    stop_ids = _stop_token_ids(model, tok)
    cleaned = [_clean_output(tok, ids, stop_ids) for ids in new_tokens]
    return [text for text, _ in cleaned], [n for _, n in cleaned]


def _stop_token_ids(model: Any, tok: Any) -> set[int]:
    eos = getattr(model.generation_config, "eos_token_id", None)
    ids = set(eos if isinstance(eos, list) else [eos]) | {tok.eos_token_id}
    return {i for i in ids if i is not None}


def _clean_output(tok: Any, ids: list[int], stop_ids: set[int]) -> tuple[str, int]:
    """FastChat's post-processing: cut at the first stop token (padding comes after it), decode,
    remove special-token strings, strip."""
    cut = next((n for n, t in enumerate(ids) if t in stop_ids), len(ids))
    text = tok.decode(ids[:cut], spaces_between_special_tokens=False)
    for special in tok.special_tokens_map.values():
        for s in special if isinstance(special, list) else [special]:
            text = text.replace(s, "")
    return text.strip(), cut
