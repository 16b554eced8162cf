"""FastChat's judge request parameters (temperature 0, max_tokens 2048: core/judge_spec.py), and
the two changes reasoning models need, for both doors that send it: the chat client (one request
at a time) and the Batch API (a file of them). When a server refuses a parameter is the server's
rule (OpenAI's: clients/openai_rules.py); every other server gets FastChat's request.
"""
from __future__ import annotations

from collections.abc import Collection
from typing import Any

from mt_bench_task.core.judge_spec import JUDGE_MAX_TOKENS, JUDGE_TEMPERATURE

__all__ = ["JUDGE_MAX_TOKENS", "JUDGE_TEMPERATURE", "adaptation_note", "request_params"]


def request_params(temperature: float, max_tokens: int, adapted: Collection[str] = (),
                   reasoning_effort: str | None = None) -> dict[str, Any]:
    """The sampling parameters of a judge request: FastChat's, less what `adapted` names, and
    `reasoning_effort` when set (`--judge-reasoning-effort`: OpenAI's reasoning models, gpt-oss
    on vLLM)."""
    sent: dict[str, Any] = {"max_completion_tokens" if "max_tokens" in adapted else "max_tokens":
                            max_tokens}
    if "temperature" not in adapted:
        sent["temperature"] = temperature
    if reasoning_effort is not None:
        sent["reasoning_effort"] = reasoning_effort
    return sent


def adaptation_note(param: str, model: str, where: str, temperature: float,
                    max_tokens: int) -> str:
    """The one warning that says what changed, and for how long."""
    if param == "max_tokens":
        return (f"{model} at {where} does not take max_tokens: sending "
                f"max_completion_tokens={max_tokens} instead for the rest of the run")
    return (f"{model} at {where} does not take temperature={temperature:g}: sending no "
            f"temperature (the model's default) for the rest of the run")
