"""Adaptive concurrency per provider endpoint: back off on rate limits, grow back on success,
and a circuit breaker for outages.

Additive increase, multiplicative decrease (as TCP does): a 429 halves the number of calls
allowed in flight to that endpoint and pauses it for the server's ``Retry-After`` (or our
backoff); every ``limit`` successes add one slot back, up to ``--llmeval-concurrency``.
An overload answer (503, 529) halves the limit without pausing. A burst of 429s caused by
one overload moment halves the limit once: only attempts started after the last decrease
can decrease it again.

The circuit breaker, for a server that is down or starting up: after a few server faults in
a row (5xx, no connection, timeouts, empty answers) with no success between them, the
endpoint is *open*: one attempt at a time goes through (a *probe*, half-open), after a pause
that doubles while probes fail, and waiting calls take their turn in the order they came.
A probe is its call's own attempt; waiting spends no retry, and every call goes again at
the first success. A waiting call ends at its own deadline; each call's error is its own. The endpoint is given up for the run (:attr:`AdaptiveLimiter.broken`) only
when it has failed every attempt for ``give_up_after_s`` (``--llmeval-timeout``).

Some answers end the endpoint's calls at once, because no retry can change them: a key
rejected with 401/403 and an exhausted quota (a 429 that is not retryable). A Retry-After
pause that ends past a call's deadline fails that call at once.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable

from pytest_llmeval.calls.retry import Deadline, GateRefusal
from pytest_llmeval.errors import ProviderError

__all__ = ["AdaptiveLimiter", "RateLimiters"]

_OVERLOAD = frozenset({503, 529})
# Server faults in a row that open the breaker (fewer than a burst of concurrent calls
# during an outage, more than a 20% fault rate produces by chance).
OPEN_AFTER = 5
PROBE_FIRST_S = 0.25  # pause before the first probe of an open endpoint
PROBE_MAX_S = 2.0  # the longest pause between probes: a recovered server is noticed soon


class _Token(float):
    """The start time of an attempt (see ``_last_decrease``), marked when it is a probe."""

    probe = False


def is_fatal(error: ProviderError) -> bool:
    """Whether ``error`` ends every call to its endpoint: a rejected key or an exhausted quota."""
    return error.status in (401, 403) or error.exhausted or (error.status == 429 and not error.retryable)


def _cause(error: ProviderError) -> str:
    """The kind of a server fault, without another call's details: "HTTP 503", "timed out"."""
    if error.status is not None:
        return f"HTTP {error.status}"
    text = str(error)
    for words in ("timed out", "cannot reach", "unreadable response", "empty body", "with an error", "no "):
        if words in text:
            return {"no ": "empty answers", "with an error": "errors inside a 200"}.get(words, words)
    return "errors"


def _without_model(message: str) -> str:
    """``message`` without its leading ``MODEL: ``: each call names its own model."""
    head, sep, rest = message.partition(": ")
    return rest if sep and " " not in head else message


