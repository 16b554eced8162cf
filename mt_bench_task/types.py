"""The contracts between stages: FastChat's records as typed dataclasses, and the judge client protocol.

Field order is FastChat's key order; `to_json()` writes exactly FastChat's line
(`json.dumps` defaults: ensure_ascii, ", " and ": "), so our files and theirs are interchangeable.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Protocol, Union

Score = Union[int, float]  # FastChat keeps the rating's literal type: "8" -> 8, "8.5" -> 8.5


class _Record:
    """FastChat JSONL line <-> dataclass; unknown keys of other tools survive in `extra`."""

    @classmethod
    def from_dict(cls, d: dict[str, Any]):
        names = [f.name for f in fields(cls) if f.name != "extra"]
        missing = [n for n in names if n not in d and _required(cls, n)]
        if missing:
            raise ValueError(f"missing key(s) {missing}")
        known = {n: d[n] for n in names if n in d}
        extra = {k: v for k, v in d.items() if k not in known}
        return cls(**known, **({"extra": extra} if "extra" in {f.name for f in fields(cls)} else {}))

    def to_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "extra"}
        d = {k: (asdict(v) if hasattr(v, "__dataclass_fields__") else v) for k, v in d.items()}
        if "choices" in d:
            d["choices"] = [asdict(c) if not isinstance(c, dict) else c for c in self.choices]  # type: ignore[attr-defined]
        d.update(getattr(self, "extra", {}) or {})
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict())


def _required(cls, name: str) -> bool:
    from dataclasses import MISSING

    f = next(f for f in fields(cls) if f.name == name)
    return f.default is MISSING and f.default_factory is MISSING  # type: ignore[misc]


@dataclass(frozen=True)
class Question(_Record):
    question_id: int
    category: str
    turns: list[str]
    reference: list[str] | None = None  # inline hints on 39 questions; FastChat never reads them

    def to_dict(self) -> dict[str, Any]:
        d = super().to_dict()
        if d["reference"] is None:
            del d["reference"]
        return d


@dataclass(frozen=True)
class Choice:
    index: int
    turns: list[str]


@dataclass(frozen=True)
class Answer(_Record):
    question_id: int
    answer_id: str
    model_id: str
    choices: list[Choice]
    tstamp: float
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Answer":
        a = super().from_dict(d)
        object.__setattr__(a, "choices", [Choice(c["index"], list(c["turns"])) for c in d["choices"]])
        return a

    @property
    def turns(self) -> list[str]:
        """FastChat judges `choices[0]` only."""
        return self.choices[0].turns


@dataclass(frozen=True)
class JudgePrompt(_Record):
    name: str
    type: str  # "single" | "pairwise"
    system_prompt: str
    prompt_template: str
    description: str
    category: str
    output_format: str  # "[[rating]]" | "[[A]]" | "[[rating_a,rating_b]]"

    @property
    def multi_turn(self) -> bool:
        return self.name.endswith("-multi-turn")


@dataclass(frozen=True)
class SingleJudgment(_Record):
    question_id: int
    model: str
    judge: list[str]  # [judge_model, prompt_name]
    user_prompt: str
    judgment: str
    score: Score  # -1: no rating found (or API failure)
    turn: int
    tstamp: float
    extra: dict[str, Any] = field(default_factory=dict, compare=False)  # e.g. score_source of a local judge


@dataclass(frozen=True)
class PairJudgment(_Record):
    question_id: int
    model_1: str
    model_2: str
    g1_winner: str  # model name, "tie" or "error"
    g2_winner: str
    judge: list[str]
    g1_user_prompt: str
    g1_judgment: str
    g2_user_prompt: str
    g2_judgment: str
    turn: int
    tstamp: float
    extra: dict[str, Any] = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class Completion:
    """What a judge (or answering) client returns for one request."""

    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    failed: bool = False  # retries exhausted or request refused: text is FastChat's "$ERROR$"
    fallback_rating: int | None = None  # local judge: most probable 1..10 rating when text has none
    rejection: str | None = None  # the server refused this request (HTTP 400/413/422): its message


@dataclass
class ClientUsage:
    """Running totals of one client, for progress bars and summaries."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    requests: int = 0  # HTTP attempts (local: generations), retries and adapted resends included
    retries: int = 0
    failures: int = 0  # completions given up on ("$ERROR$")
    adapted: int = 0  # requests refused for a parameter and resent adapted (not judgments)


class ChatClient(Protocol):
    """One chat completion. The OpenAI-compatible client and the local transformers judge both fit."""

    usage: ClientUsage
    adaptations: list[str]  # what was changed in the requests for this server, said once each

    async def complete(self, model: str, messages: list[dict[str, str]], *, temperature: float,
                       max_tokens: int) -> Completion: ...

    async def check_reachable(self) -> None:
        """Raise DataError quickly when the backend cannot answer at all."""

    async def close(self) -> None:
        """Release connections or workers bound to the current event loop."""


class ChatClientBase:
    """Defaults for a `ChatClient` that only needs `complete` (a stand-in judge in tests or
    doctests, a custom backend): no usage counted, nothing to reach or close."""

    def __init__(self) -> None:
        self.usage = ClientUsage()
        self.adaptations: list[str] = []

    async def check_reachable(self) -> None:
        return None

    async def close(self) -> None:
        return None
