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

Batch mode (``--llmeval-batch``, :mod:`pytest_llmeval.calls.batch`) takes a separate path,
:meth:`Planner._batch_generation`: the misses of each planning round go out as provider
batches (calls of models without a batch API are fetched live as above), the round waits for
them, and the tests are planned again at once for their next calls (the judge grading an
answer), which form the next batch: one batch level per round, before any test runs for real.
Batch mode also plans on xdist workers: each worker plans the tests after its first one, and
the store's batch claims make sure a request is submitted once, whichever worker gets it first.

Planning runs are invisible: they run the setup, call and teardown hooks as
``runtestprotocol`` does but make no report at all (terminal, ``--junitxml``,
``--llmeval-*`` reports, outcomes); the plugin's own hooks skip them too (they ask
:attr:`Planner.running`); captured output, report sections and ``user_properties`` they
leave behind are removed, and warnings they raise are dropped (the real run raises them).

The planner owns the one "a planning run is in progress" state (:attr:`Planner.running`):
the caller and the session ask it. Every private pytest access it needs is in
:mod:`pytest_llmeval.planning._pytest_internals`; on a pytest that module does not know,
the planner switches itself off with one warning.
"""

from __future__ import annotations

import contextlib
import inspect
import sys
import threading
import time
import warnings
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TextIO

import pytest

from pytest_llmeval.keys import CASE_KEY
from pytest_llmeval.planning import _pytest_internals as internals

if TYPE_CHECKING:
    from concurrent.futures import Future, ThreadPoolExecutor

    from pytest_llmeval.calls.batch import BatchRunner
    from pytest_llmeval.calls.caller import Caller
    from pytest_llmeval.models import Request

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
    """Registered as a plugin when ``--llmeval-concurrency`` is above 0 (see session.py).

    It attaches itself to ``caller``, which asks :attr:`context` on every call.
    """

    def __init__(
        self, config: pytest.Config, caller: Caller, *, concurrency: int, batch_wait_s: float | None = None
    ) -> None:
        self.config = config
        self.caller = caller
        self.concurrency = max(1, concurrency)
        caller.planner = self
        # Checked once, when evals have been collected: a warning now lands in pytest's
        # warnings summary, and planning on internals it does not know would be a gamble.
        self.unsupported = internals.unsupported()
        if self.unsupported is not None:
            warnings.warn(
                pytest.PytestWarning(
                    f"llmeval: {self.unsupported}; the planning pass is off and model calls are made "
                    "one at a time (use a pytest version the plugin supports, or upgrade pytest-llmeval)"
                ),
                stacklevel=2,
            )
        self.stats = PlannerStats()
        self._states: dict[str, _ItemState] = {}
        self._enabled: bool | None = None
        self._live_seen = 0
        self._ctx: _ItemPlan | None = None
        self._pools: list[ThreadPoolExecutor] = []
        self._last: list[Future[bool]] = []
        self._count_lock = threading.Lock()
        # Batch mode (--llmeval-batch): misses go out as provider batches (calls/batch.py).
        self.batch: BatchRunner | None = None
        if batch_wait_s is not None:
            from pytest_llmeval.calls.batch import BatchRunner

            self.batch = BatchRunner(caller, wait_s=batch_wait_s)

    # -- the one planning state ------------------------------------------------------------
    @property
    def context(self) -> _ItemPlan | None:
        """The planning context of the test body running for planning now, if any."""
        return self._ctx

    @property
    def running(self) -> bool:
        """Whether a test body is running for planning now (nothing of it is reported)."""
        return self._ctx is not None

    # -- hooks ---------------------------------------------------------------------------
    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtest_protocol(self, item: pytest.Item, nextitem: pytest.Item | None) -> Generator[None, Any, Any]:
        if self._should_plan(item):
            self._live_seen = self.caller.live_calls
            if self.batch is not None:
                self._batch_generation(item, nextitem)
            else:
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
        if self.caller.mode == "replay":
            return False
        # On an xdist worker a generation would plan tests other workers run too: only batch
        # mode plans there, because its store claims keep each request in one batch.
        if getattr(config, "workerinput", None) is not None and self.batch is None:
            return False
        # Nothing would run for real, or a debugger would stop in the planning runs.
        for name in ("collectonly", "setuponly", "setupplan", "usepdb", "trace"):
            if config.getoption(name, False):
                return False
        if self.unsupported is not None:
            return False
        return True

    def _should_plan(self, item: pytest.Item) -> bool:
        if not _plannable(item):
            return False
        if self._enabled is None:
            self._enabled = self._usable()
            # Batch mode plans at once: the first test's calls would otherwise be made live.
            if self._enabled and self.stats.generations == 0 and (self.batch is not None or self._known_cold()):
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
        session = anchor.session
        items = session.items
        try:
            start = items.index(anchor)
        except ValueError:
            return
        batch = [it for it in items[start:] if _plannable(it) and self._state(it).status in ("new", "pending")]
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
            internals.teardown_towards(session, anchor)
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
        pool: ThreadPoolExecutor | None,
        futures: dict[str, Future[bool]],
        collect: dict[str, _Miss] | None = None,
    ) -> None:
        """Run ``batch`` for planning; each miss is fetched on ``pool``, or kept in ``collect``."""
        internals.teardown_towards(anchor.session, batch[0])
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
                if collect is not None:
                    collect.setdefault(key, miss)
                elif pool is not None and key not in futures:
                    future = futures[key] = pool.submit(self.caller.prefetch, miss.request, test_id=miss.test_id)
                    self.caller.expect(key, future)
                    future.add_done_callback(self._count)

    # -- batch mode (--llmeval-batch) ----------------------------------------------------
    def _batch_generation(self, anchor: pytest.Item, after_anchor: pytest.Item | None) -> None:
        """Plan, batch, wait, and plan again for the next level of calls, until nothing is missing."""
        assert self.batch is not None
        session = anchor.session
        items = session.items
        try:
            start = items.index(anchor)
        except ValueError:
            return
        from concurrent.futures import ThreadPoolExecutor

        pool = ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="llmeval-call")
        self._pools.append(pool)
        interrupted = True
        try:
            while self.stats.generations < MAX_GENERATIONS:
                todo = [
                    it for it in items[start:] if CASE_KEY in it.stash and self._state(it).status in ("new", "pending")
                ]
                if not todo:
                    break
                misses: dict[str, _Miss] = {}
                started = time.perf_counter()
                self._plan_items(todo, anchor, after_anchor, None, {}, collect=misses)
                self.stats.planning_s += time.perf_counter() - started
                if not misses:
                    break
                self.stats.generations += 1
                stream = self._progress_stream()
                live = self.batch.run([(m.request, m.test_id) for m in misses.values()], stream)
                # Calls without a batch API go out live, N at a time; the next round needs them.
                futures: dict[str, Future[bool]] = {}
                for request, test_id in live:
                    key = request.key
                    if key not in futures:
                        futures[key] = pool.submit(self.caller.prefetch, request, test_id=test_id)
                        self.caller.expect(key, futures[key])
                        futures[key].add_done_callback(self._count)
                if futures:
                    from concurrent.futures import wait

                    wait(list(futures.values()))
            interrupted = False
        except Exception as exc:  # noqa: BLE001 - a planner bug must not break the real run
            warnings.warn(
                pytest.PytestWarning(f"llmeval: the batch planning pass failed ({exc!r}); tests make their calls live"),
                stacklevel=1,
            )
            self._enabled = False
            internals.teardown_towards(session, anchor)
        finally:
            pool.shutdown(wait=False, cancel_futures=interrupted)
        self._last = []

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        """Batch mode: what was submitted and collected, what it cost, what is still pending."""
        if self.batch is None:
            return
        lines = self.batch.report.lines()
        if lines:
            terminalreporter.write_sep("-", "llmeval batch")
            for line in lines:
                terminalreporter.write_line(line)

    def _run_one(self, item: pytest.Item, nextitem: pytest.Item | None) -> _ItemPlan:
        plan = _ItemPlan()
        with internals.kept_sections(item):
            self._ctx = plan
            try:
                internals.run_unreported(item, nextitem)
            finally:
                self._ctx = None
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
        if reporter is None or self.config.get_verbosity() < 0 or not internals.reporter_isatty(reporter):
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
        """Keep what planning runs print or warn off the terminal (the real run shows it)."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with internals.quiet_capture(self.config):
                yield


def _plannable(item: pytest.Item) -> bool:
    """An eval item whose test function is synchronous.

    ``async def`` tests are never planned: their awaits are in flight together already, and
    a planning stop inside their event loop would leave tasks whose exception nobody
    retrieves; asyncio logs those from the garbage collector, which on CPython 3.11 can
    re-enter a running ``ast.parse`` ("AST constructor recursion depth mismatch").
    """
    if CASE_KEY not in item.stash:
        return False
    function = getattr(item, "obj", None)
    return not (inspect.iscoroutinefunction(function) or inspect.isasyncgenfunction(function))


def _fetched(future: Future[bool]) -> bool:
    return not future.cancelled() and future.exception() is None and future.result()
