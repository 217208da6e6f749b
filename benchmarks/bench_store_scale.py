"""Store lookups as the store grows: the median ``Store.get`` at 10,000, 100,000 and
1,000,000 stored answers, measured in one run (target: flat, median < 0.2 ms at 1,000,000).

The store is filled in one transaction with small answers (the size of a lookup does not
depend on the answer's size, the file would only grow), then 2,000 random keys are looked
up at each size. The file lives in a temporary folder and is removed at the end.

    python benchmarks/bench_store_scale.py [--sizes 10000 100000 1000000] [--lookups 2000]
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from pathlib import Path

import _harness  # noqa: F401 - puts the project on sys.path

from pytest_llmeval.models import ModelSpec, Request
from pytest_llmeval.store.db import Store

SPEC = ModelSpec.parse("openai:gpt-4o-mini")


def request(i: int) -> Request:
    return Request(SPEC, [{"role": "user", "content": f"Question {i}: what is {i} + {i}?"}], {"temperature": 0})


def lookups(store: Store, stored: int, count: int, rng: random.Random) -> list[float]:
    keys = [request(rng.randrange(stored)).key for _ in range(count)]
    times = []
    for key in keys:
        started = time.perf_counter()
        found = store.get(key)
        times.append(time.perf_counter() - started)
        assert found is not None, key
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--lookups", type=int, default=2_000)
    args = parser.parse_args()
    rng = random.Random(0)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "cache.db")
        stored = 0
        for size in sorted(args.sizes):
            started = time.perf_counter()
            store.execute("BEGIN")
            for i in range(stored, size):
                req = request(i)
                store.put(req.key, req.key_payload(), {"text": f"{2 * i}", "usage": {"input_tokens": 9}})
            store.execute("COMMIT")
            filled = time.perf_counter() - started
            stored = size
            times = sorted(lookups(store, stored, args.lookups, rng))
            median, p95 = statistics.median(times) * 1e3, times[int(len(times) * 0.95)] * 1e3
            rows.append((size, median, p95, filled))
            print(
                f"  {size:>9,} entries: Store.get median {median:.3f} ms, p95 {p95:.3f} ms (filled in {filled:.1f} s)"
            )
        size_mb = (Path(tmp) / "cache.db").stat().st_size / 1e6
        store.close()
    first, last = rows[0], rows[-1]
    print(f"store file at {last[0]:,} entries: {size_mb:.0f} MB")
    print(f"median at {last[0]:,} / at {first[0]:,}: {last[1] / first[1]:.2f}x")
    verdict = "met" if last[1] < 0.2 else "NOT met"
    print(f"target: median < 0.2 ms at {last[0]:,} entries: {verdict}")


if __name__ == "__main__":
    main()
