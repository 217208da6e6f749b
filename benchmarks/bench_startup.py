"""Startup cost of the plugin for a project that selects no evals.

Runs ``pytest --collect-only -q`` on a generated project of plain tests, alternating runs
with the plugin loaded and with ``-p no:llmeval``, and prints the median of each and the
difference. Target: the plugin adds less than 50 ms.

    python benchmarks/bench_startup.py [--runs 21] [--files 20] [--tests 10] [--breakdown]

``--breakdown`` also prints what each module of the plugin's import chain costs (CPU time,
best of ``--runs`` fresh interpreters that have already imported pytest).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from _harness import timed_pytest


def make_project(root: Path, files: int, tests: int) -> None:
    (root / "pytest.ini").write_text("[pytest]\naddopts = -p no:cacheprovider\n")
    for f in range(files):
        body = "\n".join(f"def test_{t}():\n    assert {t} == {t}\n" for t in range(tests))
        (root / f"test_plain_{f}.py").write_text(body)


def run_once(root: Path, extra: list[str]) -> tuple[float, float]:
    """Wall time and CPU time (user + system) of one run."""
    # Bytecode caches on, as in a user's environment (PYTHONDONTWRITEBYTECODE would make every
    # run compile the modules edited since their cache was written).
    env = {k: v for k, v in os.environ.items() if k not in ("PYTEST_ADDOPTS", "PYTHONDONTWRITEBYTECODE")}
    # The hypothesis plugin (when installed) imports all of hypothesis in each terminal
    # summary: ~0.3 s on both sides that only adds noise to the difference.
    wall, cpu, _ = timed_pytest(root, ["--collect-only", "-q", "-p", "no:hypothesispytest", *extra], env)
    return wall, cpu


# What a run without evals imports on top of pytest itself: the plugin, the modules its
# pytest_configure registers, and the planner (registered once evals are collected).
CHAIN = "pytest_llmeval.plugin, pytest_llmeval.providers.openai, pytest_llmeval.providers.anthropic, \
pytest_llmeval.providers.local, pytest_llmeval.planning.planner"
PRELOADED = "import pytest, _pytest.pytester, _pytest.legacypath, _pytest.doctest"


def _import_times(code: str, env: dict[str, str]) -> dict[str, int]:
    proc = subprocess.run([sys.executable, "-X", "importtime", "-c", code], env=env, capture_output=True, text=True)
    times: dict[str, int] = {}
    for line in proc.stderr.splitlines():
        if line.startswith("import time:") and "self [us]" not in line:
            self_us, _cumulative, name = line[len("import time:") :].split("|")
            times[name.strip()] = int(self_us)
    return times


def breakdown(runs: int) -> None:
    """Self time of each module the plugin's chain adds to pytest's (``-X importtime``, best of runs)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    pytest_only = set(_import_times(PRELOADED, env))
    best: dict[str, int] = {}
    for _ in range(runs):
        for name, us in _import_times(f"{PRELOADED}\nimport {CHAIN}", env).items():
            if name not in pytest_only:
                best[name] = min(best.get(name, 10**9), us)
    print(f"modules the plugin adds to pytest's own, self time in ms, best of {runs} (-X importtime):")
    for name, us in sorted(best.items(), key=lambda kv: -kv[1])[:20]:
        print(f"  {name:45} {us / 1000:6.1f}")
    print(f"  {'total (all ' + str(len(best)) + ' modules)':45} {sum(best.values()) / 1000:6.1f}")


def fast_half(values: list[float]) -> float:
    """Mean of the faster half: on a shared machine, slow runs measure the neighbours."""
    ordered = sorted(values)
    return statistics.mean(ordered[: max(1, len(ordered) // 2)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=21)
    parser.add_argument("--files", type=int, default=20)
    parser.add_argument("--tests", type=int, default=10)
    parser.add_argument("--breakdown", action="store_true")
    args = parser.parse_args()
    if args.breakdown:
        breakdown(args.runs)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        make_project(root, args.files, args.tests)
        run_once(root, [])  # warm the bytecode caches of both sides
        run_once(root, ["-p", "no:llmeval"])
        with_plugin: list[tuple[float, float]] = []
        without: list[tuple[float, float]] = []
        for _ in range(args.runs):
            with_plugin.append(run_once(root, []))
            without.append(run_once(root, ["-p", "no:llmeval"]))
    print(f"pytest --collect-only, {args.files * args.tests} plain tests, {args.runs} runs each (alternating)")
    print(f"  {'':22} {'wall median':>12} {'wall fast½':>10} {'CPU median':>11} {'CPU fast½':>9}  (ms)")
    rows = {}
    for name, runs in (("with pytest-llmeval", with_plugin), ("-p no:llmeval", without)):
        walls, cpus = [w for w, _ in runs], [c for _, c in runs]
        rows[name] = (statistics.median(walls), fast_half(walls), statistics.median(cpus), fast_half(cpus))
        print(
            f"  {name:22} " + " ".join(f"{v * 1000:{w}.1f}" for v, w in zip(rows[name], (12, 10, 11, 9), strict=True))
        )
    extra = [a - b for a, b in zip(rows["with pytest-llmeval"], rows["-p no:llmeval"], strict=True)]
    print(f"  {'extra':22} " + " ".join(f"{v * 1000:+{w}.1f}" for v, w in zip(extra, (12, 10, 11, 9), strict=True)))
    # CPU time is the figure that survives a busy machine; wall time is shown for reference.
    for label, value in (("CPU median", extra[2]), ("CPU fast half", extra[3])):
        print(f"  target < 50 ms extra ({label}): {'met' if value < 0.050 else 'NOT met'}")


if __name__ == "__main__":
    main()
