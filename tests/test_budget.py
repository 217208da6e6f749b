"""--llmeval-max-cost: the price table, the running estimate and the stop."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable

import pytest
from fakeapi import FakeAPI

from pytest_llmeval.calls.budget import Budget, Reservation
from pytest_llmeval.calls.pricing import PRICES, estimate_cost, price_for
from pytest_llmeval.errors import BudgetExceededError
from pytest_llmeval.models import ModelSpec, Usage


# -- the price table ----------------------------------------------------------------------
def test_dated_snapshots_and_aliases_cost_what_their_family_costs() -> None:
    assert price_for(ModelSpec.parse("openai:gpt-4o-2024-08-06")) == PRICES["openai:gpt-4o"]
    assert price_for(ModelSpec.parse("openai:gpt-4o-mini-2024-07-18")) == PRICES["openai:gpt-4o-mini"]
    assert price_for(ModelSpec.parse("anthropic:claude-haiku-4-5-20251001")) == PRICES["anthropic:claude-haiku-4-5"]
    assert price_for(ModelSpec.parse("anthropic:claude-3-7-sonnet-latest")) == PRICES["anthropic:claude-3-7-sonnet"]
    assert price_for(ModelSpec.parse("openai:no-such-model")) is None


def test_a_model_on_an_explicit_server_is_free_unless_priced_with_its_url() -> None:
    local = ModelSpec.parse("openai:gpt-4o@http://127.0.0.1:8000/v1")
    assert price_for(local) is None
    assert price_for(local, {str(local): (1.0, 0.5, 2.0)}) == (1.0, 0.5, 2.0)


def test_both_providers_current_models_are_priced() -> None:
    for name in [
        "openai:gpt-5",
        "openai:gpt-5-mini",
        "openai:gpt-4.1",
        "openai:o4-mini",
        "anthropic:claude-sonnet-4-5",
    ]:
        assert price_for(ModelSpec.parse(name)) is not None, name
    for fresh, cached, output in PRICES.values():
        assert 0 < cached <= fresh and output > 0


def test_cost_counts_cached_input_at_its_own_price() -> None:
    usage = Usage(input_tokens=1_000_000, output_tokens=100_000, cached_input_tokens=400_000)
    cost = estimate_cost(ModelSpec.parse("openai:gpt-4o-mini"), usage)
    assert cost == pytest.approx(0.6 * 0.15 + 0.4 * 0.075 + 0.1 * 0.60)
    assert estimate_cost(ModelSpec.parse("openai:unknown"), usage) == 0.0


# -- the Budget on its own ----------------------------------------------------------------
PRICED = ModelSpec.parse("openai:gpt-4o-mini")
UNPRICED = ModelSpec.parse("openai:house@http://127.0.0.1:1/v1")


def eventually(condition: Callable[[], bool]) -> bool:
    """Whether ``condition`` holds before a generous deadline (a guard against a hang, not a
    speed check: correct code gets there at once)."""
    deadline = time.monotonic() + 30
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.001)
    return True


class Admission:
    """``budget.reserve(model)`` in a thread of its own, to see whether it waits."""

    def __init__(self, budget: Budget, model: ModelSpec) -> None:
        self.result: Reservation | BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=(budget, model), daemon=True)
        self.thread.start()

    def _run(self, budget: Budget, model: ModelSpec) -> None:
        try:
            self.result = budget.reserve(model, "test_x")
        except BaseException as exc:
            self.result = exc

    def join(self) -> Reservation | BaseException | None:
        self.thread.join(timeout=30)
        assert not self.thread.is_alive(), "the admission never ended"
        return self.result


def test_without_a_limit_nothing_waits_or_is_refused_and_the_spend_is_counted() -> None:
    budget = Budget(None)
    first, second = budget.reserve(PRICED), budget.reserve(PRICED)  # no probing without a limit
    budget.settle(first, 0.5)
    budget.settle(second, 0.75)
    assert budget.spent_usd == pytest.approx(1.25)
    assert not budget.exhausted
    assert budget.reserve(PRICED) == Reservation(str(PRICED))


def test_the_limit_refuses_calls_with_the_reason() -> None:
    budget = Budget(0.25)
    budget.settle(budget.reserve(PRICED), 0.3)
    assert budget.exhausted
    with pytest.raises(BudgetExceededError) as info:
        budget.reserve(PRICED, "test_a.py::test_b")
    assert str(info.value) == (
        "--llmeval-max-cost 0.25 USD reached: the estimated spend of this run is 0.3000 USD, so the call to "
        "openai:gpt-4o-mini in test_a.py::test_b was not made "
        "(prices are estimates: pytest_llmeval.calls.pricing, ini option llmeval_prices)"
    )
    with pytest.raises(BudgetExceededError, match=r"the call to openai:gpt-4o-mini was not made"):
        budget.reserve(PRICED)  # outside a test: no "in ..."
    assert budget.in_flight == 0  # a refused call holds nothing


def test_a_model_of_unknown_cost_is_probed_one_call_at_a_time() -> None:
    budget = Budget(10.0)
    probe = budget.reserve(PRICED)
    assert probe.probe and probe.expected_usd == 0.0
    second = Admission(budget, PRICED)
    assert eventually(lambda: budget.waiting == 1 or not second.thread.is_alive())
    assert second.thread.is_alive() and budget.in_flight == 1  # held back while the probe runs
    budget.settle(probe, 0.5)
    admitted = second.join()
    # Once a call has a cost, the next is admitted with that cost as its expectation.
    assert admitted == Reservation(str(PRICED), expected_usd=0.5, probe=False)
    assert budget.in_flight == 1


def test_a_probe_that_cost_nothing_leaves_the_cost_unknown() -> None:
    budget = Budget(10.0)
    budget.settle(budget.reserve(PRICED), 0.0)  # failed: no cost learnt
    again = budget.reserve(PRICED)
    assert again.probe
    budget.settle(again, 0.1)
    assert not budget.reserve(PRICED).probe


def test_models_without_a_price_are_admitted_whatever_is_in_flight() -> None:
    budget = Budget(0.01)
    held = [budget.reserve(UNPRICED) for _ in range(5)]
    assert all(not r.probe and r.expected_usd == 0.0 for r in held)
    assert budget.in_flight == 5
    for r in held:
        budget.settle(r, 0.0)
    assert budget.in_flight == 0 and not budget.exhausted


def test_at_the_edge_a_call_waits_for_the_calls_in_flight_then_is_refused() -> None:
    # 0.1 USD a call, limit 0.25: a sequential run makes 3 calls (0.1, 0.2, 0.3 >= 0.25).
    budget = Budget(0.25)
    budget.settle(budget.reserve(PRICED), 0.1)  # the cost is known now
    a = budget.reserve(PRICED)  # 0.1 spent + 0.1 expected: admitted
    b = Admission(budget, PRICED)  # 0.1 + 0.1 in flight + 0.1 would reach the limit: waits
    assert eventually(lambda: budget.waiting == 1 or not b.thread.is_alive())
    assert b.thread.is_alive()
    budget.settle(a, 0.1)
    b_reservation = b.join()
    assert isinstance(b_reservation, Reservation)  # nothing in flight any more: admitted
    c = Admission(budget, PRICED)  # 0.2 + 0.1 in flight + 0.1: waits again
    assert eventually(lambda: budget.waiting == 1 or not c.thread.is_alive())
    assert c.thread.is_alive()
    budget.settle(b_reservation, 0.1)
    refused = c.join()
    assert isinstance(refused, BudgetExceededError)  # 0.3 spent: as many calls as a sequential run
    assert budget.spent_usd == pytest.approx(0.3)
    assert budget.in_flight == 0


def test_concurrent_reservations_keep_an_exact_account() -> None:
    budget = Budget(1_000.0)
    budget.settle(budget.reserve(PRICED), 0.001)  # known cost: no probing below

    def work() -> None:
        for _ in range(200):
            budget.settle(budget.reserve(PRICED), 0.001)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert budget.spent_usd == pytest.approx(0.001 * 1601)
    assert budget.in_flight == 0 and budget.waiting == 0


# -- the stop -----------------------------------------------------------------------------
FOUR_CASES = """
import pytest

