"""``--llmeval-max-cost``: admit a model call only while the run's estimated spend allows it."""

from __future__ import annotations

import threading
from dataclasses import dataclass

from pytest_llmeval.calls.pricing import price_for
from pytest_llmeval.errors import BudgetExceededError
from pytest_llmeval.models import ModelSpec

__all__ = ["Budget", "Reservation"]

# How long an admission waits before it looks again. Settling a call wakes the waiters at
# once; the timeout only bounds the damage of a wake-up that never comes.
_RECHECK_S = 1.0


@dataclass(frozen=True)
class Reservation:
    """One admitted call: what it was expected to cost, and whether it probes its model's cost."""

    model: str
    expected_usd: float = 0.0
    probe: bool = False


class Budget:
    """The spend of one run against an optional limit in USD (thread-safe).

    :meth:`reserve` admits a call while the spend, plus what the calls in flight will
    probably cost (their model's average so far), stays under the limit; at the edge it
    waits for the calls in flight to settle, so concurrency overshoots the limit no more
    than a sequential run would. A model whose cost is not known yet (no call of it has
    settled with a cost) is probed one call at a time. Models without a price cost nothing
    by the table and are never held back. Every admitted call is :meth:`settle`-d once,
    with its cost (0 when it failed).

    Without a limit nothing waits and nothing is refused; the spend is still counted.
    """

    def __init__(self, limit_usd: float | None = None, prices: dict[str, tuple[float, float, float]] | None = None):
        self.limit_usd = limit_usd
        self.prices = prices
        self._cond = threading.Condition()
        self._spent = 0.0
        self._in_flight = 0
        self._reserved = 0.0  # expected cost of the calls in flight
        self._model_costs: dict[str, tuple[float, int]] = {}  # model -> (total USD, calls with a cost)
        self._probing: dict[str, int] = {}  # model -> calls in flight while its cost is unknown
        self._waiting = 0

    @property
    def spent_usd(self) -> float:
        """Estimated cost of the calls settled so far."""
        with self._cond:
            return self._spent

    @property
    def exhausted(self) -> bool:
        """Whether the limit is reached: no call will be admitted any more."""
        with self._cond:
            return self.limit_usd is not None and self._spent >= self.limit_usd

    @property
    def in_flight(self) -> int:
        """Calls admitted and not settled yet (counted only under a limit)."""
        with self._cond:
            return self._in_flight

    @property
    def waiting(self) -> int:
        """Calls waiting in :meth:`reserve` for the calls in flight to settle."""
        with self._cond:
            return self._waiting

    def reserve(self, model: ModelSpec, test_id: str | None = None) -> Reservation:
        """Admit a call to ``model`` (waiting at the edge) or raise :class:`BudgetExceededError`.

        ``test_id`` only names the test in the error message.
        """
        name = str(model)
        if self.limit_usd is None:
            return Reservation(name)
        priced = price_for(model, self.prices) is not None
        with self._cond:
            while True:
                if self._spent >= self.limit_usd:
                    where = f" in {test_id}" if test_id else ""
                    raise BudgetExceededError(
                        f"--llmeval-max-cost {self.limit_usd:g} USD reached: the estimated spend of this run is "
                        f"{self._spent:.4f} USD, so the call to {model}{where} was not made "
                        "(prices are estimates: pytest_llmeval.calls.pricing, ini option llmeval_prices)"
                    )
                total, count = self._model_costs.get(name, (0.0, 0))
                expected = total / count if count else 0.0
                if not priced:
                    break  # costs nothing by our table: never held back
                if count == 0:
                    # Cost unknown yet: one call of this model at a time until one has a cost.
                    if self._probing.get(name, 0) == 0:
                        break
                elif self._in_flight == 0 or self._spent + self._reserved + expected < self.limit_usd:
                    break
                self._waiting += 1
                try:
                    self._cond.wait(timeout=_RECHECK_S)
                finally:
                    self._waiting -= 1
            probe = priced and count == 0
            self._in_flight += 1
            self._reserved += expected
            if probe:
                self._probing[name] = self._probing.get(name, 0) + 1
            return Reservation(name, expected, probe)

    def settle(self, reservation: Reservation, cost_usd: float) -> None:
        """The call admitted as ``reservation`` ended and cost ``cost_usd`` (0 when it failed)."""
        with self._cond:
            self._spent += cost_usd
            if self.limit_usd is None:
                return
            self._in_flight -= 1
            self._reserved -= reservation.expected_usd
            if reservation.probe:
                self._probing[reservation.model] -= 1
            if cost_usd > 0:
                total, count = self._model_costs.get(reservation.model, (0.0, 0))
                self._model_costs[reservation.model] = (total + cost_usd, count + 1)
            self._cond.notify_all()
