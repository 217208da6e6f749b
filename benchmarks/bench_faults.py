"""(c) 100 eval cases while 20% of requests fail with 429, 500, 503 or connection resets.

Starts the fake OpenAI server (tests/fakeapi.py) in this process with a fixed-seed fault
rate, runs 100 cases in a pytest subprocess (``--llmeval-concurrency 32``, fresh cache) and
checks that every case ends with the verdict it would have without faults: 80 cases whose
answer is right pass, 20 whose expected answer is wrong fail, none errors. Prints the
requests the server saw, the faults it injected and the retries the plugin reports.

    python benchmarks/bench_faults.py [--cases 100] [--rate 0.2] [--concurrency 32] [--seed 7]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import _harness  # noqa: F401  (puts tests/ on sys.path for fakeapi)
from fakeapi import FakeAPI

SUITE = """
import pytest

# Every fifth case expects a wrong answer: its right verdict is "failed".
@pytest.mark.llmeval(min_pass_rate=0.0)
@pytest.mark.parametrize("i", range({cases}))
def test_case(llm, i):
    expected = f"echo: question {{i}}" if i % 5 else "something else"
    assert llm(f"question {{i}}") == expected
"""
FAULTS = ["429", "500", "503", "reset"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=100)
    parser.add_argument("--rate", type=float, default=0.2)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--retries", type=int, default=6, help="--llmeval-retries (default 6: 0.2^7 per call)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, FakeAPI(latency=0.05) as api:
        root = Path(tmp)
        (root / "test_faults.py").write_text(SUITE.format(cases=args.cases))
        # 429s say "retry after 100 ms", as rate-limited APIs do.
        api.fault_rate(args.rate, FAULTS, seed=args.seed, retry_after=0.1)
        env = {k: v for k, v in os.environ.items() if k not in ("PYTEST_ADDOPTS", "PYTHONDONTWRITEBYTECODE")}
        env.update(OPENAI_BASE_URL=api.openai_base_url, OPENAI_API_KEY="sk-bench-not-a-key")
        cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly"]
        cmd += ["--llmeval-model", "openai:gpt-4o-mini", "--llmeval-cache-path", str(root / "cache.db")]
        cmd += ["--llmeval-concurrency", str(args.concurrency), "--llmeval-retries", str(args.retries)]
        cmd += ["--llmeval-json", str(root / "results.json")]
        started = time.perf_counter()
        proc = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True)
        elapsed = time.perf_counter() - started
        faults = Counter(r.fault for r in api.requests if r.fault)
        requests = api.count()
        results = json.loads((root / "results.json").read_text())
    # The plugin's own verdict per case: passed, failed, or error (a provider error is an
    # error, never a fail, so a case that should fail cannot hide one).
    cases = {c["nodeid"]: c["outcome"] for c in results["cases"]}
    tallies = results.get("tallies", {})
    wrong = {
        name: outcome
        for name, outcome in cases.items()
        if outcome != ("failed" if int(name.rsplit("-", 1)[1].rstrip("]")) % 5 == 0 else "passed")
    }
    print(f"{args.cases} cases, {args.rate:.0%} of requests faulted ({', '.join(FAULTS)}), seed {args.seed}")
    print(f"  wall time            : {elapsed:.2f} s (--llmeval-concurrency {args.concurrency})")
    print(f"  requests to server   : {requests} ({sum(faults.values())} faulted: {dict(sorted(faults.items()))})")
    print(f"  retries (plugin)     : {tallies.get('retries')}   errors: {tallies.get('errors')}")
    print(f"  outcomes             : {dict(sorted(Counter(cases.values()).items()))}")
    ok = len(cases) == args.cases and not wrong and tallies.get("retries") == sum(faults.values())
    print(f"  every case right     : {'yes' if ok else 'NO'}")
    if not ok:
        print(f"  wrong verdicts: {wrong}\n{proc.stdout[-3000:]}\n{proc.stderr[-2000:]}")
        sys.exit(1)


if __name__ == "__main__":
    main()
