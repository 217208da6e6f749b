"""The gate's statistics against known values and brute-force enumeration."""

from __future__ import annotations

import itertools
import math
import random

import pytest

from pytest_llmeval.gate.stats import (
    Z95,
    binomial_tail,
    mcnemar_exact,
    pass_at_k,
    pass_hat_k,
    percentile,
    wilson_interval,
)


@pytest.mark.parametrize(
    "successes, n, low, high",
    [
        # Wilson score interval (z = 1.96): published values (8/10: 0.490-0.943, 0/10: 0-0.278)
        # and, for 1/2, the closed form worked by hand (centre 0.5, half-width 0.405469).
        (8, 10, 0.4901624715, 0.9433178486),
        (0, 10, 0.0, 0.2775327998),
        (10, 10, 0.7224672002, 1.0),
        (1, 2, 0.0945312057, 0.9054687943),
        (50, 100, 0.4038315013, 0.5961684987),
    ],
)
def test_wilson_interval_matches_reference_values(successes: int, n: int, low: float, high: float) -> None:
    got_low, got_high = wilson_interval(successes, n)
    assert got_low == pytest.approx(low, abs=1e-6)
    assert got_high == pytest.approx(high, abs=1e-6)


def test_wilson_interval_is_inside_unit_range_and_contains_the_rate() -> None:
    for n in (1, 2, 3, 7, 30, 1000):
        for s in range(n + 1):
            low, high = wilson_interval(s, n)
            assert 0.0 <= low <= s / n <= high <= 1.0
    assert wilson_interval(0, 0) == (0.0, 1.0)
    with pytest.raises(ValueError, match="successes <= n"):
        wilson_interval(3, 2)


def test_wilson_interval_covers_about_95_percent() -> None:
    # Coverage of the true rate over many binomial draws: close to nominal, never far below.
    rng = random.Random(1)
    for p, n in ((0.8, 50), (0.95, 100), (0.5, 20)):
        hits = 0
        trials = 2000
        for _ in range(trials):
            s = sum(rng.random() < p for _ in range(n))
            low, high = wilson_interval(s, n)
            hits += low <= p <= high
        assert hits / trials > 0.92, (p, n, hits / trials)
    assert pytest.approx(1.959963984540054) == Z95


def test_binomial_tail_equals_enumeration_and_handles_large_n() -> None:
    for n in range(0, 13):
        for k in range(-1, n + 2):
            brute = sum(1 for bits in itertools.product((0, 1), repeat=n) if sum(bits) >= k) / 2**n
            assert binomial_tail(k, n) == pytest.approx(brute, abs=1e-15)
    assert binomial_tail(1500, 3000) == pytest.approx(0.5 + math.comb(3000, 1500) / 2**3001, rel=1e-12)
    assert 0.0 <= binomial_tail(2000, 3000) < 1e-60


def test_mcnemar_exact_one_sided_and_two_sided() -> None:
    assert mcnemar_exact(0, 0) == 1.0
    assert mcnemar_exact(1, 0) == 0.5  # one flip is never evidence
    assert mcnemar_exact(10, 0) == pytest.approx(1 / 1024)
    assert mcnemar_exact(0, 10) == 1.0  # improvements are not drops
    assert mcnemar_exact(5, 5) == pytest.approx(0.623046875)
    # Two-sided: symmetric, twice the smaller tail, capped at 1.
    assert mcnemar_exact(10, 0, alternative="two-sided") == pytest.approx(2 / 1024)
    assert mcnemar_exact(0, 10, alternative="two-sided") == pytest.approx(2 / 1024)
    assert mcnemar_exact(5, 5, alternative="two-sided") == 1.0
    # Known value: b=1, c=9 -> two-sided exact p = 0.021484375.
    assert mcnemar_exact(1, 9, alternative="two-sided") == pytest.approx(0.021484375)
    with pytest.raises(ValueError, match="alternative"):
        mcnemar_exact(1, 1, alternative="less")


def _subsets(n: int, c: int, k: int) -> tuple[float, float]:
    """Brute force over every k-subset of n samples (the first c pass): P(any pass), P(all pass)."""
    samples = [True] * c + [False] * (n - c)
    subsets = list(itertools.combinations(samples, k))
    return sum(any(s) for s in subsets) / len(subsets), sum(all(s) for s in subsets) / len(subsets)


def test_pass_at_k_and_pass_hat_k_equal_subset_enumeration() -> None:
    for n in range(1, 8):
        for c in range(n + 1):
            for k in range(1, n + 1):
                any_pass, all_pass = _subsets(n, c, k)
                assert pass_at_k(n, c, k) == pytest.approx(any_pass)
                assert pass_hat_k(n, c, k) == pytest.approx(all_pass)
    assert pass_at_k(10, 3, 1) == pytest.approx(0.3)
    assert pass_hat_k(10, 3, 1) == pytest.approx(0.3)
    with pytest.raises(ValueError, match="1 <= k <= n"):
        pass_at_k(3, 1, 4)
    with pytest.raises(ValueError, match="0 <= c <= n"):
        pass_hat_k(3, 4, 1)


def test_percentile_interpolates_like_numpy() -> None:
    assert percentile([], 50) is None
    assert percentile([3.0], 95) == 3.0
    assert percentile([1, 2, 3, 4], 50) == pytest.approx(2.5)
    assert percentile([1, 2, 3, 4], 95) == pytest.approx(3.85)
    assert percentile([4, 1, 3, 2], 0) == 1 and percentile([4, 1, 3, 2], 100) == 4


def test_baseline_gate_simulation_false_alarms_at_most_alpha_and_detects_a_drop() -> None:
    # A small version of benchmarks/gate_simulation.py (fixed seeds: deterministic).
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parent.parent / "benchmarks" / "gate_simulation.py"
    spec = importlib.util.spec_from_file_location("gate_simulation", path)
    assert spec is not None and spec.loader is not None
    sim = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(sim)
    false_alarms, naive = sim.simulate(300, 100, 0.05, seed=7)
    assert false_alarms <= 0.05 < naive
    coinflip, _ = sim.simulate(300, 100, 0.05, seed=8, kind="coinflip")
    assert coinflip <= 0.05
    detected, _ = sim.simulate(100, 200, 0.05, seed=9, change="concentrated")
    assert detected >= 0.8