@pytest.mark.parametrize("i", range(4))
def test_case(llm, i):
    assert llm(f"q{i}") == "ok"
"""


@pytest.mark.parametrize("concurrency", ["0", "8"])
def test_calls_stop_once_the_estimate_reaches_the_limit(
    pytester: pytest.Pytester, fake_api: FakeAPI, concurrency: str
) -> None:
    # 1M input tokens on gpt-4o-mini: 0.15 USD a call by the built-in table.
    fake_api.reply({"text": "ok", "usage": {"input_tokens": 1_000_000, "output_tokens": 0}})
    pytester.makepyfile(FOUR_CASES)
    result = pytester.runpytest(
        "--llmeval-model",
        "openai:gpt-4o-mini",
        "--llmeval-max-cost",
        "0.25",
        "--llmeval-concurrency",
        concurrency,
        "--llmeval-json",
        "results.json",
    )
    result.assert_outcomes(passed=2, failed=2)
    # Concurrency makes no more calls than a sequential run: the limit is checked against
    # the calls in flight too.
    assert fake_api.count() == 2
    result.stdout.fnmatch_lines(
        [
            "*BudgetExceededError: --llmeval-max-cost 0.25 USD reached: the estimated spend of this run is "
            "0.3000 USD, so the call to openai:gpt-4o-mini in test_calls_stop_*::test_case*] was not made*"
        ]
    )
    cases = json.loads((pytester.path / "results.json").read_text())["cases"]
    outcomes = sorted(c["outcome"] for c in cases)
    assert outcomes == ["error", "error", "passed", "passed"]  # an error, never a plain fail
    assert sum(call["cost_usd"] for c in cases for call in c.get("calls", [])) == pytest.approx(0.30)


def test_the_price_table_can_be_extended_in_the_ini_file(pytester: pytest.Pytester, fake_api: FakeAPI) -> None:
    fake_api.reply({"text": "ok", "usage": {"input_tokens": 1000, "output_tokens": 0}})
    pytester.makeini("[pytest]\nllmeval_prices =\n    openai:house-model 100 10 200\n")
    pytester.makepyfile(FOUR_CASES)
    result = pytester.runpytest(
        "--llmeval-model", "openai:house-model", "--llmeval-max-cost", "0.25", "--llmeval-concurrency", "0"
    )
    result.assert_outcomes(passed=3, failed=1)  # 0.1 USD a call
    result.stdout.fnmatch_lines(["*--llmeval-max-cost 0.25 USD reached: the estimated spend of this run is 0.3000*"])


def test_models_without_a_price_are_never_held_back(pytester: pytest.Pytester, fake_api: FakeAPI) -> None:
    fake_api.reply({"text": "ok", "usage": {"input_tokens": 1_000_000, "output_tokens": 0}})
    pytester.makepyfile(FOUR_CASES)
    result = pytester.runpytest(
        "--llmeval-model", f"openai:local-model@{fake_api.openai_base_url}", "--llmeval-max-cost", "0.01"
    )
    result.assert_outcomes(passed=4)


def test_replayed_answers_cost_nothing_and_pass_the_budget(pytester: pytest.Pytester, fake_api: FakeAPI) -> None:
    fake_api.reply({"text": "ok", "usage": {"input_tokens": 1_000_000, "output_tokens": 0}})
    pytester.makepyfile(FOUR_CASES)
    model = ["--llmeval-model", "openai:gpt-4o-mini"]
    pytester.runpytest(*model).assert_outcomes(passed=4)
    pytester.runpytest(*model, "--llmeval-max-cost", "0.01").assert_outcomes(passed=4)
    assert fake_api.count() == 4
