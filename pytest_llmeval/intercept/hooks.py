"""Interception switched on around the setup, call and teardown of an intercepting eval.

Registered by the session (as ``llmeval-intercept``) only when the run may intercept: ini
``llmeval_intercept = true``, an eval marked ``intercept=True``, or a replay run that had to
supply placeholder keys (whose guard must stand from the start).
"""

from __future__ import annotations

from collections.abc import Generator
from typing import TYPE_CHECKING, Any

import pytest

from pytest_llmeval.errors import LLMEvalError, PlanningStop
from pytest_llmeval.intercept.transport import Interceptor, Scope
from pytest_llmeval.keys import CASE_KEY
from pytest_llmeval.recording import current_record

if TYPE_CHECKING:
    from pytest_llmeval.calls.caller import Caller

__all__ = ["InterceptHooks", "intercepts"]


def intercepts(item: pytest.Item, default: bool) -> bool:
    """Whether ``item`` serves its app's SDK calls: the marker's ``intercept=``, else the ini option."""
    info = item.stash.get(CASE_KEY, None)
    marker = info.marker if info is not None else None
    if marker is not None and marker.intercept is not None:
        return marker.intercept
    return default and info is not None


class InterceptHooks:
    """The plugin object that turns an :class:`Interceptor`'s scope on and off per test."""

    def __init__(self, caller: Caller, *, default: bool) -> None:
        self.default = default
        self.interceptor = Interceptor(caller)
        self.interceptor.install()

    def close(self) -> None:
        """The run is over: ``send`` is put back, the placeholder keys removed."""
        self.interceptor.uninstall()

    def _scope(self, item: pytest.Item) -> Scope | None:
        if not intercepts(item, self.default):
            return None
        info = item.stash[CASE_KEY]
        marker = info.marker
        uses_llm = "llm" in getattr(item, "fixturenames", ())
        return Scope(
            test_id=item.nodeid,
            under_test=info.model if uses_llm else None,
            route=marker.route if marker is not None else (),
            sample=info.sample,
            tags=list(marker.tags) if marker is not None else [],
        )

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> Generator[None, Any, Any]:
        return (yield from self._around(item, in_call=False))

    # trylast: inside the session's own wrapper, so the case record is open already.
    @pytest.hookimpl(wrapper=True, trylast=True)
    def pytest_runtest_call(self, item: pytest.Item) -> Generator[None, Any, Any]:
        return (yield from self._around(item, in_call=True))

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtest_teardown(self, item: pytest.Item, nextitem: pytest.Item | None) -> Generator[None, Any, Any]:
        return (yield from self._around(item, in_call=False))

    def _around(self, item: pytest.Item, *, in_call: bool) -> Generator[None, Any, Any]:
        scope = self._scope(item)
        if scope is None:
            return (yield)
        if in_call:
            scope.record = current_record()
        previous, self.interceptor.scope = self.interceptor.scope, scope
        try:
            result = yield
        except (LLMEvalError, PlanningStop, KeyboardInterrupt, pytest.exit.Exception, pytest.skip.Exception):
            raise
        except BaseException as exc:
            # The app's own error handling may have turned a replay miss or an unreachable
            # server into something else: the machinery error decides (never a plain fail).
            if scope.errors:
                raise scope.errors[0] from exc
            raise
        finally:
            self.interceptor.scope = previous
        if scope.errors:
            # ... or into a pass: an error is never counted as a pass.
            raise scope.errors[0]
        return result
