"""The `mt_bench` inspect task's metrics: `mt-bench show`'s numbers over the per-turn values.

Each metric rebuilds FastChat judgment records from the scores and calls scoring.py's summaries, so
the log's turn_1 / turn_2 / overall / per-category (or win rates) are computed by the same code as
`mt-bench show` on the imported files.
"""
from __future__ import annotations

import math
from typing import Any

from inspect_ai.scorer import Metric, SampleScore, Value, metric

from mt_bench_task.core.ids import QuestionId, question_key
from mt_bench_task.core.results import SingleScore
from mt_bench_task.core.scoring import summarize_pairwise, summarize_single
from mt_bench_task.core.types import PairJudgment, SingleJudgment

MODEL = "model"  # the one model of an eval, as the records' model for scoring's summaries


def pair_record(question_id: QuestionId, judge: str, baseline: str, turn: dict[str, Any]) -> PairJudgment:
    """One turn of a pairwise score's metadata as the record `mt-bench judge` writes."""
    return PairJudgment(question_id, MODEL, baseline, turn["g1_winner"], turn["g2_winner"],
                        [judge, turn.get("prompt_name", "")], turn=turn["turn"])


def _qid(s: SampleScore) -> QuestionId:
    meta = s.sample_metadata or {}
    return question_key(meta["question_id"] if "question_id" in meta else str(s.sample_id))


def _judge(s: SampleScore) -> str:
    return str((s.score.metadata or {}).get("judge", ""))


def _records(scores: list[SampleScore]) -> tuple[list[SingleJudgment], dict[QuestionId, str]]:
    """The single-mode records of the per-turn values (NaN: no rating, FastChat's score -1)."""
    records: list[SingleJudgment] = []
    categories: dict[QuestionId, str] = {}
    for s in scores:
        qid = _qid(s)
        categories[qid] = (s.sample_metadata or {}).get("category", "unknown")
        value = s.score.value if isinstance(s.score.value, dict) else {}
        for key, v in value.items():
            ok = isinstance(v, (int, float)) and not math.isnan(v)
            records.append(SingleJudgment(qid, MODEL, [_judge(s), ""], score=v if ok else -1,
                                          turn=int(key.split("_")[1])))
    return records, categories


def _single(scores: list[SampleScore]) -> SingleScore | None:
    records, categories = _records(scores)
    results = summarize_single(records, categories)
    return results.score(MODEL) if MODEL in results.models else None


def _nan(x: float | None) -> float:
    return math.nan if x is None else float(x)


def _summary_metric(key: str) -> Metric:
    def compute(scores: list[SampleScore]) -> Value:  # annotated: inspect passes SampleScores
        score = _single(scores)
        if key == "categories":
            return dict(score.categories) if score else {}
        return _nan(getattr(score, key) if score else None)

    return compute


@metric
def turn_1() -> Metric:
    """show_result's "First turn" mean (ratings of -1 dropped)."""
    return _summary_metric("turn_1")


@metric
def turn_2() -> Metric:
    """show_result's "Second turn" mean."""
    return _summary_metric("turn_2")


@metric
def overall() -> Metric:
    """show_result's "Average": the mean over all rated turns of both turns pooled."""
    return _summary_metric("average")


@metric
def category() -> Metric:
    """Per-category means over both turns (`mt-bench show`'s per-category table)."""
    return _summary_metric("categories")


@metric
def stderr() -> Metric:
    """Standard error of the pooled mean, clustered by question (the two turns of a question are
    not independent): inspect's stderr(cluster=...) formula over the rated turns."""

    def compute(scores: list[SampleScore]) -> float:
        records, _ = _records(scores)
        vals = [(r.question_id, float(r.score)) for r in records if r.score != -1]
        clusters = sorted({q for q, _ in vals}, key=str)
        if len(clusters) < 2:
            return 0.0
        mean = sum(v for _, v in vals) / len(vals)
        var = sum(sum(v - mean for q, v in vals if q == c) ** 2 for c in clusters)
        return math.sqrt(var * len(clusters) / (len(clusters) - 1)) / len(vals)

    return compute


def _pairwise(scores: list[SampleScore], key: str) -> float:
    """show_result's pairwise numbers, from the g1/g2 winners kept in the score metadata."""
    records = [pair_record(_qid(s), _judge(s), s.score.metadata["baseline_model"], t)
               for s in scores if s.score.metadata for t in s.score.metadata["turns"]]
    baseline = records[0].model_2 if records else None
    res = summarize_pairwise(records, "pairwise-baseline", None, baseline)
    return float(getattr(res.rates(MODEL), key)) if MODEL in res.models else math.nan


def _pairwise_metric(key: str) -> Metric:
    def compute(scores: list[SampleScore]) -> Value:
        return _pairwise(scores, key)

    return compute


@metric
def win_rate() -> Metric:
    """show_result pairwise: wins / (wins + losses + ties), turns pooled."""
    return _pairwise_metric("win_rate")


@metric
def loss_rate() -> Metric:
    return _pairwise_metric("loss_rate")


@metric
def win_rate_adjusted() -> Metric:
    """(wins + 0.5 ties) / total: show_result's sort key."""
    return _pairwise_metric("win_rate_adjusted")
