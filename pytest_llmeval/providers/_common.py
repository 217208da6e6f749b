"""Helpers the SDK-backed providers share: the request, error translation and message text."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from pytest_llmeval.errors import ProviderError
from pytest_llmeval.models import ModelSpec, StoredCompletion
from pytest_llmeval.store import redaction
from pytest_llmeval.store.redaction import secrets_in_url, without_credentials

T = TypeVar("T")

_TRANSPORT_ERRORS = frozenset({"ReadError", "WriteError", "RemoteProtocolError", "LocalProtocolError", "NetworkError"})

# Statuses worth another try: rate limits, overload and server faults.
RETRYABLE_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504, 529})


def retry_after_seconds(headers: Any) -> float | None:
    """Seconds to wait from ``retry-after-ms`` or ``retry-after`` (seconds), if given."""
    if headers is None:
        return None
    try:
        ms = headers.get("retry-after-ms")
        if ms is not None:
            return max(0.0, float(ms) / 1000.0)
        value = headers.get("retry-after")
        if value is not None:
            return max(0.0, float(value))
    except (TypeError, ValueError):
        # An HTTP-date Retry-After is rare from these APIs; fall back to our own backoff.
        return None
    return None


def translate_sdk_error(exc: BaseException, *, model: str, endpoint: str) -> ProviderError:
    """Turn an ``openai``/``anthropic`` exception into a :class:`ProviderError`.

    Both SDKs share one exception layout (``APIStatusError`` with ``status_code`` and
    ``response``, ``APIConnectionError``, ``APITimeoutError``), so duck typing covers both.
    The message never includes request headers, where the API key lives, and no secret the
    run knows, nor the endpoint's own credentials, survives in it: a server's error body
    may echo the ``Authorization`` header.
    """
    secrets = secrets_in_url(endpoint)
    endpoint = without_credentials(endpoint)
    error = _translate(exc, model=model, endpoint=endpoint)
    redactor = redaction.Redactor(redaction.current().secrets | set(secrets))
    return ProviderError(
        redactor.redact(str(error)),
        retryable=error.retryable,
        retry_after=error.retry_after,
        status=error.status,
        exhausted=error.exhausted,
    )


def _translate(exc: BaseException, *, model: str, endpoint: str) -> ProviderError:
    """The error before redaction (its message may echo a key: never raise it as it is)."""
    name = type(exc).__name__
    status = getattr(exc, "status_code", None)
    if isinstance(status, int):
        response = getattr(exc, "response", None)
        retry_after = retry_after_seconds(getattr(response, "headers", None))
        detail = _error_detail(exc)
        hint = ""
        # An exhausted quota is a 429 too (OpenAI), or a 400 (Anthropic's "credit balance is
        # too low"), but waiting does not refill it: not retried.
        quota = (status == 429 and _error_code(exc) == "insufficient_quota") or (
            status == 400 and "credit balance is too low" in detail.lower()
        )
        if status == 401:
            hint = " (check the API key)"
        elif status == 403:
            hint = " (the key may not use this endpoint or model)"
        elif status == 404:
            hint = " (check the model name and base URL)"
        elif quota:
            hint = " (the account's quota is used up: check its plan and billing)"
        # A request validation error some servers answer with a 500 (llama-cpp-python's
        # FastAPI app does for a response_format it does not know): the same every time.
        invalid = status >= 500 and "validation error" in detail.lower()
        return ProviderError(
            f"{model}: HTTP {status} from {endpoint}{hint}: {detail}",
            retryable=status in RETRYABLE_STATUS and not quota and not invalid,
            retry_after=retry_after,
            status=status,
            exhausted=quota,
        )
    if "Timeout" in name:
        return ProviderError(f"{model}: request to {endpoint} timed out", retryable=True)
    # The SDKs wrap transport errors in APIConnectionError; the transport's own
    # (ConnectError, ReadError, RemoteProtocolError, ...) can still surface unwrapped, e.g.
    # when the HTTP library was imported twice in one process. Both mean the same thing.
    if "Connect" in name or name in _TRANSPORT_ERRORS:
        cause = exc.__cause__ or exc.__context__
        why = (
            f" ({type(cause).__name__}: {cause})"
            if cause
            else (f" ({name}: {exc})" if "Connection" not in name else "")
        )
        return ProviderError(f"{model}: cannot reach {endpoint}{why}", retryable=True)
    if "ResponseValidation" in name or isinstance(exc, (json.JSONDecodeError, ValueError)):
        return ProviderError(f"{model}: unreadable response from {endpoint}: {exc}", retryable=True)
    return ProviderError(f"{model}: {name}: {exc}")


def _error_code(exc: BaseException) -> str | None:
    """The ``code`` (else ``type``) of an OpenAI-style error body."""
    body = getattr(exc, "body", None)
    err = body.get("error", body) if isinstance(body, dict) else None
    if isinstance(err, dict):
        return str(err.get("code") or err.get("type") or "") or None
    return None


def _error_detail(exc: BaseException) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        err = body.get("error", body)
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"])[:500]
    return str(getattr(exc, "message", exc))[:500]


def parse_json_reply(
    parse: Callable[[dict[str, Any], ModelSpec], StoredCompletion], data: Any, spec: ModelSpec, endpoint: str
) -> StoredCompletion:
    """``parse(data, spec)``; a reply of another shape is an unreadable response (retryable)."""
    try:
        if not isinstance(data, dict):
            raise TypeError(f"expected a JSON object, got {type(data).__name__}")
        return parse(data, spec)
    except (AttributeError, TypeError, ValueError, KeyError, IndexError) as exc:
        raise ProviderError(f"{spec}: unreadable response from {endpoint}: {exc}", retryable=True) from None


def content_text(content: Any) -> str:
    """The text of a message content: a string, or a list of text parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return "" if content is None else str(content)


