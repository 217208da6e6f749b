"""The self-contained HTML report."""

from __future__ import annotations

from pytest_llmeval.reports.html.render import render_html, write_html

__all__ = ["render_html", "write_html"]
