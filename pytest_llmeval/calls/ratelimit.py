"""Adaptive concurrency per provider endpoint: back off on rate limits, grow back on success.

Additive increase, multiplicative decrease (as TCP does): a 429 halves the number of calls
allowed in flight to that endpoint and pauses it for the server's ``Retry-After`` (or our
backoff); every ``limit`` successes add one slot back, up to ``--llmeval-concurrency``.
An overload answer (503, 529) halves the limit without pausing. A burst of 429s caused by
one overload moment halves the limit once: only attempts started after the last decrease
can decrease it again.

An endpoint that has never answered in this run and whose call failed after every retry
is marked *broken*: later calls fail at once with the same reason instead of retrying a
dead server once per test.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from pytest_llmeval.errors import ProviderError

__all__ = ["AdaptiveLimiter", "RateLimiters"]

_OVERLOAD = frozenset({503, 529})


class AdaptiveLimiter:
    """Admission control for one endpoint (a :class:`pytest_llmeval.calls.retry.Gate`)."""

    def __init__(self, max_concurrency: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_concurrency = max(1, max_concurrency)
        self._clock = clock
        self._cond = threading.Condition()
        self._limit = float(self.max_concurrency)
        self._active = 0
        self._paused_until = 0.0
        self._last_decrease = float("-inf")
        self._gain = 0
        self.successes = 0
        self.rate_limited = 0
        self.broken: str | None = None

    @property
    def limit(self) -> int:
        """Calls currently allowed in flight."""
        return int(self._limit)

    @property
    def paused_for(self) -> float:
        """Seconds until the endpoint may be called again (0 when not paused)."""
        return max(0.0, self._paused_until - self._clock())

    def acquire(self) -> float:
        with self._cond:
            while True:
                wait = self._paused_until - self._clock()
                if wait <= 0 and self._active < int(self._limit):
                    break
                # Wake up at the end of a pause even if no call finishes meanwhile.
                self._cond.wait(timeout=wait if wait > 0 else None)
            self._active += 1
            return self._clock()

    def success(self, token: float) -> None:
        with self._cond:
            self._active -= 1
            self.successes += 1
            self.broken = None
            if self._limit < self.max_concurrency:
                self._gain += 1
                if self._gain >= int(self._limit):
                    self._limit = min(float(self.max_concurrency), self._limit + 1)
                    self._gain = 0
            self._cond.notify_all()

    def failure(self, token: float, error: ProviderError, wait: float, *, final: bool) -> None:
        with self._cond:
            self._active -= 1
            if error.status == 429:
                self.rate_limited += 1
                # Everyone waits, not only this caller: the quota is shared.
                self._paused_until = max(self._paused_until, self._clock() + wait)
            if (error.status == 429 or error.status in _OVERLOAD) and token > self._last_decrease:
                self._limit = max(1.0, self._limit / 2)
                self._gain = 0
                self._last_decrease = self._clock()
            if final and error.retryable and self.successes == 0:
                self.broken = str(error)
            self._cond.notify_all()

    def abort(self, token: float) -> None:
        with self._cond:
            self._active -= 1
            self._cond.notify_all()


class RateLimiters:
    """One :class:`AdaptiveLimiter` per provider endpoint, made on first use."""

    def __init__(self, max_concurrency: int) -> None:
        self.max_concurrency = max(1, max_concurrency)
        self._limiters: dict[str, AdaptiveLimiter] = {}
        self._lock = threading.Lock()

    def get(self, key: str) -> AdaptiveLimiter:
        """The limiter of endpoint ``key`` (``PROVIDER ENDPOINT``)."""
        with self._lock:
            limiter = self._limiters.get(key)
            if limiter is None:
                limiter = self._limiters[key] = AdaptiveLimiter(self.max_concurrency)
            return limiter

    @property
    def rate_limited(self) -> int:
        """429 answers seen in this run, all endpoints together."""
        with self._lock:
            return sum(limiter.rate_limited for limiter in self._limiters.values())
