"""The call helper process: planned calls made by another process, same answers and errors."""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from fakeapi import FakeAPI

from pytest_llmeval.calls.callproc import CallProcess, RemoteProvider, remote_capable
from pytest_llmeval.errors import ProviderError
from pytest_llmeval.models import ModelSpec, Request
from pytest_llmeval.planning.planner import HELPER_MIN_TESTS
from pytest_llmeval.providers.anthropic import AnthropicProvider
from pytest_llmeval.providers.local import LocalProvider
from pytest_llmeval.providers.openai import OpenAIProvider

MODEL = ["--llmeval-model", "openai:gpt-4o-mini"]
OPENAI = ModelSpec.parse("openai:gpt-4o-mini")
ANTHROPIC = ModelSpec.parse("anthropic:claude-haiku-4-5")


def request(spec: ModelSpec, prompt: str) -> Request:
    return Request(model=spec, messages=[{"role": "user", "content": prompt}], params={"temperature": 0})


def ask(process: CallProcess, prompt: str, timeout: float = 10) -> dict[str, Any]:
    """One OpenAI call through ``process``, to the endpoint this process's provider has."""
    return process.complete(OPENAI, OpenAIProvider(OPENAI).endpoint, request(OPENAI, prompt), timeout)


@pytest.fixture
def helper() -> Iterator[CallProcess]:
    process = CallProcess(4)
    yield process
    process.close()


def test_the_helper_answers_as_the_provider_does(fake_api: FakeAPI, helper: CallProcess) -> None:
    for spec, provider in ((OPENAI, OpenAIProvider(OPENAI)), (ANTHROPIC, AnthropicProvider(ANTHROPIC))):
        here = provider.complete(request(spec, "hello"), timeout=10)
        there = RemoteProvider(provider, helper).complete(request(spec, "hello"), timeout=10)
        assert there == here and there["text"] == "echo: hello"
    bodies = [r.body for r in fake_api.requests]
    assert bodies[0] == bodies[1] and bodies[2] == bodies[3]  # the same HTTP request either way


def test_errors_keep_status_retryability_and_retry_after(fake_api: FakeAPI, helper: CallProcess) -> None:
    fake_api.fault("429", retry_after=7)
    with pytest.raises(ProviderError) as info:
        ask(helper, "q")
    assert (info.value.status, info.value.retryable, info.value.retry_after) == (429, True, 7.0)
    fake_api.fault("400", when="bad")
    with pytest.raises(ProviderError) as info:
        ask(helper, "bad")
    assert (info.value.status, info.value.retryable) == (400, False)
    assert "HTTP 400" in str(info.value)


