"""Anthropic's Messages API through the official SDK."""

from __future__ import annotations

import json
import os
import threading
from typing import Any

from pytest_llmeval.errors import ConfigError, MissingKeyError, ProviderError
from pytest_llmeval.models import ModelSpec, Request, StoredCompletion, StoredToolCall
from pytest_llmeval.providers._common import add_fields, post_json

DEFAULT_BASE_URL = "https://api.anthropic.com"
# The Messages API requires max_tokens; this is used when the test does not set one.
DEFAULT_MAX_TOKENS = 1024


class AnthropicProvider:
    """``anthropic:MODEL``; the key comes from ``ANTHROPIC_API_KEY``."""

    def __init__(self, spec: ModelSpec) -> None:
        self.spec = spec
        self.endpoint = (spec.base_url or os.environ.get("ANTHROPIC_BASE_URL") or DEFAULT_BASE_URL).rstrip("/")
        self._client: Any = None
        self._lock = threading.Lock()

    def _get_client(self) -> Any:
        with self._lock:
            if self._client is None:
                key = os.environ.get("ANTHROPIC_API_KEY", "")
                if not key:
                    raise MissingKeyError(
                        f"{self.spec}: ANTHROPIC_API_KEY is not set. Set it, or replay "
                        "recorded answers with --llmeval-cache=replay.",
                        model=str(self.spec),
                        variable="ANTHROPIC_API_KEY",
                    )
                import anthropic  # lazy: over a second to import

                self._client = anthropic.Anthropic(api_key=key, base_url=self.endpoint, max_retries=0)
            return self._client

    def build_body(self, request: Request) -> dict[str, Any]:
        """The JSON body of ``POST /v1/messages`` for a neutral request (batch requests too).

        System messages move to the top-level ``system``; consecutive messages of one role
        are merged, as the API requires alternation; ``stop`` becomes ``stop_sequences``.
        """
        params = dict(request.params)
        system_parts: list[dict[str, Any]] = []
        messages: list[dict[str, Any]] = []
        for message in request.messages:
            role = message.get("role")
            parts = _parts(message.get("content"))
            if role in ("system", "developer"):
                system_parts.extend(parts)
                continue
            if role not in ("user", "assistant"):
                raise ConfigError(f"{self.spec}: message role {role!r} is not supported by Anthropic")
            if messages and messages[-1]["role"] == role:
                messages[-1]["content"].extend(parts)
            else:
                messages.append({"role": role, "content": parts})
        body: dict[str, Any] = {"model": self.spec.name, "messages": messages}
        if system_parts:
            if all(set(p) == {"type", "text"} for p in system_parts):
                body["system"] = "\n\n".join(p["text"] for p in system_parts)
            else:
                body["system"] = system_parts  # keeps cache_control on long instructions
        body["max_tokens"] = (
            params.pop("max_tokens", None) or params.pop("max_completion_tokens", None) or DEFAULT_MAX_TOKENS
        )
        params.pop("max_completion_tokens", None)
        if "stop" in params:
            stop = params.pop("stop")
            body["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
        # Anthropic has no seed; sampling at temperature 0 is its nearest equivalent.
        params.pop("seed", None)
        tools = params.pop("tools", None)
        tool_choice = params.pop("tool_choice", None)
        response_format = params.pop("response_format", None)
        if response_format is not None and not (
            isinstance(response_format, dict) and response_format.get("type") == "text"
        ):
            raise ConfigError(
                f"{self.spec}: response_format is OpenAI's; for Anthropic, ask for JSON in the "
                "prompt or use a forced tool call (tools=..., tool_choice={'name': ...})"
            )
        if tools:
            body["tools"] = [_anthropic_tool(t) for t in tools]
        if tool_choice is not None:
            body["tool_choice"] = _anthropic_tool_choice(tool_choice)
        return add_fields(body, params)

    def complete(self, request: Request, *, timeout: float) -> StoredCompletion:
        client = self._get_client()
        return post_json(
            client,
            "/v1/messages",
            self.build_body(request),
            spec=self.spec,
            endpoint=self.endpoint,
            parse=_parse_response,
            timeout=timeout,
        )


def _parts(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if isinstance(content, list):
        return [dict(p) for p in content]
    return [{"type": "text", "text": "" if content is None else str(content)}]


def _anthropic_tool(tool: dict[str, Any]) -> dict[str, Any]:
    if "input_schema" in tool:
        return tool
    function = tool.get("function", tool)
    out = {"name": function["name"], "input_schema": function.get("parameters", {"type": "object"})}
    if function.get("description"):
        out["description"] = function["description"]
    return out


def _anthropic_tool_choice(choice: Any) -> Any:
    if isinstance(choice, dict) and "name" in choice and "type" not in choice:
        return {"type": "tool", "name": choice["name"]}
    if choice == "required":
        return {"type": "any"}
    if isinstance(choice, str):
        return {"type": choice}
    return choice


def _parse_response(data: dict[str, Any], spec: ModelSpec) -> StoredCompletion:
    # An answer with nothing in it is a server fault, never a completion: a completion is
    # stored and replayed, so an empty one would stay a failed case after the server recovers.
    if data.get("type") == "error" or ("error" in data and "content" not in data):
        error = data.get("error")
        detail = error.get("message") or error.get("type") if isinstance(error, dict) else error
        raise ProviderError(f"{spec}: the server answered 200 with an error: {_short(detail)}", retryable=True)
    content = data.get("content")
    if not isinstance(content, list):
        what = "no content" if content is None else f"content of type {type(content).__name__}"
        raise ProviderError(f"{spec}: the response has {what}", retryable=True)
    text_parts: list[str] = []
    tool_calls: list[StoredToolCall] = []
    usable = False
    for block in content:
        kind = block.get("type")  # a block that is no object: unreadable (see parse_json_reply)
        usable = usable or kind in ("text", "tool_use")
        if kind == "text":
            text_parts.append(str(block.get("text") or ""))
        elif kind == "tool_use":
            tool_calls.append({"name": block.get("name"), "arguments": block.get("input"), "raw_arguments": ""})
    usage = data.get("usage") or {}
    cache_read = int(usage.get("cache_read_input_tokens") or 0)
    stop = data.get("stop_reason")
    # A truncated answer or a refusal may come without a block and is still the model's answer.
    if not usable and stop not in ("max_tokens", "refusal"):
        raise ProviderError(
            f"{spec}: the response has no text or tool_use block (content: {_short(json.dumps(content))})",
            retryable=True,
        )
    return {
        "text": "".join(text_parts),
        "model": data.get("model") or spec.name,
        "usage": {
            "input_tokens": int(usage.get("input_tokens") or 0)
            + cache_read
            + int(usage.get("cache_creation_input_tokens") or 0),
            "output_tokens": int(usage.get("output_tokens") or 0),
            "cached_input_tokens": cache_read,
        },
        "tool_calls": tool_calls,
        "finish_reason": stop,
        "refusal": "refused by the model" if stop == "refusal" else None,
    }


def _short(value: Any, limit: int = 300) -> str:
    text = str(value)
    return text if len(text) <= limit else text[:limit] + "..."
