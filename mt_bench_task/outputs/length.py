"""Length-controlled scores: what a model's score is once the judge's taste for length is taken out.

Length: log(1 + tokens) of the answer to the judged turn, tokens being words and punctuation marks
(`\\w+|[^\\w\\s]`: no tokenizer needed, the same for every model), as a difference from the mean
over the compared models on that question and turn.
Single mode (AlpacaEval's length-controlled win rate in spirit): least squares of the score on
model, question-turn and that length difference; a model's length-controlled average is its mean
of score - coefficient x length difference (its score at the question's mean length).
Pairwise (arena-hard-auto's style control): Bradley-Terry (logistic, a tie counts half) on the
model strengths plus the difference of the two answers' lengths; a model's length-controlled
win rate is its modelled win rate, at equal length, against the baseline (pairwise-baseline) or
on average against the others (pairwise-all). Intervals: a bootstrap over questions with refit.
Needs the answers of at least 2 models; seeded.
"""
from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

from mt_bench_task.core.ids import question_key
from mt_bench_task.core.types import Answer, PairJudgment, SingleJudgment

N_BOOTSTRAP = 1000
MIN_QUESTIONS = 10  # fewer: the length coefficient is not estimable with any precision
MIN_WITHIN_SHARE = 0.05  # of the length's variance left once model and question are known
_TOKEN = re.compile(r"\w+|[^\w\s]")
LABEL = ("length-controlled: the score at the question's mean answer length (regression on model, "
         "question and log answer length; words and punctuation counted)")
PAIR_LABEL = ("length-controlled: Bradley-Terry win rate at equal answer length (style control "
              "on log answer length; words and punctuation counted)")


def log_length(text: str) -> float:
    return math.log1p(len(_TOKEN.findall(text)))


def _length(answers: Mapping[str, Mapping[Any, Answer]], model: str, q: Any, turn: int) -> float | None:
    a = answers.get(model, {}).get(q)
    return None if a is None or len(a.turns) < turn else log_length(a.turns[turn - 1])


def single_rows(records: Sequence[SingleJudgment], answers: Mapping[str, Mapping[Any, Answer]]
                ) -> list[tuple[str, Any, int, float, float]]:
    """(model, question, turn, score, length difference) of rated rows whose answer is known."""
    raw = [(r.model, question_key(r.question_id), r.turn, float(r.score)) for r in records
           if r.score != -1]
    lengths = {(m, q, t): _length(answers, m, q, t) for m, q, t, _ in raw}
    by_qt: dict[tuple[Any, int], dict[str, float]] = {}
    for (m, q, t), ln in lengths.items():
        if ln is not None:
            by_qt.setdefault((q, t), {})[m] = ln
    means = {k: sum(v.values()) / len(v) for k, v in by_qt.items()}
    return [(m, q, t, s, ln - means[(q, t)]) for m, q, t, s in raw
            if (ln := lengths[(m, q, t)]) is not None]


def _residual(m: Any, u: Any, d: Any) -> Any:
    """d with the model and question-turn effects projected out (alternating means): what of
    the length is neither the model's habit nor the question's (Frisch-Waugh-Lovell)."""
    import numpy as np

    r = d.astype(float).copy()
    for _ in range(100):
        before = r.copy()
        for g in (u, m):
            r -= (np.bincount(g, r) / np.maximum(np.bincount(g), 1))[g]
        if np.abs(r - before).max() < 1e-10:
            break
    return r


def _beta(m: Any, u: Any, y: Any, d: Any) -> float:
    """The length coefficient of least squares on model and question-turn effects (integer codes
    m, u) and the length difference d."""
    r = _residual(m, u, d)
    den = float(r @ r)
    return float(r @ y / den) if den > 1e-12 else 0.0


def single_length_control(records: Sequence[SingleJudgment],
                          answers: Mapping[str, Mapping[Any, Answer]], seed: int = 0,
                          n_bootstrap: int = N_BOOTSTRAP) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """({model: {"average", "ci95"}}, {"coefficient", "ci95", "per_doubling", "label"}), or None
    when length cannot be told apart from the model: fewer than 2 models with answers, fewer
    than MIN_QUESTIONS questions, or lengths that vary too little within each model (each
    model always longer or shorter by about the same: the coefficient would be noise)."""
    import numpy as np

    rows = single_rows(records, answers)
    models = sorted({r[0] for r in rows})
    if len(models) < 2 or not any(r[4] for r in rows):
        return None
    questions = sorted({r[1] for r in rows}, key=str)
    units = sorted({(r[1], r[2]) for r in rows}, key=str)
    mi, qi, ui = ({k: i for i, k in enumerate(ks)} for ks in (models, questions, units))
    m = np.array([mi[r[0]] for r in rows])
    u = np.array([ui[(r[1], r[2])] for r in rows])
    q = np.array([qi[r[1]] for r in rows])
    y, d = np.array([r[3] for r in rows]), np.array([r[4] for r in rows])
    of_q = [np.flatnonzero(q == i) for i in range(len(questions))]

    def lc(rows_: Any, beta: float) -> Any:  # per model: mean of score - beta x length difference
        mm = m[rows_]
        return (np.bincount(mm, y[rows_] - beta * d[rows_], len(models))
                / np.maximum(np.bincount(mm, minlength=len(models)), 1))

    if len(questions) < MIN_QUESTIONS:
        return None
    within = _residual(m, u, d)
    if float(within @ within) < MIN_WITHIN_SHARE * float(((d - d.mean()) ** 2).sum()):
        return None
    everything = np.arange(len(rows))
    beta = _beta(m, u, y, d)
    point = lc(everything, beta)
    rng = np.random.default_rng(seed)
    betas, boots = np.empty(n_bootstrap), np.empty((n_bootstrap, len(models)))
    for b in range(n_bootstrap):
        pick = np.concatenate([of_q[i] for i in rng.integers(0, len(questions), len(questions))])
        betas[b] = _beta(m[pick], u[pick], y[pick], d[pick])
        boots[b] = lc(pick, betas[b])

    def ci(xs: Any) -> list[float]:
        return [float(np.percentile(xs, 2.5)), float(np.percentile(xs, 97.5))]

    per_model = {name: {"average": float(point[i]), "ci95": ci(boots[:, i])}
                 for i, name in enumerate(models)}
    return per_model, {"coefficient": beta, "ci95": ci(betas), "per_doubling": beta * math.log(2),
                       "models": len(models), "label": LABEL}


