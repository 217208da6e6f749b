"""How often does the baseline gate cry wolf, and how often does it catch a real drop?

Simulates eval runs of N cases whose per-case pass probabilities are realistic (most cases
reliably pass, some reliably fail, some are flaky), and feeds pairs of runs through the
plugin's own gate (:func:`pytest_llmeval.gate.gate.compare_baseline`, the code a pytest run uses):

- false alarms: both runs from the same model (nothing changed), for RUNS pairs;
- detection: the second run from a model whose pass rate is 10 points lower, either because
  some cases broke outright ("concentrated") or because every case got a bit worse ("diffuse").

For contrast it also prints the false-alarm rate of the naive gate "fail when the pass rate
went down at all". Exits 1 if the gate's false-alarm rate exceeds alpha.

Then the adversarial scenarios, each a pair of real pytest runs against the fake server
(tests/fakeapi.py): a baseline that matches nothing, a partial match, a relabelled endpoint,
a baseline outside the project given in the space form (another rootdir), reruns, a subset
(``-k``) and timeouts. Each prints whether the gate's verdict is the right one; exits 1 if any
is not (``--no-adversarial`` skips them).

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


# -- adversarial scenarios: real pytest runs ------------------------------------------------
ADVERSARIAL_EVAL = """
import pytest
from pytest_llmeval import exact

@pytest.mark.llmeval(min_pass_rate={threshold})
@pytest.mark.parametrize("i", range({cases}))
def test_answer(llm, i):
    assert exact(llm(f"case {{i}}"), "yes")
"""
RERUN_EVAL = """
from pathlib import Path

import pytest
from pytest_llmeval import exact

@pytest.mark.llmeval(min_pass_rate=1.0)
@pytest.mark.parametrize("i", range(3))
def test_answer(llm, i):
    answer = llm(f"case {i}")
    mark = Path(f"attempt-{i}")
    again = mark.exists()
    mark.write_text("x")
    # Only case 0 passes its first attempt; the others pass when rerun.
    assert exact(answer, "yes") if i == 0 or again else exact(answer, "never")
