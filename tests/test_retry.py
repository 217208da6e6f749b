"""Retries, Retry-After, timeouts and the adaptive rate limiter."""

from __future__ import annotations

import threading
import time

import pytest
from fakeapi import FakeAPI

from pytest_llmeval.calls.ratelimit import AdaptiveLimiter
from pytest_llmeval.calls.retry import RetryPolicy, call_with_retries
from pytest_llmeval.errors import ProviderError

MODEL = ["--llmeval-model", "openai:gpt-4o-mini", "--llmeval-concurrency", "0"]


class Flaky:
    """Fails with the given errors, then answers "ok"."""

    def __init__(self, *errors: ProviderError) -> None:
        self.errors = list(errors)
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "ok"


def retryable(status: int | None = 503, retry_after: float | None = None) -> ProviderError:
    return ProviderError(f"HTTP {status}", retryable=True, status=status, retry_after=retry_after)


# -- the policy ---------------------------------------------------------------------------
def test_backoff_is_exponential_with_jitter_and_capped() -> None:
    policy = RetryPolicy(base_delay_s=0.5, max_delay_s=4.0)
    for attempt, ceiling in [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (9, 4.0)]:
        delays = [policy.delay(attempt, None) for _ in range(200)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert len(set(delays)) > 100  # jittered, so parallel callers spread out


def test_retry_after_is_honoured_and_capped() -> None:
    policy = RetryPolicy(max_retry_after_s=10.0)
    assert all(2.5 <= policy.delay(1, 2.5) <= 2.5 + 0.05 + 0.25 for _ in range(100))
    assert policy.delay(1, 0.0) <= 0.05
    assert 10.0 <= policy.delay(1, 3600.0) < 11.0


def test_retries_until_success_and_sleeps_what_the_server_asked() -> None:
    sleeps: list[float] = []
    flaky = Flaky(retryable(429, retry_after=1.5), retryable(500))
    assert call_with_retries(flaky, RetryPolicy(max_retries=4), sleep=sleeps.append) == "ok"
    assert flaky.calls == 3
    assert 1.5 <= sleeps[0] <= 1.75 and 0.5 <= sleeps[1] <= 1.0  # second retry: our own backoff


def test_gives_up_after_the_last_retry_with_a_clear_error() -> None:
    sleeps: list[float] = []
    flaky = Flaky(*[retryable(503)] * 10)
    with pytest.raises(ProviderError) as info:
        call_with_retries(flaky, RetryPolicy(max_retries=2, timeout_s=5), sleep=sleeps.append)
    assert flaky.calls == 3 and len(sleeps) == 2
    assert str(info.value) == "HTTP 503 (gave up after 3 attempts; --llmeval-retries 2, --llmeval-timeout 5 s per call)"
    assert info.value.status == 503 and not info.value.retryable


def test_a_non_retryable_error_is_raised_at_once() -> None:
    flaky = Flaky(ProviderError("HTTP 400 bad request", status=400))
    with pytest.raises(ProviderError, match=r"^HTTP 400 bad request$"):
        call_with_retries(flaky, RetryPolicy(max_retries=4), sleep=lambda _: pytest.fail("slept"))
    assert flaky.calls == 1


# -- the limiter --------------------------------------------------------------------------
def test_a_429_halves_concurrency_and_pauses_the_endpoint() -> None:
    now = [100.0]
    limiter = AdaptiveLimiter(8, clock=lambda: now[0])
    tokens = [limiter.acquire() for _ in range(8)]
    assert limiter.limit == 8
    now[0] += 1
    limiter.failure(tokens[0], retryable(429), 2.0, final=False)
    assert limiter.limit == 4 and limiter.paused_for == pytest.approx(2.0)
    # The other calls of the same burst hit the same overload: no further halving.
    for token in tokens[1:4]:
        limiter.failure(token, retryable(429), 2.0, final=False)
    assert limiter.limit == 4 and limiter.rate_limited == 4
    for token in tokens[4:]:
        limiter.success(token)
    now[0] += 3
    # Grows back by one every `limit` successes.
    for _ in range(4):
        limiter.success(limiter.acquire())
    assert limiter.limit == 5
    for _ in range(5 + 6 + 7 + 8):
        limiter.success(limiter.acquire())
    assert limiter.limit == 8


def test_an_overload_halves_without_pausing_and_other_errors_change_nothing() -> None:
    limiter = AdaptiveLimiter(8)
    limiter.failure(limiter.acquire(), retryable(500), 0.5, final=False)
    assert limiter.limit == 8
    limiter.failure(limiter.acquire(), retryable(529), 0.5, final=False)
    assert limiter.limit == 4 and limiter.paused_for == 0


def test_acquire_waits_for_a_free_slot_and_for_the_pause() -> None:
    limiter = AdaptiveLimiter(1)
    token = limiter.acquire()
    got: list[float] = []
    thread = threading.Thread(target=lambda: got.append(limiter.acquire()))
    thread.start()
    time.sleep(0.05)
    assert not got  # the only slot is taken
    started = time.monotonic()
    limiter.failure(token, retryable(429), 0.2, final=False)
    thread.join(timeout=5)
    assert got and time.monotonic() - started >= 0.19


def test_an_endpoint_that_failed_for_good_is_not_marked_broken() -> None:
    # A call that failed for good no longer marks the endpoint broken for the run (issue
    # 15): later cases are still tried (see test_outages.py for the breaker that opens after
    # faults in a row, and its probes).
    limiter = AdaptiveLimiter(4)
    limiter.failure(limiter.acquire(), retryable(None), 0.0, final=True)
    assert limiter.broken is None and not limiter.open
    limiter.success(limiter.acquire())
    assert limiter.broken is None
    limiter.failure(limiter.acquire(), retryable(None), 0.0, final=True)
    assert limiter.broken is None  # it answered before: a passing fault, not a dead server


# -- end to end against the fake server ---------------------------------------------------
CALL_ONCE = """
def test_it(llm):
    completion = llm.chat([{"role": "user", "content": "hello"}])
    assert completion.text == "echo: hello"
    print(f"LATENCY={completion.latency_s:.3f}")
"""


def _latency(result: pytest.RunResult) -> float:
    line = next(line for line in result.outlines if "LATENCY=" in line)
    return float(line.split("LATENCY=")[1])


@pytest.mark.parametrize("header", ["retry_after", "retry_after_ms"])
def test_retry_after_from_the_server_is_waited_out(pytester: pytest.Pytester, fake_api: FakeAPI, header: str) -> None:
    kwargs = {"retry_after": 0.4} if header == "retry_after" else {"retry_after_ms": 400}
    fake_api.fault("429", **kwargs)  # type: ignore[arg-type]
    pytester.makepyfile(CALL_ONCE)
    result = pytester.runpytest(*MODEL, "-s")
    result.assert_outcomes(passed=1)
    assert fake_api.count() == 2
    assert _latency(result) >= 0.4


@pytest.mark.parametrize("kind", ["429", "500", "503", "529", "reset", "garbage"])
def test_transient_faults_are_retried(pytester: pytest.Pytester, fake_api: FakeAPI, kind: str) -> None:
    fake_api.fault(kind, count=2, retry_after=0 if kind == "429" else None)
    pytester.makepyfile(CALL_ONCE)
    pytester.runpytest(*MODEL).assert_outcomes(passed=1)
    assert fake_api.count() == 3


def test_the_sdk_does_not_retry_on_its_own(pytester: pytest.Pytester, fake_api: FakeAPI) -> None:
    fake_api.fault("500", count=5)
    pytester.makepyfile(CALL_ONCE)
    result = pytester.runpytest(*MODEL, "--llmeval-retries", "0")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*ProviderError: openai:gpt-4o-mini: HTTP 500 from http://127.0.0.1:*"])
    assert fake_api.count() == 1


def test_the_last_retry_fails_with_a_clear_error(pytester: pytest.Pytester, fake_api: FakeAPI) -> None:
    fake_api.fault("503", count=10)
    pytester.makepyfile(CALL_ONCE)
    result = pytester.runpytest(*MODEL, "--llmeval-retries", "2")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*ProviderError: openai:gpt-4o-mini: HTTP 503 from http://127.0.0.1:*gave up after 3 attempts; --llmeval-retries 2*"
        ]
    )
    assert fake_api.count() == 3


