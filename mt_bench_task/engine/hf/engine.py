"""The `hf` engine: our continuous batcher (scheduler.py) on a transformers model, behind the
seam (engine/base.py), with accelerate for several processes.

What it keeps per (question, choice) across turns, and why:
- one torch.Generator seeded with the request's seed (the choice index), turn 2 drawing on from
  where turn 1 stopped: FastChat's `torch.manual_seed(i)` stream per question, independent of
  what else is in the batch;
- the previous turn's batch request, whose KV cache the next turn reuses (`after`,
  `keep_cache`): turn 2's prompt starts with turn 1's prompt and answer.
Turn-1 requests are admitted shortest prompt first (similar lengths prefill together, less
padding); later turns go first (`priority`), so a question finishes soon after it starts.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from mt_bench_task.core.ids import QuestionId, id_order
from mt_bench_task.core.types import GEN_ERROR_OUTPUT, Question
from mt_bench_task.engine.base import (
    GenRequest,
    GenResult,
    gen_result,
    model_think_tags,
    prompt_ids,
    stop_token_ids,
)
from mt_bench_task.engine.config import GenerationConfig
from mt_bench_task.engine.driver import SYNC_STEPS, AnswerSink, Work
from mt_bench_task.engine.hf.batch_requests import Request


class HfEngine:
    name = "hf"

    def __init__(self, model: Any, tok: Any, batch_size: int,
                 think_tags: tuple[str, str] | None = None) -> None:
        """`think_tags`: --think-tags OPEN CLOSE (default: the chat template's)."""
        from mt_bench_task.engine.hf.scheduler import ContinuousBatcher

        self.model, self.tok = model, tok
        self.think_tags = model_think_tags(tok, think_tags)
        self._stop = stop_token_ids(model.generation_config, tok)
        self.batcher = ContinuousBatcher(model, batch_size, set(self._stop), tok.pad_token_id)
        # (question, choice) -> (its generator, its latest turn's batch request)
        self._chains: dict[tuple[QuestionId, int], tuple[Any, Request]] = {}

    @property
    def stop_token_ids(self) -> frozenset[int]:
        return self._stop

    @property
    def busy(self) -> bool:
        return self.batcher.busy

    def submit(self, requests: Sequence[GenRequest]) -> None:
        import torch

        batch = []
        for r in requests:
            chain = (r.question_id, r.choice)
            if r.turn == 0:
                generator, after = torch.Generator(self.model.device).manual_seed(r.seed), None
            else:
                generator, after = self._chains.pop(chain)
            req = Request(prompt_ids(self.tok, r), r.temperature, r.max_new_tokens,
                          generator=generator, priority=r.turn > 0, owner=r, after=after,
                          keep_cache=not r.final)
            if not r.final:
                self._chains[chain] = (generator, req)
            batch.append(req)
        # length buckets: similar prompt lengths are admitted together (less padding)
        for req in sorted(batch, key=lambda q: (len(q.prompt_ids), *id_order(q.owner.question_id),
                                                q.owner.choice)):
            self.batcher.add(req)

    def step(self) -> list[GenResult]:
        out = []
        for fin in self.batcher.step():
            r: GenRequest = fin.request.owner
            if fin.token_ids is None:
                out.append(GenResult(r, GEN_ERROR_OUTPUT, 0))
            else:
                out.append(gen_result(self.tok, r, fin.token_ids, self.think_tags))
        return out

    def close(self) -> None:
        self._chains.clear()


def run_hf(cfg: GenerationConfig, model_path: str, pending: list[Question], out: Path,
           temperature: Callable[[str], float],
           order: Sequence[QuestionId] = ()) -> tuple[int, float, float]:
    """Answer `pending` in this process, or in this process's share of an accelerate launch;
    the main process writes `out`. Returns (tokens, generation seconds, start-up seconds)."""
    import torch
    from accelerate import PartialState
    from accelerate.utils import gather_object

    from mt_bench_task.engine.hf.models import load_model_and_tokenizer

    started = time.perf_counter()
    # cpu=True is what makes `--multi_gpu` workers on a CPU machine real gloo processes
    state = PartialState(cpu=not torch.cuda.is_available())
    model, tok = load_model_and_tokenizer(model_path, cfg.dtype, cfg.revision, cfg.chat_template,
                                          device=str(state.device))
    sink = AnswerSink(out, len(pending), f"gen {cfg.model_id}", write=state.is_main_process,
                      order=order)
    start = time.perf_counter()
    with state.split_between_processes(pending) as shard:
        engine = HfEngine(model, tok, cfg.batch_size, cfg.think_tags)
        work = Work(engine, shard, temperature, cfg.num_choices, cfg.max_new_token, cfg.model_id,
                    cfg.max_thinking_tokens, engine.think_tags)
        while True:  # every worker joins every gather, until none has work left
            gathered = gather_object([work.advance(SYNC_STEPS)])
            for answers, tokens, _ in gathered:
                sink.take(answers, tokens)
            if not any(busy for _, _, busy in gathered):
                break
    seconds = time.perf_counter() - start
    sink.close()
    if state.num_processes > 1:
        state.destroy_process_group()
    return sink.tokens, seconds, start - started
