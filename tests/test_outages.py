"""Outages and hostile servers (issue 15): empty answers, deadlines, Retry-After, quota and
auth errors, startup outages, and the read-only store with its data in a leftover -wal file.

Every scenario runs the real SDKs against tests/fakeapi.py (``FakeAPI.hostile``,
``FakeAPI.outage``) in a pytester run, and reads the verdicts from ``--llmeval-json``.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
from pathlib import Path

import pytest
from fakeapi import FakeAPI

from pytest_llmeval.calls.ratelimit import AdaptiveLimiter
from pytest_llmeval.calls.retry import Deadline, RetryPolicy, call_with_retries
from pytest_llmeval.errors import ProviderError
from pytest_llmeval.store.db import Store, open_snapshot

BOTH = ["--llmeval-model", "openai:gpt-4o-mini", "--llmeval-model", "anthropic:claude-haiku-4-5"]
OPENAI = ["--llmeval-model", "openai:gpt-4o-mini"]


def run(pytester: pytest.Pytester, *args: str) -> tuple[pytest.RunResult, dict[str, dict]]:
    """A pytester run with ``--llmeval-json``: the result and its cases by node id."""
    path = pytester.path / "results.json"
    path.unlink(missing_ok=True)
    result = pytester.runpytest(*args, "--llmeval-json", str(path), "-p", "no:randomly")
    cases = {c["nodeid"]: c for c in json.loads(path.read_text())["cases"]}
    return result, cases


def outcomes(cases: dict[str, dict]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for case in cases.values():
        counts[case["outcome"]] = counts.get(case["outcome"], 0) + 1
    return counts


# -- empty and malformed answers ---------------------------------------------------------------
EMPTY_KINDS = ["empty", "no-content", "null-content", "blank-choice", "error-200", "299"]


def test_empty_answers_are_errors_and_never_cached(pytester: pytest.Pytester, fake_api: FakeAPI) -> None:
    # OpenAI: {}, choices [], content null (no tool call, no refusal), choices [{}], an error
    # object in a 200, a 299 without body. Anthropic: {}, content [], content null,
    # content [{}], {"type": "error"} in a 200, a 299 without body. 6 x 3 x 2 models = 36.
    for kind in EMPTY_KINDS:
        for i in range(3):
            fake_api.hostile(kind, when=f"{kind} {i}.", count=10)
    pytester.makepyfile(
        f"""
        import pytest

        @pytest.mark.llmeval(min_pass_rate=0.0)
        @pytest.mark.parametrize("kind", {EMPTY_KINDS!r})
        @pytest.mark.parametrize("i", range(3))
        def test_case(llm, kind, i):
            # A good answer first: the endpoint works, it is these answers that are empty.
            assert llm(f"good {{i}} {{kind}}") == f"echo: good {{i}} {{kind}}"
            assert llm(f"{{kind}} {{i}}.") == f"echo: {{kind}} {{i}}."
        """
    )
    serial = ("--llmeval-concurrency", "0")
    result, cases = run(pytester, *BOTH, *serial, "--llmeval-retries", "0")
    assert result.ret != 0
    assert outcomes(cases) == {"error": 36}, {k: (c["outcome"], c["error"]) for k, c in cases.items()}
    assert all(c["error"].startswith("ProviderError: ") for c in cases.values())
    assert fake_api.count() == 72  # every empty answer came
    # The server recovers: the good answers are replayed, every empty one is asked again
    # (nothing bad was cached), and all cases pass.
    fake_api.clear()
    result, cases = run(pytester, *BOTH, *serial)
    assert outcomes(cases) == {"passed": 36}
    assert fake_api.count() == 36
    assert result.ret == 0


def test_a_refusal_and_a_truncated_answer_stay_answers(pytester: pytest.Pytester, fake_api: FakeAPI) -> None:
    fake_api.reply({"refusal": "I cannot help with that."}, when="refuse")
    # OpenAI: content null and finish_reason "length"; Anthropic: no block, "max_tokens".
    fake_api.reply({"tools": [], "stop_reason": "length", "refusal": None}, when="long", provider="openai")
    fake_api.reply({"stop_reason": "max_tokens", "refusal": None}, when="long", provider="anthropic")
    pytester.makepyfile(
        """
        def test_refused(llm):
            completion = llm.chat([{"role": "user", "content": "refuse"}])
            assert completion.refusal and completion.finish_reason in ("stop", "refusal")

        def test_truncated(llm):
            completion = llm.chat([{"role": "user", "content": "long"}])
            assert completion.text == "" and completion.finish_reason in ("length", "max_tokens")
        """
    )
    result, cases = run(pytester, *BOTH)
    assert outcomes(cases) == {"passed": 4}, {k: (c["outcome"], c["error"]) for k, c in cases.items()}
    # They were stored: the rerun replays all four.
    result, cases = run(pytester, *BOTH)
    assert outcomes(cases) == {"passed": 4} and fake_api.count() == 4


# -- the deadline --------------------------------------------------------------------------------
ONE_CALL = """
import pytest

