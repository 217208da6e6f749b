"""Which HTTP requests are LLM calls of the official SDKs, and where they are routed.

A request is an SDK model call when the SDK says so (the ``X-Stainless-*`` headers or the
``OpenAI/Python`` / ``Anthropic/Python`` user agent that both Stainless-built SDKs send) *and*
it is a ``POST`` to one of the model APIs: chat completions, the Responses API, Anthropic
messages. Everything else (``models.list()``, file uploads, batches, any other host or
path) is not ours and goes out untouched.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pytest_llmeval.errors import ConfigError
from pytest_llmeval.models import ModelSpec

__all__ = ["Api", "classify", "Route", "route"]


@dataclass(frozen=True)
class Api:
    """One model API: the provider family that speaks it and its path after the base URL."""

    family: str  # "openai" | "anthropic": the provider whose API this is
    name: str  # "chat.completions" | "responses" | "messages"
    suffix: str  # the path after the client's base URL

    @property
    def title(self) -> str:
        return {"chat.completions": "OpenAI's chat completions API", "responses": "OpenAI's Responses API"}.get(
            self.name, "Anthropic's messages API"
        )


_APIS = (
    Api("openai", "chat.completions", "/chat/completions"),
    Api("openai", "responses", "/responses"),
    Api("anthropic", "messages", "/v1/messages"),
)


def is_sdk_request(headers: Any) -> bool:
    """Whether the request was built by the ``openai`` or ``anthropic`` SDK."""
    if headers.get("x-stainless-lang") is not None:
        return True
    agent = headers.get("user-agent") or ""
    return agent.startswith(("OpenAI/", "Anthropic/", "AsyncOpenAI/", "AsyncAnthropic/"))


def classify(method: str, path: str, headers: Any) -> Api | None:
    """The model API of an SDK request, or ``None`` for traffic that is not ours."""
    if method.upper() != "POST" or not is_sdk_request(headers):
        return None
    path = path.rstrip("/")
    for api in _APIS:
        if path.endswith(api.suffix):
            return api
    return None


@dataclass(frozen=True)
class Route:
    """Where an intercepted request goes: the model it is logged and keyed under, the body
    model name, the base URL, and whether the model under test replaced the app's."""

    spec: ModelSpec
    model: str
    base_url: str
    routed: bool


def route(
    api: Api,
    app_model: str,
    app_base_url: str,
    *,
    under_test: ModelSpec | None,
    only: tuple[str, ...],
    where: str,
) -> Route:
    """The model under test replaces the app's model (all of them, or those named in
    ``route=``); its ``@URL`` replaces the app's base URL. An API the model under test does
    not speak is a :class:`ConfigError` naming both, never a silent pass-through."""
    if under_test is None or (only and app_model not in only):
        return Route(ModelSpec(api.family, app_model or "?"), app_model, app_base_url, routed=False)
    if under_test.provider != api.family:
        raise ConfigError(
            f"{where}: the app calls {api.title} (model {app_model!r}) but the model under test is "
            f"{under_test}, which does not speak it. Test this app with a {api.family}:MODEL model, or "
            f"limit the replacement to other model names with @pytest.mark.llmeval(route=[...])"
        )
    base = under_test.base_url or app_base_url
    return Route(ModelSpec(under_test.provider, under_test.name, under_test.base_url), under_test.name, base, True)
