"""The hf engine's continuous batcher: every (question, choice, turn) is one request, all in one
batch whatever their temperature; a row that stops (stop token or budget) leaves and waiting
requests take its place, so the batch stays full and a question's turn 2 (added by the caller
when its turn 1 ends, admitted first) starts at once.

- KV cache (kv_cache.py): one DynamicCache, left-padded rows, layers appending in place. New rows
  are prefilled together (last position's logits only) and joined by one copy (`restack`); an
  ended row keeps its place until that copy, so an end costs nothing. Turn 2 reuses the KV its
  turn 1 left behind (`keep_cache`, `after`): only the new tokens are prefilled. Positions come
  from each row's own count, so padding never shifts RoPE.
- Sampling (sampling.py): transformers' generate() step per row (generation_config's top-k /
  top-p, the row's temperature and torch.Generator), so a row's draws do not depend on the rest
  of the batch.
- Failures: CUDA out of memory halves the row limit and requeues the newest rows (generators
  rewound); another RuntimeError ends the rows involved with no tokens (FastChat: ERROR).
Why each choice was made, with the timings: benchmarks/README.md, "Answer generation".
"""
from __future__ import annotations

import logging
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from mt_bench_task.engine.hf.batch_requests import Finished, Request, length_buckets, take_past

REFILL_FRACTION = 8  # refill when 1/8 of the rows are free (fewer, larger prefills)
log = logging.getLogger(__name__)


@dataclass(eq=False)
class _Row:
    request: Request
    pos: int  # tokens in the cache for this row = position of the pending token
    tokens: list[int] = field(default_factory=list)  # generated, pending token last
    ended: bool = False  # finished: its place in the cache is dropped at the next rebuild


