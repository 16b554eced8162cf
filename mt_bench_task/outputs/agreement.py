"""How far two graders agree, in plain Python: Pearson's r, average ranks (for Spearman's rho)
and Kendall's tau-b, as `mt-bench calibrate` reports them (outputs/calibration.py)."""
from __future__ import annotations

import math
from collections.abc import Sequence


def mean(xs: Sequence[float]) -> float | None:
    return sum(xs) / len(xs) if xs else None


def pearson(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Pearson r; None with fewer than 2 pairs or a constant side (r undefined)."""
    if len(x) < 2:
        return None
    mx, my = sum(x) / len(x), sum(y) / len(y)
    sxy = sum((a - mx) * (b - my) for a, b in zip(x, y))
    sxx, syy = sum((a - mx) ** 2 for a in x), sum((b - my) ** 2 for b in y)
    return sxy / math.sqrt(sxx * syy) if sxx > 0 and syy > 0 else None


def average_ranks(xs: Sequence[float]) -> list[float]:
    """1-based ranks; tied values share the mean of the ranks they span."""
    order = sorted(range(len(xs)), key=lambda i: xs[i])
    ranks = [0.0] * len(xs)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and xs[order[j + 1]] == xs[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def kendall_tau_b(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Kendall tau-b: sum of sign products over the pairs, over sqrt of the untied counts."""
    def sign(v: float) -> int:
        return (v > 0) - (v < 0)

    s = nx = ny = 0
    for i in range(len(x)):
        for j in range(i + 1, len(x)):
            dx, dy = sign(x[i] - x[j]), sign(y[i] - y[j])
            s, nx, ny = s + dx * dy, nx + dx * dx, ny + dy * dy
    return s / math.sqrt(nx * ny) if nx and ny else None
