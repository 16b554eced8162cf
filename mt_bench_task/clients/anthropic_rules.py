"""Anthropic's facts, one home for the Claude client and its Message Batches backend: which judge
names Anthropic serves, the SDK (imported on first use, or one line saying how to install it),
FastChat's judge request in the Messages API's shape, and a Message's text."""
from __future__ import annotations

from typing import Any

from mt_bench_task.core.errors import DataError

ANTHROPIC_BASE_URL = "https://api.anthropic.com"


def is_claude(model: str) -> bool:
    """A judge name that Anthropic's API serves ("claude-sonnet-4-5", "claude-3-5-haiku-latest")."""
    return model.startswith("claude-")


def anthropic_sdk() -> Any:
    """The `anthropic` module, or one line saying how to install it."""
    try:
        import anthropic
    except ImportError:
        raise DataError("a claude-... judge needs the anthropic SDK: pip install "
                        "'mt_bench_task[anthropic]' (or give --openai-api-base for an "
                        "OpenAI-compatible gateway)") from None
    return anthropic


def split_system(messages: list[dict[str, str]]) -> tuple[str, list[dict[str, str]]]:
    """(system prompt, user/assistant turns): Anthropic takes the system prompt apart."""
    system = "\n\n".join(m["content"] for m in messages if m.get("role") == "system")
    return system, [{"role": m["role"], "content": m["content"]} for m in messages
                    if m.get("role") != "system"]


NO_TEMPERATURE = ("{model} through Anthropic's Messages API: FastChat's temperature {t:g} is not "
                  "sent (the API takes no sampling parameters)")


def message_params(model: str, messages: list[dict[str, str]], max_tokens: int
                   ) -> dict[str, Any]:
    """The Messages API body of one judge call (also a batch request's `params`)."""
    system, turns = split_system(messages)
    params: dict[str, Any] = {"model": model, "max_tokens": max_tokens, "messages": turns}
    if system:
        params["system"] = system
    return params


def message_text(message: dict[str, Any]) -> str:
    return "".join(b.get("text", "") for b in message.get("content") or []
                   if b.get("type") == "text")


def message_thinking(message: dict[str, Any]) -> str:
    """The thought of a Claude reply with extended thinking (its "thinking" blocks)."""
    return "".join(b.get("thinking", "") for b in message.get("content") or []
                   if b.get("type") == "thinking")
