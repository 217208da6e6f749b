"""How fast is the cache? Two figures, measured in one run of this script:

1. the median time of one cache lookup in a store holding ``--entries`` answers
   (``Store.get`` alone, and with the request's key hashed first, as every call does);
2. the per-test overhead of a cached eval against a plain pytest test: pytest runs in
   subprocesses, a recording run against the fake API server first, then cached reruns
   (which must make no request) and plain runs, each at two suite sizes, so the fixed
   start-up cost cancels out: overhead = slope(cached eval) - slope(plain test).

    python benchmarks/bench_cache.py [--entries 10000] [--tests 50 400] [--repeat 5]

CPU time (user + system of the pytest process) is the headline: on a busy machine wall
time mostly measures the neighbours.

Standard library and the project's own test server only; nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import tempfile
import time
from pathlib import Path

from _harness import timed_pytest
from fakeapi import FakeAPI

from pytest_llmeval.models import ModelSpec, Request  # noqa: E402
from pytest_llmeval.store.db import Store  # noqa: E402

EVAL_TEST = """
import pytest

@pytest.mark.parametrize("i", range({n}))
def test_eval(llm, i):
    assert llm(f"Question number {{i}}: what is {{i}} + {{i}}?") == f"echo: Question number {{i}}: what is {{i}} + {{i}}?"
"""

PLAIN_TEST = """
import pytest

@pytest.mark.parametrize("i", range({n}))
def test_plain(i):
    assert f"echo: {{i}}" == f"echo: {{i}}"
