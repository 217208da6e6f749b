"""The provider interface: what a model provider, built in or third-party, must offer.

A provider is registered by name through the ``pytest_llmeval_register_providers`` hook
(see :mod:`pytest_llmeval.hookspecs`) as a *factory*: a callable, usually the class
itself, that takes the :class:`~pytest_llmeval.models.ModelSpec` of one model
(``myprovider:some-model``) and returns a :class:`Provider` for it. The plugin makes one
provider object per model string and calls it through its caller, which owns the cache,
the call log, retries with backoff, rate limits, concurrency, the budget and deadlines:
a provider only turns one request into one answer.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from pytest_llmeval.models import ModelSpec, Request, StoredCompletion

__all__ = ["Provider", "ProviderFactory"]


@runtime_checkable
class Provider(Protocol):
    """A model provider for one model (one ``PROVIDER:MODEL[@URL]`` string).

    - ``spec``: the model it serves.
    - ``endpoint``: the server it talks to, e.g. its base URL (``""`` when there is none,
      as for an in-process model). It is part of every request's cache key, because two
      servers behind one model name give different answers; it must never hold a secret.
    - ``complete(request, *, timeout)``: send ``request`` (provider-neutral messages and
      parameters, see :class:`~pytest_llmeval.models.Request`) and return the answer in
      its stored form, a :class:`~pytest_llmeval.models.StoredCompletion`. ``timeout`` is
      the seconds left for this attempt.

    Rules the plugin relies on:

    - Making the object is cheap and offline: a run that replays every answer from the
      cache makes it too. Import an SDK and read API keys inside ``complete``.
    - ``complete`` may be called from several threads at once (``--llmeval-concurrency``).
    - A failure is a :class:`~pytest_llmeval.errors.ProviderError` whose message starts
      with the cause and the fix; ``retryable=True`` for rate limits and transient faults,
      with ``retry_after`` (seconds) when the server said. The caller retries; the provider
      does not. An empty or malformed answer is an error too, never a completion: a
      completion returned is stored in the cache and replayed.
    - No secret (API key, auth header) in the completion, the endpoint or an error message.
    """

    spec: ModelSpec
    endpoint: str

    def complete(self, request: Request, *, timeout: float) -> StoredCompletion:
        """The answer to ``request`` in its stored form; see the class docstring."""
        ...


#: What ``register(name, factory)`` takes: ``factory(spec)`` returns the model's provider.
ProviderFactory = Callable[["ModelSpec"], Provider]
