"""One updating terminal line while model calls are in flight: done/total, rate, errors, retries.

Shown only on a terminal, at normal or higher verbosity, and only when the calls take
longer than a moment; erased when they are done, so the test report reads as usual.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TextIO

from pytest_llmeval.statusline import StatusLine

__all__ = ["Progress"]


class Progress:
    """Renders ``llmeval: 120/300 model calls, 35.2/s, 1 error, 4 retries, ~$0.0123``.

    ``stream`` ``None`` makes every method a no-op (quiet runs, non-terminals).
    """

    def __init__(
        self,
        stream: TextIO | None,
        total: int,
        *,
        delay_s: float = 0.5,
        interval_s: float = 0.1,
        clock: Callable[[], float] = time.monotonic,
        width: int | None = None,
    ) -> None:
        self.stream = stream
        self.total = total
        self.delay_s = delay_s
        self.interval_s = interval_s
        self._clock = clock
        self._started = clock()
        self._last = float("-inf")
        self._line = StatusLine(stream, width=width)

    def render(self, done: int, *, errors: int = 0, retries: int = 0, cost_usd: float = 0.0) -> str:
        """The text of the line (without control characters)."""
        elapsed = max(self._clock() - self._started, 1e-9)
        parts = [
            f"llmeval: {done}/{self.total} model calls",
            f"{done / elapsed:.1f}/s",
            _plural(errors, "error"),
            _plural(retries, "retry", "retries"),
        ]
        if cost_usd >= 0.00005:  # below that it would read $0.0000
            parts.append(f"~${cost_usd:.4f}")
        return ", ".join(parts)

    def update(self, done: int, *, errors: int = 0, retries: int = 0, cost_usd: float = 0.0) -> None:
        """Redraw the line, at most every ``interval_s`` and not before ``delay_s``."""
        if self.stream is None:
            return
        now = self._clock()
        if now - self._started < self.delay_s or now - self._last < self.interval_s:
            return
        self._last = now
        self._line.show(self.render(done, errors=errors, retries=retries, cost_usd=cost_usd))

    def close(self) -> None:
        """Erase the line, leaving the cursor where it was before the first update."""
        self._line.close()


def _plural(n: int, one: str, many: str | None = None) -> str:
    return f"{n} {one if n == 1 else (many or one + 's')}"