"""


def _scripted(api: Any, passing: Any) -> None:
    import re

    def answer(body: dict[str, Any]) -> str:
        found = re.search(r"case (\d+)", str(body.get("messages")))
        return "yes" if found and int(found.group(1)) in passing else "no"

    api.clear()
    api.reply(answer)


def _pytest(cwd: Path, args: list[str], env: dict[str, str]) -> tuple[int, str]:
    import subprocess

    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:randomly", *args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    return proc.returncode, proc.stdout + proc.stderr


def adversarial() -> list[tuple[str, str, str, bool]]:
    """``(scenario, right verdict, gate's verdict, right?)`` for each adversarial scenario."""
    import os
    import tempfile

    # Here, not at the top: tests/test_stats.py loads this file without benchmarks/ on sys.path.
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import _harness  # puts tests/ on sys.path for fakeapi
    from fakeapi import FakeAPI

    rows: list[tuple[str, str, str, bool]] = []
    with FakeAPI() as api, tempfile.TemporaryDirectory() as tmp:
        env = {k: v for k, v in os.environ.items() if k not in ("PYTEST_ADDOPTS", "ANTHROPIC_API_KEY")}
        env.update(OPENAI_API_KEY="sk-sim", OPENAI_BASE_URL=api.openai_base_url, PYTHONPATH=str(_harness.ROOT))
        port = api.url.rsplit(":", 1)[1]
        model = ["--llmeval-model", "openai:sim", "--llmeval-cache=off"]

        def project(name: str, source: str) -> Path:
            folder = Path(tmp, name)
            folder.mkdir()
            (folder / "pytest.ini").write_text("[pytest]\n")
            (folder / "test_ev.py").write_text(source)
            return folder

        def record(folder: Path, passing: Any, *args: str) -> None:
            _scripted(api, passing)
            status, out = _pytest(folder, [*args, "--llmeval-json=base.json"], env)
            assert status == 0, out[-2000:]

        def verdict(status: int, out: str) -> str:
            return "FAIL" if status else ("PASS (partial run)" if "partial run:" in out else "PASS")

        def judge(name: str, right: str, status: int, out: str, because: str = "") -> None:
            # A FAIL counts as right only for the right reason (the line the gate prints).
            got = verdict(status, out)
            if because and because not in out:
                got += " (other reason)"
            rows.append((name, right, got, got == right))

        # 1. Renamed tests: nothing matches; "no regression" would be a lie.
        folder = project("nomatch", ADVERSARIAL_EVAL.format(threshold=0.5, cases=20))
        record(folder, range(17), *model)
        (folder / "test_ev.py").rename(folder / "test_renamed.py")
        _scripted(api, range(12))
        status, out = _pytest(folder, [*model, "--llmeval-baseline=base.json"], env)
        judge("baseline matches no case", "FAIL", status, out, "no case of this run matches")

        # 2. Partial match: 20 of 40 cases compared, and those dropped 95% -> 60%.
        folder = project("partial", ADVERSARIAL_EVAL.format(threshold=0.5, cases=20))
        record(folder, range(19), *model)
        (folder / "test_ev.py").write_text(ADVERSARIAL_EVAL.format(threshold=0.5, cases=40))
        _scripted(api, [*range(8, 20), *range(20, 40)])
        status, out = _pytest(folder, [*model, "--llmeval-baseline=base.json"], env)
        judge("partial match, real drop", "FAIL", status, out, "compared 20 of 40 cases")

        # 3. A relabelled endpoint: the same label, another URL; a real drop must still show.
        folder = project("relabel", ADVERSARIAL_EVAL.format(threshold=0.5, cases=20))
        labelled = ["--llmeval-cache=off", "--llmeval-model", f"sim=openai:m@http://127.0.0.1:{port}/v1"]
        record(folder, range(19), *labelled)
        _scripted(api, range(8, 20))
        moved = ["--llmeval-cache=off", "--llmeval-model", f"sim=openai:m@http://localhost:{port}/v1"]
        status, out = _pytest(folder, [*moved, "--llmeval-baseline=base.json"], env)
        judge("relabelled endpoint, real drop", "FAIL", status, out, "REGRESSED")

        # 4. The baseline outside the project, in the space form: pytest picks another rootdir.
        folder = project("rootdir", ADVERSARIAL_EVAL.format(threshold=0.5, cases=20))
        outside = Path(tmp, "artifacts")
        outside.mkdir()
        _scripted(api, range(19))
        status, out = _pytest(folder, [*model, f"--llmeval-json={outside}/run1.json"], env)
        assert status == 0, out[-2000:]
        _scripted(api, range(8, 20))
        args = [*model, "--llmeval-baseline", str(outside / "run1.json")]
        judge("baseline in another rootdir, real drop", "FAIL", *_pytest(folder, args, env), "REGRESSED")

        # 5. Reruns: 1 of 3 first attempts pass; best-of-3 would say 3 of 3.
        folder = project("reruns", RERUN_EVAL)
        _scripted(api, range(3))
        status, out = _pytest(folder, [*model, "--reruns", "2"], env)
        judge("reruns (1/3 first attempts)", "FAIL", status, out, "pass rate 33.3% (1/3) is below")

        # 6. A subset: -k keeps the one passing case of 10; the verdict must say it is partial.
        folder = project("subset", ADVERSARIAL_EVAL.format(threshold=1.0, cases=10))
        _scripted(api, [3])
        judge("subset (-k, 1 of 10)", "PASS (partial run)", *_pytest(folder, [*model, "-k", "sim-3"], env))

        # 7. Timeouts: every call cut off; min_pass_rate=0 passes failed answers, never errors.
        folder = project("timeouts", ADVERSARIAL_EVAL.format(threshold=0.0, cases=3))
        _scripted(api, range(3))
        api.fault("timeout", count=3, hang=10)
        args = [*model, "--timeout", "1", "--timeout-method", "signal", "--llmeval-concurrency", "0"]
        judge("timeouts (pytest-timeout)", "FAIL", *_pytest(folder, args, env), "3 error(s) in 3 case(s)")
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--cases", type=int, default=200)
    parser.add_argument("--alpha", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--no-adversarial", action="store_true", help="skip the adversarial pytest runs")
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
    status = 0
    if max(fa, worst_fa) > args.alpha:
        print("FAIL: false-alarm rate above alpha", file=sys.stderr)
        status = 1
    if not args.no_adversarial:
        print("adversarial scenarios (real pytest runs against the fake server):")
        rows = adversarial()
        for name, right, got, ok in rows:
            print(f"  {name:40} right: {right:20} gate: {got:20} {'ok' if ok else 'WRONG'}")
        if not all(ok for *_, ok in rows):
            print("FAIL: the gate gave a wrong verdict in an adversarial scenario", file=sys.stderr)
            status = 1
    return status


if __name__ == "__main__":
    raise SystemExit(main())
