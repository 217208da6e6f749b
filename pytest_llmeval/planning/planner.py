"""The planning pass: model calls of plain synchronous tests, made N at a time.

pytest runs tests one after another, and a test body blocks on each model call. To make
the calls concurrently without asking users to write async tests, the planner runs the
remaining eval tests once *for planning* before they run for real:

1. Each test body runs with the caller in planning mode. A call this run can answer
   (cache, or fetched earlier in the run) is answered; the first call it cannot answer is
   recorded and ends the body with :class:`~pytest_llmeval.errors.PlanningStop` (a
   ``BaseException``, so ``except Exception`` cannot swallow it). Code after that call
   never runs during planning.
2. Recorded requests go out at once, ``--llmeval-concurrency`` at a time, into the cache
   (or the run's memory under ``--llmeval-cache=refresh|off``), while planning goes on.
3. The tests then run for real and read their answers; a test whose answer is still in
   flight waits for that one answer (in a terminal, a progress line is drawn until all
   answers are in first).

A planning pass (a *generation*) starts at the first eval test after a model call that was
made live (or at once when the cache is known to be cold). A test whose next call depends
on an earlier answer (a judge grading the output) makes that call live in its real run,
which starts the next generation for the tests after it: dependent calls still go out
concurrently, one level per generation. A test that finished planning without a miss, or
whose prompt changed between two planning runs (it depends on time, randomness or side
effects), is not planned again.

Planning runs are invisible: they run the setup, call and teardown hooks as
``runtestprotocol`` does but make no report at all (terminal, ``--junitxml``,
``--llmeval-*`` reports, outcomes); the plugin's own hooks skip them too
(``EvalSession.planning``); captured output, report sections and ``user_properties`` they
leave behind are removed, and warnings they raise are dropped (the real run raises them).
"""

from __future__ import annotations

import contextlib
import io
import sys
import threading
import time
import warnings
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TextIO

import pluggy
import pytest

if TYPE_CHECKING:
    from concurrent.futures import Future, ThreadPoolExecutor

    from pytest_llmeval.models import Request
    from pytest_llmeval.plugin import EvalSession

__all__ = ["Planner"]

# Generations per run: a test needing more dependent calls than this makes the rest live.
MAX_GENERATIONS = 16


@dataclass
class _Miss:
    request: Request
    test_id: str | None


@dataclass
class _ItemPlan:
    """The :class:`pytest_llmeval.calls.caller.PlanningContext` of one planning run of one test."""

    answered: int = 0
    in_setup: bool = False
    in_teardown: bool = False
    miss: _Miss | None = None

    def missed(self, request: Request, test_id: str | None, role: str, tags: list[str] | None) -> None:
        if self.miss is None:
            self.miss = _Miss(request, test_id)


@dataclass
class _ItemState:
    status: str = "new"  # new | pending (its miss was fetched) | complete | dropped
    answered: int = -1


@dataclass
class PlannerStats:
    """What the planning passes of this run did (for tests and benchmarks)."""

    generations: int = 0
    planning_runs: int = 0
    prefetched: int = 0
    failed: int = 0
    planning_s: float = 0.0  # running test bodies for planning
    waiting_s: float = 0.0  # drawing the progress line until every call was in (terminals only)
    dropped_nondeterministic: list[str] = field(default_factory=list)


