"""Wiring: the plugin's module-level hooks and its fixtures, nothing else.

Module-level hooks stay thin: ``pytest_configure`` builds one
:class:`~pytest_llmeval.session.EvalSession`, keeps it under a ``StashKey`` and registers it
as a plugin; ``pytest_unconfigure`` removes it. Everything stateful lives there.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from pytest_llmeval import hookspecs
from pytest_llmeval.errors import ConfigError
from pytest_llmeval.keys import CASE_KEY, SESSION_KEY
from pytest_llmeval.llm import LLM
from pytest_llmeval.marker import MARKER_HELP, EvalMarker
from pytest_llmeval.models import ModelSpec
from pytest_llmeval.session import EvalSession
from pytest_llmeval.settings import Settings, add_options

if TYPE_CHECKING:
    from pytest_llmeval.judge import Judge

__all__ = ["llm", "judge"]


# -- module-level hooks -------------------------------------------------------------------
def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    pluginmanager.add_hookspecs(hookspecs)


def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)


@pytest.hookimpl(trylast=True)
def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", MARKER_HELP)
    settings = Settings.from_config(config)
    from pytest_llmeval import providers

    if not config.pluginmanager.is_registered(providers):
        config.pluginmanager.register(providers, "llmeval-builtin-providers")
    session = EvalSession(config, settings)
    config.stash[SESSION_KEY] = session
    config.pluginmanager.register(session, "llmeval-session")


def pytest_unconfigure(config: pytest.Config) -> None:
    session = config.stash.get(SESSION_KEY, None)
    if session is not None:
        session.close()
        config.pluginmanager.unregister(session)
        del config.stash[SESSION_KEY]


# -- fixtures -----------------------------------------------------------------------------
@pytest.fixture
def _llmeval_model(request: pytest.FixtureRequest) -> str:
    """The model under test as ``PROVIDER:MODEL`` (kept for code written against older releases)."""
    info = request.node.stash.get(CASE_KEY, None)
    if info is None or info.model is None:
        raise ConfigError("no model configured")
    return str(info.model)


@pytest.fixture
def _llmeval_sample(request: pytest.FixtureRequest) -> int:
    """The repeat index of this case (kept for code written against older releases)."""
    info = request.node.stash.get(CASE_KEY, None)
    return info.sample if info is not None else 0


@pytest.fixture
def llm(request: pytest.FixtureRequest) -> LLM:
    """The model under test. The test runs once per configured model.

    ``llm(prompt, *, system=None, **params) -> str``; ``llm.chat(messages, **params) ->
    Completion``; ``llm.model`` is ``PROVIDER:MODEL``. Models come from ``--llmeval-model``,
    else the marker's ``models=``, else the ini option ``llmeval_models``::

        def test_capital(llm):
            assert exact(llm("Capital of France? One word."), "Paris")
    """
    # Parametrized by the session with (model, sample) for every test that uses it; reaching
    # this without a parameter means the collection-time check failed to run, which the
    # usage error already reports.
    param = getattr(request, "param", None)
    if param is None:
        raise ConfigError("no model configured")  # pragma: no cover
    session = request.config.stash[SESSION_KEY]
    info = request.node.stash.get(CASE_KEY, None)
    tags = info.marker.tags if info and info.marker else ()
    # The spec parsed at collection (CaseInfo) is reused: parsing it again per test is waste.
    spec = info.model if info is not None and info.model is not None else ModelSpec.parse(param[0])
    return LLM(session.caller, spec, test_id=request.node.nodeid, sample=int(param[1]), tags=tags)


@pytest.fixture
def judge(request: pytest.FixtureRequest) -> Judge:
    """The grading model (``--llmeval-judge``, else the marker's ``judge=``, else ini
    ``llmeval_judge``). Each grader returns a ``Grade``, truthy when it passes::

        def test_answer(llm, judge):
            answer = llm("Name a prime number between 10 and 20.")
            assert judge(answer, "Names exactly one prime number between 10 and 20")

    Also ``judge.closed_qa(output, criteria)``, ``judge.factuality(output, expert)``,
    ``judge.classify(output, {"label": score, ...})``. A reply with no usable verdict is a
    ``JudgeError`` (the case errors). The judge never grades its own model's answers unless
    ``--llmeval-allow-self-judge`` is given.
    """
    from pytest_llmeval.judge.judge import make_judge

    session = request.config.stash[SESSION_KEY]
    info = request.node.stash.get(CASE_KEY, None)
    marker = info.marker if info else EvalMarker.from_node(request.node, request.node.nodeid)
    return make_judge(session, request.node.nodeid, marker, info.model if info else None)
