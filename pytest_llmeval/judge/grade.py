"""``Grade``: the value a grader returns, truthy when it passes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pytest_llmeval.text import excerpt, short_repr

__all__ = ["Grade"]

_RAW_KEPT = 4000  # characters of a long text kept in a grade's to_dict()


def _kept(text: str | None) -> str | None:
    # Reports keep head and tail of a long reply: the verdict line is usually at the end.
    return None if text is None else excerpt(text, _RAW_KEPT, sep=" ")


@dataclass(frozen=True, repr=False)
class Grade:
    """A judge's verdict: truthy when it passes.

    ``label`` (alias ``verdict``) is the choice the judge made, ``score`` its value in 0..1,
    ``reasoning`` the judge's own words, ``raw`` its whole reply and ``judge_model`` who
    graded. It passes when ``score`` is above 0, or at least ``min_score`` when given.
    """

    name: str
    passed: bool
    score: float
    label: str
    reasoning: str
    raw: str
    judge_model: str
    criteria: str | None = None
    reference: str | None = None
    output: str = ""
    choices: dict[str, float] = field(default_factory=dict)
    min_score: float | None = None
    method: str = ""  # "tool", "json" or "text": how the verdict was read
    cached: bool = False
    key: str = ""

    def __bool__(self) -> bool:
        return self.passed

    @property
    def verdict(self) -> str:
        """The label the judge chose (``PASS``, ``Y``, ``C``, one of the classify choices)."""
        return self.label

    def __repr__(self) -> str:
        # One line on purpose: pytest prints the repr of a failed `assert judge(...)` on one
        # line and cuts it near 240 characters, so each part is kept short.
        status = "PASSED" if self.passed else "FAILED"
        about = f" | criteria: {short_repr(self.criteria, 50)}" if self.criteria else ""
        return (
            f"<Grade {self.name} {status} verdict={self.label!r} score={self.score:g}"
            f"{about} | why: {short_repr(self.reasoning, 80)}>"
        )

    def __str__(self) -> str:
        return self.describe()

    def describe(self) -> str:
        """A readable multi-line description for reports and terminal sections."""
        status = "PASSED" if self.passed else "FAILED"
        threshold = f"at least {self.min_score:g}" if self.min_score is not None else "above 0"
        lines = [
            f"{self.name}: {status} (verdict {self.label!r}, score {self.score:g}, passes {threshold})",
            f"  judge:     {self.judge_model}{' (cached)' if self.cached else ''}",
        ]
        if self.criteria is not None:
            lines.append(f"  criteria:  {short_repr(self.criteria, 400)}")
        if self.reference is not None:
            lines.append(f"  reference: {short_repr(self.reference, 400)}")
        lines.append(f"  output:    {short_repr(self.output, 400)}")
        lines.append(f"  reasoning: {short_repr(self.reasoning, 800)}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict for reports (long text shortened)."""
        return {
            "name": self.name,
            "passed": self.passed,
            "score": self.score,
            "label": self.label,
            "verdict": self.label,
            "reasoning": _kept(self.reasoning),
            "raw": _kept(self.raw),
            "judge_model": self.judge_model,
            "criteria": _kept(self.criteria),
            "reference": _kept(self.reference),
            "choices": dict(self.choices),
            "min_score": self.min_score,
            "method": self.method,
            "cached": self.cached,
        }
