"""The stored form of one intercepted HTTP exchange, and the completion read from it.

An intercepted call is stored like any other answer (a :class:`~pytest_llmeval.models.Completion`
dict: text, usage, tool calls) plus an ``http`` entry: the status, the few response headers
that matter (never auth or cookies), and the body: the JSON document, or for ``stream=True``
the raw text of the server-sent event stream, so a replay hands the SDK the same stream of
events, byte for byte. The cache key covers the provider, model, endpoint, API and the whole
request body (messages, parameters, tools, response format, the stream flag) and the repeat
index; never a header that carries a credential.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from pytest_llmeval.errors import ProviderError
from pytest_llmeval.models import KEY_VERSION, ModelSpec, Request, StoredCompletion, StoredToolCall

__all__ = ["InterceptedRequest", "HttpExchange", "completion_fields", "KEPT_HEADERS"]

#: Response headers kept with an answer: what an app may read, never a credential or cookie.
KEPT_HEADERS = ("content-type", "x-request-id", "request-id", "openai-processing-ms", "openai-version")
# Request headers that change the answer (beta features) and so belong to the key.
_KEYED_HEADERS = ("anthropic-beta", "openai-beta", "anthropic-version")


@dataclass(frozen=True)
class InterceptedRequest(Request):
    """A :class:`Request` made by the application's SDK, carrying its own provider.

    ``provider`` forwards the HTTP request (the caller's retries, rate limits and budget
    apply to it as to any provider); it is not part of the key.
    """

    api: str = ""
    body: dict[str, Any] = field(default_factory=dict)
    keyed_headers: dict[str, str] = field(default_factory=dict)
    provider: Any = field(default=None, compare=False, repr=False)
    # "llm" when the model under test answers it (routed), else "app": the call log's role.
    role: str = field(default="app", compare=False)

    def key_payload(self) -> dict[str, Any]:
        """Provider, model, endpoint, API, the request body and the repeat index: nothing secret."""
        payload: dict[str, Any] = {
            "v": KEY_VERSION,
            "provider": self.model.provider,
            "model": self.model.name,
            "endpoint": self.endpoint,
            "api": self.api,
            "messages": self.messages,
            "params": {k: v for k, v in self.body.items() if k not in ("model", "messages")},
            "sample": self.sample,
        }
        if self.keyed_headers:
            payload["headers"] = self.keyed_headers
        return payload


def messages_of(api: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    """The conversation of a request body, as the call log and replay misses show it."""
    if api == "responses":
        given = body.get("input")
        if isinstance(given, str):
            return [{"role": "user", "content": given}]
        return [m for m in given or () if isinstance(m, dict) and "role" in m]
    messages = [m for m in body.get("messages") or () if isinstance(m, dict)]
    system = body.get("system")
    if api == "messages" and system:
        return [{"role": "system", "content": system}, *messages]
    return messages


def keyed_headers(headers: Any) -> dict[str, str]:
    """The request headers that are part of the key (beta switches, API version)."""
    return {name: str(headers[name]) for name in _KEYED_HEADERS if headers.get(name) is not None}


@dataclass
class HttpExchange:
    """The provider of one intercepted request: sends it and turns the reply into a stored answer.

    ``send(method, url, headers, content, timeout) -> (status, headers, bytes)`` does the
    HTTP; it comes from :mod:`~pytest_llmeval.intercept.transport`. ``endpoint`` keys the
    rate limiter, as a provider's does. ``last_error`` keeps the final error response, so the
    SDK is answered with it as the server gave it.
    """

    api: str
    spec: ModelSpec
    url: str
    method: str
    headers: list[tuple[str, str]]
    content: bytes
    stream: bool
    endpoint: str
    send: Any
    on_error: Any = None  # called with (status, headers, body) of a final error response

    def complete(self, request: Request, *, timeout: float) -> dict[str, Any]:
        """Send the request once; the stored answer, or a :class:`ProviderError`."""
        status, headers, data = self.send(self.method, self.url, self.headers, self.content, timeout)
        kept = {name: headers[name] for name in KEPT_HEADERS if headers.get(name) is not None}
        if not 200 <= status < 300:
            if self.on_error is not None:
                self.on_error(status, kept, data)
            raise _status_error(self.spec, self.endpoint, status, headers, data)
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise ProviderError(f"{self.spec}: unreadable response from {self.endpoint}", retryable=True) from None
        if self.stream:
            answer = completion_fields(self.api, self.spec, sse=text)
            http: dict[str, Any] = {"status": status, "headers": kept, "sse": text}
        else:
            try:
                body = json.loads(text)
            except ValueError:
                raise ProviderError(
                    f"{self.spec}: unreadable response from {self.endpoint}: not JSON", retryable=True
                ) from None
            answer = completion_fields(self.api, self.spec, body=body)
            http = {"status": status, "headers": kept, "body": body}
        return {**answer, "http": http}


def _status_error(spec: ModelSpec, endpoint: str, status: int, headers: Any, data: bytes) -> ProviderError:
    from pytest_llmeval.providers._common import RETRYABLE_STATUS, retry_after_seconds

    detail = data[:500].decode("utf-8", "replace")
    try:
        err = json.loads(data).get("error")
        if isinstance(err, dict) and err.get("message"):
            detail = str(err["message"])[:500]
    except (ValueError, AttributeError):
        pass
    return ProviderError(
        f"{spec}: HTTP {status} from {endpoint}: {detail}",
        retryable=status in RETRYABLE_STATUS or status >= 500,
        retry_after=retry_after_seconds(headers),
        status=status,
    )


# -- reading a completion out of a response -----------------------------------------------
def completion_fields(
    api: str, spec: ModelSpec, *, body: dict[str, Any] | None = None, sse: str | None = None
) -> StoredCompletion:
    """The :class:`~pytest_llmeval.models.Completion` dict of a JSON body or an SSE stream.

    An answer without content (no choices, no output, an error event) is a retryable
    :class:`ProviderError`, and is never stored.
    """
    from pytest_llmeval.providers import anthropic as anthropic_provider
    from pytest_llmeval.providers import openai as openai_provider
    from pytest_llmeval.providers._common import parse_json_reply

    if sse is not None:
        body = _assemble_stream(api, spec, sse)
    parse = {
        "chat.completions": openai_provider._parse_response,
        "messages": anthropic_provider._parse_response,
        "responses": _parse_responses,
    }[api]
    return parse_json_reply(parse, body, spec, spec.base_url or "the app's endpoint")


def _parse_responses(data: dict[str, Any], spec: ModelSpec) -> StoredCompletion:
    if data.get("error"):
        raise ProviderError(f"{spec}: the response carries an error: {data['error']}", retryable=True)
    output = data.get("output")
    if not isinstance(output, list):
        raise ProviderError(f"{spec}: the response has no output", retryable=True)
    text: list[str] = []
    tool_calls: list[StoredToolCall] = []
    refusal = None
    for item in output:
        kind = item.get("type")
        if kind == "message":
            for part in item.get("content") or ():
                if part.get("type") == "output_text":
                    text.append(str(part.get("text") or ""))
                elif part.get("type") == "refusal":
                    refusal = part.get("refusal")
        elif kind == "function_call":
            raw = item.get("arguments") or ""
            try:
                arguments: Any = json.loads(raw) if raw else {}
            except ValueError:
                arguments = None
            tool_calls.append({"name": item.get("name"), "arguments": arguments, "raw_arguments": raw})
    usage = data.get("usage") or {}
    details = usage.get("input_tokens_details") or {}
    return {
        "text": "".join(text),
        "model": data.get("model") or spec.name,
        "usage": {
            "input_tokens": int(usage.get("input_tokens") or 0),
            "output_tokens": int(usage.get("output_tokens") or 0),
            "cached_input_tokens": int(details.get("cached_tokens") or 0),
        },
        "tool_calls": tool_calls,
        "finish_reason": data.get("status"),
        "refusal": refusal,
    }


def sse_events(text: str) -> list[tuple[str | None, str]]:
    """``(event, data)`` pairs of a server-sent event stream (comments and ids dropped)."""
    events: list[tuple[str | None, str]] = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        name: str | None = None
        data: list[str] = []
        for line in block.split("\n"):
            if line.startswith("event:"):
                name = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].lstrip(" "))
        if data:
            events.append((name, "\n".join(data)))
    return events


def _assemble_stream(api: str, spec: ModelSpec, text: str) -> dict[str, Any]:
    """The JSON body a non-streamed call would have given, put together from the stream."""
    events = [(name, data) for name, data in sse_events(text) if data != "[DONE]"]
    chunks = []
    for _, data in events:
        try:
            chunks.append(json.loads(data))
        except ValueError:
            raise ProviderError(f"{spec}: unreadable event in the stream: {data[:200]!r}", retryable=True) from None
    if api == "chat.completions":
        return _assemble_chat(chunks)
    if api == "responses":
        done = [c for c in chunks if c.get("type") in ("response.completed", "response.incomplete")]
        if not done:
            raise ProviderError(f"{spec}: the stream ended without response.completed", retryable=True)
        return dict(done[-1].get("response") or {})
    return _assemble_messages(spec, chunks)


def _assemble_chat(chunks: list[dict[str, Any]]) -> dict[str, Any]:
    content: list[str] = []
    calls: dict[int, dict[str, Any]] = {}
    finish = None
    usage = None
    model = None
    seen_choice = False
    for chunk in chunks:
        model = chunk.get("model") or model
        usage = chunk.get("usage") or usage
        for choice in chunk.get("choices") or ():
            if choice.get("index", 0) != 0:
                continue
            seen_choice = True
            delta = choice.get("delta") or {}
            if delta.get("content"):
                content.append(delta["content"])
            for call in delta.get("tool_calls") or ():
                slot = calls.setdefault(int(call.get("index", 0)), {"function": {"name": "", "arguments": ""}})
                function = call.get("function") or {}
                slot["function"]["name"] += function.get("name") or ""
                slot["function"]["arguments"] += function.get("arguments") or ""
            finish = choice.get("finish_reason") or finish
    if not seen_choice:
        return {"choices": [], "model": model}
    message = {"content": "".join(content), "tool_calls": [calls[i] for i in sorted(calls)] or None}
    return {"model": model, "usage": usage, "choices": [{"message": message, "finish_reason": finish}]}


def _assemble_messages(spec: ModelSpec, chunks: list[dict[str, Any]]) -> dict[str, Any]:
    message: dict[str, Any] = {}
    blocks: dict[int, dict[str, Any]] = {}
    partial: dict[int, str] = {}
    for chunk in chunks:
        kind = chunk.get("type")
        if kind == "error":
            raise ProviderError(f"{spec}: the stream carries an error: {chunk.get('error')}", retryable=True)
        if kind == "message_start":
            message = dict(chunk.get("message") or {})
            message["usage"] = dict(message.get("usage") or {})
        elif kind == "content_block_start":
            blocks[int(chunk.get("index", 0))] = dict(chunk.get("content_block") or {})
        elif kind == "content_block_delta":
            index = int(chunk.get("index", 0))
            delta = chunk.get("delta") or {}
            block = blocks.setdefault(index, {"type": "text", "text": ""})
            if delta.get("type") == "text_delta":
                block["text"] = block.get("text", "") + str(delta.get("text") or "")
            elif delta.get("type") == "input_json_delta":
                partial[index] = partial.get(index, "") + str(delta.get("partial_json") or "")
        elif kind == "message_delta":
            delta = chunk.get("delta") or {}
            if delta.get("stop_reason"):
                message["stop_reason"] = delta["stop_reason"]
            message.setdefault("usage", {}).update(chunk.get("usage") or {})
    for index, raw in partial.items():
        try:
            blocks[index]["input"] = json.loads(raw) if raw else {}
        except ValueError:
            blocks[index]["input"] = None
    message["content"] = [blocks[i] for i in sorted(blocks)]
    return message
