"""The contracts between stages: FastChat's records as typed dataclasses (the judge client
protocol is in `chat`).

Field order is FastChat's key order; `to_json()` writes exactly FastChat's line
(`json.dumps` defaults: ensure_ascii, ", " and ": "), so our files and theirs are interchangeable.
"""
from __future__ import annotations

import ast
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any, ClassVar, TypeVar

from mt_bench_task.core.ids import QuestionId, question_key

Score = int | float  # FastChat keeps the rating's literal type: "8" -> 8, "8.5" -> 8.5
API_ERROR_OUTPUT = "$ERROR$"  # FastChat's text for a request whose retries ran out
GEN_ERROR_OUTPUT = "ERROR"  # FastChat's turn text when local generation raises a RuntimeError
FAILED_TURN_TEXTS = (GEN_ERROR_OUTPUT, API_ERROR_OUTPUT)  # a turn that says it failed


R = TypeVar("R", bound="_Record")


class _Record:
    """FastChat JSONL line <-> dataclass; unknown keys of other tools survive in `extra`.

    `_REQUIRED` names the keys a line must have (what FastChat itself reads); `_OPTIONAL` fields
    absent from a line stay None and are not written back, so a minimal line round-trips.
    Required fields that follow optional ones carry a placeholder default only so the dataclass
    can declare them in FastChat's key order; `from_dict` never uses it.
    """

    _REQUIRED: ClassVar[tuple[str, ...]] = ()
    _OPTIONAL: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def from_dict(cls: type[R], d: dict[str, Any]) -> R:
        names = [f.name for f in fields(cls) if f.name != "extra"]  # type: ignore[arg-type]
        missing = [n for n in cls._REQUIRED if n not in d]
        if missing:
            raise ValueError(f"missing key(s) {missing}")
        cls._check(d)
        known = {n: d[n] for n in names if n in d}
        extra = {k: v for k, v in d.items() if k not in known}
        return cls(**known, **({"extra": extra} if "extra" in {f.name for f in fields(cls)} else {}))  # type: ignore[arg-type]

    @classmethod
    def _check(cls, d: dict[str, Any]) -> None:
        """Reject what FastChat would crash on or silently misread (ValueError, one line)."""

    def to_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "extra"}  # type: ignore[arg-type]
        d = {k: v for k, v in d.items() if not (k in self._OPTIONAL and v is None)}
        d = {k: (asdict(v) if hasattr(v, "__dataclass_fields__") else v) for k, v in d.items()}
        if "choices" in d:
            d["choices"] = [c.to_dict() if isinstance(c, Choice) else c for c in self.choices]  # type: ignore[attr-defined]
        d.update(getattr(self, "extra", {}) or {})
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict())


def _int(d: dict[str, Any], key: str) -> None:
    if key in d and (not isinstance(d[key], int) or isinstance(d[key], bool)):
        raise ValueError(f"{key} must be an integer, got {d[key]!r:.40}")


def _qid(d: dict[str, Any], key: str = "question_id") -> None:
    value = d.get(key)
    if key in d and not ((isinstance(value, int) and not isinstance(value, bool))
                         or (isinstance(value, str) and value.strip())):
        raise ValueError(f"{key} must be an integer or a non-empty string, got {value!r:.40}")


def _str(d: dict[str, Any], key: str) -> None:
    if key in d and not isinstance(d[key], str):
        raise ValueError(f"{key} must be a string, got {d[key]!r:.40}")


def _texts(value: Any, what: str) -> None:
    if not isinstance(value, list) or not all(isinstance(t, str) for t in value):
        raise ValueError(f"{what} must be a list of strings, got {value!r:.40}")


