"""A local judge: the judge model runs on an engine (engine/local_judge.py: `hf` in this process,
or `vllm`), behind the ChatClient protocol.

Concurrent `complete()` calls are gathered by a micro-batcher into one batch of `JudgeCall`s.
Small judges often write no `[[rating]]`; then the engine's most probable rating 1..10 comes
back as `Completion.fallback_rating`, and judging marks the record with
`score_source: rating_probability`.

Batches run on the event loop's own thread, blocking it while they run (nothing else is waiting
on a local judge): torch work on a second thread beside the first one's (generation, in
`mt-bench run`) made the judge's prefill slower: two OpenMP teams on the same cores
(benchmarks/README.md, "The local judge after generation, in one process").
"""
from __future__ import annotations

import asyncio
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from mt_bench_task.core.chat import ClientUsage, Completion
from mt_bench_task.core.judge_spec import local_judge_budget
from mt_bench_task.engine.config import EngineOptions
from mt_bench_task.engine.local_judge import JudgeCall, LocalJudgeEngine
from mt_bench_task.engine.registry import Backend, engine_backend

_COLLECT_S = 0.01  # wait this long after the first request so concurrent callers join its batch


@dataclass
class _Request:
    call: JudgeCall
    future: asyncio.Future


class LocalJudgeClient:
    """ChatClient running `judge_model` ("default", a model dir or a cached hub id) on `engine`."""

    def __init__(self, judge_model: str, *, batch_size: int = 16, max_new_tokens: int | None = None,
                 engine: Backend | str = "hf", options: EngineOptions | None = None) -> None:
        self.judge_model = judge_model
        self.backend = engine_backend(engine) if isinstance(engine, str) else engine
        self.engine_name = self.backend.name
        self.options = options or EngineOptions()
        self.batch_size = max(1, batch_size)
        self.max_new_tokens = max_new_tokens or local_judge_budget(judge_model)
        self.usage = ClientUsage()
        self.adaptations: list[str] = []  # a local model takes FastChat's request as it is
        self.batch_sizes: list[int] = []  # one entry per batch
        self.engine: LocalJudgeEngine | None = None  # started on the first batch
        self._queue: asyncio.Queue[_Request] | None = None
        self._worker: asyncio.Task | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        # one model, possibly several event loops (run_sync from two threads): one batch at a time
        self._lock = threading.Lock()

    async def complete(self, model: str, messages: list[dict[str, str]], *, temperature: float,
                       max_tokens: int, reasoning_effort: str | None = None) -> Completion:
        # The judge is always greedy (FastChat judges at temperature 0); `model` is only a label.
        loop = asyncio.get_running_loop()
        if self._loop is not loop or self._worker is None or self._worker.done():
            # a new event loop (each run_sync is one) needs its own queue and worker
            self._loop, self._queue = loop, asyncio.Queue()
            self._worker = loop.create_task(self._serve())
            # a Ctrl-C raised in a batch ends the run; retrieved here, so asyncio logs no traceback
            self._worker.add_done_callback(lambda t: t.cancelled() or t.exception())
        fut: asyncio.Future = loop.create_future()
        call = JudgeCall(tuple((m["role"], m["content"]) for m in messages),
                         min(max_tokens, self.max_new_tokens))
        assert self._queue is not None
        self._queue.put_nowait(_Request(call, fut))
        return await fut

    async def check_reachable(self) -> None:
        """Nothing to reach: the model loads on the first request."""

    def limit_rate(self, max_requests_per_minute: int | None,
                   max_tokens_per_minute: int | None, max_wait: float | None = None) -> None:
        """No rate limits: the model runs here."""

    def batch_backend(self) -> None:
        """No Batch API: the model runs here."""
        return None

    async def close(self) -> None:
        """Stop the batcher; the model stays loaded for a later run."""
        if self._worker is not None and not self._worker.done():
            self._worker.cancel()
        self._worker = None

    async def _serve(self) -> None:
        assert self._queue is not None
        queue = self._queue
        waiting: list[_Request] = []
        while True:
            if not waiting:
                waiting.append(await queue.get())
                await asyncio.sleep(_COLLECT_S)
            while not queue.empty():
                waiting.append(queue.get_nowait())
            # similar lengths together: left padding is prefill work thrown away on a CPU
            waiting.sort(key=lambda r: sum(len(c) for _, c in r.call.messages))
            batch, waiting = waiting[: self.batch_size], waiting[self.batch_size:]
            batch = [r for r in batch if not r.future.done()]  # cancelled callers
            if not batch:
                continue
            try:
                results = self._run(batch)
            except Exception as e:  # the model failed to load or run: every waiting caller sees it
                for r in batch:
                    if not r.future.done():
                        r.future.set_exception(e)
                continue
            for r, c in zip(batch, results):
                if not r.future.done():
                    r.future.set_result(c)
            await asyncio.sleep(0)  # let the callers write their records

    def _run(self, batch: list[_Request]) -> list[Completion]:
        with self._lock, _ctrl_c_raises():
            if self.engine is None:
                self.engine = self.backend.start_judge(self.judge_model, self.options)
            replies = self.engine.judge([r.call for r in batch])
        self.batch_sizes.append(len(batch))
        for reply in replies:
            self.usage.prompt_tokens += reply.prompt_tokens
            self.usage.completion_tokens += reply.completion_tokens
            self.usage.requests += 1
        return [Completion(text=r.text, prompt_tokens=r.prompt_tokens,
                           completion_tokens=r.completion_tokens, fallback_rating=r.fallback_rating)
                for r in replies]


@contextmanager
def _ctrl_c_raises() -> Iterator[None]:
    """asyncio.run turns Ctrl-C into a cancellation that waits for the event loop, which a batch
    holds for seconds: while one runs, Ctrl-C raises KeyboardInterrupt at once (exit 130)."""
    runner = getattr(asyncio, "Runner", None)  # Python >= 3.11; 3.10's asyncio.run raises at once
    handler = signal.getsignal(signal.SIGINT) if threading.current_thread() is threading.main_thread() else None
    handler = getattr(handler, "func", handler)  # Runner.run installs partial(self._on_sigint, ...)
    if runner is None or not isinstance(getattr(handler, "__self__", None), runner):
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
