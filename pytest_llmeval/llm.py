"""The object behind the ``llm`` fixture: one model, bound to one test."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from pytest_llmeval.errors import ConfigError
from pytest_llmeval.models import Completion, ModelSpec, Request
from pytest_llmeval.recording import current_record

if TYPE_CHECKING:
    from pytest_llmeval.calls.caller import Caller

__all__ = ["LLM"]

# Parameters that would carry credentials or bypass the cache key; they are never taken.
_REFUSED_PARAMS = frozenset(
    {"api_key", "extra_headers", "extra_query", "headers", "timeout", "stream", "model", "messages"}
)
_ROLES = frozenset({"system", "developer", "user", "assistant"})


class LLM:
    """A model bound to the running test.

    ``llm(prompt, *, system=None, **params) -> str`` and
    ``llm.chat(messages, **params) -> Completion``; in ``async def`` tests
    ``await llm.acall(prompt, **params)`` and ``await llm.achat(messages, **params)``.
    ``params`` are generation parameters (``temperature``, ``max_tokens``, ``top_p``,
    ``stop``, ``seed``, ``tools``, ``tool_choice``, ``response_format``, ...); they are part
    of the cache key. ``llm.calls`` lists the completions of this test so far, those of the
    application's own SDK calls included (``intercept=True``).
    """

    def __init__(
        self,
        caller: Caller,
        spec: ModelSpec,
        *,
        test_id: str | None = None,
        sample: int = 0,
        tags: Sequence[str] | None = None,
        role: str = "llm",
        defaults: dict[str, Any] | None = None,
    ) -> None:
        self._caller = caller
        self.spec = spec
        self.test_id = test_id
        self.sample = sample
        self.tags = list(tags or ())
        self.role = role
        self._defaults = dict(defaults or {})
        self._calls: list[Completion] = []  # outside a case record (no test running)

    @property
    def model(self) -> str:
        """The model as ``PROVIDER:MODEL`` (with ``@URL`` when one was given)."""
        return str(self.spec)

    def __repr__(self) -> str:
        return f"<llm {self.model}>"

    @property
    def calls(self) -> list[Completion]:
        """The completions made in this test so far, in order: ``llm(...)`` calls and, with
        ``intercept=True``, the application's own SDK calls (text, usage, tool calls)."""
        record = current_record()
        return list(record.completions) if record is not None else list(self._calls)

    def __call__(self, prompt: str, *, system: str | None = None, **params: Any) -> str:
        """Send one user ``prompt`` (after an optional ``system`` prompt); return the text."""
        return self.chat(_prompt_messages(prompt, system), **params).text

    def chat(self, messages: Sequence[dict[str, Any]], **params: Any) -> Completion:
        """Send a conversation of ``{"role", "content"}`` messages; return the :class:`Completion`."""
        request = self.request(messages, **params)
        completion = self._caller.call(request, test_id=self.test_id, role=self.role, tags=self.tags)
        record = current_record()
        if record is not None and self.role == "llm":
            record.output = completion.text
            record.prompt = request.messages
            record.completions.append(completion)
        elif self.role == "llm":
            self._calls.append(completion)
        return completion

    async def acall(self, prompt: str, *, system: str | None = None, **params: Any) -> str:
        """:meth:`__call__` for ``async def`` tests: awaits made together are in flight together."""
        return (await self.achat(_prompt_messages(prompt, system), **params)).text

    async def achat(self, messages: Sequence[dict[str, Any]], **params: Any) -> Completion:
        """:meth:`chat` for ``async def`` tests, with the same cache, call log and limits.

        The call runs in a worker thread (the caller, its store and rate limits are
        thread-safe), so it works under asyncio and trio alike and never blocks the loop.
        """
        import functools

        import anyio.to_thread  # an SDK dependency, and what pytest's async plugins run on

        self.request(messages, **params)  # validated in the test's own task, so a bad call fails there
        return await anyio.to_thread.run_sync(functools.partial(self.chat, messages, **params))

    def request(self, messages: Sequence[dict[str, Any]], **params: Any) -> Request:
        """The :class:`Request` that :meth:`chat` would send (validated, not sent)."""
        refused = sorted(set(params) & _REFUSED_PARAMS)
        if refused:
            raise ConfigError(
                f"{self.test_id or 'llm'}: parameter(s) {', '.join(refused)} cannot be passed to a model call "
                "(credentials and transport are configured through the provider's environment variables)"
            )
        checked = _check_messages(messages, self.test_id)
        merged = {**self._defaults, **params}
        provider = self._caller.registry.get(self.spec)
        return Request(
            model=self.spec,
            messages=checked,
            params=merged,
            sample=self.sample,
            endpoint=getattr(provider, "endpoint", ""),
        )


def _prompt_messages(prompt: str, system: str | None) -> list[dict[str, Any]]:
    if not isinstance(prompt, str):
        raise TypeError(f"llm(prompt): prompt must be a str, got {type(prompt).__name__}")
    messages: list[dict[str, Any]] = []
    if system is not None:
        messages.append({"role": "system", "content": system})
    messages.append({"role": "user", "content": prompt})
    return messages


def _check_messages(messages: Sequence[dict[str, Any]], test_id: str | None) -> list[dict[str, Any]]:
    where = test_id or "llm.chat"
    if isinstance(messages, (str, bytes)) or not isinstance(messages, Sequence) or not messages:
        raise ConfigError(f"{where}: messages must be a non-empty list of {{'role', 'content'}} dicts")
    out: list[dict[str, Any]] = []
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or "role" not in message or "content" not in message:
            raise ConfigError(f"{where}: message {i} must be a dict with 'role' and 'content', got {message!r:.200}")
        if message["role"] not in _ROLES:
            raise ConfigError(
                f"{where}: message {i} has role {message['role']!r}; use one of {', '.join(sorted(_ROLES))}"
            )
        out.append(dict(message))
    return out