class ContinuousBatcher:
    """Requests in, Finished out: `add()` requests, call `step()` until `busy` is False."""

    def __init__(self, model: Any, max_rows: int, stop_ids: set[int], pad_id: int) -> None:
        import torch

        self.model, self.max_rows, self.stop_ids, self.pad_id = model, max_rows, stop_ids, pad_id
        self.device = model.device
        from mt_bench_task.engine.hf.kv_cache import cache_kwarg

        self._cache_kw = cache_kwarg(model)
        self._oom = getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError)
        gc = model.generation_config
        self.top_k = gc.top_k if gc.top_k is not None else 50  # transformers' defaults
        self.top_p = gc.top_p if gc.top_p is not None else 1.0
        self.repetition_penalty = gc.repetition_penalty or 1.0
        self._queue: deque[Request] = deque()  # kept in arrival order; callers pre-sort
        self._first: deque[Request] = deque()  # priority requests
        self._rows: list[_Row] = []  # the cache's rows, ended ones included
        self._cache: Any = None
        self._mask: Any = None  # [rows, cache length] 1 = real token
        from mt_bench_task.engine.hf.decode_step import fast_decode_step

        self._fast_step = fast_decode_step(model)  # None: the model's own forward

    @property
    def busy(self) -> bool:
        return bool(self.in_flight or self._queue or self._first)

    @property
    def in_flight(self) -> int:
        return sum(not r.ended for r in self._rows)

    def add(self, request: Request) -> None:
        (self._first if request.priority else self._queue).append(request)

    def step(self) -> list[Finished]:
        """Admit waiting requests if rows are free, then one decode step for all rows."""
        done: list[Finished] = []
        self._admit(done)
        if self.in_flight:
            self._decode(done)
        self._tidy()
        return done

    # ---- admission: prefill a group and join it to the running batch ----
    def _admit(self, done: list[Finished]) -> None:
        free = self.max_rows - self.in_flight
        waiting = len(self._first) + len(self._queue)
        if free <= 0 or not waiting:
            return
        if self.in_flight and free < min(waiting, max(1, self.max_rows // REFILL_FRACTION)):
            return
        group = [self._pop() for _ in range(min(free, waiting))]
        for r in group:
            if r.generator is not None:
                r.rng_state = r.generator.get_state()  # rewound if the request is retried
            take_past(r)
        parts = length_buckets(group)
        ready: list[tuple[Any, Any, list[_Row], Any]] = []
        for i, part in enumerate(parts):
            try:
                ready.append(self._prefill(part))
            except self._oom:
                self._join(ready, done)
                ready = []
                if not self._shrink(part):
                    done.extend(Finished(r, None) for r in part)
                self._first.extendleft(reversed([r for p in parts[i + 1:] for r in p]))
                break  # the rest waits in line for the smaller limit
            except RuntimeError as e:
                log.error("prefill of %d requests failed: %s", len(part), e)
                done.extend(Finished(r, None) for r in part)
        self._join(ready, done)

    def _prefill(self, group: list[Request]) -> tuple[Any, Any, list[_Row], Any]:
        """Prefill `group` (left-padded among themselves): (cache, mask, rows, last logits)."""
        import torch

        from mt_bench_task.engine.hf.kv_cache import with_pasts

        # each row: [padding][kept columns][padding][prompt tokens computed here]; a row whose
        # fresh part is shorter than the longest recomputes some of its kept tokens (no holes)
        longest = max(r.fresh_tokens for r in group)
        kept = [max(len(r.prompt_ids) - longest, 0) for r in group]
        past = max(kept)
        ids = torch.full((len(group), longest), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(group), past + longest), dtype=torch.long)
        for i, (r, n) in enumerate(zip(group, kept)):
            fed = r.prompt_ids[n:]
            ids[i, longest - len(fed):] = torch.tensor(fed)
            mask[i, past - n:past] = 1
            mask[i, past + longest - len(fed):] = 1
        ids, mask = ids.to(self.device), mask.to(self.device)
        cache = with_pasts(self.model.config, [r.past and r.past[1] for r in group], kept)
        with torch.inference_mode():
            out = self.model(input_ids=ids, attention_mask=mask,
                             position_ids=(mask.cumsum(-1) - 1).clamp(min=0)[:, past:],
                             use_cache=True, logits_to_keep=1, **{self._cache_kw: cache})
        for r in group:
            r.past = None
        return cache, mask, [_Row(r, len(r.prompt_ids)) for r in group], out.logits[:, -1]

    def _join(self, ready: list[tuple[Any, Any, list[_Row], Any]], done: list[Finished]) -> None:
        """Put prefilled groups into the batch, then take their first tokens."""
        if ready:
            self._rebuild([(cache, mask, rows) for cache, mask, rows, _ in ready])
        for _, _, rows, logits in ready:
            self._advance(rows, self._pick(logits, rows), done)

    def _pop(self) -> Request:
        return self._first.popleft() if self._first else self._queue.popleft()

    def _rebuild(self, added: Sequence[tuple[Any, Any, list[_Row]]] = ()) -> None:
        """The batch without its ended rows and the leading columns none of the others needs,
        then the rows of `added` ((cache, mask, rows) of prefilled groups): one copy."""
        import torch
        import torch.nn.functional as F

        from mt_bench_task.engine.hf.kv_cache import restack

        keep = [i for i, r in enumerate(self._rows) if not r.ended]
        rows = [self._rows[i] for i in keep] + [r for _, _, new in added for r in new]
        if not rows:
            self._cache = self._mask = None
            self._rows = []
            self._release_free_memory()
            return
        masks, first = [], 0
        if keep:
            kept = self._mask[keep] if len(keep) < len(self._rows) else self._mask
            first = int(kept.any(dim=0).int().argmax())  # leading columns with no real token
            masks.append(kept[:, first:])
        masks += [mask for _, mask, _ in added]
        self._cache = restack(self.model.config, self._cache, keep, first,
                              [cache for cache, _, _ in added])
        width = max(m.shape[1] for m in masks)
        self._mask = torch.cat([F.pad(m, (width - m.shape[1], 0)) for m in masks])
        self._rows = rows
        self._release_free_memory()

    def _release_free_memory(self) -> None:
        from mt_bench_task.engine.hf.models import release_free_heap

        release_free_heap(self.device)  # the old buffers' pages, back to the system

    def _tidy(self) -> None:
        """Rebuild without the ended rows once they are worth a copy: all rows ended, or enough
        of them with nothing waiting to take their places (admission rebuilds anyway)."""
        ended = sum(r.ended for r in self._rows)
        if not ended:
            return
        waiting = self._first or self._queue
        if ended == len(self._rows) or (
                not waiting and ended >= max(1, len(self._rows) // REFILL_FRACTION)):
            self._rebuild()

    # ---- one decode step ----
    def _decode(self, done: list[Finished]) -> None:
        import torch

        rows, length = self._rows, self._mask.shape[1]
        ids = torch.tensor([[r.tokens[-1]] for r in rows], device=self.device)
        mask = torch.cat([self._mask, self._mask.new_ones((len(rows), 1))], dim=1)
        pos = torch.tensor([[r.pos] for r in rows], device=self.device)
        live = [i for i, r in enumerate(rows) if not r.ended]
        try:
            with torch.inference_mode():
                logits = self._forward(ids, mask, pos)
        except self._oom:
            from mt_bench_task.engine.hf.kv_cache import crop_to

            crop_to(self._cache, length)  # layers before the failing one grew by 1: undo
            if len(live) < len(rows):
                self._rebuild()  # without the ended rows first; the next step retries
            elif len(rows) == 1:
                log.error("CUDA out of memory with a single row in flight")
                done.append(Finished(rows[0].request, None))
                self._end_all()
            else:
                self.max_rows = len(rows)
                self._shrink([])
            return
        except RuntimeError as e:
            log.error("decode step for %d rows failed: %s", len(live), e)
            done.extend(Finished(rows[i].request, None) for i in live)
            self._end_all()
            return
        self._mask = mask
        for r in rows:
            r.pos += 1  # ended rows too: their (ignored) tokens keep their places consistent
        if len(live) < len(rows):
            logits = logits[torch.tensor(live, device=self.device)]
        live_rows = [rows[i] for i in live]
        self._advance(live_rows, self._pick(logits, live_rows), done)

    def _forward(self, ids: Any, mask: Any, pos: Any) -> Any:
        from mt_bench_task.engine.hf.decode_step import decode_logits
        from mt_bench_task.engine.hf.kv_cache import buffer_width

        room = buffer_width(self._cache)
        logits = decode_logits(self.model, self._fast_step, ids, pos, self._cache, mask,
                               self._cache_kw)
        if buffer_width(self._cache) != room:
            self._release_free_memory()  # the buffers grew: the old ones' pages
        return logits

    def _pick(self, logits: Any, rows: list[_Row]) -> list[int]:
        from mt_bench_task.engine.hf.sampling import pick_tokens

        return pick_tokens(logits, [r.request for r in rows], [r.tokens for r in rows],
                           self.top_k, self.top_p, self.repetition_penalty)

    def _advance(self, rows: list[_Row], tokens: list[int], done: list[Finished]) -> None:
        for r, t in zip(rows, tokens):
            r.tokens.append(t)
        over = [r for r in rows if r.tokens[-1] in self.stop_ids
                or len(r.tokens) >= r.request.max_new_tokens]
        if not over:
            return
        done.extend(Finished(r.request, r.tokens) for r in over)
        self._keep(over)
        for r in over:
            r.ended = True

    def _keep(self, ended: list[_Row]) -> None:
        """The KV of ended rows whose request asked for it, for the request that continues it:
        the row's tokens in the cache are its prompt and its tokens but the pending last one."""
        from mt_bench_task.engine.hf.kv_cache import row_columns

        length, index = self._mask.shape[1], {id(r): i for i, r in enumerate(self._rows)}
        for r in ended:
            if r.request.keep_cache:
                r.request.kept = (r.request.prompt_ids + r.tokens[:-1],
                                 row_columns(self._cache, index[id(r)], length - r.pos, length))

    def _end_all(self) -> None:
        for r in self._rows:
            r.ended = True
        self._rebuild()

    def _shrink(self, group: list[Request]) -> bool:
        """After CUDA OOM: halve the row limit, requeue `group` and rows over the new limit
        (generators rewound); False when there is nothing left to halve (one request alone)."""
        import torch

        live = [r for r in self._rows if not r.ended]
        if self.max_rows == 1 and not live and len(group) == 1:
            return False
        self.max_rows = max(1, self.max_rows // 2)
        log.warning("CUDA out of memory: at most %d rows in flight from now on", self.max_rows)
        for row in live[self.max_rows:]:
            row.ended = True
        for r in reversed([row.request for row in live[self.max_rows:]] + group):
            if r.generator is not None:  # rows over the limit first in line, then `group`
                r.generator.set_state(r.rng_state)
            self._first.appendleft(r)
        self._rebuild()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        return True