class Planner:
    """Registered as a plugin when ``--llmeval-concurrency`` is above 0 (see plugin.py)."""

    def __init__(self, session: EvalSession) -> None:
        self.session = session
        self.config = session.config
        self.caller = session.caller
        self.concurrency = max(1, session.settings.concurrency)
        self.stats = PlannerStats()
        self._states: dict[str, _ItemState] = {}
        self._enabled: bool | None = None
        self._live_seen = 0
        self._ctx: _ItemPlan | None = None
        self._pools: list[ThreadPoolExecutor] = []
        self._last: list[Future[bool]] = []
        self._count_lock = threading.Lock()

    # -- hooks ---------------------------------------------------------------------------
    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtest_protocol(self, item: pytest.Item, nextitem: pytest.Item | None) -> Generator[None, Any, Any]:
        if self._should_plan(item):
            self._live_seen = self.caller.live_calls
            self._generation(item, nextitem)
        return (yield)

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> Generator[None, Any, Any]:
        ctx = self._ctx
        if ctx is not None:
            ctx.in_setup = True
        try:
            return (yield)
        finally:
            if ctx is not None:
                ctx.in_setup = False

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtest_teardown(self, item: pytest.Item, nextitem: pytest.Item | None) -> Generator[None, Any, Any]:
        ctx = self._ctx
        if ctx is not None:
            ctx.in_teardown = True
        return (yield)

    # -- when ----------------------------------------------------------------------------
    def _usable(self) -> bool:
        config = self.config
        if getattr(config, "workerinput", None) is not None or self.caller.mode == "replay":
            return False
        # Nothing would run for real, or a debugger would stop in the planning runs.
        for name in ("collectonly", "setuponly", "setupplan", "usepdb", "trace"):
            if config.getoption(name, False):
                return False
        return True

    def _should_plan(self, item: pytest.Item) -> bool:
        from pytest_llmeval.plugin import CASE_KEY

        if CASE_KEY not in item.stash:
            return False
        if self._enabled is None:
            self._enabled = self._usable()
            if self._enabled and self.stats.generations == 0 and self._known_cold():
                return True
        if not self._enabled or self.stats.generations >= MAX_GENERATIONS:
            return False
        if self.caller.live_calls <= self._live_seen:
            return False
        last = self._last
        if last and all(f.done() for f in last) and not any(_fetched(f) for f in last):
            # Every call of the last generation failed: a new one would fail the same way.
            self._enabled = False
            return False
        return True

    def _known_cold(self) -> bool:
        caller = self.caller
        if caller.mode in ("refresh", "off"):
            return True
        return not caller.store_opened and not caller.store_path.exists()

    # -- one generation ------------------------------------------------------------------
    def _generation(self, anchor: pytest.Item, after_anchor: pytest.Item | None) -> None:
        from pytest_llmeval.plugin import CASE_KEY

        session = anchor.session
        items = session.items
        try:
            start = items.index(anchor)
        except ValueError:
            return
        batch = [it for it in items[start:] if CASE_KEY in it.stash and self._state(it).status in ("new", "pending")]
        if not batch:
            return
        self.stats.generations += 1
        from concurrent.futures import ThreadPoolExecutor

        pool = ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="llmeval-call")
        self._pools.append(pool)
        futures: dict[str, Future[bool]] = {}
        interrupted = True
        try:
            started = time.perf_counter()
            self._plan_items(batch, anchor, after_anchor, pool, futures)
            self.stats.planning_s += time.perf_counter() - started
            stream = self._progress_stream()
            if stream is not None and futures:
                # In a terminal the progress line is drawn until every call is in; otherwise
                # the tests run at once and each waits for its own answer (Caller.expect).
                started = time.perf_counter()
                self._wait(futures, stream)
                self.stats.waiting_s += time.perf_counter() - started
            interrupted = False
        except Exception as exc:  # noqa: BLE001 - a planner bug must not break the real run
            warnings.warn(
                pytest.PytestWarning(f"llmeval: the planning pass failed ({exc!r}); tests make their calls one by one"),
                stacklevel=1,
            )
            self._enabled = False
            _teardown_towards(session, anchor)
        finally:
            # Queued calls go on (the tests wait for them), unless interrupted: then calls not
            # started are dropped, and calls in flight end by their timeout.
            pool.shutdown(wait=False, cancel_futures=interrupted)
        if not futures:
            self._enabled = False  # nothing new to fetch: later generations would find nothing either
        self._last = list(futures.values())

    def close(self) -> None:
        """The run is over: calls not started yet are dropped (an interrupt, ``-x``)."""
        for pool in self._pools:
            pool.shutdown(wait=False, cancel_futures=True)

    def _plan_items(
        self,
        batch: list[pytest.Item],
        anchor: pytest.Item,
        after_anchor: pytest.Item | None,
        pool: ThreadPoolExecutor,
        futures: dict[str, Future[bool]],
    ) -> None:
        _teardown_towards(anchor.session, batch[0])
        with self._quiet():
            for i, item in enumerate(batch):
                # The last one is torn down as far as the real run of `anchor` needs. When it
                # is `anchor` itself, as far as anchor's own real next item needs: tearing an
                # item down "towards itself" would leave its own fixtures set up.
                nextitem: pytest.Item | None
                if i + 1 < len(batch):
                    nextitem = batch[i + 1]
                else:
                    nextitem = anchor if item is not anchor else after_anchor
                plan = self._run_one(item, nextitem)
                state = self._state(item)
                miss = plan.miss
                if miss is None:
                    # Ran to its end (or failed before a miss): nothing left to fetch for it.
                    state.status = "complete"
                    continue
                if state.status == "pending" and plan.answered <= state.answered:
                    # The request before the miss changed between planning runs.
                    state.status = "dropped"
                    self.stats.dropped_nondeterministic.append(item.nodeid)
                    continue
                state.status, state.answered = "pending", plan.answered
                key = miss.request.key
                if key not in futures:
                    future = futures[key] = pool.submit(self.caller.prefetch, miss.request, test_id=miss.test_id)
                    self.caller.expect(key, future)
                    future.add_done_callback(self._count)

    def _run_one(self, item: pytest.Item, nextitem: pytest.Item | None) -> _ItemPlan:
        plan = _ItemPlan()
        saved_properties = list(item.user_properties)
        saved_sections = list(getattr(item, "_report_sections", []))
        self._ctx = plan
        self.caller.planning = plan
        self.session.planning = True
        try:
            _run_unreported(item, nextitem)
        finally:
            self.session.planning = False
            self.caller.planning = None
            self._ctx = None
            item.user_properties[:] = saved_properties
            if hasattr(item, "_report_sections"):
                item._report_sections[:] = saved_sections
        self.stats.planning_runs += 1
        return plan

    def _count(self, future: Future[bool]) -> None:
        with self._count_lock:
            if _fetched(future):
                self.stats.prefetched += 1
            else:
                self.stats.failed += 1

    def _wait(self, futures: dict[str, Future[bool]], stream: TextIO) -> None:
        from concurrent.futures import wait

        from pytest_llmeval.planning.progress import Progress

        stats = self.caller.stats
        retries0, cost0 = stats.retries, stats.cost_usd
        progress = Progress(stream, len(futures))
        pending = set(futures.values())
        try:
            while pending:
                # Wakes up when all are done, else every 0.1 s to redraw the progress line.
                _, pending = wait(pending, timeout=0.1)
                done = [f for f in futures.values() if f.done()]
                errors = sum(1 for f in done if f.cancelled() or f.exception() is not None or not f.result())
                progress.update(
                    len(done), errors=errors, retries=stats.retries - retries0, cost_usd=stats.cost_usd - cost0
                )
        finally:
            progress.close()

    # -- helpers -------------------------------------------------------------------------
    def _state(self, item: pytest.Item) -> _ItemState:
        state = self._states.get(item.nodeid)
        if state is None:
            state = self._states[item.nodeid] = _ItemState()
        return state

    def _progress_stream(self) -> TextIO | None:
        """The terminal, when a progress line belongs there (not under -q, not in a pipe)."""
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is None or self.config.get_verbosity() < 0 or not reporter.isatty():
            return None
        # Start on a fresh line; the reporter re-prints the file name after us.
        ensure_newline = getattr(reporter, "ensure_newline", None)
        if ensure_newline is not None:
            ensure_newline()
        self.config.get_terminal_writer().flush()
        # Straight to the stream: the writer would count our "\r" as line width.
        return sys.stdout

    @contextlib.contextmanager
    def _quiet(self) -> Iterator[None]:
        """Keep what planning runs print or warn off the terminal (the real run shows it).

        Planning runs skip the per-phase hooks of pytest's capture plugin (see
        :func:`_planning_hooks`): reading the capture files three times per test
        cost more than the test. Instead pytest's global capture is resumed once around the
        whole batch and what it caught is thrown away.
        """
        capman = self.config.pluginmanager.get_plugin("capturemanager")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if self.config.getoption("capture", "fd") == "no" or capman is None:
                sink = io.StringIO()
                with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
                    yield
                return
            capman.resume_global_capture()
            try:
                yield
            finally:
                capman.suspend_global_capture(in_=False)
                capman.read_global_capture()  # planning output: discarded


