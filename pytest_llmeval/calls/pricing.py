"""Estimated cost of a call from its token counts (USD per million tokens).

Every figure here is an *estimate* copied from the providers' public price lists (standard
tier, no batch discount, late 2025); prices change, so correct or extend them with the ini
option ``llmeval_prices`` (``PROVIDER:MODEL INPUT CACHED_INPUT OUTPUT`` per line). Anthropic
cache writes are billed above the input price; they are counted as plain input here.

Cached prompt tokens (OpenAI's automatic caching, Anthropic's ``cache_control`` reads) are
priced at the cached-input rate whenever the usage reports them. Calls answered through a
provider's batch API (``--llmeval-batch``) cost :data:`BATCH_DISCOUNT` of that, on top.
"""

from __future__ import annotations

import re

from pytest_llmeval.models import ModelSpec, Usage

__all__ = ["PRICES", "BATCH_DISCOUNT", "price_for", "estimate_cost"]

# (input, cached input, output) USD per million tokens. Estimates, see above.
PRICES: dict[str, tuple[float, float, float]] = {
    # OpenAI
    "openai:gpt-5.1": (1.25, 0.125, 10.00),
    "openai:gpt-5": (1.25, 0.125, 10.00),
    "openai:gpt-5-chat-latest": (1.25, 0.125, 10.00),
    "openai:gpt-5-mini": (0.25, 0.025, 2.00),
    "openai:gpt-5-nano": (0.05, 0.005, 0.40),
    "openai:gpt-5-pro": (15.00, 15.00, 120.00),
    "openai:gpt-4.1": (2.00, 0.50, 8.00),
    "openai:gpt-4.1-mini": (0.40, 0.10, 1.60),
    "openai:gpt-4.1-nano": (0.10, 0.025, 0.40),
    "openai:gpt-4o": (2.50, 1.25, 10.00),
    "openai:gpt-4o-mini": (0.15, 0.075, 0.60),
    "openai:chatgpt-4o-latest": (5.00, 5.00, 15.00),
    "openai:o1": (15.00, 7.50, 60.00),
    "openai:o1-mini": (1.10, 0.55, 4.40),
    "openai:o1-pro": (150.00, 150.00, 600.00),
    "openai:o3": (2.00, 0.50, 8.00),
    "openai:o3-pro": (20.00, 20.00, 80.00),
    "openai:o3-mini": (1.10, 0.55, 4.40),
    "openai:o4-mini": (1.10, 0.275, 4.40),
    "openai:gpt-4-turbo": (10.00, 10.00, 30.00),
    "openai:gpt-4": (30.00, 30.00, 60.00),
    "openai:gpt-3.5-turbo": (0.50, 0.50, 1.50),
    # Anthropic (cached input = cache read)
    "anthropic:claude-opus-4-5": (5.00, 0.50, 25.00),
    "anthropic:claude-opus-4-1": (15.00, 1.50, 75.00),
    "anthropic:claude-opus-4-0": (15.00, 1.50, 75.00),
    "anthropic:claude-opus-4": (15.00, 1.50, 75.00),
    "anthropic:claude-sonnet-4-5": (3.00, 0.30, 15.00),
    "anthropic:claude-sonnet-4-0": (3.00, 0.30, 15.00),
    "anthropic:claude-sonnet-4": (3.00, 0.30, 15.00),
    "anthropic:claude-3-7-sonnet": (3.00, 0.30, 15.00),
    "anthropic:claude-3-5-sonnet": (3.00, 0.30, 15.00),
    "anthropic:claude-haiku-4-5": (1.00, 0.10, 5.00),
    "anthropic:claude-3-5-haiku": (0.80, 0.08, 4.00),
    "anthropic:claude-3-haiku": (0.25, 0.03, 1.25),
    "anthropic:claude-3-opus": (15.00, 1.50, 75.00),
}

# The share of the standard price a batch API charges, per provider: both sell every model at
# half price through it (OpenAI Batch, Anthropic Message Batches), prompt-cache reads included.
BATCH_DISCOUNT: dict[str, float] = {"openai": 0.5, "anthropic": 0.5}

# Dated snapshots and aliases cost what their family costs: gpt-4o-2024-08-06,
# claude-haiku-4-5-20251001, claude-3-7-sonnet-latest.
# A pattern string, not a compiled pattern: compiled on first use, not at every pytest start.
_SUFFIX = r"(-\d{4}-\d{2}-\d{2}|-\d{8}|-latest)$"


def price_for(
    spec: ModelSpec, prices: dict[str, tuple[float, float, float]] | None = None
) -> tuple[float, float, float] | None:
    """The (input, cached input, output) price of ``spec``, or ``None`` when unknown.

    A model on an explicit server (``openai:NAME@URL``) is priced only when the table names
    it with its URL: a local server costs nothing.
    """
    table = PRICES if prices is None else prices
    exact = table.get(str(spec))
    if exact is not None or spec.base_url is not None:
        return exact
    name = spec.name
    while True:
        price = table.get(f"{spec.provider}:{name}")
        if price is not None:
            return price
        shorter = re.sub(_SUFFIX, "", name)
        if shorter == name:
            return None
        name = shorter


def estimate_cost(
    spec: ModelSpec,
    usage: Usage,
    prices: dict[str, tuple[float, float, float]] | None = None,
    *,
    batch: bool = False,
) -> float:
    """Estimated USD for ``usage`` on ``spec``; 0.0 for models without a price (local servers).

    ``batch``: the call was answered through the provider's batch API, at its batch price.
    """
    price = price_for(spec, prices)
    if price is None:
        return 0.0
    input_price, cached_price, output_price = price
    fresh = max(0, usage.input_tokens - usage.cached_input_tokens)
    cost = (fresh * input_price + usage.cached_input_tokens * cached_price + usage.output_tokens * output_price) / 1e6
    return cost * BATCH_DISCOUNT.get(spec.provider, 1.0) if batch else cost
