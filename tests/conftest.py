"""Test harness: a real HTTP server on 127.0.0.1 speaking the OpenAI and Anthropic APIs.

Every test runs with the SDKs' base URLs pointed at loopback and the real keys removed,
so nothing here can reach the internet, whatever the environment holds.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

# Imported once for the whole session: pytester's in-process runs restore sys.modules
# after each run, so an SDK first imported inside one is imported again (seconds) by the next.
import anthropic  # noqa: F401
import openai  # noqa: F401
import pytest
from fakeapi import FakeAPI

try:
    # Same reason, and worse: numpy (llama-cpp-python's dependency) refuses to be imported
    # a second time in one process ("cannot load module more than once per process").
    import numpy  # noqa: F401
except ImportError:
    pass

pytest_plugins = ["pytester"]

TEST_OPENAI_KEY = "sk-test-openai-0123456789abcdef"
TEST_ANTHROPIC_KEY = "sk-ant-test-0123456789abcdef"


@pytest.fixture(autouse=True)
def _offline_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # Port 9 (discard) on loopback: a test that forgets the fake server fails fast, locally.
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("ANTHROPIC_BASE_URL", "http://127.0.0.1:9")
    for name in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "OPENAI_ORG_ID", "OPENAI_PROJECT_ID", "PYTEST_ADDOPTS"):
        monkeypatch.delenv(name, raising=False)
    # Under CI (or BUILD_NUMBER) pytest prints whole messages in its short summary, so the
    # runs these tests start would print every error twice: they run as on a desk.
    for name in ("CI", "BUILD_NUMBER"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="session")
def _fake_api_server() -> Iterator[FakeAPI]:
    with FakeAPI() as api:
        yield api


@pytest.fixture(scope="session", autouse=True)
def _warm_sdks(_fake_api_server: FakeAPI) -> None:
    """Make one real request with each SDK before any test, outside pytester's runs.

    Those runs restore ``sys.modules`` afterwards: an SDK whose first request (and so the
    lazy import of its HTTP stack) happened inside one would, in the next run, meet
    exception classes of modules imported anew, and its ``except`` clauses would miss them.
    """
    openai.OpenAI(api_key="k", base_url=_fake_api_server.openai_base_url, max_retries=0).chat.completions.create(
        model="warm-up", messages=[{"role": "user", "content": "warm-up"}]
    )
    anthropic.Anthropic(api_key="k", base_url=_fake_api_server.anthropic_base_url, max_retries=0).messages.create(
        model="warm-up", max_tokens=1, messages=[{"role": "user", "content": "warm-up"}]
    )
    # The hypothesis plugin, when installed, imports all of hypothesis in every terminal summary.
    with contextlib.suppress(ImportError):
        import hypothesis.internal.observability  # noqa: F401
    _fake_api_server.clear()


@pytest.fixture
def fake_api(_fake_api_server: FakeAPI, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeAPI]:
    """The fake API server, cleared, with both SDKs' environment pointed at it."""
    api = _fake_api_server
    api.clear()
    monkeypatch.setenv("OPENAI_BASE_URL", api.openai_base_url)
    monkeypatch.setenv("ANTHROPIC_BASE_URL", api.anthropic_base_url)
    monkeypatch.setenv("OPENAI_API_KEY", TEST_OPENAI_KEY)
    monkeypatch.setenv("ANTHROPIC_API_KEY", TEST_ANTHROPIC_KEY)
    yield api
    api.clear()
