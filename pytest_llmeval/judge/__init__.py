"""Model-graded checks: the judge prompt (:mod:`~pytest_llmeval.judge.prompt`), strict
parsing of its verdict (:mod:`~pytest_llmeval.judge.parsing`), :class:`Grade`, the graders
and their registry (:mod:`~pytest_llmeval.judge.graders`) and :class:`Judge`."""

from __future__ import annotations

from pytest_llmeval.judge.grade import Grade
from pytest_llmeval.judge.graders import GraderRegistry
from pytest_llmeval.judge.judge import Judge

__all__ = ["Grade", "GraderRegistry", "Judge"]
