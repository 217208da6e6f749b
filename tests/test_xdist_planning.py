"""Planning inside pytest-xdist workers (issue 17): each worker plans the tests it was given.

The calls of ``-n 2`` stay in flight together (counted by the fake server itself), no request
is made twice, and each worker keeps to its share of ``--llmeval-concurrency`` and
``--llmeval-max-cost``.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from fakeapi import FakeAPI

pytest.importorskip("xdist")

MODEL = ["--llmeval-model", "openai:gpt-4o-mini"]

# Each worker writes what its planner did and its share of the limits.
WORKER_PROBE = """
import json

def pytest_sessionfinish(session):
    from pytest_llmeval.keys import SESSION_KEY
    # Not PYTEST_XDIST_WORKER: when this suite itself runs under xdist, the controller of the
    # inner run inherits the outer worker's variable.
    workerinput = getattr(session.config, "workerinput", None)
    if workerinput is None:
        return
    worker = workerinput["workerid"]
    eval_session = session.config.stash[SESSION_KEY]
    planner = eval_session.planner
    data = {
        "stats": vars(planner.stats) if planner is not None else None,
        "concurrency": eval_session.concurrency,
        "budget": eval_session.caller.budget.limit_usd,
    }
    with open(f"planner-{worker}.json", "w") as f:
        json.dump(data, f)
"""

CASES = """
import pytest

@pytest.mark.parametrize("i", range({n}))
def test_case(llm, i):
    assert llm(f"question {{i}}") == f"echo: question {{i}}"
"""


def workers(pytester: pytest.Pytester) -> dict[str, dict[str, Any]]:
    return {p.stem: json.loads(p.read_text()) for p in pytester.path.glob("planner-gw*.json")}


def test_two_workers_keep_their_calls_in_flight_and_make_each_once(
    pytester: pytest.Pytester, fake_api: FakeAPI
) -> None:
    fake_api.latency = 0.3
    pytester.makeconftest(WORKER_PROBE)
    pytester.makepyfile(CASES.format(n=40))
    result = pytester.runpytest_subprocess(
        *MODEL, "-n", "2", "-p", "no:randomly", "--llmeval-concurrency", "16", "--llmeval-cache=refresh"
    )
    result.assert_outcomes(passed=40)
    prompts = [r.body["messages"][-1]["content"] for r in fake_api.requests]
    assert len(prompts) == len(set(prompts)) == 40, "a request was made twice, or one is missing"
    # Without planning in the workers each has one call in flight: two at most.
    assert fake_api.peak_in_flight > 2, f"peak in flight {fake_api.peak_in_flight}: the workers made calls one by one"
    # Each worker's share of --llmeval-concurrency 16, so the run never exceeds it.
    assert fake_api.peak_in_flight <= 16
    seen = workers(pytester)
    assert set(seen) == {"planner-gw0", "planner-gw1"}
    for data in seen.values():
        assert data["concurrency"] == 8
        assert data["stats"] is not None and data["stats"]["generations"] >= 1 and data["stats"]["prefetched"] >= 1
    assert sum(d["stats"]["prefetched"] for d in seen.values()) + sum(d["stats"]["failed"] for d in seen.values()) <= 40


def test_a_second_run_of_the_workers_reads_the_store(pytester: pytest.Pytester, fake_api: FakeAPI) -> None:
    fake_api.latency = 0.05
    pytester.makeconftest(WORKER_PROBE)
    pytester.makepyfile(CASES.format(n=12))
    args = (*MODEL, "-n", "2", "-p", "no:randomly", "--llmeval-concurrency", "8")
    pytester.runpytest_subprocess(*args).assert_outcomes(passed=12)
    assert fake_api.count() == 12
    pytester.runpytest_subprocess(*args).assert_outcomes(passed=12)
    assert fake_api.count() == 12, "the warm run called the model again"
    for data in workers(pytester).values():
        assert data["stats"]["planning_runs"] == 0  # nothing to fetch: no planning run at all


def test_each_worker_keeps_to_its_share_of_the_budget(pytester: pytest.Pytester, fake_api: FakeAPI) -> None:
    # 1M input tokens on gpt-4o-mini: 0.15 USD a call by the built-in table.
    fake_api.reply({"text": "ok", "usage": {"input_tokens": 1_000_000, "output_tokens": 0}})
    fake_api.latency = 0.05
    pytester.makeconftest(WORKER_PROBE)
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.parametrize("i", range(12))
        def test_case(llm, i):
            assert llm(f"question {i}") == "ok"
        """
    )
    result = pytester.runpytest_subprocess(
        *MODEL, "-n", "2", "-p", "no:randomly", "--llmeval-concurrency", "8", "--llmeval-max-cost", "0.6"
    )
    # 0.3 USD a worker: two calls each (the second reaches it). One budget per worker would
    # have made four calls each, 1.2 USD in all.
    assert fake_api.count() == 4
    result.assert_outcomes(passed=4, failed=8)
    result.stdout.fnmatch_lines(["*BudgetExceededError: --llmeval-max-cost 0.3 USD reached*"])
    assert {d["budget"] for d in workers(pytester).values()} == {0.3}
