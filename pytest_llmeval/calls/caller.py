"""Every model call goes through here: cache lookup, the provider, retries, the call log."""

from __future__ import annotations

import contextvars
import json
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from pytest_llmeval.calls.budget import Budget
from pytest_llmeval.calls.pricing import estimate_cost
from pytest_llmeval.calls.ratelimit import RateLimiters
from pytest_llmeval.calls.registry import ProviderRegistry
from pytest_llmeval.calls.retry import Deadline, RetryPolicy, call_with_retries
from pytest_llmeval.errors import BudgetExceededError, CacheMissError, LLMEvalError, PlanningStop, ProviderError
from pytest_llmeval.models import CacheMode, Completion, Request, Usage, canonical_json
from pytest_llmeval.recording import CallInfo, record_call

if TYPE_CHECKING:
    from concurrent.futures import Future

    from pytest_llmeval.store.db import Store

__all__ = ["Caller"]

# Where an answer carries its earlier attempts' time from the retry loop to call(); taken
# off before the answer is stored.
_WAITED = "_llmeval_waited_s"

#: True while this thread (or task) runs a provider call of the plugin itself: SDK traffic
#: interception (pytest_llmeval.intercept) lets such requests through, so that ``llm(...)``,
#: the judge and prefetches in an ``intercept=True`` test are not served twice.
PLUGIN_CALL: contextvars.ContextVar[bool] = contextvars.ContextVar("pytest_llmeval_plugin_call", default=False)


@dataclass
class CallerStats:
    """Run-level tallies (retries are not visible per test)."""

    calls: int = 0
    hits: int = 0
    retries: int = 0
    errors: int = 0
    rate_limited: int = 0  # 429 answers, retried or not
    batched: int = 0  # calls answered through a provider's batch API (--llmeval-batch)
    cost_usd: float = 0.0  # estimated spend of the calls made in this run
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)


class PlanningSource(Protocol):
    """The planning pass, as the caller sees it: it owns the "planning run in progress" state."""

    @property
    def context(self) -> PlanningContext | None:
        """The context of the test body running for planning now, or ``None``."""


class PlanningContext(Protocol):
    """What the planning pass gives the caller while a test body runs for planning."""

    answered: int  # calls of this test answered so far in this planning run
    in_setup: bool
    in_teardown: bool

    def missed(self, request: Request, test_id: str | None, role: str, tags: list[str] | None) -> None:
        """``request`` cannot be answered yet: it is to be fetched before the next round."""


@dataclass
class _Prefetched:
    """An answer the planning pass fetched: the first real use reports it as a live call."""

    cost_usd: float
    latency_s: float
    batch_id: str | None = None  # answered through this provider batch (--llmeval-batch)


