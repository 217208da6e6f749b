"""The one place that writes reports: the end of a pytest run and the ``report`` command call
:func:`write_reports` with the results document and the reports asked for.

Each report is rendered from the document alone. A report that cannot be written (a
directory that cannot be made, a full disk, an unserialisable value) becomes one error line
naming the option, the path and the cause; the others are still written, and the caller
decides what the error means (the gate fails the run, the command exits 2).
"""

from __future__ import annotations

import contextlib
import gc
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

if TYPE_CHECKING:
    from pytest_llmeval.gate.results import ResultsDocument

__all__ = ["REPORT_KINDS", "ReportKind", "ReportTarget", "write_reports"]

#: The reports a file can be asked for.
ReportKind = Literal["json", "junit", "markdown", "html"]
REPORT_KINDS: tuple[ReportKind, ...] = ("json", "junit", "markdown", "html")


class ReportTarget(NamedTuple):
    """One report to write: its kind, its path (``None``: not asked for) and the option that
    asked for it, which an error line names so the user knows what to fix."""

    kind: ReportKind
    path: str | os.PathLike[str] | None
    option: str
    #: Keyword arguments of the report's writer (``strict``, ``tolerated`` for JUnit).
    options: Mapping[str, Any] = {}  # noqa: RUF012 - never mutated


def _json(results: ResultsDocument, path: Path, baseline: Mapping[str, Any] | None, **options: Any) -> None:
    from pytest_llmeval.reports.json import write_json

    write_json(results, path)


def _junit(results: ResultsDocument, path: Path, baseline: Mapping[str, Any] | None, **options: Any) -> None:
    from pytest_llmeval.reports.junit import write_junit

    write_junit(results, path, **options)


def _markdown(results: ResultsDocument, path: Path, baseline: Mapping[str, Any] | None, **options: Any) -> None:
    from pytest_llmeval.reports.markdown import write_markdown

    write_markdown(results, path)


def _html(results: ResultsDocument, path: Path, baseline: Mapping[str, Any] | None, **options: Any) -> None:
    from pytest_llmeval.reports.html.render import write_html

    write_html(results, path, baseline)


# Each report module is imported only when its report is asked for: most runs write none.
_WRITERS: dict[str, Callable[..., None]] = {
    "json": _json,
    "junit": _junit,
    "markdown": _markdown,
    "html": _html,
}


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """The cyclic garbage collector held off while a report is rendered.

    A report makes hundreds of thousands of small, acyclic containers at the end of a run
    whose heap already holds every case: each automatic collection then walks that whole
    heap, which was half the time of a big HTML report. Reference counting still frees
    everything; the collector runs again afterwards as it was.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def write_reports(
    results: ResultsDocument,
    targets: Iterable[ReportTarget],
    baseline: ResultsDocument | Mapping[str, Any] | None = None,
) -> list[str]:
    """Write each target that has a path, in the order given; return one error line per
    report that could not be written (empty when all were).

    ``baseline`` is the results document of the accepted run, when there is one: the HTML
    report shows each case's outcome in it. Never raises for a file system error.
    """
    errors: list[str] = []
    for target in targets:
        if target.path is None:
            continue
        write = _WRITERS.get(target.kind)
        if write is None:
            raise ValueError(f"unknown report kind {target.kind!r}; expected one of {', '.join(REPORT_KINDS)}")
        try:
            with _gc_paused():
                write(results, Path(target.path), baseline, **target.options)
        except (OSError, ImportError, ValueError) as exc:
            errors.append(f"{target.option} {target.path}: could not write the report: {type(exc).__name__}: {exc}")
    return errors
