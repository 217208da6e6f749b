"""Where the plugin keeps its state on pytest's objects: typed stash keys, and what it knows
about one collected eval item (:class:`CaseInfo`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pytest

from pytest_llmeval.marker import EvalMarker
from pytest_llmeval.models import ModelSpec
from pytest_llmeval.recording import CaseRecord

if TYPE_CHECKING:
    from pytest_llmeval.session import EvalSession  # noqa: F401 - named in SESSION_KEY's type

__all__ = ["CaseInfo", "SESSION_KEY", "CASE_KEY", "MODEL_ARG", "SAMPLE_ARG"]

#: The hidden fixture arguments that parametrize a test by model and by sample.
MODEL_ARG = "_llmeval_model"
SAMPLE_ARG = "_llmeval_sample"


@dataclass
class CaseInfo:
    """What the plugin knows about one collected eval item."""

    eval_id: str
    model: ModelSpec | None
    sample: int
    marker: EvalMarker | None
    record: CaseRecord = field(default_factory=lambda: CaseRecord(nodeid=""))


#: The run's :class:`~pytest_llmeval.session.EvalSession`, in ``config.stash``.
SESSION_KEY = pytest.StashKey["EvalSession"]()
#: An eval item's :class:`CaseInfo`, in ``item.stash``.
CASE_KEY = pytest.StashKey[CaseInfo]()
