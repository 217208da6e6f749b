"""Retries with jittered exponential backoff that honour the server's Retry-After."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from .errors import ProviderError

T = TypeVar("T")

__all__ = ["RetryPolicy", "call_with_retries"]


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to retry a retryable :class:`ProviderError`."""

    max_retries: int = 4
    base_delay_s: float = 0.5
    max_delay_s: float = 30.0

    def delay(self, attempt: int, retry_after: float | None) -> float:
        """Seconds to wait before retry number ``attempt`` (1-based)."""
        if retry_after is not None:
            # The server knows best; a little jitter keeps parallel callers apart.
            return min(retry_after, self.max_delay_s * 4) + random.uniform(0, 0.1)
        ceiling = min(self.max_delay_s, self.base_delay_s * (2 ** (attempt - 1)))
        return random.uniform(ceiling / 2, ceiling)  # "equal jitter"


def call_with_retries(
    fn: Callable[[], T],
    policy: RetryPolicy,
    *,
    sleep: Callable[[float], None] = time.sleep,
    on_retry: Callable[[ProviderError, float], None] | None = None,
) -> T:
    """Call ``fn`` until it succeeds, fails for good, or the retries run out."""
    attempt = 0
    while True:
        try:
            return fn()
        except ProviderError as exc:
            if not exc.retryable or attempt >= policy.max_retries:
                if attempt:
                    raise ProviderError(
                        f"{exc} (gave up after {attempt + 1} attempts)",
                        retryable=False,
                        status=exc.status,
                    ) from None
                raise
            attempt += 1
            wait = policy.delay(attempt, exc.retry_after)
            if on_retry is not None:
                on_retry(exc, wait)
            sleep(wait)
