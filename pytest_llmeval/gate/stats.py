"""The statistics behind the gate, in the standard library only (no scipy).

- :func:`wilson_interval`: the 95% confidence interval of a pass rate. Unlike the textbook
  normal interval it stays inside [0, 1] and is not degenerate at 0/n or n/n, which is
  where eval pass rates usually sit.
- :func:`mcnemar_exact`: the paired test behind ``--llmeval-baseline``. Only the cases that
  flipped carry information about a change; under "nothing changed" each flip is equally
  likely to go either way, so the count of pass->fail flips is Binomial(flips, 1/2). Exact,
  hence conservative: the false-alarm rate never exceeds alpha.
- :func:`pass_at_k` (the unbiased estimator of Chen et al. 2021, "Evaluating Large Language
  Models Trained on Code") and :func:`pass_hat_k` (all k samples pass, Yao et al. 2024,
  tau-bench), both from n samples of which c passed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

__all__ = [
    "Z95",
    "wilson_interval",
    "binomial_tail",
    "mcnemar_exact",
    "pass_at_k",
    "pass_hat_k",
    "percentile",
]

#: Two-sided 95% quantile of the standard normal distribution.
Z95 = 1.959963984540054


def wilson_interval(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval ``(low, high)`` of ``successes`` out of ``n``.

    ``n == 0`` gives ``(0.0, 1.0)``: no data, no knowledge.
    """
    if n < 0 or successes < 0 or successes > n:
        raise ValueError(f"wilson_interval: need 0 <= successes <= n, got {successes} of {n}")
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    z2 = z * z
    denom = 1.0 + z2 / n
    centre = (p + z2 / (2 * n)) / denom
    half = z * math.sqrt(p * (1.0 - p) / n + z2 / (4 * n * n)) / denom
    # The exact ends are 0 and 1 at the extremes; clamp rounding noise there.
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == n else min(1.0, centre + half)
    return low, high


def binomial_tail(k: int, n: int) -> float:
    """``P(X >= k)`` for ``X ~ Binomial(n, 1/2)``, exact (integer arithmetic)."""
    if n < 0:
        raise ValueError(f"binomial_tail: n must be >= 0, got {n}")
    if k <= 0:
        return 1.0
    if k > n:
        return 0.0
    # Integers keep it exact for any n; one division at the end.
    total = sum(math.comb(n, i) for i in range(k, n + 1))
    # int / int is correctly rounded in Python even when both exceed the float range.
    return total / (1 << n)


def mcnemar_exact(to_fail: int, to_pass: int, *, alternative: str = "drop") -> float:
    """Exact McNemar p-value from the discordant pairs of a paired comparison.

    ``to_fail``: cases that passed before and fail now; ``to_pass``: the reverse.
    ``alternative="drop"`` (one-sided, what a gate wants): the chance of at least
    ``to_fail`` pass->fail flips out of all flips if nothing changed.
    ``alternative="two-sided"``: a change in either direction. No flips gives 1.0.
    """
    if to_fail < 0 or to_pass < 0:
        raise ValueError(f"mcnemar_exact: flip counts must be >= 0, got {to_fail}, {to_pass}")
    n = to_fail + to_pass
    if n == 0:
        return 1.0
    if alternative == "drop":
        return binomial_tail(to_fail, n)
    if alternative == "two-sided":
        low = min(to_fail, to_pass)
        return min(1.0, 2.0 * (1.0 - binomial_tail(low + 1, n)))
    raise ValueError(f"mcnemar_exact: alternative must be 'drop' or 'two-sided', got {alternative!r}")


def pass_at_k(n: int, c: int, k: int) -> float:
    """Chance that at least one of ``k`` samples passes, estimated from ``n`` samples with
    ``c`` passes: ``1 - C(n-c, k) / C(n, k)`` (unbiased; HumanEval's estimator)."""
    _check_nck(n, c, k, "pass_at_k")
    if n - c < k:
        return 1.0
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


def pass_hat_k(n: int, c: int, k: int) -> float:
    """Chance that all ``k`` samples pass (pass^k), estimated as ``C(c, k) / C(n, k)``."""
    _check_nck(n, c, k, "pass_hat_k")
    return math.comb(c, k) / math.comb(n, k)


def _check_nck(n: int, c: int, k: int, name: str) -> None:
    if not 0 <= c <= n:
        raise ValueError(f"{name}: need 0 <= c <= n, got c={c}, n={n}")
    if not 1 <= k <= n:
        raise ValueError(f"{name}: need 1 <= k <= n, got k={k}, n={n}")


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q``-th percentile (0..100) with linear interpolation (numpy's default);
    ``None`` for no values."""
    if not values:
        return None
    if not 0.0 <= q <= 100.0:
        raise ValueError(f"percentile: q must be in 0..100, got {q}")
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)