def test_calls_are_made_concurrently(fake_api: FakeAPI, helper: CallProcess) -> None:
    fake_api.latency = 0.3
    helper.warm([(str(OPENAI), OpenAIProvider(OPENAI).endpoint)])
    ask(helper, "warm-up")
    answers: list[str] = []
    started = time.perf_counter()
    threads = [threading.Thread(target=lambda i=i: answers.append(ask(helper, f"q{i}")["text"])) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(answers) == [f"echo: q{i}" for i in range(4)]
    assert time.perf_counter() - started < 0.3 * 3  # four calls of 0.3 s, not one after another


def test_a_helper_that_dies_fails_its_calls_and_the_rest_are_made_here(fake_api: FakeAPI, helper: CallProcess) -> None:
    fake_api.latency = 5.0
    provider = OpenAIProvider(OPENAI)
    remote = RemoteProvider(provider, helper)
    errors: list[ProviderError] = []

    def in_flight() -> None:
        try:
            remote.complete(request(OPENAI, "slow"), timeout=30)
        except ProviderError as exc:
            errors.append(exc)

    thread = threading.Thread(target=in_flight)
    thread.start()
    deadline = time.monotonic() + 20
    while fake_api.count() == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    helper._proc.kill()  # type: ignore[union-attr]
    thread.join(10)
    assert not thread.is_alive(), "a call in flight hung when the helper died"
    assert len(errors) == 1 and errors[0].retryable
    assert "call helper process" in str(errors[0]) and "exit code -9" in str(errors[0])
    fake_api.latency = 0.0
    assert remote.complete(request(OPENAI, "after"), timeout=10)["text"] == "echo: after"  # made in this process
    assert helper.dead is not None


def test_a_helper_that_cannot_start_says_why(fake_api: FakeAPI, monkeypatch: pytest.MonkeyPatch) -> None:
    process = CallProcess(2)
    bad = [sys.executable, "-c", "import sys; sys.stderr.write('no module named openai_sdk_here'); sys.exit(3)"]
    monkeypatch.setattr(process, "_argv", lambda: bad)
    try:
        with pytest.raises(ProviderError, match=r"exit code 3: no module named openai_sdk_here"):
            ask(process, "q")
        remote = RemoteProvider(OpenAIProvider(OPENAI), process)
        assert remote.complete(request(OPENAI, "q"), timeout=10)["text"] == "echo: q"
    finally:
        process.close()


def test_only_built_in_http_providers_go_to_the_helper() -> None:
    assert remote_capable(OpenAIProvider(OPENAI)) and remote_capable(AnthropicProvider(ANTHROPIC))
    assert not remote_capable(LocalProvider(ModelSpec.parse("local:smollm2")))

    class Custom(OpenAIProvider):  # a plugin's provider: the helper could not make it
        pass

    assert not remote_capable(Custom(OPENAI))


# Written into pytester projects: which process made the model calls.
SDK_PROBE = """
import json, sys

def pytest_sessionfinish(session):
    from pytest_llmeval.plugin import SESSION_KEY
    caller = session.config.stash[SESSION_KEY].caller
    with open("probe.json", "w") as f:
        json.dump({"openai_imported": "openai" in sys.modules, "helper": caller._call_process is not None}, f)
"""

SUITE = """
import pytest

@pytest.mark.parametrize("i", range({n}))
def test_case(llm, i):
    assert llm(f"q{{i}}") == f"echo: q{{i}}"
"""


@pytest.mark.parametrize(
    ("n", "flag", "helper"),
    [
        (HELPER_MIN_TESTS, [], True),
        (HELPER_MIN_TESTS, ["--llmeval-no-call-process"], False),
        (HELPER_MIN_TESTS - 1, [], False),  # too few to be worth a second process
    ],
)
def test_a_large_cold_run_makes_its_calls_in_the_helper(
    pytester: pytest.Pytester, fake_api: FakeAPI, n: int, flag: list[str], helper: bool
) -> None:
    pytester.makeconftest(SDK_PROBE)
    pytester.makepyfile(SUITE.format(n=n))
    # A subprocess: this test process has the SDKs imported already.
    result = pytester.runpytest_subprocess(*MODEL, "--llmeval-concurrency", "4", *flag)
    result.assert_outcomes(passed=n)
    assert fake_api.count() == n
    probe = json.loads((pytester.path / "probe.json").read_text())
    # With the helper, every call went through it: pytest's own process never imported the SDK.
    assert probe == {"openai_imported": not helper, "helper": helper}


def test_ini_option_turns_the_helper_off(pytester: pytest.Pytester, fake_api: FakeAPI) -> None:
    pytester.makeconftest(SDK_PROBE)
    pytester.makeini("[pytest]\nllmeval_call_process = false\n")
    pytester.makepyfile(SUITE.format(n=HELPER_MIN_TESTS))
    pytester.runpytest(*MODEL, "--llmeval-concurrency", "4").assert_outcomes(passed=HELPER_MIN_TESTS)
    assert json.loads((pytester.path / "probe.json").read_text())["helper"] is False


def test_the_helper_never_outlives_the_run(pytester: pytest.Pytester, fake_api: FakeAPI) -> None:
    pytester.makeconftest(
        """
import os

def pytest_runtest_teardown(item):
    from pytest_llmeval.plugin import SESSION_KEY
    process = item.config.stash[SESSION_KEY].caller._call_process
    if process is not None and process._proc is not None and not os.path.exists("helper.pid"):
        with open("helper.pid", "w") as f:
            f.write(str(process._proc.pid))
"""
    )
    pytester.makepyfile(SUITE.format(n=HELPER_MIN_TESTS))
    pytester.runpytest_subprocess(*MODEL, "--llmeval-concurrency", "4").assert_outcomes(passed=HELPER_MIN_TESTS)
    pid = int((pytester.path / "helper.pid").read_text())
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    pytest.fail(f"the helper process {pid} is still running after pytest exited")


def test_a_helper_that_cannot_be_executed_falls_back(fake_api: FakeAPI, monkeypatch: pytest.MonkeyPatch) -> None:
    process = CallProcess(2)
    monkeypatch.setattr(process, "_argv", lambda: ["/nonexistent/python-for-llmeval"])
    try:
        process.warm([(str(OPENAI), "http://127.0.0.1:9/v1")])
        with pytest.raises(ProviderError, match="cannot start the call helper process") as info:
            ask(process, "q")
        assert info.value.retryable
        remote = RemoteProvider(OpenAIProvider(OPENAI), process)
        assert remote.complete(request(OPENAI, "q"), timeout=10)["text"] == "echo: q"
    finally:
        process.close()


def test_judged_evals_go_through_the_helper_on_both_providers(pytester: pytest.Pytester, fake_api: FakeAPI) -> None:
    from test_judge import judge_reply

    fake_api.reply(judge_reply("PASS"), provider="anthropic")
    pytester.makeconftest(
        """
import json, sys

def pytest_sessionfinish(session):
    with open("probe.json", "w") as f:
        json.dump(sorted(m for m in ("openai", "anthropic") if m in sys.modules), f)
"""
    )
    pytester.makepyfile(
        f"""
        import pytest

        @pytest.mark.parametrize("i", range({HELPER_MIN_TESTS}))
        def test_case(llm, judge, i):
            answer = llm(f"q{{i}}")
            assert answer == f"echo: q{{i}}"
            assert judge(answer, "Repeats the question number")
        """
    )
    result = pytester.runpytest_subprocess(
        *MODEL, "--llmeval-judge", "anthropic:claude-haiku-4-5", "--llmeval-concurrency", "8"
    )
    result.assert_outcomes(passed=HELPER_MIN_TESTS)
    assert fake_api.count() == 2 * HELPER_MIN_TESTS  # one answer and one verdict each, none twice
    judged = [r for r in fake_api.requests if r.body.get("tools")]
    assert len(judged) == HELPER_MIN_TESTS  # Anthropic's forced tool call, made by the helper
    assert json.loads((pytester.path / "probe.json").read_text()) == []  # no SDK in pytest's process


def test_calls_go_to_the_endpoint_of_pytests_provider_not_the_helpers_environment(
    fake_api: FakeAPI, helper: CallProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    endpoint = OpenAIProvider(OPENAI).endpoint  # the fake server: part of the cache key here
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")  # what the helper inherits
    assert helper.complete(OPENAI, endpoint, request(OPENAI, "q"), 10)["text"] == "echo: q"


def test_a_key_set_by_a_session_fixture_reaches_the_helper(
    pytester: pytest.Pytester, fake_api: FakeAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY")
    monkeypatch.setattr(fake_api, "require_key", "sk-from-a-vault")
    pytester.makeconftest(
        """
import os, pytest

@pytest.fixture(scope="session", autouse=True)
def api_key():
    os.environ["OPENAI_API_KEY"] = "sk-from-a-vault"
"""
        + SDK_PROBE
    )
    pytester.makepyfile(SUITE.format(n=HELPER_MIN_TESTS))
    result = pytester.runpytest_subprocess(*MODEL, "--llmeval-concurrency", "4")
    result.assert_outcomes(passed=HELPER_MIN_TESTS)
    assert json.loads((pytester.path / "probe.json").read_text())["helper"] is True