@dataclass(frozen=True)
class Question(_Record):
    question_id: QuestionId
    category: str
    turns: list[str]
    # inline hints (39 MT-bench questions; FastChat never reads them): a list of turn texts, or
    # as some translated sets store it, a string (a Python repr of that list); kept as written
    reference: list[str] | str | None = None
    extra: dict[str, Any] = field(default_factory=dict, compare=False)  # e.g. lang, required_temperature

    _REQUIRED: ClassVar[tuple[str, ...]] = ("question_id", "category", "turns")
    _OPTIONAL: ClassVar[tuple[str, ...]] = ("reference",)

    @classmethod
    def _check(cls, d: dict[str, Any]) -> None:
        _qid(d)
        _str(d, "category")
        _texts(d["turns"], "turns")
        if not d["turns"]:
            raise ValueError("turns is empty")

    @property
    def key(self) -> QuestionId:
        return question_key(self.question_id)

    @property
    def inline_reference(self) -> list[str] | None:
        """The inline `reference` as turn texts: a list of strings; a string holding a list's
        repr or JSON (read with ast.literal_eval, never run); any other string is one turn.
        None when absent or not text (never an error: FastChat never reads the key)."""
        ref: Any = self.reference
        if isinstance(ref, str):
            try:
                parsed = ast.literal_eval(ref.strip()) if ref.strip().startswith("[") else None
            except (ValueError, SyntaxError, MemoryError, RecursionError):
                parsed = None
            ref = parsed if isinstance(parsed, list) else [ref]
        if isinstance(ref, list) and ref and all(isinstance(t, str) for t in ref):
            return list(ref)
        return None


@dataclass(frozen=True)
class Choice:
    index: int | None  # None: the line had no index (FastChat never reads it)
    turns: list[str]
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    @classmethod
    def with_thoughts(cls, index: int | None, turns: list[str],
                      reasoning: Sequence[str | None] = (),
                      finish_reasons: Sequence[str | None] = ()) -> Choice:
        """`turns` with each turn's thought (when one thought) and finish reason (when known)."""
        extra: dict[str, Any] = {}
        if any(r is not None for r in reasoning):
            extra["reasoning"] = list(reasoning)
        if any(f is not None for f in finish_reasons):
            extra["finish_reasons"] = list(finish_reasons)
        return cls(index, turns, extra)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {} if self.index is None else {"index": self.index}
        return {**d, "turns": self.turns, **self.extra}

    @property
    def failed(self) -> bool:
        """A turn is a failure marker (`FAILED_TURN_TEXTS`): the question is asked again."""
        return bool(set(FAILED_TURN_TEXTS) & set(self.turns))

    @property
    def reasoning(self) -> list[str | None]:
        """Each turn's thought (core/thoughts.py); None where it did not think."""
        return _per_turn(self.extra.get("reasoning"), len(self.turns))

    @property
    def finish_reasons(self) -> list[str | None]:
        """Each turn's finish reason ("stop", "length"); None where unknown (older files)."""
        return _per_turn(self.extra.get("finish_reasons"), len(self.turns))

    @property
    def thoughts_cut(self) -> list[int]:
        """Turns (0-based) with a thought and an empty answer: the thought never closed."""
        return [t for t, (text, thought) in enumerate(zip(self.turns, self.reasoning))
                if thought is not None and not text.strip()]


def _per_turn(value: Any, turns: int) -> list[Any]:
    values = list(value) if isinstance(value, list) else []
    return (values + [None] * turns)[:turns]


