"""Retries with jittered exponential backoff that honour the server's Retry-After, within
one deadline per call.

One policy for every provider: the SDKs' own retries are switched off (``max_retries=0``)
so that they cannot multiply ours. Which failures are worth another try is decided where
the SDK error is translated (``ProviderError.retryable``: 408/409/429/5xx/529, timeouts,
connection resets, unreadable or empty responses).

``--llmeval-timeout`` is the call's :class:`Deadline`: all its attempts, the waits between
them and the waits for its endpoint's admission (:class:`Gate`) together. Each attempt gets
what is left of it, and a wait that would end past it is not begun: the call fails at once
and says why.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, TypeVar

from pytest_llmeval.errors import ProviderError

T = TypeVar("T")

__all__ = ["RetryPolicy", "Deadline", "Gate", "GateRefusal", "call_with_retries"]


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to retry a retryable :class:`ProviderError`.

    ``max_retries`` is the number of *extra* attempts (``--llmeval-retries``), so a call is
    tried at most ``max_retries + 1`` times. ``timeout_s`` (``--llmeval-timeout``) is the
    deadline of one call, all its attempts and waits included; ``None``: no deadline.
    """

    max_retries: int = 4
    base_delay_s: float = 0.5
    max_delay_s: float = 30.0
    # A Retry-After longer than this is not waited out in full: a run must not sit for an
    # hour on a quota reset; the next attempt then fails with the server's own message.
    max_retry_after_s: float = 120.0
    timeout_s: float | None = None

    def delay(self, attempt: int, retry_after: float | None) -> float:
        """Seconds to wait before retry number ``attempt`` (1-based)."""
        if retry_after is not None:
            # The server knows best; a little jitter keeps parallel callers from returning
            # in the same millisecond.
            capped = min(retry_after, self.max_retry_after_s)
            return capped + random.uniform(0, 0.05 + 0.05 * capped)
        ceiling = min(self.max_delay_s, self.base_delay_s * (2 ** (attempt - 1)))
        return random.uniform(ceiling / 2, ceiling)  # "equal jitter": never less than half


class Deadline:
    """The moment by which one call must have ended (``seconds`` from now; ``None``: never)."""

    def __init__(self, seconds: float | None, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds = seconds
        self._clock = clock
        self.at: float | None = None if seconds is None else clock() + seconds

    def remaining(self) -> float | None:
        """Seconds left (never below 0), or ``None`` without a deadline."""
        return None if self.at is None else max(0.0, self.at - self._clock())

    @property
    def expired(self) -> bool:
        """Whether the deadline has passed."""
        return self.at is not None and self._clock() >= self.at


class GateRefusal(Exception):
    """Raised by :meth:`Gate.acquire`: the call is not made, for the reason given.

    :func:`call_with_retries` turns it into a :class:`ProviderError` naming the model.
    """

    def __init__(self, reason: str, *, status: int | None = None) -> None:
        super().__init__(reason)
        self.status = status


class Gate(Protocol):
    """Admission control around each attempt (see :class:`pytest_llmeval.calls.ratelimit.AdaptiveLimiter`)."""

    def acquire(self, deadline: Deadline | None = None) -> float:
        """Block until an attempt may start; return a token handed back below.

        Raises :class:`GateRefusal` when the attempt cannot start before ``deadline`` or
        the endpoint refuses every call. A token whose ``probe`` attribute is true marks an
        attempt made to see whether a failing endpoint is back (the gate paces them).
        """
        ...

    def success(self, token: float) -> None:
        """The attempt succeeded."""
        ...

    def failure(self, token: float, error: ProviderError, wait: float, *, final: bool) -> None:
        """The attempt failed; ``wait`` seconds pass before the next one (``final``: none
        follows, and ``wait`` is then what the server asked for, if anything)."""
        ...

    def abort(self, token: float) -> None:
        """The attempt ended by something other than a provider answer (an interrupt)."""
        ...


def call_with_retries(
    fn: Callable[[], T],
    policy: RetryPolicy,
    *,
    sleep: Callable[[float], None] = time.sleep,
    on_retry: Callable[[ProviderError, float], None] | None = None,
    gate: Gate | None = None,
    deadline: Deadline | None = None,
    name: str = "",
) -> T:
    """Call ``fn`` until it succeeds, fails for good, the retries run out or the deadline passes.

    ``deadline`` defaults to ``policy.timeout_s`` from now; ``fn`` reads what is left of it
    for its own timeout. A non-retryable error is raised as it is. Otherwise the error says
    how many attempts were made, why there is no further one and which option changes that,
    so a run never hangs and never fails without saying why. ``name`` (the model) starts
    the message of a call the gate refused.
    """
    if deadline is None:
        deadline = Deadline(policy.timeout_s)
    attempt = 0
    while True:
        if gate is None:
            token = 0.0
        else:
            try:
                token = gate.acquire(deadline)
            except GateRefusal as refusal:
                raise ProviderError(f"{name}: {refusal}" if name else str(refusal), status=refusal.status) from None
        try:
            result = fn()
        except ProviderError as exc:
            why = None if exc.retryable and attempt < policy.max_retries else "retries"
            wait = 0.0
            remaining = deadline.remaining()
            if why is None and exc.retry_after is not None and remaining is not None and exc.retry_after > remaining:
                why, wait = "retry-after", exc.retry_after  # the limiter pauses the endpoint for it
            elif why is None:
                # Our backoff also after a failed probe: the calls queued behind it go first.
                wait = policy.delay(attempt + 1, exc.retry_after)
                if remaining is not None and (wait >= remaining or remaining <= 0):
                    why, wait = "deadline", 0.0
            if gate is not None:
                gate.failure(token, exc, wait, final=why is not None)
            if why is not None:
                if not exc.retryable or (why == "retries" and not attempt):
                    raise  # as the server said it: nothing to add without retries
                raise ProviderError(
                    f"{exc} ({_give_up_reason(why, attempt + 1, policy, exc)})", retryable=False, status=exc.status
                ) from None
            attempt += 1
            if on_retry is not None:
                on_retry(exc, wait)
            sleep(wait)
        except BaseException:
            if gate is not None:
                gate.abort(token)
            raise
        else:
            if gate is not None:
                gate.success(token)
            return result


def _give_up_reason(why: str, attempts: int, policy: RetryPolicy, exc: ProviderError) -> str:
    made = f"gave up after {attempts} attempt{'s' if attempts > 1 else ''}"
    timeout = f"--llmeval-timeout {policy.timeout_s:g} s" if policy.timeout_s is not None else ""
    if why == "retry-after":
        return (
            f"not retried: the server asks to wait {exc.retry_after:g} s, past the deadline of this call "
            f"({timeout} covers all attempts and waits)"
        )
    if why == "deadline":
        return f"{made}: the deadline of this call is reached ({timeout} covers all attempts and waits)"
    hint = f"; --llmeval-retries {policy.max_retries}"
    if timeout:
        hint += f", {timeout} per call"
    return made + hint
