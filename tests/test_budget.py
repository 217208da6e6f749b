"""--llmeval-max-cost: the price table, the running estimate and the stop."""

from __future__ import annotations

import json

import pytest
from fakeapi import FakeAPI

from pytest_llmeval.calls.pricing import PRICES, estimate_cost, price_for
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
