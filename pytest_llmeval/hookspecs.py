"""Hook specifications of pytest-llmeval, added to pytest through ``pytest_addhooks``.

Built-in providers register through these same hooks, so a third-party provider is
a plugin exactly like ours.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest


@pytest.hookspec(historic=True)
def pytest_llmeval_register_providers(register: Callable[[str, Callable[..., Any]], None]) -> None:
    """Register model providers.

    Call ``register(name, factory)`` once per provider. ``factory(spec)`` receives a
    :class:`pytest_llmeval.models.ModelSpec` and returns an object with an ``endpoint``
    attribute (the base URL it talks to, part of the cache key) and a method
    ``complete(request, *, timeout) -> dict`` returning the stored completion form (see
    :meth:`pytest_llmeval.models.Completion.to_dict`). Making the object must be cheap:
    a replayed run makes it too, so import the SDK inside ``complete``. A provider signals
    failures with :class:`pytest_llmeval.errors.ProviderError` (``retryable=True`` for
    rate limits and transient faults, with ``retry_after`` when the server said).

    Historic: a plugin registered later (a ``conftest.py`` deeper in the tree) still
    receives the call.
    """


@pytest.hookspec(historic=True)
def pytest_llmeval_register_graders(register: Callable[[str, Callable[..., Any]], None]) -> None:
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
