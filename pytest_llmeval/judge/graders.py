"""The graders behind ``judge(...)``, ``judge.closed_qa``, ``judge.factuality`` and
``judge.classify``, and the registry that third-party graders join.

This module is the plugin that registers the built-in graders: the session registers it
with pluggy, so they come in through ``pytest_llmeval_register_graders`` like any
plugin's, and a plugin registering the same name replaces one.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import pytest

from pytest_llmeval.errors import ConfigError
from pytest_llmeval.judge.grade import Grade
from pytest_llmeval.judge.templates import BUILTIN

__all__ = [
    "Grader",
    "GradingJudge",
    "GraderRegistry",
    "RESERVED_NAMES",
    "check_choices",
    "require_text",
    "rubric",
    "closed_qa",
    "factuality",
    "classify",
    "builtin_registry",
    "RUBRIC_CHOICES",
    "CLOSED_QA_CHOICES",
    "FACTUALITY_CHOICES",
]

RUBRIC_CHOICES: dict[str, float] = {"PASS": 1.0, "FAIL": 0.0}
CLOSED_QA_CHOICES: dict[str, float] = {"Y": 1.0, "N": 0.0}
# The A-E scale of OpenAI's evals "fact" grader, scored as autoevals scores it: a consistent
# subset (A) is worth less than a consistent superset (B); a disagreement (D) is worth 0.
FACTUALITY_CHOICES: dict[str, float] = {"A": 0.4, "B": 0.6, "C": 1.0, "D": 0.0, "E": 1.0}
_MAX_LABEL = 100

#: The judge's own public attributes: a grader of that name would be shadowed by them, so
#: registering one is refused. Kept here (not read off the Judge class) so that this
#: module does not import judge.py, which imports it; a test keeps the two in step.
RESERVED_NAMES = frozenset({"grade", "model", "spec", "template_for", "test_id", "with_params", "with_template"})


class GradingJudge(Protocol):
    """What a grader needs of the judge it is given: :meth:`Judge.grade
    <pytest_llmeval.judge.judge.Judge.grade>` (a protocol, so this module need not import
    the Judge, which imports it)."""

    def grade(
        self,
        output: Any,
        *,
        name: str,
        template: str,
        choices: Mapping[str, float],
        criteria: str | None = None,
        reference: str | None = None,
        expert: str | None = None,
        input: str | None = None,
        min_score: float | None = None,
    ) -> Grade:
        """Grade ``output`` with ``template``, offering ``choices`` (label -> score)."""
        ...


#: A grader: ``grader(judge, output, *args, **kwargs) -> Grade``.
Grader = Callable[..., Grade]


class GraderRegistry:
    """Graders by name, filled through the ``pytest_llmeval_register_graders`` hook.

    A later registration of a name replaces the earlier one, so a plugin can replace a
    built-in grader.
    """

    def __init__(self) -> None:
        self._graders: dict[str, Grader] = {}

    def register(self, name: str, grader: Grader) -> None:
        """Add ``grader`` as ``judge.<name>``; ``grader(judge, output, ...)`` returns a Grade."""
        if not isinstance(name, str) or not name.isidentifier() or name.startswith("_"):
            raise ConfigError(f"grader name {name!r}: must be a Python identifier not starting with '_'")
        if name in RESERVED_NAMES:
            raise ConfigError(f"grader name {name!r}: clashes with the judge's own attribute judge.{name}")
        if not callable(grader):
            raise ConfigError(f"grader {name!r}: expected a callable grader(judge, output, ...), got {grader!r}")
        self._graders[name] = grader

    def get(self, name: str) -> Grader | None:
        """The grader registered as ``name``, or ``None``."""
        return self._graders.get(name)

    def __contains__(self, name: object) -> bool:
        return name in self._graders

    @property
    def names(self) -> list[str]:
        """The registered grader names, sorted."""
        return sorted(self._graders)


def require_text(value: Any, what: str, where: str, *, optional: bool = False) -> str | None:
    """``value`` as the text to grade (a :class:`~pytest_llmeval.models.Completion` is
    graded by its text); a :class:`TypeError` naming ``what`` and ``where`` otherwise."""
    if value is None and optional:
        return None
    text = getattr(value, "text", value)  # a Completion is graded by its text
    if not isinstance(text, str):
        kind = "a str or None" if optional else "a str"
        raise TypeError(f"{where}: {what} must be {kind}, got {type(value).__name__}")
    return text


def check_choices(choices: Any, where: str) -> dict[str, float]:
    """``choices`` validated: at least two labels, each a short single-line string,
    distinct ignoring case, each with a score from 0 to 1."""
    if not isinstance(choices, Mapping):
        raise ConfigError(
            f"{where}: choices must map each label to its score, e.g. {{'helpful': 1.0, 'unhelpful': 0.0}}; "
            f"got {type(choices).__name__}"
        )
    if len(choices) < 2:
        raise ConfigError(f"{where}: choices must offer at least two labels, got {list(choices)!r}")
    out: dict[str, float] = {}
    seen: dict[str, str] = {}
    for label, score in choices.items():
        if (
            not isinstance(label, str)
            or not label.strip()
            or label != label.strip()
            or len(label) > _MAX_LABEL
            or any(not ch.isprintable() for ch in label)
        ):
            raise ConfigError(
                f"{where}: choice label {label!r} must be a non-empty single-line string of at most "
                f"{_MAX_LABEL} characters without surrounding spaces"
            )
        if label.casefold() in seen:
            raise ConfigError(f"{where}: choice labels {seen[label.casefold()]!r} and {label!r} differ only in case")
        seen[label.casefold()] = label
        if isinstance(score, bool) or not isinstance(score, (int, float)) or not math.isfinite(score):
            raise ConfigError(f"{where}: the score of choice {label!r} must be a number from 0 to 1, got {score!r}")
        if not 0.0 <= score <= 1.0:
            raise ConfigError(f"{where}: the score of choice {label!r} must be from 0 to 1, got {score!r}")
        out[label] = float(score)
    return out


def rubric(
    judge: GradingJudge,
    output: Any,
    criteria: str,
    *,
    reference: str | None = None,
    input: str | None = None,
    min_score: float | None = None,
) -> Grade:
    """PASS (1) or FAIL (0): does ``output`` meet ``criteria``? ``reference`` is an answer to
    compare with, ``input`` the task the model was given."""
    __tracebackhide__ = True  # a JudgeError's traceback ends at the test's line
    return judge.grade(
        output,
        name="rubric",
        template=BUILTIN["rubric"],
        choices=RUBRIC_CHOICES,
        criteria=require_text(criteria, "criteria", "judge()"),
        reference=require_text(reference, "reference", "judge()", optional=True),
        input=require_text(input, "input", "judge()", optional=True),
        min_score=min_score,
    )


def closed_qa(
    judge: GradingJudge,
    output: Any,
    criteria: str,
    *,
    input: str | None = None,
    min_score: float | None = None,
) -> Grade:
    """Y (1) or N (0): does the answer to ``input`` meet ``criteria`` (OpenAI evals' closedqa)?"""
    __tracebackhide__ = True
    return judge.grade(
        output,
        name="closed_qa",
        template=BUILTIN["closed_qa"],
        choices=CLOSED_QA_CHOICES,
        criteria=require_text(criteria, "criteria", "judge.closed_qa()"),
        input=require_text(input, "input", "judge.closed_qa()", optional=True),
        min_score=min_score,
    )


def factuality(
    judge: GradingJudge,
    output: Any,
    expert: str,
    *,
    input: str | None = None,
    min_score: float | None = None,
) -> Grade:
    """OpenAI evals' A-E factuality scale against an ``expert`` answer, scored A 0.4, B 0.6,
    C 1, D 0, E 1: passes unless the answers disagree (D), or from ``min_score`` when given."""
    __tracebackhide__ = True
    return judge.grade(
        output,
        name="factuality",
        template=BUILTIN["factuality"],
        choices=FACTUALITY_CHOICES,
        expert=require_text(expert, "expert", "judge.factuality()"),
        input=require_text(input, "input", "judge.factuality()", optional=True),
        min_score=min_score,
    )


def classify(
    judge: GradingJudge,
    output: Any,
    choices: Mapping[str, float],
    *,
    criteria: str | None = None,
    input: str | None = None,
    min_score: float | None = None,
) -> Grade:
    """One of the caller's labels; ``choices`` maps each label to its score (0..1)."""
    __tracebackhide__ = True
    return judge.grade(
        output,
        name="classify",
        template=BUILTIN["classify"],
        choices=choices,
        criteria=require_text(criteria, "criteria", "judge.classify()", optional=True),
        input=require_text(input, "input", "judge.classify()", optional=True),
        min_score=min_score,
    )


@pytest.hookimpl(tryfirst=True)
def pytest_llmeval_register_graders(register: Callable[[str, Grader], None]) -> None:
    """The built-in graders, registered through the same hook as a plugin's (tryfirst, so
    a plugin registering the same name replaces them)."""
    register("rubric", rubric)
    register("closed_qa", closed_qa)
    register("factuality", factuality)
    register("classify", classify)


def builtin_registry() -> GraderRegistry:
    """A registry holding only the built-in graders (for a Judge made outside pytest)."""
    registry = GraderRegistry()
    pytest_llmeval_register_graders(registry.register)
    return registry
