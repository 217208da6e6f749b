"""``python -m pytest_llmeval``: the store, export and report commands."""

from __future__ import annotations

from pytest_llmeval.cli.commands import main

__all__ = ["main"]
