"""Estimated cost of a call from its token counts (USD per million tokens)."""

from __future__ import annotations

from .models import ModelSpec, Usage

# (input, cached input, output) USD per million tokens. Estimates from the providers'
# public price lists; extend or correct them with the ini option `llmeval_prices`.
PRICES: dict[str, tuple[float, float, float]] = {
    "openai:gpt-4o": (2.50, 1.25, 10.00),
    "openai:gpt-4o-mini": (0.15, 0.075, 0.60),
    "openai:gpt-4.1": (2.00, 0.50, 8.00),
    "openai:gpt-4.1-mini": (0.40, 0.10, 1.60),
    "openai:gpt-4.1-nano": (0.10, 0.025, 0.40),
    "anthropic:claude-haiku-4-5": (1.00, 0.10, 5.00),
    "anthropic:claude-sonnet-4-5": (3.00, 0.30, 15.00),
    "anthropic:claude-opus-4-1": (15.00, 1.50, 75.00),
}


def estimate_cost(spec: ModelSpec, usage: Usage, prices: dict[str, tuple[float, float, float]] | None = None) -> float:
    """USD for ``usage`` on ``spec``; 0.0 for models without a price (local servers)."""
    table = PRICES if prices is None else prices
    price = table.get(f"{spec.provider}:{spec.name}")
    if price is None:
        return 0.0
    input_price, cached_price, output_price = price
    fresh = max(0, usage.input_tokens - usage.cached_input_tokens)
    return (fresh * input_price + usage.cached_input_tokens * cached_price + usage.output_tokens * output_price) / 1e6