class AdaptiveLimiter:
    """Admission control for one endpoint (a :class:`pytest_llmeval.calls.retry.Gate`)."""

    def __init__(
        self,
        max_concurrency: int,
        *,
        give_up_after_s: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_concurrency = max(1, max_concurrency)
        self.give_up_after_s = give_up_after_s
        self._clock = clock
        self._cond = threading.Condition()
        self._limit = float(self.max_concurrency)
        self._active = 0
        self._paused_until = 0.0
        self._last_decrease = float("-inf")
        self._gain = 0
        self.successes = 0
        self.rate_limited = 0
        #: Why every call to this endpoint now fails at once (``None``: it is called).
        self.broken: str | None = None
        self._fatal = False  # ``broken`` by a rejected key or quota: it stays so
        # The circuit breaker: server faults since the last success, and when they began.
        self._faults = 0
        self._failing_since: float | None = None
        self._last_cause = ""
        self.open = False
        self._probing = False
        self._next_probe = 0.0
        self._probe_pause = PROBE_FIRST_S
        self._turns: deque[object] = deque()  # calls waiting for their probe, first come first

    @property
    def limit(self) -> int:
        """Calls currently allowed in flight."""
        return int(self._limit)

    @property
    def paused_for(self) -> float:
        """Seconds until the endpoint may be called again (0 when not paused)."""
        return max(0.0, self._paused_until - self._clock())

    def acquire(self, deadline: Deadline | None = None) -> float:
        """Block until an attempt may start (see :meth:`pytest_llmeval.calls.retry.Gate.acquire`)."""
        deadline_at = deadline.at if deadline is not None else None
        turn = object()
        with self._cond:
            try:
                return self._acquire(deadline_at, turn)
            finally:
                if turn in self._turns:
                    self._turns.remove(turn)
                    self._cond.notify_all()  # the next in the queue may be first now

    def _acquire(self, deadline_at: float | None, turn: object) -> float:
        """:meth:`acquire` with ``self._cond`` held; ``turn`` is this call's place in the queue."""
        while True:
            now = self._clock()
            self._give_up_if_down(now)
            if self.broken is not None:
                raise GateRefusal(self.broken)
            if deadline_at is not None and self._paused_until > deadline_at:
                raise GateRefusal(
                    f"not called: the server asked for a pause of {math.ceil(self._paused_until - now)} s more "
                    "(Retry-After), past the deadline of this call (--llmeval-timeout)",
                    status=429,
                )
            if self.open:
                if turn not in self._turns:
                    self._turns.append(turn)
                first = self._turns[0] is turn
                # Only the first in the queue waits for the probe's moment; the others are
                # woken when it leaves the queue.
                wake = self._next_probe if first and not self._probing else None
                ready = first and not self._probing and now >= self._next_probe
            else:
                wake = self._paused_until if self._paused_until > now else None
                ready = True
            ready = ready and now >= self._paused_until and self._active < int(self._limit)
            if ready:
                break
            if deadline_at is not None and now >= deadline_at:
                raise GateRefusal(
                    f"not called before its deadline (--llmeval-timeout): {self._why_waiting(now)}",
                    status=None,
                )
            # Wake at the next moment something may change even if no call finishes.
            moments = [m for m in (wake, deadline_at, self._give_up_at()) if m is not None]
            self._cond.wait(timeout=max(0.001, min(moments) - now) if moments else None)
        self._active += 1
        token = _Token(now)
        if self.open:
            token.probe = True
            self._probing = True
        return token

    def success(self, token: float) -> None:
        """The attempt succeeded: the endpoint works (the breaker closes)."""
        with self._cond:
            self._active -= 1
            self.successes += 1
            if not self._fatal:
                self.broken = None
            self._faults = 0
            self._failing_since = None
            self.open = self._probing = False
            self._probe_pause = PROBE_FIRST_S
            if self._limit < self.max_concurrency:
                self._gain += 1
                if self._gain >= int(self._limit):
                    self._limit = min(float(self.max_concurrency), self._limit + 1)
                    self._gain = 0
            self._cond.notify_all()

    def failure(self, token: float, error: ProviderError, wait: float, *, final: bool) -> None:
        """The attempt failed (see :meth:`pytest_llmeval.calls.retry.Gate.failure`)."""
        with self._cond:
            now = self._clock()
            self._active -= 1
            probe = getattr(token, "probe", False)
            if probe:
                self._probing = False
            if error.status == 429:
                self.rate_limited += 1
            if (error.status == 429 or error.retry_after is not None) and wait > 0:
                # Everyone waits, not only this caller: the quota is shared.
                self._paused_until = max(self._paused_until, now + wait)
            if (error.status == 429 or error.status in _OVERLOAD) and token > self._last_decrease:
                self._limit = max(1.0, self._limit / 2)
                self._gain = 0
                self._last_decrease = now
            if is_fatal(error):
                self._fatal = True
                self.broken = (
                    f"{_without_model(str(error))} [not sent: an earlier call to this endpoint got this answer, "
                    "which no retry changes]"
                )
            elif error.retryable and error.status != 429:
                self._server_fault(token, error, now, probe=probe, final=final)
            self._cond.notify_all()

    def _server_fault(self, token: float, error: ProviderError, now: float, *, probe: bool, final: bool) -> None:
        self._faults += 1
        self._last_cause = _cause(error)
        if self._failing_since is None:
            self._failing_since = float(token)  # the fault began when this attempt started
        if probe:
            self._probe_pause = min(PROBE_MAX_S, self._probe_pause * 2)
            self._next_probe = now + self._probe_pause
        elif not self.open and self._faults >= OPEN_AFTER:
            self.open = True
            self._next_probe = now + self._probe_pause

    def _give_up_at(self) -> float | None:
        if self.give_up_after_s is None or self._failing_since is None or not self.open:
            return None
        return self._failing_since + self.give_up_after_s

    def _give_up_if_down(self, now: float) -> None:
        at = self._give_up_at()
        if self.broken is None and at is not None and now >= at and not self._probing:
            failing = now - (self._failing_since or now)
            self.broken = (
                f"not called: every attempt to this endpoint has failed for {failing:.0f} s "
                f"({self._last_cause}), the --llmeval-timeout of one call; it is not tried again in this run"
            )

    def _why_waiting(self, now: float) -> str:
        if self.open:
            return f"the endpoint has failed every attempt for {now - (self._failing_since or now):.1f} s ({self._last_cause})"
        if self._paused_until > now:
            return "the endpoint is paused by a rate limit"
        return f"all {int(self._limit)} slots for calls to the endpoint were busy"

    def abort(self, token: float) -> None:
        """The attempt ended without an answer (an interrupt): its slot is free again."""
        with self._cond:
            self._active -= 1
            if getattr(token, "probe", False):
                self._probing = False
            self._cond.notify_all()


class RateLimiters:
    """One :class:`AdaptiveLimiter` per provider endpoint, made on first use."""

    def __init__(self, max_concurrency: int, *, give_up_after_s: float | None = None) -> None:
        self.max_concurrency = max(1, max_concurrency)
        self.give_up_after_s = give_up_after_s
        self._limiters: dict[str, AdaptiveLimiter] = {}
        self._lock = threading.Lock()

    def get(self, key: str) -> AdaptiveLimiter:
        """The limiter of endpoint ``key`` (``PROVIDER ENDPOINT``)."""
        with self._lock:
            limiter = self._limiters.get(key)
            if limiter is None:
                limiter = self._limiters[key] = AdaptiveLimiter(
                    self.max_concurrency, give_up_after_s=self.give_up_after_s
                )
            return limiter

    @property
    def rate_limited(self) -> int:
        """429 answers seen in this run, all endpoints together."""
        with self._lock:
            return sum(limiter.rate_limited for limiter in self._limiters.values())
