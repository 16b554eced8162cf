"""Stage 2, generate: answer the questions with a local HF model (FastChat's gen_model_answer).

Dataset: the bench's questions (`bench.Bench`); output: FastChat's answer JSONL, one line per
question. Paper: Zheng et al., arXiv:2306.05685.
Kept from FastChat: per-category temperatures, `torch.manual_seed(choice index)`, greedy below
1e-4, output cleaning, "ERROR" on a RuntimeError, the answer record and the sorted final file.
Changed on purpose: the model's own chat template (FastChat picks one by model id and silently
falls back to "one_shot"); every (question, choice, turn) is a request in one continuous batch of
all temperatures (scheduler.py), a question's turn 2 entering as soon as its turn 1 is done;
answered questions are skipped (resume); accelerate processes instead of ray workers.
Seeds: each (question, choice) samples from its own torch.Generator seeded with the choice index,
turn 2 continuing turn 1's stream: FastChat's `torch.manual_seed(i)` stream per question, kept
independent of what else is in the batch.
"""
from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mt_bench_task.core import data
from mt_bench_task.core.bench import DEFAULT_BENCH, Bench, load_bench
from mt_bench_task.core.jsonl import DataError, JsonlAppender, write_lines_atomic
from mt_bench_task.core.types import (
    GEN_ERROR_OUTPUT,
    Answer,
    Choice,
    Question,
    QuestionId,
    question_key,
    sort_question_keys,
)
from mt_bench_task.engine.hf.batch_requests import GREEDY_BELOW, Request  # noqa: F401  (GREEDY_BELOW: FastChat's threshold)
from mt_bench_task.engine.hf.models import DEFAULT_MODEL, DEFAULT_MODEL_ID, resolve_model_path

SYNC_STEPS = 16  # decode steps between two gathers of finished answers (several processes)


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
    batch_size: int = 32  # most rows (question x choice x turn) in flight at once
    chat_template: str | None = None  # Jinja file for tokenizers without a template
    num_processes: int = 1

    @property
    def output_path(self) -> Path:
        return self.answer_file or data.answer_file(self.data_dir, self.model_id)


@dataclass(frozen=True)
class GenerationStats:
    questions: int  # questions answered in this run (resumed ones not counted)
    tokens: int  # generated tokens, all turns and choices, stop token excluded
    seconds: float  # generation wall time, model loading excluded
    selected: int = 0  # questions in the selected range
    path: str = ""  # the answer file

    @property
    def tokens_per_second(self) -> float:
        return self.tokens / self.seconds if self.seconds > 0 else 0.0

    def summary(self) -> str:
        """One line for the CLI to print."""
        if not self.selected:
            return "no questions selected; nothing to do"
        if not self.questions:
            return f"all {self.selected} questions already answered in {self.path}; nothing to do"
        resumed = self.selected - self.questions
        note = f" ({resumed} already answered, kept)" if resumed else ""
        return (f"generated {self.questions} questions{note}, {self.tokens} tokens in "
                f"{self.seconds:.1f} s ({self.tokens_per_second:.1f} tok/s) -> {self.path}")


def generate_answers(cfg: GenerationConfig, bench: Bench | None = None) -> GenerationStats:
    """Answer every selected question of `bench` (default: MT-bench, or DATA_DIR's own
    question.jsonl) not yet in the answer file; return what this run did."""
    _validate(cfg)
    bench = bench or load_bench(data_dir=cfg.data_dir)
    out = cfg.output_path
    questions = bench.select(cfg.question_begin, cfg.question_end)
    if not questions:
        return GenerationStats(0, 0, 0.0, 0, str(out))
    pending = data.pending_questions(questions, out, cfg.num_choices)  # DataError before any work
    if not pending:
        return GenerationStats(0, 0, 0.0, len(questions), str(out))
    model_path = resolve_model_path(cfg.model_path, cfg.revision)  # converts 'default' once, here
    if cfg.num_processes > 1 and not _launched():
        from mt_bench_task.engine.gen_worker import relaunch

        return relaunch(cfg, model_path, bench)
    return _generate(cfg, model_path, questions, pending, out, bench)


def reorganize_answer_file(path: Path, order: Sequence[QuestionId] = ()) -> None:
    """FastChat's reorg_answer_file: one line per question (last wins; 1 and "1" are one),
    sorted by id (`types.sort_question_keys`: string ids keep `order`, the question file's),
    bytes kept."""
    by_qid: dict[QuestionId, str] = {}
    for line in path.read_text(encoding="utf-8").split("\n"):
        if line.strip():
            by_qid[question_key(json.loads(line)["question_id"])] = line
    write_lines_atomic(path, [by_qid[qid] for qid in sort_question_keys(by_qid, order)])


def _validate(cfg: GenerationConfig) -> None:
    for name in ("max_new_token", "num_choices", "batch_size", "num_processes"):
        if getattr(cfg, name) < 1:
            raise DataError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(cfg, name)}")


def _launched() -> bool:
    """True inside `accelerate launch` / torchrun workers (they set WORLD_SIZE)."""
    return "WORLD_SIZE" in os.environ