@pytest.mark.llmeval(min_pass_rate=0.0)
@pytest.mark.parametrize("i", range({cases}))
def test_case(llm, i):
    assert llm(f"question {{i}}") == f"echo: question {{i}}"
"""


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_a_drip_feeding_server_ends_at_the_deadline(
    pytester: pytest.Pytester, fake_api: FakeAPI, provider: str
) -> None:
    # One byte every 0.5 s: no single read ever waits long enough to trip the SDK's timeout
    # (a few hundred bytes: it would pass after minutes); the call's deadline ends it.
    fake_api.hostile("drip", interval=0.5, count=10)
    pytester.makepyfile(ONE_CALL.format(cases=1))
    model = "openai:gpt-4o-mini" if provider == "openai" else "anthropic:claude-haiku-4-5"
    result, cases = run(pytester, "--llmeval-model", model, "--llmeval-timeout", "2")
    (case,) = cases.values()
    assert case["outcome"] == "error"
    assert (
        "timed out" in case["error"] and "the deadline of this call is reached (--llmeval-timeout 2 s" in case["error"]
    )
    assert fake_api.count() == 1  # no retry: the deadline covers them all


def test_requests_past_their_deadline_never_hold_up_later_ones() -> None:
    """within() reuses its threads; a request stuck past its deadline keeps one, and the
    next requests get others at once, however many are stuck."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from pytest_llmeval.providers._common import RequestTimeout, within

    release = threading.Event()
    with ThreadPoolExecutor(max_workers=20) as pool:
        stuck = [pool.submit(within, release.wait, 0.05) for _ in range(20)]
        assert all(isinstance(f.exception(), RequestTimeout) for f in stuck)
        # Twenty threads are still blocked; twenty more requests all start and end in time.
        results = list(pool.map(lambda i: within(lambda: i * 2, 30), range(20)))
    assert results == [i * 2 for i in range(20)]
    release.set()
    # An error is raised in the caller's thread as it is.
    with pytest.raises(KeyError, match="missing"):
        within(lambda: {}["missing"], 5)


def test_a_retry_after_past_the_deadline_fails_at_once(pytester: pytest.Pytester, fake_api: FakeAPI) -> None:
    fake_api.fault("429", retry_after=3600, count=100)
    pytester.makepyfile(ONE_CALL.format(cases=5))
    result, cases = run(pytester, *OPENAI, "--llmeval-timeout", "5", "--llmeval-concurrency", "0")
    assert outcomes(cases) == {"error": 5}
    errors = sorted(c["error"] for c in cases.values())
    # The call that got the answer says so; the others are not sent while the pause lasts.
    assert sum("not retried: the server asks to wait 3600 s, past the deadline" in e for e in errors) == 1
    # "3600 s more", or 3599 once a second has passed since the answer (a loaded machine).
    import re

    assert (
        sum(
            bool(re.search(r"not called: the server asked for a pause of 3\d{3} s more \(Retry-After\)", e))
            for e in errors
        )
        == 4
    )
    assert fake_api.count() == 1


def test_the_deadline_bounds_every_attempt_and_wait_of_a_call() -> None:
    now = [0.0]
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        now[0] += seconds

    def fail() -> str:
        # Each attempt takes a second, or what is left of the deadline (the provider's timeout).
        left = deadline.remaining()
        assert left is not None and left > 0  # no attempt starts after the deadline
        now[0] += min(1.0, left)
        raise ProviderError("HTTP 503", retryable=True, status=503)

    deadline = Deadline(4.0, clock=lambda: now[0])
    policy = RetryPolicy(max_retries=50, base_delay_s=0.5, max_delay_s=0.5, timeout_s=4.0)
    with pytest.raises(ProviderError, match=r"the deadline of this call is reached \(--llmeval-timeout 4 s"):
        call_with_retries(fail, policy, sleep=sleep, deadline=deadline)
    assert now[0] <= 4.0 + 1e-9  # never started an attempt or a wait it could not finish in time
    assert len(sleeps) < 50


# -- quota, auth, the breaker --------------------------------------------------------------------
USED_UP = "(the account's quota is used up: check its plan and billing)"


