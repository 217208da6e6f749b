"""The planning pass (--llmeval-concurrency): calls made N at a time, invisibly, exactly once."""

from __future__ import annotations

import io
import re
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from fakeapi import FakeAPI

from pytest_llmeval.planning.progress import Progress

MODEL = ["--llmeval-model", "openai:gpt-4o-mini"]

# Written into pytester projects: reports what the planner did, for the assertions below.
PLANNER_PROBE = """
import json
import pytest

def pytest_sessionfinish(session):
    from pytest_llmeval.keys import SESSION_KEY
    planner = session.config.stash[SESSION_KEY].planner
    stats = vars(planner.stats) if planner is not None else None
    with open("planner.json", "w") as f:
        json.dump(stats, f)
"""


class InFlight:
    """A FakeAPI answer that holds each request ``hold`` seconds and counts overlaps."""

    def __init__(self, answer: Callable[[str], str], hold: float = 0.15) -> None:
        self.answer = answer
        self.hold = hold
        self.now = 0
        self.peak = 0
        self.prompts: list[str] = []
        self._lock = threading.Lock()

    def __call__(self, body: dict[str, Any]) -> str:
        prompt = body["messages"][-1]["content"]
        with self._lock:
            self.now += 1
            self.peak = max(self.peak, self.now)
            self.prompts.append(prompt)
        time.sleep(self.hold)
        with self._lock:
            self.now -= 1
        return self.answer(prompt)


def planner_stats(pytester: pytest.Pytester) -> dict[str, Any] | None:
    import json

    return json.loads((pytester.path / "planner.json").read_text())


def test_planning_never_runs_code_after_the_first_uncached_call(pytester: pytest.Pytester, fake_api: FakeAPI) -> None:
    server = InFlight(lambda prompt: prompt.upper())
    fake_api.reply(server)
    pytester.makeconftest(PLANNER_PROBE)
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.parametrize("i", range(8))
        def test_case(llm, i):
            with open("before.txt", "a") as f:
                f.write(f"{i}\\n")
            try:
                answer = llm(f"question {i}")
            except Exception:
                # The planning stop is not an Exception: this must never run.
                open("swallowed.txt", "a").write(f"{i}\\n")
                raise
            with open("after.txt", "a") as f:
                f.write(f"{i}\\n")
            assert answer == f"QUESTION {i}"
        """
    )
    result = pytester.runpytest(*MODEL, "--llmeval-concurrency", "8")
    result.assert_outcomes(passed=8)
    after = (pytester.path / "after.txt").read_text().split()
    assert sorted(after, key=int) == [str(i) for i in range(8)]  # exactly once per real run
    assert not (pytester.path / "swallowed.txt").exists()
    # Code before the call runs in the planning run and in the real run.
    assert len((pytester.path / "before.txt").read_text().split()) == 16
    assert fake_api.count() == 8
    assert server.peak >= 2, "the calls were not made concurrently"
    stats = planner_stats(pytester)
    assert stats is not None and stats["generations"] == 1 and stats["prefetched"] == 8


def test_concurrency_zero_turns_planning_off(pytester: pytest.Pytester, fake_api: FakeAPI) -> None:
    server = InFlight(lambda prompt: prompt.upper(), hold=0.05)
    fake_api.reply(server)
    pytester.makeconftest(PLANNER_PROBE)
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.parametrize("i", range(4))
        def test_case(llm, i):
            assert llm(f"question {i}") == f"QUESTION {i}"
            open("after.txt", "a").write(f"{i}\\n")
        """
    )
    pytester.runpytest(*MODEL, "--llmeval-concurrency", "0").assert_outcomes(passed=4)
    assert server.peak == 1
    assert len((pytester.path / "after.txt").read_text().split()) == 4
    assert planner_stats(pytester) is None