"""


def make_request(i: int) -> Request:
    prompt = f"Case {i}: " + "Summarise the following paragraph in one sentence. " * 8
    return Request(
        ModelSpec.parse("openai:gpt-4o-mini"),
        [{"role": "system", "content": "You are terse."}, {"role": "user", "content": prompt}],
        {"temperature": 0, "max_tokens": 200},
        endpoint="https://api.openai.com/v1",
    )


def bench_lookup(entries: int, lookups: int) -> tuple[float, float, float, float]:
    """Microseconds: median and p95 of ``Store.get``, median of key hashing + get, median of
    one call-log write."""
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "cache.db")
        store.execute("BEGIN")
        for i in range(entries):
            req = make_request(i)
            answer = {"text": f"Answer {i}. " * 20, "usage": {"input_tokens": 120, "output_tokens": 40}}
            store.put(req.key, req.key_payload(), answer)
        store.execute("COMMIT")
        rng = random.Random(0)
        picks = [make_request(rng.randrange(entries)) for _ in range(lookups)]
        keys = [r.key for r in picks]
        get_times = []
        for key in keys:
            started = time.perf_counter()
            found = store.get(key)
            get_times.append(time.perf_counter() - started)
            assert found is not None
        full_times = []
        for req in picks:
            started = time.perf_counter()
            found = store.get(req.key)  # Request.key hashes canonical JSON each time
            full_times.append(time.perf_counter() - started)
            assert found is not None
        log_times = []
        for req in picks:  # one autocommitted INSERT per call, as every call logs one
            row = {"run_id": "bench", "ts": "2025-01-01T00:00:00.000+00:00", "test_id": "t.py::test", "model": "m",
                   "role": "llm", "key": req.key, "request": "{}", "response": "{}"}  # fmt: skip
            started = time.perf_counter()
            store.log_call(row)
            log_times.append(time.perf_counter() - started)
        store.close()
    get_times.sort()
    return (
        statistics.median(get_times) * 1e6,
        get_times[int(len(get_times) * 0.95)] * 1e6,
        statistics.median(full_times) * 1e6,
        statistics.median(log_times) * 1e6,
    )


def run_pytest(project: Path, target: str, env: dict[str, str], *args: str) -> tuple[float, float]:
    """Wall time and CPU time (user + system) of one pytest subprocess."""
    wall, cpu, _ = timed_pytest(project, [target, "-q", "-p", "no:cacheprovider", "-p", "no:randomly", *args], env)
    return wall, cpu


def slope(times: dict[int, float]) -> float:
    """Seconds per test between the two suite sizes."""
    (n1, t1), (n2, t2) = sorted(times.items())
    return (t2 - t1) / (n2 - n1)


def bench_overhead(sizes: list[int], repeat: int) -> dict[str, dict[int, tuple[float, float]]]:
    """Median (wall, CPU) seconds of plain and cached-eval runs, per suite size."""
    model = ["--llmeval-model", "openai:gpt-4o-mini"]
    with FakeAPI() as api, tempfile.TemporaryDirectory() as tmp:
        env = {k: v for k, v in os.environ.items() if k not in ("PYTEST_ADDOPTS",)}
        env.update(
            OPENAI_BASE_URL=api.openai_base_url,
            OPENAI_API_KEY="sk-bench-not-a-real-key",
            PYTHONDONTWRITEBYTECODE="1",
        )
        projects = {}
        for n in sizes:
            project = Path(tmp, f"suite{n}")
            project.mkdir()
            (project / "test_eval.py").write_text(EVAL_TEST.format(n=n))
            (project / "test_plain.py").write_text(PLAIN_TEST.format(n=n))
            run_pytest(project, "test_eval.py", env, *model)  # the recording run
            projects[n] = project
        recorded = api.count()
        if recorded != sum(sizes):
            raise SystemExit(f"the recording runs made {recorded} requests, expected {sum(sizes)}")
        runs: dict[str, dict[int, list[tuple[float, float]]]] = {"plain": {}, "cached": {}}
        for _ in range(repeat):
            for n, project in projects.items():  # interleaved, so load changes hit both alike
                runs["plain"].setdefault(n, []).append(run_pytest(project, "test_plain.py", env, *model))
                runs["cached"].setdefault(n, []).append(run_pytest(project, "test_eval.py", env, *model))
        if api.count() != recorded:
            raise SystemExit(f"the cached runs made {api.count() - recorded} requests; they must make none")
    return {
        kind: {
            n: (statistics.median(w for w, _ in values), statistics.median(c for _, c in values))
            for n, values in per_size.items()
        }
        for kind, per_size in runs.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entries", type=int, default=10_000, help="answers in the store for the lookup benchmark")
    parser.add_argument("--lookups", type=int, default=2_000)
    parser.add_argument("--tests", type=int, nargs=2, default=[50, 400], metavar=("SMALL", "LARGE"))
    parser.add_argument("--repeat", type=int, default=5, help="runs per suite size (the median is used)")
    args = parser.parse_args()

    median_get, p95_get, median_full, median_log = bench_lookup(args.entries, args.lookups)
    print(f"cache lookup, {args.entries} entries, {args.lookups} lookups:")
    print(f"  Store.get          median {median_get:8.1f} us   p95 {p95_get:8.1f} us")
    print(f"  key hash + get     median {median_full:8.1f} us")
    print(f"  call-log write     median {median_log:8.1f} us")

    figures = bench_overhead(sorted(args.tests), args.repeat)
    small, large = sorted(args.tests)
    print(f"pytest runs (median of {args.repeat}), wall / CPU seconds:")
    for n in (small, large):
        (pw, pc), (cw, cc) = figures["plain"][n], figures["cached"][n]
        print(f"  {n:5d} tests: plain {pw:6.2f} / {pc:6.2f}   cached eval {cw:6.2f} / {cc:6.2f}")
    for label, index in (("CPU", 1), ("wall", 0)):
        plain = slope({n: v[index] for n, v in figures["plain"].items()}) * 1e3
        cached = slope({n: v[index] for n, v in figures["cached"].items()}) * 1e3
        ratio = f"{cached / plain:.1f}x" if plain > 0 else "n/a"
        print(
            f"per test ({label}): plain {plain:.2f} ms, cached eval {cached:.2f} ms, "
            f"overhead {cached - plain:+.2f} ms per test ({ratio})"
        )


if __name__ == "__main__":
    main()