@pytest.mark.parametrize(
    ("kind", "model", "says"),
    [
        ("quota", "openai:gpt-4o-mini", f"HTTP 429 from http://127.0.0.1:*{USED_UP}"),
        (
            "credit",
            "anthropic:claude-haiku-4-5",
            f"HTTP 400 from http://127.0.0.1:*{USED_UP}*credit balance is too low",
        ),
        ("401", "openai:gpt-4o-mini", "HTTP 401 from http://127.0.0.1:*(check the API key)"),
        ("403", "openai:gpt-4o-mini", "HTTP 403 from http://127.0.0.1:*(the key may not use this endpoint or model)"),
    ],
)
def test_quota_and_rejected_keys_end_the_endpoints_calls_at_once(
    pytester: pytest.Pytester, fake_api: FakeAPI, kind: str, model: str, says: str
) -> None:
    fake_api.hostile(kind, count=1000)
    pytester.makepyfile(ONE_CALL.format(cases=20))
    result, cases = run(pytester, "--llmeval-model", model, "--llmeval-concurrency", "0")
    assert outcomes(cases) == {"error": 20}
    assert fake_api.count() == 1  # not one retry, not one more case sent
    import fnmatch

    errors = [c["error"] for c in cases.values()]
    assert all(fnmatch.fnmatch(e, f"ProviderError: {model}: {says}*") for e in errors), errors
    assert sum("[not sent: an earlier call to this endpoint got this answer" in e for e in errors) == 19


def test_a_startup_outage_does_not_give_up_on_cases_it_has_not_tried(
    pytester: pytest.Pytester, fake_api: FakeAPI
) -> None:
    # 503 for the first 3 s. One call's own retries (2) last less than that, which made the
    # old breaker give up on every case not tried yet; waiting cases now keep their retries.
    fake_api.outage(3.0)
    pytester.makepyfile(ONE_CALL.format(cases=40))
    result, cases = run(pytester, *OPENAI, "--llmeval-retries", "2", "--llmeval-concurrency", "8")
    assert outcomes(cases) == {"passed": 40}, {k: c["error"] for k, c in cases.items() if c["error"]}
    faulted = sum(1 for r in fake_api.requests if r.status == 503)
    # Half-open: during the outage one probe at a time, not every case retrying on its own.
    assert faulted <= 8 + 12
    assert fake_api.count() == 40 + faulted


def test_a_server_that_stays_down_is_given_up_after_one_deadline(pytester: pytest.Pytester, fake_api: FakeAPI) -> None:
    fake_api.outage(3600.0)
    pytester.makepyfile(ONE_CALL.format(cases=12))
    result, cases = run(pytester, *OPENAI, "--llmeval-timeout", "1.5", "--llmeval-concurrency", "3")
    assert outcomes(cases) == {"error": 12}
    errors = [c["error"] for c in cases.values()]
    # Each error is the case's own: what it tried and why it stopped, or that it was not sent.
    claimed = 0
    for error in errors:
        assert error.startswith("ProviderError: openai:gpt-4o-mini: "), error
        # The cause is the server's 503; on a loaded machine an attempt may time out first.
        if "not called" in error:
            assert "(HTTP 503)" in error or "(timed out)" in error, error
        else:
            assert "HTTP 503 from http://127.0.0.1:" in error or "timed out" in error, error
            claimed += int(error.split("gave up after ", 1)[1].split(" ", 1)[0]) if "gave up after" in error else 1
    assert any("not tried again in this run" in e for e in errors)
    assert claimed <= fake_api.count()


def test_the_breaker_opens_lets_one_probe_through_and_closes_on_success() -> None:
    now = [0.0]
    limiter = AdaptiveLimiter(8, give_up_after_s=10.0, clock=lambda: now[0])
    fault = ProviderError("m: HTTP 503", retryable=True, status=503)
    tokens = [limiter.acquire() for _ in range(5)]
    for token in tokens:
        limiter.failure(token, fault, 0.0, final=False)
    assert limiter.open and limiter.broken is None
    deadline = Deadline(0.1, clock=lambda: now[0])
    now[0] += 0.2  # the waiting call's own deadline passes before the first probe is due
    from pytest_llmeval.calls.retry import GateRefusal

    with pytest.raises(GateRefusal, match=r"not called before its deadline .*failed every attempt .*HTTP 503"):
        limiter.acquire(deadline)
    now[0] += 1.0
    probe = limiter.acquire()
    assert probe.probe  # type: ignore[attr-defined]
    limiter.failure(probe, fault, 0.0, final=False)
    now[0] += 20.0  # failing for longer than a whole deadline: given up for the run
    with pytest.raises(GateRefusal, match=r"has failed for \d+ s \(HTTP 503\).*not tried again"):
        limiter.acquire()
    fresh = AdaptiveLimiter(8, give_up_after_s=10.0, clock=lambda: now[0])
    for _ in range(5):
        fresh.failure(fresh.acquire(), fault, 0.0, final=False)
    now[0] += 1.0
    fresh.success(fresh.acquire())
    assert not fresh.open and fresh.acquire() is not None  # back to normal


