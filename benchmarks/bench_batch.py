"""(d) Batch mode: 300 cases on two models through the batch APIs, against a 5 s batch delay.

Starts the fake OpenAI + Anthropic server (tests/fakeapi.py) in this process; its batches end
``--delay`` seconds after they were created. The suite (300 one-call cases) runs on
``openai:gpt-4o-mini`` and ``anthropic:claude-haiku-4-5`` in a pytest subprocess:

- batch: ``--llmeval-batch`` on a fresh cache;
- cached rerun: the same run again on that cache (everything but waiting for the batches);
- live: the same cases without batch mode on a fresh cache, for the cost comparison.

Targets: the batch run's wall time within 1.5x of (delay + the cached rerun's); requests made
equal to what the batches need (submits, polls, result downloads) with no per-case call; the
reported cost half of the live run's.

    python benchmarks/bench_batch.py [--cases 300] [--delay 5]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

from _harness import EVAL_SUITE, timed_pytest
from fakeapi import FakeAPI, _last_user_text

MODELS = ["--llmeval-model", "openai:gpt-4o-mini", "--llmeval-model", "anthropic:claude-haiku-4-5"]
# Realistic token counts, so the costs compared are not rounding noise.
USAGE = {"input_tokens": 400, "output_tokens": 120, "cached_input_tokens": 0}


def run(root: Path, api: FakeAPI, cache: str, results: str, *args: str) -> float:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTEST_ADDOPTS", "PYTHONDONTWRITEBYTECODE")}
    env.update(
        OPENAI_BASE_URL=api.openai_base_url,
        ANTHROPIC_BASE_URL=api.anthropic_base_url,
        OPENAI_API_KEY="sk-bench-not-a-key",
        ANTHROPIC_API_KEY="sk-ant-bench-not-a-key",
    )
    cmd = ["-q", "-p", "no:cacheprovider", "-p", "no:randomly", *MODELS]
    cmd += ["--llmeval-cache-path", str(root / cache), "--llmeval-json", str(root / results), *args]
    wall, _, _ = timed_pytest(root, cmd, env)
    return wall


def reported_cost(path: Path) -> float:
    data = json.loads(path.read_text())
    return sum(float(c.get("cost_usd") or 0.0) for case in data["cases"] for c in case.get("calls") or ())


def request_kinds(api: FakeAPI) -> dict[str, int]:
    kinds = {"submit": 0, "poll": 0, "download": 0}
    for r in api.batch_requests():
        if r.path.endswith(("/content", "/results")):
            kinds["download"] += 1
        elif r.path in ("/v1/files", "/v1/batches", "/v1/messages/batches"):
            kinds["submit"] += 1
        else:
            kinds["poll"] += 1
    return kinds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=300)
    parser.add_argument("--delay", type=float, default=5.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, FakeAPI() as api:
        root = Path(tmp)
        (root / "test_bench.py").write_text(EVAL_SUITE.format(cases=args.cases))

        def answer(body: dict) -> dict:
            return {"text": "echo: " + _last_user_text(body), "usage": USAGE}

        run(root, api, "warmup.db", "warmup.json", "-k", "test_case and -0]")  # pyc caches
        api.clear()
        api.reply(answer)
        api.batch_delay = args.delay
        batch = run(root, api, "batch.db", "batch.json", "--llmeval-batch")
        per_case = api.count()
        kinds = request_kinds(api)
        batches = len(api.batches)
        requests = len(api.batch_requests())
        cached = run(root, api, "batch.db", "cached.json", "--llmeval-batch")
        assert len(api.batch_requests()) == requests and api.count() == per_case, "the cached rerun made requests"

        api.clear()
        api.reply(answer)
        live = run(root, api, "live.db", "live.json", "--llmeval-concurrency", "32")
        live_requests = api.count()
        batch_cost = reported_cost(root / "batch.json")
        live_cost = reported_cost(root / "live.json")

    ideal = args.delay + cached
    print(f"{args.cases} cases x 2 models, batches end {args.delay:g} s after creation (fake server on 127.0.0.1)")
    print(f"  batch run    : {batch:7.2f} s")
    print(f"  cached rerun : {cached:7.2f} s   (ideal batch run: delay + cached rerun = {ideal:.2f} s)")
    ratio = batch / ideal
    print(f"  batch / ideal: {ratio:7.2f}     (target <= 1.5: {'met' if ratio <= 1.5 else 'NOT met'})")
    needed = kinds["submit"] + kinds["poll"] + kinds["download"]
    print(
        f"  requests made: {requests} = {batches} batches ({kinds['submit']} submit requests) + {kinds['poll']} polls "
        f"+ {kinds['download']} result downloads; per-case calls: {per_case} (live run: {live_requests})"
    )
    ok = per_case == 0 and requests == needed and kinds["submit"] <= 2 * batches and kinds["download"] <= 2 * batches
    print(f"  requests     : target batches + polls, no per-case call: {'met' if ok else 'NOT met'}")
    share = batch_cost / live_cost if live_cost else float("nan")
    print(
        f"  cost         : batch ${batch_cost:.4f} vs live ${live_cost:.4f} = {share:.2f} of live ({live:.2f} s live run)"
    )
    print(f"  cost target  : half of live: {'met' if abs(share - 0.5) < 0.005 else 'NOT met'}")


if __name__ == "__main__":
    main()