def add_fields(body: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    """``body`` with every parameter as a field, as the SDK would send it.

    A parameter the SDK has no argument for (``temperature`` in recent Anthropic SDKs, vLLM's
    ``top_k``) reaches the server the same way; an ``extra_body`` is merged in, as the SDK does.
    """
    body.update(params)
    extra = body.get("extra_body")
    if isinstance(extra, dict):  # anything else is sent as it is: the server says what is wrong
        del body["extra_body"]
        body.update(extra)
    return body


def post_json(
    client: Any,
    path: str,
    body: dict[str, Any],
    *,
    spec: ModelSpec,
    endpoint: str,
    parse: Callable[[dict[str, Any], ModelSpec], StoredCompletion],
    timeout: float,
    headers: dict[str, Any] | None = None,
) -> StoredCompletion:
    """POST ``body`` to ``path`` through the SDK ``client``; the reply, parsed by ``parse``.

    ``client.post(path, cast_to=httpx2.Response, body=...)`` is how both SDKs document a
    request they have no typed method for. Here it is the typed method's own request minus
    its typed layers: ``body`` is already the JSON the API takes (built from the neutral
    request), so the SDK's parameter transform, which walks every message against its
    TypedDicts (a third of the SDK's CPU per call, issue 17), is skipped, and the reply is read
    as JSON instead of being built into pydantic objects (only a few fields are kept). The SDK
    still makes the request: key, headers, base URL, proxies, timeouts, its error types.
    """
    import httpx2  # the SDKs' HTTP library: imported with them

    options: dict[str, Any] = {"timeout": timeout}
    if headers:
        options["headers"] = headers
    try:
        # Timed here, after the client exists: the request's own time, without the SDK's
        # import and client start that the first call of a run pays.
        started = time.perf_counter()
        # ``within``: the SDK's timeout bounds each read, not the request (a server that
        # drip-feeds its answer would never trip it).
        http = within(lambda: client.post(path, body=body, cast_to=httpx2.Response, options=options), timeout)
        data = http.json() if http.content else None
        latency = time.perf_counter() - started
    except Exception as exc:  # noqa: BLE001 - every SDK failure becomes a ProviderError
        raise translate_sdk_error(exc, model=str(spec), endpoint=endpoint) from None
    if data is None:
        raise ProviderError(f"{spec}: HTTP {http.status_code} from {endpoint} with an empty body", retryable=True)
    completion = parse_json_reply(parse, data, spec, endpoint)
    completion["latency_s"] = round(latency, 6)
    return completion


class RequestTimeout(TimeoutError):
    """A request that did not end within the seconds left of its call's deadline."""


def within(fn: Callable[[], T], timeout: float) -> T:
    """``fn()``, or :class:`RequestTimeout` once ``timeout`` seconds have passed.

    The SDKs' ``timeout=`` bounds each network operation, not the request: a server that
    sends one byte a second never trips it. So the request runs in another thread and the
    caller stops waiting at the deadline; that thread ends the request by itself (each of
    its reads is bounded by the same timeout). Context variables are carried over to it.
    The threads are reused (:class:`_Runners`): one started per call cost a tenth of a
    millisecond of CPU, and a run's calls are many (issue 17).
    """
    import contextvars

    outcome: list[tuple[bool, Any]] = []
    done = threading.Event()
    context = contextvars.copy_context()

    def run() -> None:
        try:
            outcome.append((True, context.run(fn)))
        except BaseException as exc:  # noqa: BLE001 - handed to the waiting thread as it is
            outcome.append((False, exc))
        finally:
            done.set()

    _RUNNERS.submit(run)
    if not done.wait(max(0.0, timeout)):
        raise RequestTimeout(f"no complete answer within {timeout:.3g} s")
    ok, value = outcome[0]
    if ok:
        return value  # type: ignore[no-any-return]
    raise value


class _Runners:
    """Daemon threads that run :func:`within`'s requests, reused from call to call.

    A task never waits for a thread: when none is idle a new one starts, so the number of
    threads is the most requests ever in flight at once (a request past its deadline keeps
    its thread until its read times out). Daemon threads, so a server that never answers
    cannot hold up the end of the process.
    """

    def __init__(self) -> None:
        import queue

        self._tasks: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._idle = 0

    def submit(self, task: Callable[[], None]) -> None:
        with self._lock:
            start = self._idle == 0
            if not start:
                self._idle -= 1  # that thread will take this task
        if start:
            threading.Thread(target=self._work, name="llmeval-request", daemon=True).start()
        self._tasks.put(task)

    def _work(self) -> None:
        while True:
            self._tasks.get()()  # the task reports its own outcome and never raises
            with self._lock:
                self._idle += 1


_RUNNERS = _Runners()