def test_dependent_calls_are_planned_level_by_level(pytester: pytest.Pytester, fake_api: FakeAPI) -> None:
    # The second call's prompt contains the first call's answer, as a judge's does.
    server = InFlight(lambda prompt: "PASS" if prompt.startswith("Grade") else f"answer-{prompt}")
    fake_api.reply(server)
    pytester.makeconftest(PLANNER_PROBE)
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.parametrize("i", range(6))
        def test_case(llm, i):
            answer = llm(f"q{i}")
            verdict = llm(f"Grade this answer: {answer}")
            open("after.txt", "a").write(f"{i}\\n")
            assert answer == f"answer-q{i}" and verdict == "PASS"
        """
    )
    result = pytester.runpytest(*MODEL, "--llmeval-concurrency", "8")
    result.assert_outcomes(passed=6)
    assert len((pytester.path / "after.txt").read_text().split()) == 6
    assert fake_api.count() == 12  # no request was made twice
    grades = [p for p in server.prompts if p.startswith("Grade")]
    assert sorted(grades) == sorted(f"Grade this answer: answer-q{i}" for i in range(6))
    stats = planner_stats(pytester)
    # Level 1 at the start (cold cache); level 2 after the first real run made its grade call live.
    assert stats["generations"] == 2 and stats["prefetched"] == 6 + 5


def test_a_warm_cache_is_not_planned(pytester: pytest.Pytester, fake_api: FakeAPI) -> None:
    pytester.makeconftest(PLANNER_PROBE)
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.parametrize("i", range(5))
        def test_case(llm, i):
            assert llm(f"q{i}") == f"echo: q{i}"
        """
    )
    pytester.runpytest(*MODEL).assert_outcomes(passed=5)
    assert fake_api.count() == 5
    pytester.runpytest(*MODEL).assert_outcomes(passed=5)
    assert fake_api.count() == 5
    assert planner_stats(pytester)["planning_runs"] == 0


def test_a_partly_cold_cache_is_planned_from_the_first_live_call(pytester: pytest.Pytester, fake_api: FakeAPI) -> None:
    pytester.makeconftest(PLANNER_PROBE)
    source = """
        import pytest

        @pytest.mark.parametrize("i", range({n}))
        def test_case(llm, i):
            assert llm(f"q{{i}}") == f"echo: q{{i}}"
        """
    pytester.makepyfile(source.format(n=3))
    pytester.runpytest(*MODEL).assert_outcomes(passed=3)
    pytester.makepyfile(source.format(n=8))
    pytester.runpytest(*MODEL).assert_outcomes(passed=8)
    assert fake_api.count() == 8
    stats = planner_stats(pytester)
    # q3 was made live by its test; q4..q7 were planned after it.
    assert stats["generations"] == 1 and stats["prefetched"] == 4


INVISIBLE_SUITE = """
import pytest

@pytest.fixture(scope="module")
def shared():
    return {"setups": 0}

@pytest.mark.parametrize("i", range(3))
def test_pass(llm, i, record_property, shared):
    record_property("before_call", i)
    print(f"printed before the call {i}")
    assert llm(f"q{i}") == f"echo: q{i}"
    record_property("after_call", i)

def test_fail(llm):
    print("printed by test_fail")
    assert llm("q-fail") == "something else"

def test_error(llm):
    llm("please fail")

@pytest.mark.skip(reason="skipped on purpose")
def test_skip(llm):
    llm("never")

@pytest.mark.xfail(reason="expected")
def test_xfail(llm):
    assert llm("q-x") == "no"

def test_plain():
    print("a test without a model")

def test_setup_error(llm, missing_fixture):
    llm("unreachable")
"""


def _normalised_junit(path: Any) -> str:
    """The report without timings, and failures reduced to their ``E`` lines: a failure seen
    first by the planner is raised again from the caller, so plugin frames differ."""
    text = path.read_text()
    text = re.sub(r'(time|timestamp|hostname)="[^"]*"', r'\1="X"', text)

    def e_lines(match: re.Match[str]) -> str:
        body = "\n".join(" ".join(line.split()) for line in match.group(2).splitlines() if line.startswith("E "))
        return match.group(1) + body + match.group(3)

    return re.sub(r"(<(?:failure|error)[^>]*>)(.*?)(</(?:failure|error)>)", e_lines, text, flags=re.S)


