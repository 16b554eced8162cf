"""What judging costs: the plan's estimate before a run, the server's token counts after it.

Prices are USD per million tokens: `--price-input` / `--price-output` when given, else the packaged
tables of OpenAI's, Anthropic's and Google's judge models (`data/judge_prices.json`, each with
its date and source), halved for the Batch APIs; any other judge's price is "unknown", never a
guess.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

BATCH_DISCOUNT = 0.5


@dataclass(frozen=True)
class Price:
    input: float  # USD per 1M prompt tokens
    output: float  # USD per 1M completion tokens
    source: str  # where the figures come from, said next to every price

    def of(self, prompt_tokens: int, completion_tokens: int) -> float:
        return (prompt_tokens * self.input + completion_tokens * self.output) / 1e6


@lru_cache(maxsize=1)
def price_table() -> dict[str, Any]:
    text = resources.files("mt_bench_task").joinpath("data/judge_prices.json").read_text("utf-8")
    return dict(json.loads(text))


def judge_price(models: list[str | None], *, batch: bool = False,
                price_input: float | None = None, price_output: float | None = None
                ) -> Price | None:
    """The price of the first of `models` (the judge's name, then the served model) that is
    known; the user's prices win. None: unknown."""
    if price_input is not None or price_output is not None:
        return Price(price_input or 0.0, price_output or 0.0, "--price-input/--price-output")
    table = price_table()
    tables = [{"provider": "OpenAI", **table}, *table.get("more", [])]
    for m in models:
        for t in tables:
            if m and m in t["models"]:
                pin, pout = t["models"][m]
                factor = BATCH_DISCOUNT if batch else 1.0
                where = f"{m}, {t['provider']}'s price table of {t['date']}"
                return Price(pin * factor, pout * factor,
                             where + (", batch: half" if batch else ""))
    return None


def dollars(x: float) -> str:
    return f"${x:,.2f}" if x >= 0.995 else f"${x:.4f}".rstrip("0").rstrip(".")


def plan_line(calls: int, prompt_tokens: int, max_tokens: int, price: Price | None) -> str:
    """The plan's cost: requests, estimated prompt tokens, the completion budget, the price."""
    budget = calls * max_tokens
    head = (f"cost plan: {calls} requests, about {prompt_tokens} prompt tokens (estimate), "
            f"at most {budget} completion tokens")
    if price is None:
        return head + "; price: unknown (give --price-input and --price-output)"
    low, high = price.of(prompt_tokens, 0), price.of(prompt_tokens, budget)
    return (f"{head}; price: about {dollars(low)} for the prompts, at most {dollars(high)} "
            f"(${price.input:g} / ${price.output:g} per 1M tokens: {price.source})")


def end_lines(requests: int, prompt_tokens: int, completion_tokens: int, failed: int,
              judgments: int, price: Price | None) -> list[str]:
    """The end of a run: the tokens the server reported, their price, the failures and share."""
    cost = "unknown" if price is None else (
        f"{dollars(price.of(prompt_tokens, completion_tokens))} ({price.source})")
    share = f"{100 * failed / judgments:.1f} %" if judgments else "0 %"
    return [f"cost: {requests} requests, {prompt_tokens} prompt + {completion_tokens} completion "
            f"tokens (reported by the server); price: {cost}",
            f"failures: {failed} of {judgments} judgments ({share}); re-run to send them again"
            if failed else f"failures: 0 of {judgments} judgments"]
