"""pytest-xdist glue, registered only when xdist is installed."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .plugin import EvalSession


class XdistHooks:
    """Hands the controller's run id to every worker, so their calls log as one run."""

    def __init__(self, session: EvalSession) -> None:
        self.session = session

    def pytest_configure_node(self, node: Any) -> None:
        node.workerinput["llmeval_run_id"] = self.session.run_id