def test_planning_is_invisible_in_outcomes_and_reports(pytester: pytest.Pytester, fake_api: FakeAPI) -> None:
    fake_api.fault("400", when="please fail", count=100)
    pytester.makepyfile(INVISIBLE_SUITE)
    runs = {}
    for n in ("0", "8"):
        result = pytester.runpytest(
            *MODEL,
            "--llmeval-concurrency",
            n,
            "--llmeval-cache-path",
            f"cache{n}.db",
            f"--junitxml=junit{n}.xml",
            "-o",
            "junit_family=xunit1",
            "-o",
            "junit_logging=system-out",
            "-rA",
        )
        runs[n] = (result.parseoutcomes(), fake_api.count(), result.stdout.str())
        fake_api.clear()
        fake_api.fault("400", when="please fail", count=100)
    assert runs["0"][0] == runs["8"][0] == {"passed": 4, "failed": 2, "skipped": 1, "xfailed": 1, "errors": 1}
    assert runs["0"][1] == runs["8"][1] == 6  # the same requests, none twice
    assert _normalised_junit(pytester.path / "junit0.xml") == _normalised_junit(pytester.path / "junit8.xml")
    junit = (pytester.path / "junit8.xml").read_text()
    assert junit.count('name="before_call"') == 3 and junit.count("printed before the call 1") == 1
    out0, out8 = runs["0"][2], runs["8"][2]
    assert out0.count("printed before the call 0") == out8.count("printed before the call 0") == 1
    assert out0.count("printed by test_fail") == out8.count("printed by test_fail")
    assert "PlanningStop" not in out8


def test_planning_runs_print_nothing_under_capture_no(pytester: pytest.Pytester, fake_api: FakeAPI) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.parametrize("i", range(3))
        def test_case(llm, i):
            print(f"<<printed {i}>>")
            assert llm(f"q{i}")
        """
    )
    result = pytester.runpytest_subprocess(*MODEL, "-s", "--llmeval-concurrency", "4")
    result.assert_outcomes(passed=3)
    out = result.stdout.str()
    assert [out.count(f"<<printed {i}>>") for i in range(3)] == [1, 1, 1]


def test_planning_output_never_reaches_a_tests_captured_output(pytester: pytest.Pytester, fake_api: FakeAPI) -> None:
    # Planning runs skip the capture plugin's per-phase hooks; what they print is caught by
    # the global capture and thrown away, so it must not show up in any real test's report.
    pytester.makepyfile(
        """
        import logging, sys, pytest

        @pytest.mark.parametrize("i", range(3))
        def test_case(llm, i):
            print(f"<<out {i}>>")
            sys.stderr.write(f"<<err {i}>>\\n")
            logging.getLogger("t").warning(f"<<log {i}>>")
            assert llm(f"q{i}") == "never"
        """
    )
    result = pytester.runpytest_subprocess(*MODEL, "--llmeval-concurrency", "4", "-rA")
    result.assert_outcomes(failed=3)
    out = result.stdout.str()
    for kind in ("out", "err", "log"):
        assert [out.count(f"<<{kind} {i}>>") for i in range(3)] == [1, 1, 1], kind


def test_failed_calls_reach_the_real_run_without_more_retries(pytester: pytest.Pytester, fake_api: FakeAPI) -> None:
    fake_api.fault("500", when="boom", count=100)
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.parametrize("prompt", ["ok 1", "boom 1", "ok 2", "boom 2"])
        def test_case(llm, prompt):
            assert llm(prompt) == f"echo: {prompt}"
        """
    )
    result = pytester.runpytest(*MODEL, "--llmeval-concurrency", "8", "--llmeval-retries", "1")
    result.assert_outcomes(passed=2, failed=2)
    result.stdout.fnmatch_lines(["*ProviderError: openai:gpt-4o-mini: HTTP 500 from *gave up after 2 attempts*"])
    booms = [r for r in fake_api.requests if "boom" in r.body["messages"][-1]["content"]]
    assert len(booms) == 4  # two attempts each, made once: the real run did not call again


