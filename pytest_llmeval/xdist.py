"""pytest-xdist glue, registered only when xdist is installed."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from pytest_llmeval.session import EvalSession

_TALLIES_KEY = "llmeval_tallies"
_COLLECTED_KEY = "llmeval_collected"


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

    def pytest_testnodedown(self, node: Any, error: object | None) -> None:
        # Controller side: a crashed worker may have sent nothing.
        tallies = (getattr(node, "workeroutput", None) or {}).get(_TALLIES_KEY)
        if tallies:
            self.session.gate.add_worker_tallies(tallies)
        collected = (getattr(node, "workeroutput", None) or {}).get(_COLLECTED_KEY)
        if collected and self.session.worker_collected is None:
            self.session.worker_collected = [(e, m, int(n)) for e, m, n in collected]
