"""Per-test records: every check, grade and model call made while a test runs.

The plugin opens a :class:`CaseRecord` around each test call; checks and grades add
themselves to whichever record is current, so ``assert exact(...)`` needs no extra argument.
"""

from __future__ import annotations

import contextvars
from dataclasses import dataclass, field
from typing import Any

__all__ = ["CaseRecord", "CallInfo", "current_record", "record_result", "record_call"]


@dataclass
class CallInfo:
    """What one model call cost and where its answer came from."""

    key: str
    model: str
    cached: bool
    latency_s: float
    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    cost_usd: float = 0.0
    role: str = "llm"  # "llm" or "judge"
    batch_id: str | None = None  # answered through this provider batch (--llmeval-batch), at the batch price


@dataclass
class CaseRecord:
    """Everything observed while one test (one case, one model, one sample) ran."""

    nodeid: str
    model: str | None = None
    sample: int = 0
    results: list[Any] = field(default_factory=list)  # CheckResult and Grade objects
    calls: list[CallInfo] = field(default_factory=list)
    output: str | None = None  # last text the model under test returned
    prompt: Any = None  # last request's messages
    completions: list[Any] = field(default_factory=list)  # Completion objects: what `llm.calls` shows


_current: contextvars.ContextVar[CaseRecord | None] = contextvars.ContextVar(
    "pytest_llmeval_current_record", default=None
)


def current_record() -> CaseRecord | None:
    """The record of the test running in this context, if any."""
    return _current.get()


def set_current(record: CaseRecord | None) -> contextvars.Token[CaseRecord | None]:
    return _current.set(record)


def reset_current(token: contextvars.Token[CaseRecord | None]) -> None:
    _current.reset(token)


def record_result(result: Any) -> None:
    """Attach a check result or grade to the running test; a no-op outside a test."""
    record = _current.get()
    if record is not None:
        record.results.append(result)


def record_call(info: CallInfo) -> None:
    """Attach a model call to the running test; a no-op outside a test."""
    record = _current.get()
    if record is not None:
        record.calls.append(info)