@pytest.mark.parametrize("concurrency", ["0", "8"])
def test_a_dead_endpoint_is_not_retried_once_per_test(
    pytester: pytest.Pytester, fake_api: FakeAPI, concurrency: str
) -> None:
    fake_api.fault("503", count=1000)
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.parametrize("i", range(6))
        def test_case(llm, i):
            llm(f"q{i}")
        """
    )
    # Issue 15: a failing endpoint is no longer given up after one case's retries (that gave
    # up on cases never tried); it is given up once it has failed for a whole deadline.
    args = ("--llmeval-concurrency", concurrency, "--llmeval-retries", "1", "--llmeval-timeout", "1")
    result = pytester.runpytest(*MODEL, *args)
    result.assert_outcomes(failed=6)
    result.stdout.fnmatch_lines(["*HTTP 503*gave up after 2 attempts*"])
    if concurrency == "0":
        assert fake_api.count() < 12
        result.stdout.fnmatch_lines(["*not called: every attempt to this endpoint has failed for * s (HTTP 503)*"])
    else:
        assert fake_api.count() <= 12


def test_prompts_that_change_between_runs_are_not_planned_again(pytester: pytest.Pytester, fake_api: FakeAPI) -> None:
    pytester.makeconftest(PLANNER_PROBE)
    pytester.makepyfile(
        """
        import itertools
        import pytest

        counter = itertools.count()

        @pytest.mark.parametrize("i", range(4))
        def test_case(llm, i):
            prompt = f"q{i} at {next(counter)}"  # differs each time the body runs
            assert llm(prompt) == f"echo: {prompt}"
        """
    )
    pytester.runpytest(*MODEL, "--llmeval-concurrency", "8").assert_outcomes(passed=4)
    stats = planner_stats(pytester)
    # The first pass fetched 4 answers nobody used; the second saw the prompts move and stopped.
    assert stats["generations"] == 2 and len(stats["dropped_nondeterministic"]) == 3
    assert fake_api.count() == 8


def test_no_progress_line_when_not_a_terminal(pytester: pytest.Pytester, fake_api: FakeAPI) -> None:
    fake_api.latency = 0.2
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.parametrize("i", range(8))
        def test_case(llm, i):
            llm(f"q{i}")
        """
    )
    result = pytester.runpytest(*MODEL, "--llmeval-concurrency", "2")
    result.assert_outcomes(passed=8)
    assert "model calls," not in result.stdout.str()


def test_progress_line_updates_in_place_and_is_erased() -> None:
    now = [0.0]
    out = io.StringIO()
    progress = Progress(out, 300, delay_s=0.5, interval_s=0.1, clock=lambda: now[0], width=200)
    progress.update(10)
    assert out.getvalue() == ""  # short batches show nothing
    now[0] = 2.0
    progress.update(100, errors=1, retries=4, cost_usd=0.0123)
    assert out.getvalue() == "\rllmeval: 100/300 model calls, 50.0/s, 1 error, 4 retries, ~$0.0123"
    now[0] = 2.05
    progress.update(120)
    assert out.getvalue().count("\r") == 1  # throttled
    now[0] = 4.0
    progress.update(300)
    line = "llmeval: 300/300 model calls, 75.0/s, 0 errors, 0 retries"
    assert out.getvalue().endswith(
        "\r" + line.ljust(len("llmeval: 100/300 model calls, 50.0/s, 1 error, 4 retries, ~$0.0123"))
    )
    progress.close()
    assert out.getvalue().endswith("\r" + " " * len(line) + "\r")
    quiet = Progress(None, 10, clock=lambda: now[0])
    quiet.update(5)
    quiet.close()