def _games(records: Sequence[PairJudgment], answers: Mapping[str, Mapping[Any, Answer]]
           ) -> list[tuple[str, str, Any, float, float]]:
    """(model_1, model_2, question, points of model_1, length difference) of valid games."""
    out = []
    for r in records:
        if "error" in (r.g1_winner, r.g2_winner):
            continue
        q = question_key(r.question_id)
        l1, l2 = _length(answers, r.model_1, q, r.turn), _length(answers, r.model_2, q, r.turn)
        if l1 is None or l2 is None:
            continue
        tie = r.g1_winner == "tie" or r.g1_winner != r.g2_winner  # show_result's rule
        out.append((r.model_1, r.model_2, q, 0.5 if tie else float(r.g1_winner == "model_1"),
                    l1 - l2))
    return out


def _bradley_terry(games: Sequence[tuple[str, str, Any, float, float]], models: list[str],
                   length: bool) -> tuple[Any, float]:
    """Strengths (mean 0) and the length coefficient, by Newton's method on the logistic
    likelihood (a small ridge keeps a model that always wins finite)."""
    import numpy as np

    k = len(models)
    idx = {m: i for i, m in enumerate(models)}
    x = np.zeros((len(games), k + 1))
    for i, (a, b, _, _, d) in enumerate(games):
        x[i, idx[a]], x[i, idx[b]] = 1, -1
        x[i, k] = d if length else 0.0
    y = np.array([g[3] for g in games])
    w = np.zeros(k + 1)
    for _ in range(50):
        p = 1 / (1 + np.exp(-(x @ w)))
        grad = x.T @ (y - p) - 1e-3 * w
        hess = (x * (p * (1 - p))[:, None]).T @ x + 1e-3 * np.eye(k + 1)
        step = np.linalg.solve(hess, grad)
        w += step
        if np.abs(step).max() < 1e-9:
            break
    return w[:k] - w[:k].mean(), float(w[k])


def pair_length_control(records: Sequence[PairJudgment], answers: Mapping[str, Mapping[Any, Answer]],
                        baseline: str | None, seed: int = 0, n_bootstrap: int = 200
                        ) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """({model: {"win_rate", "ci95", "win_rate_bt"}}, {"coefficient", "ci95", "label"}): the
    win rate at equal length (and without the length term, for comparison); None without games."""
    import numpy as np

    games = _games(records, answers)
    models = sorted({m for g in games for m in g[:2]})
    if len(models) < 2:
        return None

    def rates(theta: Any) -> dict[str, float]:
        sig = {m: {o: 1 / (1 + math.exp(theta[j] - theta[i])) for j, o in enumerate(models)}
               for i, m in enumerate(models)}
        if baseline in sig:
            return {m: sig[m][baseline] for m in models if m != baseline}
        return {m: sum(v for o, v in sig[m].items() if o != m) / (len(models) - 1) for m in models}

    theta, gamma = _bradley_terry(games, models, True)
    plain = rates(_bradley_terry(games, models, False)[0])
    point = rates(theta)
    questions = sorted({g[2] for g in games}, key=str)
    if len(questions) < MIN_QUESTIONS:  # too few to tell length from strength
        return None
    by_q: dict[Any, list[Any]] = {}
    for g in games:
        by_q.setdefault(g[2], []).append(g)
    rng = np.random.default_rng(seed)
    gammas: list[float] = []
    boots: dict[str, list[float]] = {m: [] for m in point}
    for _ in range(n_bootstrap):
        sample = [g for i in rng.integers(0, len(questions), len(questions)) for g in by_q[questions[i]]]
        t, c = _bradley_terry(sample, models, True)
        gammas.append(c)
        for m, v in rates(t).items():
            boots[m].append(v)

    def ci(xs: Sequence[float]) -> list[float]:
        return [float(np.percentile(xs, 2.5)), float(np.percentile(xs, 97.5))]

    per_model = {m: {"win_rate": point[m], "ci95": ci(boots[m]), "win_rate_bt": plain[m]}
                 for m in point}
    return per_model, {"coefficient": gamma, "ci95": ci(gammas), "label": PAIR_LABEL}


def answers_of(data_dir: Any, models: Sequence[str], fallback: Any = None
               ) -> dict[str, dict[Any, Answer]]:
    """The answers of `models` found in DATA_DIR (or `fallback`); a model without is left out."""
    from mt_bench_task.core.data import load_answers
    from mt_bench_task.core.errors import DataError

    out = {}
    for m in models:
        try:
            out[m] = load_answers(data_dir, m, fallback)
        except DataError:
            continue
    return out

