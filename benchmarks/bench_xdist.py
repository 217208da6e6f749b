"""(c) Live eval runs under pytest-xdist against the same run serial (both with the planning pass).

Starts the fake OpenAI server (tests/fakeapi.py) in this process, writes two suites to a
temporary folder and runs each in a subprocess, every run on a fresh cache:

- I/O-bound: ``--cases`` one-call cases at ``--latency`` model latency, ``--llmeval-concurrency
  --concurrency``: serial against ``-n 2`` (each worker plans the tests it was given, with half
  the concurrency). Target: ``-n 2`` no slower than serial.
- xdist's own floor: the same number of plain tests (no plugin fixture, no call), serial
  against ``-n 2``. What ``-n 2`` costs any suite of quick tests on this machine (a second
  pytest start-up and collection per worker, a report through execnet per test): a floor
  for the eval runs' ratio, printed beside it.
- CPU-heavy: ``--cpu-cases`` cases whose body spends ``--cpu-ms`` of CPU after its call:
  serial against ``-n 4``. Target: ``-n 4`` faster (what xdist is for).

Each kind runs ``--runs`` times (default 3), alternating; wall-time medians are printed (the
machine's other load counts in all of them alike).

    python benchmarks/bench_xdist.py [--cases 300] [--latency 0.1] [--concurrency 32] [--runs 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
from pathlib import Path

from _harness import EVAL_SUITE, PLAIN_SUITE, timed_pytest
from fakeapi import FakeAPI

# One model call, then --cpu-ms of pure-Python work (a scoring step, a parser, a simulator).
CPU_SUITE = """
import time
import pytest

@pytest.mark.llmeval(min_pass_rate=1.0)
@pytest.mark.parametrize("i", range({cases}))
def test_case(llm, i):
    answer = llm(f"question {{i}}")
    end = time.process_time() + {cpu_s}
    n = 0
    while time.process_time() < end:
        n += sum(range(200))
    assert answer == f"echo: question {{i}}"
"""


def run(root: Path, api: FakeAPI, test_file: str, cache: str, *args: str) -> float:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTEST_ADDOPTS", "PYTHONDONTWRITEBYTECODE")}
    env.update(OPENAI_BASE_URL=api.openai_base_url, OPENAI_API_KEY="sk-bench-not-a-key")
    cmd = ["-q", "-p", "no:cacheprovider", "-p", "no:randomly", test_file]
    cmd += ["--llmeval-model", "openai:gpt-4o-mini", "--llmeval-cache-path", str(root / cache), *args]
    wall, _, _ = timed_pytest(root, cmd, env)
    return wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=300)
    parser.add_argument("--latency", type=float, default=0.1)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--cpu-cases", type=int, default=200)
    parser.add_argument("--cpu-ms", type=float, default=40.0)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    concurrency = ["--llmeval-concurrency", str(args.concurrency)]
    times: dict[str, list[float]] = {
        "serial": [],
        "n2": [],
        "plain serial": [],
        "plain n2": [],
        "cpu serial": [],
        "cpu n4": [],
    }
    with tempfile.TemporaryDirectory() as tmp, FakeAPI(latency=args.latency) as api:
        root = Path(tmp)
        (root / "test_io.py").write_text(EVAL_SUITE.format(cases=args.cases))
        (root / "test_plain.py").write_text(PLAIN_SUITE.format(cases=args.cases))
        (root / "test_cpu.py").write_text(CPU_SUITE.format(cases=args.cpu_cases, cpu_s=args.cpu_ms / 1000))
        run(root, api, "test_io.py", "warmup.db", "-k", "test_case and -0]")  # bytecode caches
        counts: dict[str, int] = {}
        for i in range(args.runs):
            for name, test_file, extra in (
                ("serial", "test_io.py", ()),
                ("n2", "test_io.py", ("-n", "2")),
                ("plain serial", "test_plain.py", ()),
                ("plain n2", "test_plain.py", ("-n", "2")),
                ("cpu serial", "test_cpu.py", ()),
                ("cpu n4", "test_cpu.py", ("-n", "4")),
            ):
                api.clear()
                api.latency = args.latency
                times[name].append(run(root, api, test_file, f"{name.replace(' ', '-')}-{i}.db", *concurrency, *extra))
                counts[name] = api.count()
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"medians of {args.runs} runs, wall time (s), every run on a fresh cache, fake server at {args.latency:g} s")
    for name, label in (
        ("serial", f"{args.cases} cases, serial, --llmeval-concurrency {args.concurrency}"),
        ("n2", f"{args.cases} cases, -n 2 (each worker {max(1, args.concurrency // 2)})"),
        ("plain serial", f"{args.cases} plain tests, serial"),
        ("plain n2", f"{args.cases} plain tests, -n 2"),
        ("cpu serial", f"{args.cpu_cases} cases + {args.cpu_ms:g} ms CPU each, serial"),
        ("cpu n4", f"{args.cpu_cases} cases + {args.cpu_ms:g} ms CPU each, -n 4"),
    ):
        runs = ", ".join(f"{v:.2f}" for v in times[name])
        print(f"  {label:52} {med[name]:6.2f}   ({runs}; {counts[name]} requests)")
    ratio = med["n2"] / med["serial"]
    print(f"  -n 2 / serial : {ratio:5.2f}   (target <= 1.0: {'met' if ratio <= 1.0 else 'NOT met'})")
    floor = med["plain n2"] / med["plain serial"]
    print(f"  xdist's own floor, plain tests -n 2 / serial : {floor:5.2f}")
    ratio = med["cpu n4"] / med["cpu serial"]
    print(f"  -n 4 / serial : {ratio:5.2f}   (CPU-heavy; target < 1.0: {'met' if ratio < 1.0 else 'NOT met'})")


if __name__ == "__main__":
    main()