# ---- the generation loop (one process, or one of several) ----
class _Conversation:
    """One (question, choice): its messages so far and its finished turns."""

    def __init__(self, question: Question, choice: int, generator: Any,
                 temperature: float) -> None:
        self.question, self.choice, self.generator = question, choice, generator
        self.temperature = temperature
        self.messages: list[dict[str, str]] = []
        self.turns: list[str] = []
        self.last: Request | None = None  # the latest turn's request (its KV starts the next)

    @property
    def done(self) -> bool:
        return len(self.turns) == len(self.question.turns)

    def next_request(self, tok: Any, max_new_tokens: int) -> Request:
        """The request for the next turn; its prompt holds every earlier cleaned answer."""
        self.messages.append({"role": "user", "content": self.question.turns[len(self.turns)]})
        text = tok.apply_chat_template(self.messages, add_generation_prompt=True, tokenize=False)
        ids = tok(text, add_special_tokens=False)["input_ids"]
        self.last = Request(ids, self.temperature, max_new_tokens, generator=self.generator,
                            priority=bool(self.turns), owner=self, after=self.last,
                            keep_cache=len(self.turns) + 1 < len(self.question.turns))
        return self.last

    def record(self, text: str) -> None:
        self.messages.append({"role": "assistant", "content": text})
        self.turns.append(text)


def _generate(cfg: GenerationConfig, model_path: str, questions: Sequence[Question],
              pending: list[Question], out: Path, bench: Bench) -> GenerationStats:
    import torch
    from accelerate import PartialState
    from accelerate.utils import gather_object
    from tqdm import tqdm

    from mt_bench_task.engine.hf.models import load_model_and_tokenizer

    # cpu=True is what makes `--multi_gpu` workers on a CPU machine real gloo processes
    state = PartialState(cpu=not torch.cuda.is_available())
    model, tok = load_model_and_tokenizer(model_path, cfg.dtype, cfg.revision, cfg.chat_template,
                                          device=str(state.device))
    bar = tqdm(total=len(pending), desc=f"gen {cfg.model_id}", unit="q",
               disable=not state.is_main_process)
    appender = JsonlAppender(out) if state.is_main_process else None
    tokens = 0
    start = time.perf_counter()
    with state.split_between_processes(pending) as shard:
        work = _Work(model, tok, shard, cfg, bench)
        while True:  # every worker joins every gather, until none has work left
            mine = work.advance(SYNC_STEPS)
            gathered = gather_object([mine])
            for answers, batch_tokens, _ in gathered:
                tokens += batch_tokens
                if appender is not None:
                    for answer in answers:
                        appender.write(answer.to_json())
                bar.update(len(answers))
            if not any(busy for _, _, busy in gathered):
                break
    seconds = time.perf_counter() - start
    bar.close()
    stats = GenerationStats(len(pending), tokens, seconds, len(questions), str(out))
    if appender is not None:
        appender.close()
        reorganize_answer_file(out, [q.key for q in bench.questions])
    if state.num_processes > 1:
        state.destroy_process_group()
    return stats


class _Work:
    """One process's questions through one ContinuousBatcher; finished questions come out as
    Answers (all choices and turns done)."""

    def __init__(self, model: Any, tok: Any, shard: Sequence[Question],
                 cfg: GenerationConfig, bench: Bench) -> None:
        import torch

        from mt_bench_task.engine.hf.scheduler import ContinuousBatcher

        self.tok, self.cfg = tok, cfg
        self.batcher = ContinuousBatcher(model, cfg.batch_size, _stop_token_ids(model, tok),
                                         tok.pad_token_id)
        self.open: dict[QuestionId, list[_Conversation]] = {}
        first: list[Request] = []
        for q in shard:
            convs = [_Conversation(q, c, torch.Generator(model.device).manual_seed(c),
                                   bench.temperature(q.category))
                     for c in range(cfg.num_choices)]
            self.open[q.question_id] = convs
            first += [conv.next_request(tok, cfg.max_new_token) for conv in convs]
        # length buckets: similar prompt lengths are admitted together (less padding)
        position = {q.key: i for i, q in enumerate(shard)}  # ids may be strings: file order
        for r in sorted(first, key=lambda r: (len(r.prompt_ids), position[r.owner.question.key],
                                               r.owner.choice)):
            self.batcher.add(r)

    def advance(self, steps: int) -> tuple[list[Answer], int, bool]:
        """Up to `steps` decode steps -> (questions finished, tokens generated, work left)."""
        answers: list[Answer] = []
        tokens = 0
        for _ in range(steps):
            if not self.batcher.busy:
                break
            for fin in self.batcher.step():
                conv: _Conversation = fin.request.owner
                if fin.token_ids is None:
                    text, n = GEN_ERROR_OUTPUT, 0
                else:
                    text, n = _clean_output(self.tok, fin.token_ids, self.batcher.stop_ids)
                conv.record(text)
                tokens += n
                if not conv.done:
                    self.batcher.add(conv.next_request(self.tok, self.cfg.max_new_token))
                elif all(c.done for c in self.open[conv.question.question_id]):
                    answers.append(self._answer(self.open.pop(conv.question.question_id)))
        return answers, tokens, self.batcher.busy

    def _answer(self, convs: list[_Conversation]) -> Answer:
        import shortuuid

        return Answer(question_id=convs[0].question.question_id, answer_id=shortuuid.uuid(),
                      model_id=self.cfg.model_id,
                      choices=[Choice(c.choice, c.turns) for c in convs], tstamp=time.time())


def _stop_token_ids(model: Any, tok: Any) -> set[int]:
    eos = getattr(model.generation_config, "eos_token_id", None)
    ids = set(eos if isinstance(eos, list) else [eos]) | {tok.eos_token_id}
    return {i for i in ids if i is not None}


def _clean_output(tok: Any, ids: list[int], stop_ids: set[int]) -> tuple[str, int]:
    """FastChat's post-processing: cut at the first stop token, decode, remove special-token
    strings, strip."""
    cut = next((n for n, t in enumerate(ids) if t in stop_ids), len(ids))
    text = tok.decode(ids[:cut], spaces_between_special_tokens=False)
    for special in tok.special_tokens_map.values():
        for s in special if isinstance(special, list) else [special]:
            text = text.replace(s, "")
    return text.strip(), cut
