"""Small, exact statistics for behaviour rates: Wilson intervals, Fisher's exact test, a
bootstrap for rate differences, and AUROC (as the Mann-Whitney U statistic)."""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from .errors import SteerError


def _counts(k: int, n: int) -> None:
    """Counts are whole numbers with 0 <= k <= n (a float like 3.0 passes: sums of flags can be floats)."""
    for v in (k, n):
        if not isinstance(v, (int, float, np.integer, np.floating)) or not float(v).is_integer():
            raise SteerError(f"counts must be whole numbers, got k={k!r}, n={n!r}")
    if n < 0 or not 0 <= k <= n:
        raise SteerError(f"need 0 <= k <= n, got k={k}, n={n}")


def wilson(k: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """95% Wilson score interval for k successes in n trials ((0, 1) when n == 0).

    >>> wilson(0, 10)
    (0.0, 0.2775...)
    """
    _counts(k, n)
    if n == 0:
        return (0.0, 1.0)
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def rate(k: int, n: int) -> dict[str, float | int | None]:
    """{n, k, rate, lo, hi} with a Wilson 95% interval; rate is None when n == 0."""
    lo, hi = wilson(k, n)
    return {"n": n, "k": k, "rate": (k / n) if n else None, "lo": lo, "hi": hi}


def fisher_exact(k1: int, n1: int, k2: int, n2: int) -> float:
    """Two-sided p-value of Fisher's exact test for k1/n1 vs k2/n2.

    >>> round(fisher_exact(1, 10, 7, 10), 3)
    0.02
    """
    _counts(k1, n1)
    _counts(k2, n2)
    from scipy.stats import fisher_exact as fe

    return float(fe([[k1, n1 - k1], [k2, n2 - k2]], alternative="two-sided")[1])


def bootstrap_diff(a: Sequence[float], b: Sequence[float], *, n_boot: int = 2000,
                   seed: int = 0) -> tuple[float, float, float]:
    """mean(a) - mean(b) with a percentile 95% bootstrap interval."""
    x, y = np.asarray(a, float), np.asarray(b, float)
    if len(x) == 0 or len(y) == 0:
        return (float("nan"), float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    diffs = rng.choice(x, (n_boot, len(x))).mean(1) - rng.choice(y, (n_boot, len(y))).mean(1)
    return (float(x.mean() - y.mean()), float(np.percentile(diffs, 2.5)), float(np.percentile(diffs, 97.5)))


def auroc(scores: Sequence[float], labels: Sequence[bool]) -> float | None:
    """P(score of a positive > score of a negative), ties count half; None without both classes."""
    s = np.asarray(scores, float)
    y = np.asarray(labels, bool)
    if s.shape != y.shape or s.ndim != 1:
        raise SteerError(f"auroc needs one label per score, got {s.shape} scores and {y.shape} labels")
    pos, neg = s[y], s[~y]
    if len(pos) == 0 or len(neg) == 0:
        return None
    greater = (pos[:, None] > neg[None, :]).sum()
    ties = (pos[:, None] == neg[None, :]).sum()
    return float((greater + 0.5 * ties) / (len(pos) * len(neg)))
