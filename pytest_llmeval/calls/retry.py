"""Retries with jittered exponential backoff that honour the server's Retry-After.

One policy for every provider: the SDKs' own retries are switched off (``max_retries=0``)
so that they cannot multiply ours. Which failures are worth another try is decided where
the SDK error is translated (``ProviderError.retryable``: 408/409/429/5xx/529, timeouts,
connection resets, unreadable responses).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, TypeVar

from pytest_llmeval.errors import ProviderError

T = TypeVar("T")

__all__ = ["RetryPolicy", "Gate", "call_with_retries"]


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to retry a retryable :class:`ProviderError`.

    ``max_retries`` is the number of *extra* attempts (``--llmeval-retries``), so a call is
    tried at most ``max_retries + 1`` times. ``timeout_s`` is only quoted in the give-up
    message: the timeout itself is applied by the provider to each attempt.
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


class Gate(Protocol):
    """Admission control around each attempt (see :class:`pytest_llmeval.calls.ratelimit.AdaptiveLimiter`)."""

    def acquire(self) -> float:
        """Block until an attempt may start; return a token handed back below."""
        ...

    def success(self, token: float) -> None:
        """The attempt succeeded."""
        ...

    def failure(self, token: float, error: ProviderError, wait: float, *, final: bool) -> None:
        """The attempt failed; ``wait`` seconds pass before the next one (none when ``final``)."""
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
) -> T:
    """Call ``fn`` until it succeeds, fails for good, or the retries run out.

    A non-retryable error is raised as it is. After the last retry the error says how
    many attempts were made and which options change that, so a run never hangs and never
    fails without saying why.
    """
    attempt = 0
    while True:
        token = gate.acquire() if gate is not None else 0.0
        try:
            result = fn()
        except ProviderError as exc:
            final = not exc.retryable or attempt >= policy.max_retries
            wait = 0.0 if final else policy.delay(attempt + 1, exc.retry_after)
            if gate is not None:
                gate.failure(token, exc, wait, final=final)
            if final:
                if attempt:
                    raise ProviderError(
                        f"{exc} (gave up after {attempt + 1} attempts{_settings_hint(policy)})",
                        retryable=False,
                        status=exc.status,
                    ) from None
                raise
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


def _settings_hint(policy: RetryPolicy) -> str:
    hint = f"; --llmeval-retries {policy.max_retries}"
    if policy.timeout_s is not None:
        hint += f", --llmeval-timeout {policy.timeout_s:g} s per attempt"
    return hint
