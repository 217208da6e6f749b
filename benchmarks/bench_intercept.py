"""Intercepted app calls against ``llm(...)`` calls and a sequential loop, in one run.

    python benchmarks/bench_intercept.py [--cases 300] [--latency 0.1] [--concurrency 32]

The same N cases three ways against tests/fakeapi.py (``latency`` seconds per request):
a sequential loop (``--llmeval-concurrency 0``), the ``llm(...)`` path at the given
concurrency, and app code calling a module-level ``openai.OpenAI()`` client with
``intercept=True`` at the same concurrency; then the app suite fully cached, against the same
number of plain tests. Targets (issue 13): app / llm within 1.2x; cached app / plain within 1.2x.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

from _harness import EVAL_SUITE, PLAIN_SUITE, timed_pytest
from fakeapi import FakeAPI

APP = """
import openai

client = openai.OpenAI()


def answer(question):
    reply = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": question}])
    return reply.choices[0].message.content
"""

APP_SUITE = """
import pytest
from benchapp import answer

@pytest.mark.llmeval(min_pass_rate=1.0, intercept=True)
@pytest.mark.parametrize("i", range({cases}))
def test_case(i):
    assert answer(f"question {{i}}") == f"echo: question {{i}}"
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=300)
    parser.add_argument("--latency", type=float, default=0.1)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    with FakeAPI() as api, tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for name, suite in (("llm", EVAL_SUITE), ("app", APP_SUITE), ("plain", PLAIN_SUITE)):
            (root / name).mkdir()
            (root / name / f"test_{name}.py").write_text(suite.format(cases=args.cases))
        (root / "app" / "benchapp.py").write_text(APP)
        env = {
            **os.environ,
            "OPENAI_BASE_URL": api.openai_base_url,
            "OPENAI_API_KEY": "sk-bench",
            "PYTHONPATH": os.pathsep.join(
                filter(None, [str(Path(__file__).resolve().parent.parent), str(root / "app")])
            ),
        }
        common = ["-q", "-p", "no:randomly", "-p", "no:cacheprovider", "--llmeval-model", "openai:gpt-4o-mini"]

        def run(suite: str, db: str, *extra: str) -> float:
            wall, _cpu, _ = timed_pytest(root / suite, [*common, "--llmeval-cache-path", str(root / db), *extra], env)
            return wall

        run("llm", "warm.db", "-k", "test_case and 0]")  # .pyc files and the page cache
        api.latency = args.latency
        concurrency = ["--llmeval-concurrency", str(args.concurrency)]
        sequential = run("llm", "seq.db", "--llmeval-concurrency", "0")
        via_llm = run("llm", "llm.db", *concurrency)
        via_app = run("app", "app.db", *concurrency)
        api.latency = 0.0
        cached_app = run("app", "app.db", *concurrency)
        plain = run("plain", "plain.db")
    print(f"{args.cases} cases, {args.latency * 1000:.0f} ms per request, concurrency {args.concurrency}")
    print(f"  sequential llm(...)       {sequential:7.2f} s")
    print(f"  llm(...)                  {via_llm:7.2f} s   {sequential / via_llm:5.1f}x faster than sequential")
    print(f"  app, intercepted          {via_app:7.2f} s   app / llm = {via_app / via_llm:.2f} (target <= 1.2)")
    print(f"  app, fully cached         {cached_app:7.2f} s")
    print(f"  plain tests               {plain:7.2f} s   cached app / plain = {cached_app / plain:.2f} (target <= 1.2)")


if __name__ == "__main__":
    main()
