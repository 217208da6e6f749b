"""Small text helpers every part shares: one copy each, so reports and messages agree."""

from __future__ import annotations

from typing import Any

__all__ = ["NO_MODEL", "model_label", "excerpt", "short_repr"]

#: How a case or eval without a model under test (a judge-only test) is labelled.
NO_MODEL = "(no model)"


def model_label(model: str | None) -> str:
    """``model`` itself, or :data:`NO_MODEL` when there is none."""
    return model or NO_MODEL


def excerpt(text: str, cap: int, *, sep: str = "\n") -> str:
    """``text`` itself, or its head and tail with a note of how much was left out.

    ``sep`` goes around the note: a newline for multi-line displays, a space where the
    text must stay on one line (XML attributes, table cells).
    """
    if len(text) <= cap:
        return text
    half = max(cap // 2, 1)
    return f"{text[:half]}{sep}... [{len(text) - 2 * half:,} characters left out] ...{sep}{text[-half:]}"


def short_repr(value: Any, limit: int) -> str:
    """``repr`` of ``value`` cut in the middle when long (a repr escapes control characters)."""
    if isinstance(value, str) and len(value) > limit:
        half = max(limit // 2, 1)
        return f"{value[:half]!r}...{value[-half:]!r} ({len(value):,} chars)"
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