def test_progress_line_never_wraps() -> None:
    out = io.StringIO()
    progress = Progress(out, 10**6, delay_s=0, interval_s=0, clock=lambda: 1.0, width=30)
    progress.update(5, errors=3, retries=7, cost_usd=1.5)
    assert len(out.getvalue().lstrip("\r")) == 29


def test_model_calls_in_fixtures_setup_and_teardown_are_safe(pytester: pytest.Pytester, fake_api: FakeAPI) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.fixture
        def context(llm):
            # A call during setup: the planning stop ends the setup phase.
            return llm("shared context")

        @pytest.fixture
        def audited(llm, request):
            yield
            # A model call after the test, in teardown: planning must not break pytest's
            # teardown (only Exception subclasses are safe there).
            name = request.node.name
            assert llm(f"audit {name}") == f"echo: audit {name}"

        @pytest.mark.parametrize("i", range(4))
        def test_case(llm, context, audited, i):
            assert context == "echo: shared context"
            assert llm(f"q{i}") == f"echo: q{i}"
        """
    )
    result = pytester.runpytest(*MODEL, "--llmeval-concurrency", "8")
    result.assert_outcomes(passed=4)
    prompts = sorted(r.body["messages"][-1]["content"] for r in fake_api.requests)
    audits = [f"audit test_case[openai:gpt-4o-mini-{i}]" for i in range(4)]
    assert prompts == sorted(["shared context", *audits, "q0", "q1", "q2", "q3"])  # each once


def test_a_test_planned_alone_is_set_up_afresh_for_its_real_run(pytester: pytest.Pytester, fake_api: FakeAPI) -> None:
    # Two tests, two dependent calls each: the second level of the last test is planned in a
    # pass of its own, right before its real run.
    pytester.makepyfile(
        """
        import pytest

        @pytest.fixture
        def counted():
            open("setups.txt", "a").write("+")
            yield "ready"
            open("setups.txt", "a").write("-")

        @pytest.mark.parametrize("i", range(2))
        def test_case(llm, counted, i):
            first = llm(f"q{i}")
            assert counted == "ready" and llm(f"again {first}") == f"echo: again echo: q{i}"
        """
    )
    pytester.runpytest(*MODEL, "--llmeval-concurrency", "8").assert_outcomes(passed=2)
    setups = (pytester.path / "setups.txt").read_text()
    assert setups.count("+") == setups.count("-") and "++" not in setups
    assert fake_api.count() == 4


def test_planning_hooks_leave_out_report_only_plugins_and_conftests_of_other_folders(pytester: pytest.Pytester) -> None:
    from pytest_llmeval.planning._pytest_internals import planning_hooks as _planning_hooks

    pytester.makeconftest("def pytest_runtest_setup(item): pass")
    sub = pytester.mkpydir("sub")
    (sub / "conftest.py").write_text("def pytest_runtest_setup(item): pass\n")
    other = pytester.mkpydir("other")
    (other / "conftest.py").write_text("def pytest_runtest_setup(item): pass\n")
    (sub / "test_a.py").write_text("def test_a(): pass\n")
    (other / "test_b.py").write_text("def test_b(): pass\n")
    items, _ = pytester.inline_genitems("sub", "other")
    item = next(it for it in items if it.name == "test_a")
    pm = item.config.pluginmanager

    def plugins(caller: Any) -> set[Any]:
        return {impl.plugin for impl in caller.get_hookimpls()}

    full = plugins(item.ihook.pytest_runtest_setup)
    planning = plugins(_planning_hooks(item).pytest_runtest_setup)
    report_only = {pm.get_plugin("capturemanager")}
    assert report_only <= full and not report_only & planning
    assert pm.get_plugin("logging-plugin") in planning  # caplog needs its hooks
    assert planning == full - report_only  # the conftest files in use stay, other folders' do not
    names = {getattr(p, "__file__", "") for p in planning}
    assert any(n.endswith("sub/conftest.py") for n in names) and not any(n.endswith("other/conftest.py") for n in names)
    for phase in ("pytest_runtest_call", "pytest_runtest_teardown"):
        assert not report_only & plugins(getattr(_planning_hooks(item), phase))


def test_a_test_reading_caplog_before_its_call_is_planned(pytester: pytest.Pytester, fake_api: FakeAPI) -> None:
    pytester.makeconftest(PLANNER_PROBE)
    pytester.makepyfile(
        """
        import logging, pytest

        @pytest.mark.parametrize("i", range(4))
        def test_case(llm, caplog, i):
            logging.getLogger("t").warning("before %s", i)
            assert [r.getMessage() for r in caplog.records] == [f"before {i}"]
            assert llm(f"q{i}") == f"echo: q{i}"
        """
    )
    result = pytester.runpytest(*MODEL, "--llmeval-concurrency", "4")
    result.assert_outcomes(passed=4)
    assert planner_stats(pytester)["prefetched"] == 4 and fake_api.count() == 4


def _run_in_terminal(cwd: Any, args: list[str], timeout: float = 60) -> tuple[int, str]:
    """Run pytest with a pseudo-terminal as its stdout (so it believes a person is watching)."""
    import os
    import pty
    import subprocess
    import sys

    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "pytest", *args], cwd=cwd, stdout=slave, stderr=slave, stdin=slave)
    os.close(slave)
    chunks = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    return proc.wait(timeout=10), b"".join(chunks).decode("utf-8", "replace")


@pytest.mark.skipif(not hasattr(__import__("os"), "openpty"), reason="needs a pseudo-terminal")
def test_in_a_terminal_a_progress_line_shows_the_calls_in_flight(pytester: pytest.Pytester, fake_api: FakeAPI) -> None:
    fake_api.latency = 0.25
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.parametrize("i", range(12))
        def test_case(llm, i):
            assert llm(f"q{i}") == f"echo: q{i}"
        """
    )
    code, out = _run_in_terminal(pytester.path, [*MODEL, "--llmeval-concurrency", "2", "-p", "no:cacheprovider"])
    assert code == 0, out
    assert re.search(r"\rllmeval: \d+/12 model calls, [\d.]+/s, 0 errors, 0 retries", out), out
    assert "12 passed" in out and fake_api.count() == 12


