"""Serving the application's own SDK calls (``@pytest.mark.llmeval(intercept=True)``).

- :mod:`~pytest_llmeval.intercept.transport`: the seam, ``httpx2.Client.send`` and
  ``httpx2.AsyncClient.send``, and the :class:`~pytest_llmeval.intercept.transport.Interceptor`
  that answers the SDK requests it recognises through the caller;
- :mod:`~pytest_llmeval.intercept.routing`: which requests are LLM calls, and the model
  under test that replaces the app's model;
- :mod:`~pytest_llmeval.intercept.exchange`: the stored form of one HTTP exchange (a JSON
  body or the raw bytes of a server-sent event stream) and the completion read from it;
- :mod:`~pytest_llmeval.intercept.hooks`: switches interception on around the setup, call
  and teardown of an intercepting eval.

Nothing here is imported by a run without intercepting evals.
"""

from __future__ import annotations