@dataclass(frozen=True)
class Answer(_Record):
    """An answer line. FastChat's judge reads only `question_id` and `choices[0].turns`, so those
    are all a line needs; `answer_id`, `model_id` and `tstamp` are kept when present."""

    question_id: QuestionId
    answer_id: str | None = None
    model_id: str | None = None
    choices: list[Choice] = field(default_factory=list)
    tstamp: float | None = None
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    _REQUIRED: ClassVar[tuple[str, ...]] = ("question_id", "choices")
    _OPTIONAL: ClassVar[tuple[str, ...]] = ("answer_id", "model_id", "tstamp")

    @classmethod
    def _check(cls, d: dict[str, Any]) -> None:
        _qid(d)
        choices = d["choices"]
        if not isinstance(choices, list) or not choices:
            raise ValueError(f"choices must be a non-empty list, got {choices!r:.40}")
        for i, c in enumerate(choices):
            if not isinstance(c, dict) or "turns" not in c:
                raise ValueError(f"choices[{i}] must be an object with turns, got {c!r:.40}")
            _texts(c["turns"], f"choices[{i}].turns")
            _int(c, "index")
            for key in ("reasoning", "finish_reasons"):  # ours (thinking models); optional
                if key in c and not (isinstance(c[key], list) and all(
                        v is None or isinstance(v, str) for v in c[key])):
                    raise ValueError(f"choices[{i}].{key} must be a list of strings or nulls, "
                                     f"got {c[key]!r:.40}")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Answer:
        a = super().from_dict(d)
        object.__setattr__(a, "choices", [
            Choice(c.get("index"), list(c["turns"]),
                   {k: v for k, v in c.items() if k not in ("index", "turns")})
            for c in d["choices"]])
        return a

    @property
    def turns(self) -> list[str]:
        """FastChat judges `choices[0]` only."""
        return self.choices[0].turns

    @property
    def key(self) -> QuestionId:
        """One answer per question: the last line of a question id wins (FastChat's reorg rule);
        1 and "1" are one question (`question_key`)."""
        return question_key(self.question_id)

    @property
    def failed(self) -> bool:
        """A choice has a failed turn ("ERROR" / "$ERROR$"): resume asks the question again."""
        return any(c.failed for c in self.choices)


@dataclass(frozen=True)
class JudgePrompt(_Record):
    """A judge_prompts.jsonl line; FastChat never reads `description` or `category`."""

    name: str
    type: str  # "single" | "pairwise"
    system_prompt: str
    prompt_template: str
    description: str | None = None
    category: str | None = None
    output_format: str = "[[rating]]"  # "[[A]]" | "[[rating_a,rating_b]]"; required when read

    _REQUIRED: ClassVar[tuple[str, ...]] = ("name", "type", "system_prompt", "prompt_template",
                                            "output_format")
    _OPTIONAL: ClassVar[tuple[str, ...]] = ("description", "category")

    @classmethod
    def _check(cls, d: dict[str, Any]) -> None:
        for key in cls._REQUIRED:
            _str(d, key)

    @property
    def multi_turn(self) -> bool:
        return self.name.endswith("-multi-turn")


def _check_judgment(d: dict[str, Any], models: tuple[str, ...], winners: tuple[str, ...]) -> None:
    _qid(d)
    _int(d, "turn")
    if d["turn"] not in (1, 2):
        raise ValueError(f"turn must be 1 or 2, got {d['turn']!r}")
    for key in models + winners:
        _str(d, key)
    judge = d["judge"]
    if not (isinstance(judge, list) and len(judge) == 2 and all(isinstance(j, str) for j in judge)):
        raise ValueError(f"judge must be [judge_model, prompt_name], got {judge!r:.60}")
    _int(d, "repeat")  # part of `key`: "1" or 1.0 would never match the job of repeat 1
    if d.get("repeat", 0) < 0:
        raise ValueError(f"repeat must be >= 0, got {d['repeat']!r}")
    _str(d, "references")
    for key in ("local_judge", "fastchat_prompts"):
        if key in d and not isinstance(d[key], bool):
            raise ValueError(f"{key} must be true or false, got {d[key]!r:.40}")


class _Judgment(_Record):
    """What single and pairwise judgments share: the keys we add to FastChat's record, kept in
    `extra` (so every line round-trips byte for byte) and read here, typed: `repeat` (the index
    of `--judge-repeats`; 0 for a record judged once, without the key), `local_judge` (judged
    in-process) and `fastchat_prompts` (False when marked: judge prompts other than FastChat's)."""

    extra: dict[str, Any]

    @property
    def repeat(self) -> int:
        return int(self.extra.get("repeat") or 0)

    @property
    def local_judge(self) -> bool:
        return bool(self.extra.get("local_judge"))

    @property
    def fastchat_prompts(self) -> bool:
        return self.extra.get("fastchat_prompts", True) is not False

    @property
    def judge_max_tokens(self) -> int | None:
        """The judge's budget when not FastChat's 2048 (asked again, or by hand)."""
        value = self.extra.get("judge_max_tokens")
        return value if isinstance(value, int) else None

    @property
    def verdict_cut(self) -> bool:  # the token limit cut the verdict, at the largest budget
        return self.extra.get("judge_finish_reason") == "length"

    @property
    def references(self) -> str | None:
        """The references chosen with `--references` ("inline" or a file's name); None: FastChat's
        (the judge's reference file)."""
        value = self.extra.get("references")
        return None if value is None else str(value)


