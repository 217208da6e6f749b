"""pytest-xdist glue, registered only when xdist is installed.

Everything a worker sends through execnet must be encodable as UTF-8, and a model's output
need not be (a lone surrogate such as ``"\\ud800"`` kills the worker with an
``UnicodeEncodeError``). So a report's per-case data travels as ASCII-escaped JSON and is
decoded on the controller to the very same values; the display strings of the report
(traceback, captured output, properties) travel with such characters escaped.
"""

from __future__ import annotations

import json
from collections.abc import Generator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from pytest_llmeval.session import EvalSession

_TALLIES_KEY = "llmeval_tallies"
_COLLECTED_KEY = "llmeval_collected"
_STORE_PROBLEM_KEY = "llmeval_store_problem"
# The serialized report's field that carries ``report.llmeval`` as ASCII JSON.
_WIRE_KEY = "llmeval_json"


class XdistHooks:
    """Hands the controller's run id to every worker, so their calls log as one run, and
    brings each worker's run-level tallies back (per-case data travels in the reports)."""

    def __init__(self, session: EvalSession) -> None:
        self.session = session

    def pytest_configure_node(self, node: Any) -> None:
        node.workerinput["llmeval_run_id"] = self.session.run_id

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        # Worker side: a plain hookimpl runs inside xdist's wrapper, before it sends workeroutput.
        workeroutput = getattr(session.config, "workeroutput", None)
        if workeroutput is not None:
            stats = self.session.caller.stats
            workeroutput[_TALLIES_KEY] = {k: getattr(stats, k) for k in ("calls", "hits", "retries", "errors")}
            # Every worker collects (and deselects) the whole suite: any one's counts do.
            counts = self.session.collected_counts(session) or {}
            workeroutput[_COLLECTED_KEY] = [[e, m, n] for (e, m), n in sorted(counts.items(), key=str)]
            problem = self.session.caller.store_problem
            if problem:
                workeroutput[_STORE_PROBLEM_KEY] = problem

    @pytest.hookimpl(wrapper=True)
    def pytest_report_to_serializable(
        self, config: pytest.Config, report: pytest.TestReport
    ) -> Generator[None, Any, Any]:
        # Worker side: the dict that goes through execnet.
        data = yield
        if isinstance(data, dict):
            if isinstance(data.get("llmeval"), dict):
                data[_WIRE_KEY] = json.dumps(data.pop("llmeval"), ensure_ascii=True)
            data = _wire_safe(data)
        return data

    @pytest.hookimpl(wrapper=True)
    def pytest_report_from_serializable(self, config: pytest.Config, data: Any) -> Generator[None, Any, Any]:
        # Controller side: the report rebuilt from the worker's dict.
        report = yield
        wire = getattr(report, _WIRE_KEY, None)
        if isinstance(wire, str):
            report.llmeval = json.loads(wire)
            delattr(report, _WIRE_KEY)
        return report

    def pytest_testnodedown(self, node: Any, error: object | None) -> None:
        # Controller side: a crashed worker may have sent nothing.
        tallies = (getattr(node, "workeroutput", None) or {}).get(_TALLIES_KEY)
        if tallies:
            self.session.gate.add_worker_tallies(tallies)
        problem = (getattr(node, "workeroutput", None) or {}).get(_STORE_PROBLEM_KEY)
        if isinstance(problem, str):
            self.session.store_problems.append(problem)
        collected = (getattr(node, "workeroutput", None) or {}).get(_COLLECTED_KEY)
        if collected and self.session.worker_collected is None:
            self.session.worker_collected = [(e, m, int(n)) for e, m, n in collected]


def _wire_safe(value: Any) -> Any:
    """``value`` with every string that UTF-8 cannot encode (lone surrogates) escaped."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return value.encode("utf-8", "backslashreplace").decode("utf-8")
        return value
    if isinstance(value, dict):
        return {_wire_safe(k): _wire_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_wire_safe(v) for v in value)
    return value