def test_stopping_early_drops_the_calls_not_made_yet(pytester: pytest.Pytester, fake_api: FakeAPI) -> None:
    # A latency far above the time pytest needs to stop after the first failure (over a
    # second on a loaded machine under xdist), so the count below does not depend on load.
    fake_api.latency = 3.0
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.parametrize("i", range(32))
        def test_case(llm, i):
            assert llm(f"q{i}") == "something else"
        """
    )
    result = pytester.runpytest_subprocess(*MODEL, "--llmeval-concurrency", "2", "-x")
    result.assert_outcomes(failed=1)
    # -x after the first answer: two calls in flight at most, the queued ones never made.
    assert fake_api.count() <= 4


def test_the_default_concurrency_is_sixteen_calls_in_flight(pytester: pytest.Pytester, fake_api: FakeAPI) -> None:
    # No --llmeval-concurrency: the default (16, issue 17) holds more than the old 8 in flight.
    fake_api.latency = 0.4
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.parametrize("i", range(24))
        def test_case(llm, i):
            assert llm(f"question {i}") == f"echo: question {i}"
        """
    )
    pytester.runpytest(*MODEL, "--llmeval-cache=refresh").assert_outcomes(passed=24)
    assert fake_api.count() == 24
    assert 8 < fake_api.peak_in_flight <= 16
