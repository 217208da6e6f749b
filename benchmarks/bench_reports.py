"""Writing the reports of a large run: 10,000 cases x 3 models (30,000 case results), each
report timed alone and all four together, from one results document built the way a
pytest run builds it (gate.results.aggregate / build_results). Target: the four writers
under 1 s, and the build of the document plus the writers under 1 s.

Each figure is the median of ``--repeat`` rounds in one process (the machine is shared:
medians, not single runs).

    python benchmarks/bench_reports.py [--cases 10000] [--models 3] [--repeat 5]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import _harness  # noqa: F401 - puts the project on sys.path

from pytest_llmeval.gate.gate import decide
from pytest_llmeval.gate.results import aggregate, build_results, sort_cases
from pytest_llmeval.reports.writer import ReportTarget, write_reports

MODELS = ["openai:gpt-4o-mini", "anthropic:claude-haiku-4-5", "openai:llama3@http://127.0.0.1:11434/v1"]


def make_cases(n: int, models: list[str]) -> list[dict]:
    cases = []
    for i in range(n):
        for j, model in enumerate(models):
            outcome = "error" if (i * 7 + j) % 101 == 0 else "failed" if (i * 13 + j * 5) % 10 == 0 else "passed"
            nodeid = f"tests/test_big.py::test_eval_{i % 4}[{model}-case{i:05d}]"
            cases.append(
                {
                    "eval": f"tests/test_big.py::test_eval_{i % 4}",
                    "nodeid": nodeid,
                    "model": model,
                    "sample": 0,
                    "outcome": outcome,
                    "score": 1.0 if outcome == "passed" else 0.0,
                    "threshold": 0.8,
                    "tags": [],
                    "results": [{"name": "exact", "passed": outcome == "passed", "explanation": "compared"}],
                    "calls": [
                        {
                            "key": f"v1-{i}-{j}",
                            "model": model,
                            "cached": True,
                            "latency_s": 0.4,
                            "input_tokens": 30,
                            "output_tokens": 5,
                            "cached_input_tokens": 0,
                            "cost_usd": 0.00001,
                            "role": "llm",
                        }
                    ],  # fmt: skip
                    "output": f"Answer {i} from model {j}: the capital is City{i * 3 + j}.",
                    "prompt": [{"role": "user", "content": f"Question {i}: the capital of country {i}?"}],
                    "error": "ProviderError: boom" if outcome == "error" else None,
                    "duration_s": 0.01,
                }
            )
    return cases


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=10_000)
    parser.add_argument("--models", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=5, help="rounds; each figure is their median")
    args = parser.parse_args()
    cases = sort_cases(make_cases(args.cases, MODELS[: args.models]))
    kinds = (("json", "r.json"), ("junit", "r.xml"), ("markdown", "r.md"), ("html", "r.html"))
    times: dict[str, list[float]] = {"build": [], "together": [], **{kind: [] for kind, _ in kinds}}
    sizes: dict[str, int] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(max(args.repeat, 1)):
            started = time.perf_counter()
            evals = aggregate(cases)
            passed, reasons = decide(evals)
            results = build_results(
                cases=cases, evals=evals, passed=passed, reasons=reasons, run_id="bench",
                created_at="2026-01-01T00:00:00+00:00", pytest_args=[], baseline=None, non_eval_failures=[],
                tallies={"calls": 0, "hits": 0, "retries": 0, "errors": 0},
            )  # fmt: skip
            times["build"].append(time.perf_counter() - started)
            for kind, name in kinds:
                path = Path(tmp, name)
                started = time.perf_counter()
                errors = write_reports(results, [ReportTarget(kind, path, kind)])  # type: ignore[arg-type]
                times[kind].append(time.perf_counter() - started)
                assert not errors, errors
                sizes[kind] = path.stat().st_size
            targets = [ReportTarget(kind, Path(tmp, f"all-{name}"), kind) for kind, name in kinds]
            started = time.perf_counter()
            errors = write_reports(results, targets)  # type: ignore[arg-type]
            times["together"].append(time.perf_counter() - started)
            assert not errors, errors
            del results
    median = {name: statistics.median(spent) for name, spent in times.items()}
    writers = median["together"]
    print(f"{len(cases):,} case results ({args.cases:,} cases x {args.models} models), median of {args.repeat} rounds")
    print(f"  results document (aggregate + build): {median['build']:.3f} s")
    for kind, _ in kinds:
        print(f"  {kind:9} {median[kind]:7.3f} s  {sizes[kind] / 1e6:6.1f} MB")
    print(f"  sum of the four alone             {sum(median[kind] for kind, _ in kinds):7.3f} s")
    print(
        f"  all four, one write_reports call {writers:7.3f} s   (target < 1 s: {'met' if writers < 1 else 'NOT met'})"
    )
    both = writers + median["build"]
    print(f"  build + the four in one call      {both:7.3f} s   (target < 1 s: {'met' if both < 1 else 'NOT met'})")


if __name__ == "__main__":
    main()
