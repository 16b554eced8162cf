"""Is the difference real? (`mt-bench show --compare`): paired statistics of two models' averages.

The unit is the question: a model's score on a question is the sum and count of its valid
rows there (both turns, every repeat; pairwise: the win points of its games, win 1, tie 0.5,
loss 0). On the questions both models have, delta = pooled mean of A - pooled mean of B
(FastChat's Average / win_rate_adjusted restricted to those questions); its 95 % interval is a
paired bootstrap over questions, its p value a paired sign-flip permutation (under "no
difference" swapping A's and B's scores on a question changes nothing). Resolved: the interval
excludes 0. Many models: every pair, and the share resolved (arena-hard-auto's separability,
here with paired intervals). Fixed seeds: the same input prints the same numbers.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from mt_bench_task.core.ids import QuestionId, question_key
from mt_bench_task.core.types import Judgment, PairJudgment, SingleJudgment

N_BOOTSTRAP = 2000
N_PERMUTATIONS = 5000
Units = dict[str, dict[QuestionId, tuple[float, int]]]  # model -> question -> (sum, count)


@dataclass(frozen=True)
class Comparison:
    a: str
    b: str
    delta: float  # mean(A) - mean(B) on the shared questions
    ci95: tuple[float, float]
    p_value: float
    n_questions: int

    @property
    def resolved(self) -> bool:
        return self.ci95[0] > 0 or self.ci95[1] < 0

    def to_json(self) -> dict[str, Any]:
        return {"a": self.a, "b": self.b, "delta": self.delta, "ci95": list(self.ci95),
                "p_value": self.p_value, "n_questions": self.n_questions,
                "resolved": self.resolved}

    def sentence(self, what: str = "average") -> str:
        lo, hi = self.ci95
        verdict = ("resolved: the 95% interval excludes 0" if self.resolved
                   else "not resolved: the 95% interval includes 0")
        return (f"{self.a} - {self.b}: {what} difference {self.delta:+.3f} "
                f"[{lo:+.3f}, {hi:+.3f}] on {self.n_questions} shared questions, "
                f"p = {self.p_value:.4f} (paired); {verdict}")


@dataclass(frozen=True)
class Separability:
    """Every pair of `models` (in the given order: best first when ranked)."""

    models: tuple[str, ...]
    pairs: tuple[Comparison, ...]

    @property
    def share(self) -> float | None:
        return sum(p.resolved for p in self.pairs) / len(self.pairs) if self.pairs else None

    def neighbours(self) -> list[Comparison]:
        """Each model against the next one in `models`."""
        index = {(p.a, p.b): p for p in self.pairs}
        return [index[(a, b)] for a, b in zip(self.models, self.models[1:])]

    def to_json(self) -> dict[str, Any]:
        return {"models": list(self.models), "n_pairs": len(self.pairs),
                "resolved": sum(p.resolved for p in self.pairs), "separability": self.share,
                "pairs": [p.to_json() for p in self.pairs]}


def question_units(records: Iterable[Judgment]) -> Units:
    """Per model and question: (sum, count) of valid single scores, or of pairwise win points.
    Pairwise follows show_result: an error row is dropped; a tie or an inconsistent pair
    (g1 != g2) is a tie for both."""
    units: dict[str, dict[QuestionId, list[float]]] = {}

    def add(model: str, q: QuestionId, points: float) -> None:
        cell = units.setdefault(model, {}).setdefault(q, [0.0, 0])
        cell[0] += points
        cell[1] += 1

    for r in records:
        q = question_key(r.question_id)
        if isinstance(r, SingleJudgment):
            if r.score != -1:
                add(r.model, q, float(r.score))
        elif isinstance(r, PairJudgment) and "error" not in (r.g1_winner, r.g2_winner):
            tie = r.g1_winner == "tie" or r.g1_winner != r.g2_winner
            first = 0.5 if tie else float(r.g1_winner == "model_1")
            add(r.model_1, q, first)
            add(r.model_2, q, 1.0 - first)
    return {m: {q: (s, int(c)) for q, (s, c) in qs.items()} for m, qs in units.items()}


def compare_pair(units: Units, a: str, b: str, seed: int = 0, n_bootstrap: int = N_BOOTSTRAP,
                 n_permutations: int = N_PERMUTATIONS) -> Comparison:
    """A against B on their shared questions (ValueError: none shared). The generator is seeded
    per pair, so a pair's numbers do not depend on which other models are compared."""
    import numpy as np

    shared = sorted(set(units.get(a, {})) & set(units.get(b, {})), key=str)
    if not shared:
        raise ValueError(f"{a} and {b} share no question")
    sa, ca, sb, cb = (np.array([units[m][q][i] for q in shared], dtype=float)
                      for m, i in ((a, 0), (a, 1), (b, 0), (b, 1)))
    delta = float(sa.sum() / ca.sum() - sb.sum() / cb.sum())
    weights, flips = _draws(seed, len(shared), n_bootstrap, n_permutations)
    # a bootstrap sample's sums are (times each question is drawn) @ per-question sums
    boots = weights @ sa / (weights @ ca) - weights @ sb / (weights @ cb)
    # a sign flip swaps A's and B's cells on the flipped questions
    sa_, ca_ = sa.sum() + flips @ (sb - sa), ca.sum() + flips @ (cb - ca)
    sb_, cb_ = sb.sum() + flips @ (sa - sb), cb.sum() + flips @ (ca - cb)
    perm = sa_ / ca_ - sb_ / cb_
    extreme = int((np.abs(perm) >= abs(delta) - 1e-12).sum())
    return Comparison(a, b, delta, (float(np.percentile(boots, 2.5)),
                                    float(np.percentile(boots, 97.5))),
                      (extreme + 1) / (n_permutations + 1), len(shared))


@lru_cache(maxsize=8)
def _draws(seed: int, n: int, n_bootstrap: int, n_permutations: int) -> tuple[Any, Any]:
    """(bootstrap draw counts, n_bootstrap x n; sign flips, n_permutations x n) of a seeded
    generator: the same for every pair with n shared questions, so drawn once."""
    import numpy as np

    rng = np.random.default_rng(seed)
    pick = rng.integers(0, n, (n_bootstrap, n))
    weights = np.zeros((n_bootstrap, n))
    np.add.at(weights, (np.repeat(np.arange(n_bootstrap), n), pick.ravel()), 1.0)
    flips = (rng.random((n_permutations, n)) < 0.5).astype(float)
    return weights, flips


def rank_by_mean(units: Units, models: Sequence[str]) -> list[str]:
    """`models`, best pooled mean first (ties by name)."""
    def mean(m: str) -> float:
        s = sum(v[0] for v in units[m].values())
        return s / max(1, sum(v[1] for v in units[m].values()))

    return sorted(models, key=lambda m: (-mean(m), m))


def separability(units: Units, models: Sequence[str], seed: int = 0) -> Separability:
    """Every pair of `models` (ranked best first; A is the better-ranked of each pair)."""
    ranked = rank_by_mean(units, models)
    pairs = tuple(compare_pair(units, a, b, seed)
                  for i, a in enumerate(ranked) for b in ranked[i + 1:])
    return Separability(tuple(ranked), pairs)
