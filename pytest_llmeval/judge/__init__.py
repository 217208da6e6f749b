"""Model-graded checks: the judge prompt, strict parsing of its verdict, the graders, :class:`Judge`."""

from __future__ import annotations

from pytest_llmeval.judge.judge import Grade, GraderRegistry, Judge

__all__ = ["Grade", "GraderRegistry", "Judge"]
