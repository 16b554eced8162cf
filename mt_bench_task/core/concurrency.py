"""The one bounded concurrent map of the project (judging and `gen-api` both use it): at most
`parallel` items in flight, each result handed to `on_result` as it completes, a progress bar,
and every task still in flight cancelled when one fails or the run is interrupted."""
from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

T = TypeVar("T")
R = TypeVar("R")


async def bounded_map(items: Sequence[T], work: Callable[[T], Awaitable[R]], parallel: int,
                      on_result: Callable[[R], None], *, desc: str, unit: str,
                      progress: bool = True,
                      postfix: Callable[[], dict[str, Any]] | None = None) -> None:
    """`work(item)` for every item, `parallel` at a time; `on_result` runs in completion order
    (in the event loop: no lock needed), then the bar moves (with `postfix()`'s figures)."""
    from tqdm.auto import tqdm

    limit = asyncio.Semaphore(max(1, parallel))
    bar = tqdm(total=len(items), desc=desc, unit=unit, disable=not progress, file=sys.stderr)

    async def one(item: T) -> None:
        async with limit:
            result = await work(item)
        on_result(result)
        if postfix is not None:
            bar.set_postfix(**postfix(), refresh=False)
        bar.update(1)

    tasks = [asyncio.ensure_future(one(item)) for item in items]
    try:
        await asyncio.gather(*tasks)
    finally:
        for task in tasks:  # an error (bad key, Ctrl-C) stops the items still in flight
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        bar.close()