@dataclass(frozen=True)
class SingleJudgment(_Judgment):
    """A single-mode judgment line; show_result needs question_id, model, judge, score, turn."""

    question_id: QuestionId
    model: str
    judge: list[str]  # [judge_model, prompt_name]
    user_prompt: str | None = None
    judgment: str | None = None
    score: Score = -1  # -1: no rating found (or API failure); required when read
    turn: int = 1  # required when read
    tstamp: float | None = None
    extra: dict[str, Any] = field(default_factory=dict, compare=False)  # e.g. score_source of a local judge

    _REQUIRED: ClassVar[tuple[str, ...]] = ("question_id", "model", "judge", "score", "turn")
    _OPTIONAL: ClassVar[tuple[str, ...]] = ("user_prompt", "judgment", "tstamp")

    @classmethod
    def _check(cls, d: dict[str, Any]) -> None:
        _check_judgment(d, ("model",), ())
        if not isinstance(d["score"], (int, float)) or isinstance(d["score"], bool):
            raise ValueError(f"score must be a number, got {d['score']!r:.40}")

    @property
    def key(self) -> tuple:
        """Resume identity, equal to `judging.call.job_key` of the match (and repeat: a record
        without "repeat" is repeat 0) that produced it."""
        return (question_key(self.question_id), self.turn, self.model, "", self.judge[1],
                self.repeat)

    @property
    def failed(self) -> bool:
        """An API failure ($ERROR$) is not a judgment: resume sends it again."""
        return self.judgment == API_ERROR_OUTPUT

    @property
    def unrated(self) -> bool:
        """The judge answered without a rating FastChat can read (score -1): a judgment, kept
        (resume does not send it again), but in no score."""
        return self.score == -1 and not self.failed


@dataclass(frozen=True)
class PairJudgment(_Judgment):
    """A pairwise judgment line; show_result needs the models, both winners, judge and turn."""

    question_id: QuestionId
    model_1: str
    model_2: str
    g1_winner: str  # "model_1", "model_2", "tie" or "error"
    g2_winner: str
    judge: list[str]
    g1_user_prompt: str | None = None
    g1_judgment: str | None = None
    g2_user_prompt: str | None = None
    g2_judgment: str | None = None
    turn: int = 1  # required when read
    tstamp: float | None = None
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    _REQUIRED: ClassVar[tuple[str, ...]] = ("question_id", "model_1", "model_2", "g1_winner",
                                            "g2_winner", "judge", "turn")
    _OPTIONAL: ClassVar[tuple[str, ...]] = ("g1_user_prompt", "g1_judgment", "g2_user_prompt",
                                            "g2_judgment", "tstamp")

    @classmethod
    def _check(cls, d: dict[str, Any]) -> None:
        _check_judgment(d, ("model_1", "model_2"), ("g1_winner", "g2_winner"))

    @property
    def key(self) -> tuple:
        return (question_key(self.question_id), self.turn, self.model_1, self.model_2,
                self.judge[1], self.repeat)

    @property
    def failed(self) -> bool:
        return API_ERROR_OUTPUT in (self.g1_judgment, self.g2_judgment)

    @property
    def unrated(self) -> bool:
        """A verdict without [[A]]/[[B]]/[[C]] (winner "error") in either game, not a failure."""
        return "error" in (self.g1_winner, self.g2_winner) and not self.failed


Judgment = SingleJudgment | PairJudgment
