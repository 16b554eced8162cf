"""Shared by the inspect tests: mockllm outputs and a deterministic judge.

The judge's text is a pure function of the user prompt, so inspect's grader (mockllm or a real
local server) and `mt-bench judge` (the fake OpenAI server) answer the same prompt the same way.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import pytest


def require_inspect() -> None:
    """Skip (saying why) without the extra on a developer machine; fail in CI, which installs it."""
    try:
        import inspect_ai  # noqa: F401
    except ImportError:
        if os.environ.get("CI"):
            raise
        pytest.skip("needs the [inspect] extra: pip install -e '.[test,inspect]'",
                    allow_module_level=True)


UNSCORABLE = "An answer this judge never rates."


def _h(text: str) -> int:
    return int(hashlib.sha256(text.encode("utf-8")).hexdigest()[:8], 16)


def judge_text(user_prompt: str, pairwise: bool) -> str:
    """Every FastChat parse path: [[k]], a float, the [k] backup, none; verdicts A/B/C/none."""
    k = _h(user_prompt)
    if UNSCORABLE in user_prompt and not pairwise:
        return "No rating given."
    if pairwise:
        return ["Verdict: [[A]]", "Verdict: [[B]]", "Verdict: [[C]]", "I cannot decide."][k % 4]
    if k % 11 == 0:
        return "No rating given."
    if k % 11 == 1:
        return "Backup format only: [3]"
    if k % 11 == 2:
        return "Rating: [[8.5]]"
    return f"Rating: [[{k % 10 + 1}]]"


def is_pairwise(system: str) -> bool:
    return "two AI assistants" in system


def server_judge(req: dict[str, Any]) -> str:
    """The same judge behind the fake OpenAI server (FakeOpenAI responder)."""
    msgs = req["messages"]
    system = " ".join(m["content"] for m in msgs if m["role"] == "system")
    return judge_text(msgs[-1]["content"], is_pairwise(system))


def answer_text(messages: list[dict[str, str]], temperature: float | None) -> str:
    """A model answer: depends on the conversation so far; non-ASCII and braces on purpose.
    Question 81 (the Hawaii blog post) gets answers the judge never rates: an unscored sample."""
    if any("Hawaii" in m["content"] for m in messages if m["role"] == "user"):
        return UNSCORABLE
    return (f"Answer {_h(json.dumps(messages)) % 1000} at T={temperature}: café — ✓ "
            f"{{question}} {len(messages)} messages")


def as_dicts(chat: list[Any]) -> list[dict[str, str]]:
    return [{"role": m.role, "content": m.text} for m in chat]


class MockPair:
    """mockllm custom outputs for the model under test and the grader, recording every call."""

    def __init__(self) -> None:
        self.model_calls: list[tuple[list[dict[str, str]], Any]] = []
        self.grader_calls: list[tuple[list[dict[str, str]], Any]] = []

    @staticmethod
    def _out(text: str) -> Any:
        from inspect_ai.model import ModelOutput, ModelUsage

        out = ModelOutput.from_content("mockllm", text)
        out.usage = ModelUsage(input_tokens=1, output_tokens=1, total_tokens=2)  # no tiktoken
        return out

    def model(self, input: list[Any], tools: Any, tool_choice: Any, config: Any) -> Any:
        msgs = as_dicts(input)
        self.model_calls.append((msgs, config))
        return self._out(answer_text(msgs, config.temperature))

    def grader(self, input: list[Any], tools: Any, tool_choice: Any, config: Any) -> Any:
        msgs = as_dicts(input)
        self.grader_calls.append((msgs, config))
        return self._out(server_judge({"messages": msgs}))

    def models(self) -> tuple[Any, Any]:
        from inspect_ai.model import get_model

        return (get_model("mockllm/model", custom_outputs=self.model, memoize=False),
                get_model("mockllm/gpt-4", custom_outputs=self.grader, memoize=False))


def judge_requests(requests: list[dict[str, Any]]) -> list[str]:
    """Server-side request bodies -> sorted canonical message lists."""
    return sorted(json.dumps(r["messages"]) for r in requests)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
