"""Hook specifications of pytest-llmeval, added to pytest through ``pytest_addhooks``.

Built-in providers and graders register through these same hooks, so a third-party
provider or grader is a plugin exactly like ours: a ``conftest.py`` or an installed
``pytest11`` plugin that implements the hook.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    # Types only: importing the hookspecs (every pytest run) must not import the judge.
    from pytest_llmeval.judge.graders import Grader
    from pytest_llmeval.providers.base import ProviderFactory


@pytest.hookspec(historic=True)
def pytest_llmeval_register_providers(register: Callable[[str, ProviderFactory], None]) -> None:
    """Register model providers.

    Call ``register(name, factory)`` once per provider; models named ``name:MODEL`` (or
    ``name:MODEL@URL``) then use it. ``factory(spec)`` receives the
    :class:`~pytest_llmeval.models.ModelSpec` of one model and returns an object that
    satisfies :class:`pytest_llmeval.Provider` (a class with that constructor is a
    factory):

    - ``spec`` and ``endpoint`` attributes; ``endpoint`` (the base URL it talks to, ``""``
      for none) is part of the cache key and must hold no secret;
    - ``complete(request, *, timeout) -> StoredCompletion``: send the
      :class:`~pytest_llmeval.models.Request` and return the answer in its stored form
      (``text``, ``model``, ``usage``, ``tool_calls``, ``finish_reason``, ``refusal``;
      see :class:`pytest_llmeval.StoredCompletion`).

    Making the object must be cheap and offline: a replayed run makes it too, so import
    the SDK and read keys inside ``complete``. ``complete`` may run in several threads at
    once. A provider signals failures with :class:`pytest_llmeval.errors.ProviderError`
    (``retryable=True`` for rate limits and transient faults, with ``retry_after`` when
    the server said); the plugin retries, caches, logs and budgets, never the provider. A
    name registered again replaces the earlier factory. An unknown provider name in a
    model string is a usage error that lists the registered names.

    Historic: a plugin registered later (a ``conftest.py`` deeper in the tree) still
    receives the call.
    """


@pytest.hookspec(historic=True)
def pytest_llmeval_register_graders(register: Callable[[str, Grader], None]) -> None:
    """Register extra graders, available as ``judge.<name>(...)``.

    Call ``register(name, grader)``; ``grader(judge, output, *args, **kwargs)`` returns a
    :class:`pytest_llmeval.Grade`, usually through ``judge.grade(output, name=..., template=...,
    choices={label: score, ...}, criteria=..., input=...)``, which renders the template with
    the output as delimited data, calls the judge model (cached, temperature 0) and parses its
    verdict strictly. A name that is already registered is replaced, so a plugin can replace
    a built-in grader (``rubric``, ``closed_qa``, ``factuality``, ``classify``); the built-in
    ones register through this same hook. A user's template for ``name`` (``with_template``
    or the ini ``llmeval_judge_templates`` directory) replaces the grader's default text.

    Historic: a plugin registered later (a deeper ``conftest.py``) still receives the call.
    """


@pytest.hookspec
def pytest_llmeval_eval_finished(result: Any, config: pytest.Config) -> None:
    """Called once per eval and model at the end of the run (on the controller under
    xdist), with the eval's aggregated result (pass rate, interval, threshold, verdict)."""