def test_a_hanging_server_times_out_and_never_hangs_the_run(pytester: pytest.Pytester, fake_api: FakeAPI) -> None:
    fake_api.fault("timeout", count=10, hang=30)
    pytester.makepyfile(CALL_ONCE)
    result = pytester.runpytest(*MODEL, "--llmeval-timeout", "0.3", "--llmeval-retries", "1")
    result.assert_outcomes(failed=1)
    # --llmeval-timeout is the deadline of the whole call (issue 15): the first attempt
    # uses all of it, so there is no second one, and the message says so. (Once, in a full
    # suite on a loaded machine, the attempt ended as a dropped connection instead of a
    # timeout; the cause was not found. Either way: one attempt, and the deadline named.)
    text = result.stdout.str()
    assert (
        "openai:gpt-4o-mini: request to http://127.0.0.1:" in text and "timed out (gave up after 1 attempt" in text
    ) or "Server disconnected without sending a response.) (gave up after 1 attempt" in text, text
    assert "the deadline of this call is reached (--llmeval-timeout 0.3 s" in text
    assert fake_api.count() == 1


def test_retries_show_in_the_planned_run_too(pytester: pytest.Pytester, fake_api: FakeAPI) -> None:
    fake_api.fault("429", count=3, retry_after=0.05)
    fake_api.fault("reset", count=2)
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.parametrize("i", range(6))
        def test_it(llm, i):
            assert llm(f"q{i}") == f"echo: q{i}"
        """
    )
    result = pytester.runpytest("--llmeval-model", "openai:gpt-4o-mini", "--llmeval-concurrency", "4")
    result.assert_outcomes(passed=6)
    assert fake_api.count() == 6 + 5
