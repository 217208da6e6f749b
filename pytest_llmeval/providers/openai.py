"""OpenAI and OpenAI-compatible servers (Ollama, vLLM, llama.cpp) through the official SDK."""

from __future__ import annotations

import json
import os
import threading
from typing import Any

from pytest_llmeval.errors import MissingKeyError, ProviderError
from pytest_llmeval.models import ModelSpec, Request, StoredCompletion, StoredToolCall, StoredUsage
from pytest_llmeval.providers._common import add_fields, content_text, post_json

DEFAULT_BASE_URL = "https://api.openai.com/v1"


class OpenAIProvider:
    """``openai:MODEL`` and ``openai:MODEL@URL``.

    The API key comes from ``OPENAI_API_KEY``. A model with an explicit ``@URL`` is a local
    server: the key is sent when set and not demanded otherwise.
    """

    def __init__(self, spec: ModelSpec) -> None:
        self.spec = spec
        self.endpoint = (spec.base_url or os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL).rstrip("/")
        self._client: Any = None
        self._no_auth: dict[str, Any] | None = None
        self._lock = threading.Lock()

    def _get_client(self) -> Any:
        with self._lock:
            if self._client is None:
                key = os.environ.get("OPENAI_API_KEY", "")
                if not key and self.spec.base_url is None:
                    raise MissingKeyError(
                        f"{self.spec}: OPENAI_API_KEY is not set. Set it, or replay recorded "
                        "answers with --llmeval-cache=replay, or name a local server as "
                        "openai:MODEL@http://host:port/v1 (no key needed).",
                        model=str(self.spec),
                        variable="OPENAI_API_KEY",
                    )
                import openai  # lazy: about half a second, paid only when OpenAI is called

                # Retries are ours (one policy for every provider, honouring Retry-After);
                # the SDK's own would multiply them. Without a key (a local server) the SDK
                # is given an empty key provider and each request omits the header.
                api_key: Any = key or (lambda: "")
                self._client = openai.OpenAI(api_key=api_key, base_url=self.endpoint, max_retries=0)
                self._no_auth = None if key else {"Authorization": openai.Omit()}
            return self._client

    def build_body(self, request: Request) -> dict[str, Any]:
        """The JSON body of ``POST /chat/completions`` for a neutral request (batch lines too)."""
        params = dict(request.params)
        body: dict[str, Any] = {"model": self.spec.name, "messages": [_openai_message(m) for m in request.messages]}
        tools = params.pop("tools", None)
        tool_choice = params.pop("tool_choice", None)
        if tools:
            body["tools"] = [_openai_tool(t) for t in tools]
        if tool_choice is not None:
            body["tool_choice"] = _openai_tool_choice(tool_choice)
        # OpenAI's own API wants max_completion_tokens (max_tokens is rejected by reasoning
        # models); compatible servers mostly know only max_tokens.
        if "max_tokens" in params and self.spec.base_url is None and self.endpoint == DEFAULT_BASE_URL:
            params["max_completion_tokens"] = params.pop("max_tokens")
        return add_fields(body, params)

    def complete(self, request: Request, *, timeout: float) -> StoredCompletion:
        client = self._get_client()
        return post_json(
            client,
            "/chat/completions",
            self.build_body(request),
            spec=self.spec,
            endpoint=self.endpoint,
            parse=_parse_response,
            timeout=timeout,
            headers=self._no_auth,
        )


def _openai_message(message: dict[str, Any]) -> dict[str, Any]:
    content = message.get("content")
    if isinstance(content, list):
        # cache_control is Anthropic's; OpenAI caches long prefixes by itself.
        content = [{k: v for k, v in part.items() if k != "cache_control"} for part in content]
    out = dict(message)
    out["content"] = content
    return out


def _openai_tool(tool: dict[str, Any]) -> dict[str, Any]:
    if tool.get("type") == "function":
        return tool
    function: dict[str, Any] = {"name": tool["name"], "parameters": tool.get("parameters", {"type": "object"})}
    if tool.get("description"):
        function["description"] = tool["description"]
    if tool.get("strict"):
        function["strict"] = True
    return {"type": "function", "function": function}


def _openai_tool_choice(choice: Any) -> Any:
    if isinstance(choice, dict) and "name" in choice and "type" not in choice:
        return {"type": "function", "function": {"name": choice["name"]}}
    return choice


def _parse_response(data: dict[str, Any], spec: ModelSpec) -> StoredCompletion:
    # An answer with nothing in it is a server fault, never a completion: a completion is
    # stored and replayed, so an empty one would stay a failed case after the server recovers.
    choices = data.get("choices")
    if not choices:
        error = data.get("error")
        if error:
            detail = error.get("message") if isinstance(error, dict) else error
            raise ProviderError(f"{spec}: the server answered 200 with an error: {_short(detail)}", retryable=True)
        raise ProviderError(f"{spec}: the response has no choices", retryable=True)
    choice = choices[0]
    message = choice.get("message")
    if not isinstance(message, dict):
        raise ProviderError(f"{spec}: the response's first choice has no message", retryable=True)
    tool_calls: list[StoredToolCall] = []
    for call in message.get("tool_calls") or ():
        function = call.get("function")
        if function is None:
            continue
        raw = function.get("arguments") or ""
        try:
            arguments: Any = json.loads(raw) if raw else {}
        except json.JSONDecodeError:
            arguments = None  # kept as raw text; the caller decides whether that is an error
        tool_calls.append({"name": function.get("name"), "arguments": arguments, "raw_arguments": raw})
    usage = data.get("usage") or {}
    details = usage.get("prompt_tokens_details") or {}
    counts: StoredUsage = {
        "input_tokens": int(usage.get("prompt_tokens") or 0),
        "output_tokens": int(usage.get("completion_tokens") or 0),
        "cached_input_tokens": int(details.get("cached_tokens") or 0),
    }
    if (
        message.get("content") is None
        and not tool_calls
        and not message.get("refusal")
        # A truncated or filtered answer without text is still the model's answer.
        and choice.get("finish_reason") not in ("length", "content_filter")
    ):
        raise ProviderError(f"{spec}: the response's message has no content, tool call or refusal", retryable=True)
    return {
        "text": content_text(message.get("content")),
        "model": data.get("model") or spec.name,
        "usage": counts,
        "tool_calls": tool_calls,
        "finish_reason": choice.get("finish_reason"),
        "refusal": message.get("refusal"),
    }


def _short(value: Any, limit: int = 300) -> str:
    text = str(value)
    return text if len(text) <= limit else text[:limit] + "..."
