"""FastChat's judge request parameters, and the two changes reasoning models need, for both doors
that send it: the chat client (one request at a time) and the Batch API (a file of them).

Reasoning models (o1/o3/o4-mini, the gpt-5 family) refuse FastChat's request with HTTP 400 naming
`max_tokens` (code unsupported_parameter; use `max_completion_tokens`, the same budget) or
`temperature` (unsupported_value: only the default). Every other server gets FastChat's request.
"""
from __future__ import annotations

from collections.abc import Collection
from typing import Any

from mt_bench_task.core.judge_spec import JUDGE_MAX_TOKENS, JUDGE_TEMPERATURE

__all__ = ["JUDGE_MAX_TOKENS", "JUDGE_TEMPERATURE", "adaptation_note", "request_params"]


def request_params(temperature: float, max_tokens: int, adapted: Collection[str] = ()
                   ) -> dict[str, Any]:
    """The sampling parameters of a judge request: FastChat's, less what `adapted` names."""
    sent: dict[str, Any] = {"max_completion_tokens" if "max_tokens" in adapted else "max_tokens":
                            max_tokens}
    if "temperature" not in adapted:
        sent["temperature"] = temperature
    return sent


def unsupported_param(status: int, error: Any) -> str | None:
    """"max_tokens" or "temperature" when an HTTP 400's error object says this model does not
    take it (OpenAI's shape: {"message", "type", "param", "code"}); None otherwise."""
    if status != 400 or not isinstance(error, dict):
        return None
    param, code = error.get("param"), error.get("code")
    message = str(error.get("message") or "")
    if (param == "max_tokens" and code == "unsupported_parameter") or (
            param is None and "'max_tokens'" in message and "max_completion_tokens" in message):
        return "max_tokens"
    if param == "temperature" and code in ("unsupported_value", "unsupported_parameter"):
        return "temperature"
    return None


def adaptation_note(param: str, model: str, where: str, temperature: float,
                    max_tokens: int) -> str:
    """The one warning that says what changed, and for how long."""
    if param == "max_tokens":
        return (f"{model} at {where} does not take max_tokens: sending "
                f"max_completion_tokens={max_tokens} instead for the rest of the run")
    return (f"{model} at {where} does not take temperature={temperature:g}: sending no "
            f"temperature (the model's default) for the rest of the run")
