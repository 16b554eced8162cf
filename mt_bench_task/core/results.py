"""The typed result of scoring: built once from judgment records and the bench
(`scoring.results_from_records`), then only rendered: `show`'s text and `--json`, the radar,
the report, the model card, the evaluate metric and inspect's metrics.

`Results.to_json()` is the documented `mt-bench show --json` object; `Results.from_json()` reads
it back (`mt-bench publish --results show.json`).
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from mt_bench_task.core.errors import DataError
from mt_bench_task.core.judge_spec import not_comparable_label


@dataclass(frozen=True)
class SingleScore:
    """One model's single-mode scores: FastChat's per-turn means and Average, plus ours."""

    turn_1: float | None
    turn_2: float | None
    average: float
    n_turn_1: int
    n_turn_2: int
    categories: Mapping[str, float]  # both turns, in the bench's category order
    ci95: tuple[float, float]  # bootstrap over (question, turn) units
    judge_sd: float | None = None  # mean spread of one match's ratings (repeats only)
    # beside (never instead of) the raw scores, only when computed (absent from the JSON else):
    gpt4_equivalent: Mapping[str, Any] | None = None  # {"average", "ci95"}: outputs/equivalence
    length_controlled: Mapping[str, Any] | None = None  # {"average", "ci95"}: outputs/length


@dataclass(frozen=True)
class PairScore:
    """One model's pairwise counts and rates (FastChat's show_result rule)."""

    win: int
    loss: int
    tie: int
    win_rate: float
    loss_rate: float
    win_rate_adjusted: float
    length_controlled: Mapping[str, Any] | None = None  # {"win_rate", "ci95", "win_rate_bt"}


@dataclass(frozen=True)
class Results:
    mode: str  # single, pairwise-baseline or pairwise-all
    judge: str  # who judged (several: comma-separated)
    comparable: bool  # with published MT-bench (`judges.is_comparable`)
    rows: int
    rows_dropped: int  # score -1 / verdict "error"
    models: Mapping[str, SingleScore | PairScore] = field(default_factory=dict)
    judge_repeats: int = 1
    consistency: float | None = None  # pairwise: g1 == g2 share (None: no rows)
    categories: tuple[str, ...] = ()  # the bench's category order (not in the JSON)
    calibration: Mapping[str, Any] | None = None  # `mt-bench calibrate`'s figures, if attached
    served_by: tuple[str, ...] = ()  # the models that served the judge, when records say (`served`)
    references: str | None = None  # `--references` the judge was given ("inline", a file); None: FastChat's
    length_control: Mapping[str, Any] | None = None  # the length model's coefficient and label

    @property
    def single(self) -> bool:
        return self.mode == "single"

    @property
    def label(self) -> str | None:
        """The "not comparable with published MT-bench" line, or None."""
        return None if self.comparable else not_comparable_label(self.judge)

    def score(self, model: str) -> SingleScore:
        m = self.models[model]
        assert isinstance(m, SingleScore), "single-mode results only"
        return m

    def rates(self, model: str) -> PairScore:
        m = self.models[model]
        assert isinstance(m, PairScore), "pairwise results only"
        return m

    def ranked(self) -> list[tuple[str, SingleScore]]:
        """Single-mode models, best average first."""
        return sorted(((n, self.score(n)) for n in self.models), key=lambda kv: -kv[1].average)

    def with_calibration(self, figures: Mapping[str, Any] | None) -> Results:
        return replace(self, calibration=figures)

    def only(self, models: list[str]) -> Results:
        return replace(self, models={n: self.models[n] for n in models})

    def to_json(self) -> dict[str, Any]:
        """The `mt-bench show --json` object (keys in their documented order)."""
        out: dict[str, Any] = {"judge": self.judge, "comparable": self.comparable,
                               **({"served_by": list(self.served_by)} if self.served_by else {}),
                               **({"references": self.references} if self.references else {}),
                               "mode": self.mode, "rows": self.rows,
                               "rows_dropped": self.rows_dropped}
        models = {n: _model_json(m) for n, m in self.models.items()}
        if self.single:
            out.update(judge_repeats=self.judge_repeats, models=models)
        else:
            out.update(models=models, consistency=self.consistency)
        if self.calibration is not None:
            out["calibration"] = dict(self.calibration)
        if self.length_control is not None:
            out["length_control"] = dict(self.length_control)
        return out

    @classmethod
    def from_json(cls, obj: Mapping[str, Any], categories: tuple[str, ...] = (),
                  source: str = "results") -> Results:
        """A `show --json` object back as Results (older objects lack "comparable": judged by
        the judge's name, `judges.is_comparable`)."""
        from mt_bench_task.core.judge_spec import DEFAULT_JUDGE, is_comparable

        try:
            mode = str(obj["mode"])
            models: dict[str, SingleScore | PairScore] = {
                n: (_single(m, categories) if mode == "single" else _pair(m))
                for n, m in obj["models"].items()}
            judge = str(obj.get("judge") or DEFAULT_JUDGE)
            comparable = obj.get("comparable")
            return cls(mode, judge, is_comparable(judge) if comparable is None else bool(comparable),
                       int(obj.get("rows", 0)), int(obj.get("rows_dropped", 0)), models,
                       int(obj.get("judge_repeats", 1)), obj.get("consistency"), categories,
                       obj.get("calibration"), tuple(obj.get("served_by") or ()),
                       obj.get("references"), obj.get("length_control"))
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise DataError(f"{source}: not a `mt-bench show --json` object ({e!r})") from e


def _model_json(m: SingleScore | PairScore) -> dict[str, Any]:
    d = asdict(m)
    if isinstance(m, SingleScore):
        d["categories"], d["ci95"] = dict(m.categories), list(m.ci95)
    for extra in ("gpt4_equivalent", "length_controlled"):
        if extra in d and d[extra] is None:
            del d[extra]
    return d


def _single(m: Mapping[str, Any], order: tuple[str, ...]) -> SingleScore:
    from mt_bench_task.core.bench import order_categories

    lo, hi = m["ci95"]
    cats = {str(c): float(v) for c, v in m["categories"].items()}
    return SingleScore(m["turn_1"], m["turn_2"], float(m["average"]), int(m["n_turn_1"]),
                       int(m["n_turn_2"]), {c: cats[c] for c in order_categories(cats, order)},
                       (float(lo), float(hi)), m.get("judge_sd"), m.get("gpt4_equivalent"),
                       m.get("length_controlled"))


def _pair(m: Mapping[str, Any]) -> PairScore:
    return PairScore(int(m["win"]), int(m["loss"]), int(m["tie"]), float(m["win_rate"]),
                     float(m["loss_rate"]), float(m["win_rate_adjusted"]), m.get("length_controlled"))