def _fetched(future: Future[bool]) -> bool:
    return not future.cancelled() and future.exception() is None and future.result()


def _run_unreported(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    """Setup, call and teardown of ``item`` as ``runtestprotocol`` runs them, without reports.

    ``runtestprotocol(item, log=False)`` (what pytest-rerunfailures uses) would still build a
    report per phase, and formatting the traceback of each planning stop costs more than
    the test itself. Exceptions end a phase as they do in pytest; ``pytest.exit`` and
    Ctrl-C still stop the run.
    """
    reraise = (pytest.exit.Exception, KeyboardInterrupt)
    ihook = _planning_hooks(item)
    # Like runtestprotocol: a second run of an item needs a fresh fixture request.
    has_request = hasattr(item, "_request")
    if has_request and not item._request:  # type: ignore[attr-defined]
        item._initrequest()  # type: ignore[attr-defined]
    setup = pytest.CallInfo.from_call(lambda: ihook.pytest_runtest_setup(item=item), when="setup", reraise=reraise)
    if setup.excinfo is None:
        pytest.CallInfo.from_call(lambda: ihook.pytest_runtest_call(item=item), when="call", reraise=reraise)
    pytest.CallInfo.from_call(
        lambda: ihook.pytest_runtest_teardown(item=item, nextitem=nextitem), when="teardown", reraise=reraise
    )
    if has_request:
        item._request = False  # type: ignore[attr-defined]
        item.funcargs = None  # type: ignore[attr-defined]


# Plugins whose per-phase hooks only capture output for reports that a planning run never
# makes; _quiet() covers what they would have kept off the terminal. (The logging plugin's
# stay: the caplog fixture needs them.)
_REPORT_ONLY_PLUGINS = ("capturemanager",)


class _PlanningHooks:
    """The three per-phase hooks of ``item.ihook`` without the report-only plugins."""

    def __init__(self, item: pytest.Item) -> None:
        pm = item.config.pluginmanager
        report_only = {p for p in (pm.get_plugin(n) for n in _REPORT_ONLY_PLUGINS) if p is not None}
        ihook = item.ihook
        for name in ("pytest_runtest_setup", "pytest_runtest_call", "pytest_runtest_teardown"):
            caller = getattr(ihook, name)
            # item.ihook gives the session's hook caller, or (when some conftest files do not
            # apply to this item's path) a pluggy subset of it that leaves them out. Any other
            # kind (another pytest or pluggy): keep it whole, slower but correct.
            if isinstance(caller, pluggy.HookCaller) and report_only:
                not_applicable = getattr(caller, "_remove_plugins", None)
                if not_applicable is not None or type(caller) is pluggy.HookCaller:
                    caller = pm.subset_hook_caller(name, remove_plugins={*(not_applicable or ()), *report_only})
            setattr(self, name, caller)


def _planning_hooks(item: pytest.Item) -> Any:
    return _PlanningHooks(item)


def _teardown_towards(session: pytest.Session, nextitem: pytest.Item | None) -> None:
    """Tear down what ``nextitem`` does not share with the items set up so far.

    Needed only when items of one module are not contiguous (some reordering plugins);
    a finalizer error here shows again when the real run tears the same fixture down.
    """
    state = getattr(session, "_setupstate", None)
    teardown_exact = getattr(state, "teardown_exact", None)
    if teardown_exact is None:
        return
    try:
        teardown_exact(nextitem)
    except Exception:  # noqa: BLE001, S110 - see the docstring
        pass