# -- a judge whose server rejects structured output ---------------------------------------------
@pytest.mark.parametrize(
    ("kind", "status", "then"),
    [
        ("no-schema-500", 500, ["json_object"]),  # llama-cpp-python's server
        ("no-schema-400", 400, ["json_object"]),
        ("no-format-400", 400, ["json_object", None]),  # no JSON mode at all: the text path
    ],
)
def test_a_judge_whose_server_rejects_json_schema_falls_back_once(
    pytester: pytest.Pytester, fake_api: FakeAPI, kind: str, status: int, then: list[str | None]
) -> None:
    fake_api.hostile(kind, count=1000)
    fake_api.reply("The answer names Paris.\nVERDICT: PASS", when="Names the capital")
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.parametrize("i", range(4))
        def test_graded(judge, i):
            assert judge(f"Paris {i}", "Names the capital of France")
        """
    )
    judge = f"openai:smol@{fake_api.openai_base_url}"
    result, cases = run(pytester, "--llmeval-judge", judge, "--llmeval-concurrency", "0")
    assert outcomes(cases) == {"passed": 4}, {k: c["error"] for k, c in cases.items()}
    formats = [((r.body or {}).get("response_format") or {}).get("type") for r in fake_api.requests]
    # Each rejected format is tried once (a deterministic error is not retried), then every
    # case asks the way the server accepts.
    assert formats == ["json_schema", *then, *[then[-1]] * 3]
    assert sum(r.status == status for r in fake_api.requests) == len(then)
    out = result.stdout.str()
    assert out.count("rejected the JSON-schema response format") == 1
    assert out.count("rejected the JSON-object response format") == len(then) - 1
    result.stdout.fnmatch_lines(
        ["*judge openai:smol@http://127.0.0.1:* rejected the JSON-schema response format (HTTP*"]
    )


# -- the read-only store ---------------------------------------------------------------------
def _store_with_data_in_the_wal(folder: Path) -> Path:
    """A store whose only copy of an answer is in its -wal file, as a killed run leaves it."""
    folder.mkdir()
    path = folder / "cache.db"
    store = Store(path)
    store.put("k1", {"model": "m"}, {"text": "kept in the wal"})
    # Copy the files while the writer still holds them: the copy has the data in -wal only.
    for suffix in ("", "-wal"):
        shutil.copy(str(path) + suffix, folder / f"copy.db{suffix}")
    store.close()
    for suffix in ("", "-wal", "-shm"):
        Path(str(path) + suffix).unlink(missing_ok=True)
    os.replace(folder / "copy.db", path)
    os.replace(folder / "copy.db-wal", str(path) + "-wal")
    return path


def test_a_snapshot_reads_the_answers_in_a_leftover_wal_and_leaves_the_files(tmp_path: Path) -> None:
    path = _store_with_data_in_the_wal(tmp_path / "store")
    before = {suffix: Path(str(path) + suffix).read_bytes() for suffix in ("", "-wal")}
    conn = open_snapshot(path)
    rows = conn.execute("SELECT response FROM responses WHERE key = 'k1'").fetchall()
    conn.close()
    assert rows and "kept in the wal" in rows[0][0]
    assert {suffix: Path(str(path) + suffix).read_bytes() for suffix in ("", "-wal")} == before


def test_a_store_that_cannot_be_written_reads_its_leftover_wal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # What a read-only folder does, without needing one (root may write anywhere): the
    # store finds no write permission, and SQLite's read-only open cannot make the -shm file.
    path = _store_with_data_in_the_wal(tmp_path / "store")
    monkeypatch.setattr(os, "access", lambda *_args, **_kw: False)
    connect_uri = Store._connect_uri

    def no_shm(self: Store, uri: str) -> sqlite3.Connection:
        if uri.endswith("?mode=ro"):
            raise sqlite3.OperationalError("unable to open database file")
        return connect_uri(self, uri)

    monkeypatch.setattr(Store, "_connect_uri", no_shm)
    with pytest.warns(Warning, match="read-only"):
        store = Store(path)
    assert store.readonly and not store.in_memory
    assert store.get("k1") == {"text": "kept in the wal"}
    store.close()


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores file permissions: a read-only folder is writable to it")
def test_a_readonly_store_with_its_data_in_a_leftover_wal_is_not_empty(tmp_path: Path) -> None:
    path = _store_with_data_in_the_wal(tmp_path / "store")
    os.chmod(path.parent, 0o555)
    try:
        with pytest.warns(Warning, match="read-only"):
            store = Store(path)
        assert store.readonly and not store.in_memory
        assert store.get("k1") == {"text": "kept in the wal"}
        store.close()
    finally:
        os.chmod(path.parent, 0o755)
    assert sqlite3.connect(path).execute("PRAGMA integrity_check").fetchone() == ("ok",)
