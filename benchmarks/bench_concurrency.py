"""(a) 300 eval cases at 100 ms model latency: --llmeval-concurrency 32 against a sequential run.

Starts the fake OpenAI server (tests/fakeapi.py) in this process with 100 ms latency, writes a
suite of 300 one-call cases to a temporary folder and runs pytest on it in a subprocess with
``OPENAI_BASE_URL`` pointed at the server, each run with a fresh cache:

- sequential: ``--llmeval-concurrency 0``;
- concurrent: ``--llmeval-concurrency 32``;
- start-up: the same run again on its warm cache (pytest, the plugin, 300 test bodies reading
  the cache: everything but the model calls), plus the SDK import a live run pays;
- concurrent in a terminal: the concurrent run again with a pseudo-terminal as its output, where
  a progress line is drawn until every call is in before the tests run (for reference: the
  targets are for the run as CI makes it, output to a pipe).

Targets (issue 17): concurrent at least 10x faster than sequential (``--cases 200``), and
within 1.2x of the floor: the waiting time ``300 x 0.1 / 32`` s plus the same number of plain
pytest tests. Each kind runs ``--runs`` times (default 3), alternating; medians are printed.

    python benchmarks/bench_concurrency.py [--cases 300] [--latency 0.1] [--concurrency 32] [--runs 3]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from _harness import EVAL_SUITE, PLAIN_SUITE, timed_pytest
from fakeapi import FakeAPI


def pytest_run(root: Path, api: FakeAPI, cache: str, *args: str) -> tuple[list[str], dict[str, str]]:
    """The pytest arguments and environment of one run of the suite against ``api``."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTEST_ADDOPTS", "PYTHONDONTWRITEBYTECODE")}
    env.update(OPENAI_BASE_URL=api.openai_base_url, OPENAI_API_KEY="sk-bench-not-a-key")
    cmd = ["-p", "no:cacheprovider", "-p", "no:randomly"]
    cmd += ["--llmeval-model", "openai:gpt-4o-mini", "--llmeval-cache-path", str(root / cache), *args]
    return cmd, env


def run_pytest(root: Path, api: FakeAPI, cache: str, *args: str) -> tuple[float, str]:
    cmd, env = pytest_run(root, api, cache, *args)
    wall, _, proc = timed_pytest(root, ["-q", *cmd], env)
    return wall, proc.stdout


def run_in_terminal(root: Path, api: FakeAPI, cache: str, *args: str) -> float:
    """Wall time of the same pytest run with a pseudo-terminal as stdout (POSIX only)."""
    import pty
    import time

    # Not -q: the progress line is drawn at the default verbosity only.
    pytest_args, env = pytest_run(root, api, cache, *args)
    cmd = [sys.executable, "-m", "pytest", *pytest_args]
    master, slave = pty.openpty()
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=root, env=env, stdin=slave, stdout=slave, stderr=slave)
    os.close(slave)
    while True:
        try:
            if not os.read(master, 65536):
                break
        except OSError:  # EIO: the child closed the terminal
            break
    code = proc.wait()
    wall = time.perf_counter() - started
    os.close(master)
    if code != 0:
        sys.exit(f"pytest in a terminal failed ({code})")
    return wall


def sdk_import_time() -> float:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    code = "import time; t = time.perf_counter(); import openai; print(time.perf_counter() - t)"
    runs = [float(subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True).stdout)]
    runs += [float(subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True).stdout)]
    return min(runs)


def main() -> None:
    import statistics

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=300)
    parser.add_argument("--latency", type=float, default=0.1)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--runs", type=int, default=3, help="runs of each kind; medians are reported")
    parser.add_argument("--no-sequential", action="store_true", help="skip the (slow) sequential runs")
    args = parser.parse_args()
    figures: dict[str, list[float]] = {"sequential": [], "concurrent": [], "plain": [], "startup": [], "terminal": []}
    with tempfile.TemporaryDirectory() as tmp, FakeAPI(latency=args.latency) as api:
        root = Path(tmp)
        (root / "test_bench.py").write_text(EVAL_SUITE.format(cases=args.cases))
        (root / "test_plain.py").write_text(PLAIN_SUITE.format(cases=args.cases))
        run_pytest(root, api, "warmup.db", "--llmeval-concurrency", "0", "-k", "test_case and -0]")  # pyc caches
        requests: dict[str, int] = {}
        for run in range(args.runs):
            if not args.no_sequential:
                api.clear()
                api.latency = args.latency
                wall, _ = run_pytest(root, api, f"sequential{run}.db", "test_bench.py", "--llmeval-concurrency", "0")
                figures["sequential"].append(wall)
                requests["sequential"] = api.count()

            api.clear()
            api.latency = args.latency
            db = f"concurrent{run}.db"
            wall, _ = run_pytest(root, api, db, "test_bench.py", "--llmeval-concurrency", str(args.concurrency))
            figures["concurrent"].append(wall)
            requests["concurrent"] = api.count()
            # The floor: the same number of plain tests (pytest and the plugin installed, no evals).
            figures["plain"].append(run_pytest(root, api, db, "test_plain.py")[0])

            wall, _ = run_pytest(root, api, db, "test_bench.py", "--llmeval-concurrency", str(args.concurrency))
            figures["startup"].append(wall)
            assert api.count() == requests["concurrent"], "the warm-cache run called the model"
            if hasattr(os, "openpty"):
                figures["terminal"].append(
                    run_in_terminal(
                        root, api, f"terminal{run}.db", "test_bench.py", "--llmeval-concurrency", str(args.concurrency)
                    )
                )
        sdk = sdk_import_time()

    med = {k: statistics.median(v) for k, v in figures.items() if v}
    waiting = args.cases * args.latency / args.concurrency
    floor = waiting + med["plain"]
    print(
        f"{args.cases} cases, {args.latency * 1000:.0f} ms model latency (fake server on 127.0.0.1), medians of {args.runs}"
    )
    if "sequential" in med:
        print(
            f"  sequential  (--llmeval-concurrency 0)  : {med['sequential']:7.2f} s   {requests['sequential']} requests"
        )
    print(
        f"  concurrent  (--llmeval-concurrency {args.concurrency}) : {med['concurrent']:7.2f} s   "
        f"{requests['concurrent']} requests   (runs: {', '.join(f'{v:.2f}' for v in figures['concurrent'])})"
    )
    if "terminal" in med:
        print(f"  concurrent in a terminal (progress line)  : {med['terminal']:7.2f} s")
    print(
        f"  {args.cases} plain tests {med['plain']:.2f} s; warm-cache eval run {med['startup']:.2f} s; SDK import {sdk:.2f} s"
    )
    print(
        f"  floor: waiting {args.cases} x {args.latency:g} / {args.concurrency} = {waiting:.2f} s + plain tests = {floor:.2f} s"
    )
    if "sequential" in med:
        speedup = med["sequential"] / med["concurrent"]
        print(f"  speed-up vs sequential : {speedup:6.1f}x   (target >= 10x: {'met' if speedup >= 10 else 'NOT met'})")
    ratio = med["concurrent"] / floor
    print(f"  concurrent / floor     : {ratio:6.2f}    (target <= 1.2: {'met' if ratio <= 1.2 else 'NOT met'})")


if __name__ == "__main__":
    main()
