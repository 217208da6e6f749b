"""How often does the baseline gate cry wolf, and how often does it catch a real drop?

Simulates eval runs of N cases whose per-case pass probabilities are realistic (most cases
reliably pass, some reliably fail, some are flaky), and feeds pairs of runs through the
plugin's own gate (:func:`pytest_llmeval.gate.gate.compare_baseline`, the code a pytest run uses):

- false alarms: both runs from the same model (nothing changed), for RUNS pairs;
- detection: the second run from a model whose pass rate is 10 points lower, either because
  some cases broke outright ("concentrated") or because every case got a bit worse ("diffuse").

For contrast it also prints the false-alarm rate of the naive gate "fail when the pass rate
went down at all". Exits 1 if the gate's false-alarm rate exceeds alpha.

    python benchmarks/gate_simulation.py [--runs 1000] [--cases 200] [--alpha 0.05] [--seed 1]
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pytest_llmeval.gate.gate import compare_baseline  # noqa: E402
from pytest_llmeval.gate.results import aggregate  # noqa: E402

EVAL = "test_sim.py::test_case"
MODEL = "openai:sim"


def population(n: int, rng: random.Random, kind: str = "realistic") -> list[float]:
    """Per-case pass probabilities: 70% reliable passes, 15% reliable fails, 15% flaky;
    ``kind="coinflip"``: every case at 0.5, the most flips a model can produce."""
    if kind == "coinflip":
        return [0.5] * n
    probs = []
    for _ in range(n):
        kind = rng.random()
        if kind < 0.70:
            probs.append(0.98)
        elif kind < 0.85:
            probs.append(0.03)
        else:
            probs.append(rng.uniform(0.3, 0.9))
    return probs


def concentrated_drop(probs: list[float], points: float, rng: random.Random) -> list[float]:
    """Break reliable cases outright until the expected pass rate is ``points`` lower."""
    out = list(probs)
    target = points * len(probs)
    order = [i for i, p in enumerate(probs) if p >= 0.9]
    rng.shuffle(order)
    lost = 0.0
    for i in order:
        if lost >= target - 1e-9:
            break
        take = min(out[i], target - lost)
        out[i] -= take
        lost += take
    return out


def diffuse_drop(probs: list[float], points: float) -> list[float]:
    """Every case a little worse, in proportion, so the expected pass rate is ``points`` lower."""
    mean = sum(probs) / len(probs)
    factor = (mean - points) / mean
    return [p * factor for p in probs]


def draw(probs: list[float], rng: random.Random) -> list[dict[str, Any]]:
    """One run: a case dict per case, as the plugin records them."""
    return [
        {
            "eval": EVAL,
            "nodeid": f"{EVAL}[{MODEL}-{i}]",
            "model": MODEL,
            "sample": 0,
            "outcome": "passed" if rng.random() < p else "failed",
            "threshold": 0.0,
        }
        for i, p in enumerate(probs)
    ]


def gate_trips(base: list[dict[str, Any]], new: list[dict[str, Any]], alpha: float) -> tuple[bool, bool]:
    """(baseline gate tripped, naive "any drop" gate tripped)."""
    evals = aggregate(new)
    section = compare_baseline(evals, new, {"cases": base}, alpha=alpha, path="sim")
    base_rate = sum(c["outcome"] == "passed" for c in base) / len(base)
    return bool(section["evals"][0]["regressed"]), evals[0].pass_rate < base_rate


def simulate(
    runs: int,
    cases: int,
    alpha: float,
    seed: int,
    change: str = "none",
    points: float = 0.10,
    kind: str = "realistic",
) -> tuple[float, float]:
    """(gate trip rate, naive trip rate) over ``runs`` simulated run pairs."""
    rng = random.Random(seed)
    gate = naive = 0
    for _ in range(runs):
        probs = population(cases, rng, kind)
        if change == "none":
            after = probs
        elif change == "concentrated":
            after = concentrated_drop(probs, points, rng)
        else:
            after = diffuse_drop(probs, points)
        tripped, naive_tripped = gate_trips(draw(probs, rng), draw(after, rng), alpha)
        gate += tripped
        naive += naive_tripped
    return gate / runs, naive / runs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--cases", type=int, default=200)
    parser.add_argument("--alpha", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)

    started = time.perf_counter()
    fa, naive_fa = simulate(args.runs, args.cases, args.alpha, args.seed)
    worst_fa, _ = simulate(args.runs, args.cases, args.alpha, args.seed + 1, kind="coinflip")
    conc, _ = simulate(args.runs, args.cases, args.alpha, args.seed + 2, change="concentrated")
    diff, _ = simulate(args.runs, args.cases, args.alpha, args.seed + 3, change="diffuse")
    elapsed = time.perf_counter() - started

    print(
        f"baseline gate simulation: {args.runs} run pairs of {args.cases} cases, alpha {args.alpha}, seed {args.seed}"
    )
    print("population: 70% reliable passes (p=0.98), 15% reliable fails (p=0.03), 15% flaky (p~U(0.3,0.9))")
    print(f"  false alarms, nothing changed:           {fa:6.1%}  (must be <= {args.alpha:.1%})")
    print(f"  false alarms, every case a coin flip:     {worst_fa:6.1%}  (must be <= {args.alpha:.1%})")
    print(f"  naive 'any drop fails' gate, same runs:   {naive_fa:6.1%}")
    print(f"  detection, 10-point drop, concentrated:   {conc:6.1%}  (some reliable cases break)")
    print(f"  detection, 10-point drop, diffuse:        {diff:6.1%}  (every case a bit worse)")
    print(f"  ({elapsed:.1f} s)")
    if max(fa, worst_fa) > args.alpha:
        print("FAIL: false-alarm rate above alpha", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