class Caller:
    """Resolves requests to completions according to the cache mode.

    - ``use``: a stored answer is replayed; a miss calls the model and stores the answer.
    - ``replay``: never calls a model; a miss is a :class:`CacheMissError`.
    - ``refresh``: calls every request once in this run and overwrites the stored answer.
    - ``off``: calls every request once in this run and stores nothing.
    The store is opened on the first call, so a run without evals never touches the disk.

    Every provider call goes through one :class:`~pytest_llmeval.calls.ratelimit.AdaptiveLimiter`
    per endpoint and :func:`~pytest_llmeval.calls.retry.call_with_retries`, and is admitted by the
    ``--llmeval-max-cost`` budget first. While the attached :attr:`planner` runs a test
    body for planning, :meth:`call` answers what it can and stops the test at the first miss;
    :meth:`prefetch` then fetches those misses from worker threads.
    """

    def __init__(
        self,
        *,
        registry: ProviderRegistry,
        store_path: Path,
        mode: CacheMode = "use",
        timeout_s: float = 60.0,
        retry: RetryPolicy | None = None,
        run_id: str = "",
        run_args: list[str] | None = None,
        prices: dict[str, tuple[float, float, float]] | None = None,
        max_cost: float | None = None,
        concurrency: int = 8,
    ) -> None:
        self.registry = registry
        self.store_path = store_path
        self.mode = mode
        self.timeout_s = timeout_s
        self.retry = retry or RetryPolicy(timeout_s=timeout_s)
        self.run_id = run_id
        self.run_args = run_args or []
        self.prices = prices
        self.stats = CallerStats()
        self._store: Store | None = None
        self._store_lock = threading.Lock()
        # Answers fetched in this run: in "refresh" and "off" a request is called once per
        # run, and a repeat of it in the same run (the planning pass, or a rerun) reads this.
        self._fresh: dict[str, dict[str, Any]] = {}
        self.budget = Budget(max_cost, prices)
        # An endpoint that fails every attempt for a whole deadline is given up for the run.
        self.limiters = RateLimiters(concurrency, give_up_after_s=self.retry.timeout_s)
        # The planning pass attaches itself here (planning/planner.py); while it runs a test
        # body for planning, its context answers what it can and stops at the first miss.
        self.planner: PlanningSource | None = None
        self.live_calls = 0  # provider calls made by the tests themselves (not prefetched)
        self._prefetched: dict[str, _Prefetched] = {}
        # Seconds of failed attempts and Retry-After waits before a call's answer, by key.
        self._waited: dict[str, float] = {}
        # Requests that failed for good while prefetching: the real run raises the same
        # error for them instead of calling (and retrying) a failing server again.
        self._failed: dict[str, LLMEvalError] = {}
        # Calls the planning pass has in flight: a test that needs one waits for it.
        self._inflight: dict[str, Future[bool]] = {}
        # How each judge model asks for its verdict once its server rejected a response format
        # (judge/judge.py): a run-level fact, learnt once.
        self.judge_modes: dict[str, str] = {}
        self.closed = False
        self._closing = threading.Lock()  # close() against a late answer being stored

    # -- store ---------------------------------------------------------------------------
    @property
    def store(self) -> Store:
        with self._store_lock:
            if self._store is None:
                from pytest_llmeval.store.db import Store  # lazy: sqlite3 is paid only by runs with evals

                self._store = Store(self.store_path)
                self._store.start_run(self.run_id, cache_mode=self.mode, args=self.run_args)
            return self._store

    @property
    def store_opened(self) -> bool:
        return self._store is not None

    @property
    def store_problem(self) -> str | None:
        """Why the store is read-only or in memory for this run, if it is."""
        return self._store.problem if self._store is not None else None

    def close(self) -> None:
        """End the run's calls: none is made or retried from now on (calls still in flight
        end by their timeout) and nothing more is stored."""
        with self._closing:
            self.closed = True
        if self._store is not None:
            self._store.finish_run(self.run_id)
            self._store.close()

    # -- calls ---------------------------------------------------------------------------
    def lookup(self, request: Request, key: str | None = None) -> dict[str, Any] | None:
        """The answer this run would replay for ``request`` without calling, if any.

        ``key`` is ``request.key`` when the caller has it already (hashing is not free).
        """
        return self._lookup(key or request.key)[0]

    def _lookup(self, key: str) -> tuple[dict[str, Any] | None, str | None]:
        """:meth:`lookup`, with the stored JSON text of an answer read from the store."""
        fresh = self._fresh.get(key)
        if fresh is not None:
            return fresh, None
        if self.mode in ("use", "replay"):
            entry = self.store.get_entry(key)
            if entry is not None:
                return entry
        return None, None

    def call(
        self, request: Request, *, test_id: str | None = None, role: str = "llm", tags: list[str] | None = None
    ) -> Completion:
        """The completion for ``request``: replayed when the mode allows, else called."""
        key = request.key
        self._await_inflight(key)
        plan = self.planner.context if self.planner is not None else None
        if plan is not None:
            return self._plan_call(plan, request, test_id, role, tags, key)
        provider = self._provider(request)
        started = time.perf_counter()
        failed = self._failed.get(key)
        stored, stored_text = (None, None) if failed is not None else self._lookup(key)
        prefetched = self._prefetched.pop(key, None) if stored is not None else None
        cached = stored is not None and prefetched is None
        cost = 0.0
        error: str | None = None
        try:
            if failed is not None:
                # Same class and message as when it happened; a fresh object, fresh traceback.
                raise _copy_error(failed)
            if stored is None:
                if self.mode == "replay":
                    from pytest_llmeval.store.misses import explain_miss

                    raise CacheMissError(explain_miss(self.store, request, test_id))
                self.live_calls += 1
                stored, cost = self._fetch(provider, request, test_id, key)
        except LLMEvalError as exc:
            error = str(exc)
            with self.stats.lock:
                self.stats.errors += 1
            raise
        finally:
            latency = time.perf_counter() - started
            if error is not None:
                self._log(request, key, test_id, role, tags, None, latency, cached=False, error=error)
        batch_id = None
        if prefetched is not None:
            # Fetched by the planning pass for this test: reported as the live call it was.
            cost, latency, batch_id = prefetched.cost_usd, prefetched.latency_s, prefetched.batch_id
        elif not cached and isinstance(stored.get("latency_s"), (int, float)):
            # A live call reports the request's own time plus the failed attempts and
            # Retry-After waits before it, not the SDK import, client start or budget and
            # rate-limit bookkeeping around it.
            latency = float(stored["latency_s"]) + self._waited.pop(key, 0.0)
        completion = Completion.from_dict(stored, cached=cached, latency_s=latency, key=key, cost_usd=cost)
        with self.stats.lock:
            self.stats.calls += 1
            self.stats.hits += int(cached)
            self.stats.batched += int(batch_id is not None)
        self._log(
            request,
            key,
            test_id,
            role,
            tags,
            stored,
            completion.latency_s,
            cached=cached,
            cost=cost,
            batch_id=batch_id,
            response_text=stored_text if cached else None,
        )
        record_call(
            CallInfo(
                key=key,
                model=str(request.model),
                cached=cached,
                latency_s=completion.latency_s,
                input_tokens=completion.usage.input_tokens,
                output_tokens=completion.usage.output_tokens,
                cached_input_tokens=completion.usage.cached_input_tokens,
                cost_usd=cost,
                role=role,
                batch_id=batch_id,
            )
        )
        return completion

    # -- the planning pass -----------------------------------------------------------------
    def _plan_call(
        self,
        plan: PlanningContext,
        request: Request,
        test_id: str | None,
        role: str,
        tags: list[str] | None,
        key: str,
    ) -> Completion:
        """A call made by a test body in the planning pass: answered if this run can, else a stop."""
        stored = None if key in self._failed else self.lookup(request, key)
        if stored is not None:
            plan.answered += 1
            return Completion.from_dict(stored, cached=True, latency_s=0.0, key=key, cost_usd=0.0)
        if key not in self._failed and not self.budget_exhausted:
            plan.missed(request, test_id, role, tags)
        if plan.in_setup or plan.in_teardown:
            # pytest's fixture machinery only survives Exception subclasses (a BaseException
            # in a fixture leaves its finalizers behind on pytest >= 9.1); the stop is noted anyway.
            phase = "setup" if plan.in_setup else "teardown"
            raise RuntimeError(f"llmeval planning: model call in fixture {phase} cannot be answered yet")
        raise PlanningStop(key)

    def prefetch(self, request: Request, *, test_id: str | None = None) -> bool:
        """Fetch ``request`` for a later :meth:`call` (thread-safe); ``False`` when it failed.

        A failure is kept and raised by the real call, which then logs it against its test;
        a budget stop is not kept: the real call meets the budget check itself.
        """
        key = request.key
        if key in self._prefetched or key in self._failed or key in self._fresh:
            return key not in self._failed
        if self.closed:  # the run ended (an interrupt, -x) before this call started
            return False
        try:
            stored, cost = self._fetch(self._provider(request), request, test_id, key)
        except BudgetExceededError:
            return False
        except LLMEvalError as exc:
            self._failed[key] = exc
            return False
        self._waited.pop(key, None)  # the planning pass reports the request's own time
        self._prefetched[key] = _Prefetched(cost_usd=cost, latency_s=float(stored.get("latency_s") or 0.0))
        return True

    def accept_batch_answer(
        self, request: Request, stored: dict[str, Any], *, cost_usd: float, batch_id: str, key: str | None = None
    ) -> None:
        """An answer that came through a provider's batch API (calls/batch.py): kept and stored
        as if called live; the first real call of it reports it with its batch cost and id."""
        key = key or request.key
        with self._closing:
            if self.closed:
                return
            self._fresh[key] = stored
            if self.mode != "off":
                self.store.put(key, request.key_payload(), stored)
        try:
            reservation = self.budget.reserve(request.model)
        except BudgetExceededError:
            reservation = None  # already paid for: counted in the stats all the same
        if reservation is not None:
            self.budget.settle(reservation, cost_usd)
        with self.stats.lock:
            self.stats.cost_usd += cost_usd
        self._prefetched[key] = _Prefetched(cost_usd, float(stored.get("latency_s") or 0.0), batch_id)

    def fail_planned(self, key: str, error: LLMEvalError) -> None:
        """A planned request failed for this run (a batch error, a batch still pending): its
        real call raises ``error`` instead of calling the model."""
        self._failed[key] = error

    def expect(self, key: str, future: Future[bool]) -> None:
        """The planning pass is fetching ``key``: a call of it waits for ``future`` first."""
        self._inflight[key] = future

    def _await_inflight(self, key: str) -> None:
        future = self._inflight.get(key)
        if future is None:
            return
        if not future.done():
            from concurrent.futures import wait

            wait([future])
        # Done: its answer or its error is kept (prefetch), or it was cancelled or failed
        # unexpectedly, and the call is then made as if it had not been planned.
        self._inflight.pop(key, None)

    def _provider(self, request: Request) -> Any:
        # An intercepted SDK request carries its own provider (the HTTP exchange it forwards).
        return getattr(request, "provider", None) or self.registry.get(request.model)

    def answerable(self, request: Request) -> bool:
        """Whether a :meth:`call` of ``request`` now ends without calling a model."""
        return request.key in self._failed or self.lookup(request) is not None

    # -- provider calls ------------------------------------------------------------------
    def _fetch(self, provider: Any, request: Request, test_id: str | None, key: str) -> tuple[dict[str, Any], float]:
        """Call the provider (budget, rate limit, retries); keep and store the answer."""
        reservation = self.budget.reserve(request.model, test_id)
        cost = 0.0
        try:
            stored = self._call_provider(provider, request)
            self._waited[key] = float(stored.pop(_WAITED, 0.0))
            cost = estimate_cost(request.model, Usage.from_dict(stored.get("usage")), self.prices)
        finally:
            self.budget.settle(reservation, cost)
            with self.stats.lock:
                self.stats.cost_usd += cost
        with self._closing:
            if self.closed:  # the run ended while this call was in flight (-x, Ctrl-C)
                raise ProviderError(f"{request.model}: the run ended before this call was answered")
            self._fresh[key] = stored
            if self.mode != "off":
                self.store.put(key, request.key_payload(), stored, request_json=request.payload_json())
        return stored, cost

    def _call_provider(self, provider: Any, request: Request) -> dict[str, Any]:
        first_attempt: list[float] = []
        # One deadline for the call: every attempt gets what is left of it (see calls/retry.py).
        deadline = Deadline(self.retry.timeout_s)

        def once() -> dict[str, Any]:
            if self.closed:
                raise ProviderError(f"{request.model}: the run ended before this call was made")
            remaining = deadline.remaining()
            started = time.perf_counter()
            if not first_attempt:
                first_attempt.append(started)
            own = PLUGIN_CALL.set(True)
            try:
                # The provider runs the request in its own thread (providers/_common.within):
                # context variables such as PLUGIN_CALL go with it.
                result = provider.complete(request, timeout=self.timeout_s if remaining is None else remaining)
            finally:
                PLUGIN_CALL.reset(own)
            result = dict(result)
            # The model's own latency is kept with the answer, so a replay can report it. A
            # provider that timed the request alone (without SDK import, client start or a
            # lock wait) says so in latency_s; otherwise the whole attempt is the estimate.
            reported = result.get("latency_s")
            measured = (
                float(reported)
                if isinstance(reported, (int, float)) and reported >= 0
                else time.perf_counter() - started
            )
            result["latency_s"] = round(float(measured), 6)
            result[_WAITED] = started - first_attempt[0]  # earlier attempts and waits; not stored
            return result

        def count_retry(exc: ProviderError, _wait: float) -> None:
            with self.stats.lock:
                self.stats.retries += 1
                self.stats.rate_limited += int(exc.status == 429)

        endpoint = getattr(provider, "endpoint", "") or request.endpoint
        limiter = self.limiters.get(f"{request.model.provider} {endpoint}")
        # The limiter refuses calls to an endpoint that cannot answer them (a rejected key,
        # an exhausted quota, down for a whole deadline), each with its own message.
        return call_with_retries(
            once, self.retry, on_retry=count_retry, gate=limiter, deadline=deadline, name=str(request.model)
        )

    # -- budget (--llmeval-max-cost, calls/budget.py) --------------------------------------
    @property
    def spent_usd(self) -> float:
        """Estimated cost of the model calls made so far in this run."""
        return self.budget.spent_usd

    @property
    def budget_exhausted(self) -> bool:
        """Whether ``--llmeval-max-cost`` is reached: no model call is made any more."""
        return self.budget.exhausted

    def _log(
        self,
        request: Request,
        key: str,
        test_id: str | None,
        role: str,
        tags: list[str] | None,
        response: dict[str, Any] | None,
        latency: float,
        *,
        cached: bool,
        cost: float = 0.0,
        error: str | None = None,
        batch_id: str | None = None,
        response_text: str | None = None,
    ) -> None:
        """One row of the call log. ``response_text``: the stored JSON of a cache hit's answer."""
        from pytest_llmeval.store.db import now_iso

        usage = (response or {}).get("usage") or {}
        extra = {"batch_id": batch_id} if batch_id is not None else {}
        self.store.log_call(
            {
                **extra,
                "run_id": self.run_id,
                "ts": now_iso(),
                "test_id": test_id,
                "model": str(request.model),
                "role": role,
                "key": key,
                "request": request.payload_json(),
                "response": response_text or (canonical_json(response) if response is not None else None),
                "input_tokens": int(usage.get("input_tokens") or 0),
                "output_tokens": int(usage.get("output_tokens") or 0),
                "cached_input_tokens": int(usage.get("cached_input_tokens") or 0),
                "latency_s": latency,
                "cost_usd": cost,
                "tags": json.dumps(tags) if tags else None,
                "cached": int(cached),
                "error": error,
            }
        )


def _copy_error(error: LLMEvalError) -> LLMEvalError:
    if isinstance(error, ProviderError):
        return ProviderError(str(error), status=error.status)
    try:
        return type(error)(str(error))
    except TypeError:  # an error class with a different constructor: raise it as it is
        return error
