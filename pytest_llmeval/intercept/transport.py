"""The seam: ``httpx2.Client.send`` and ``httpx2.AsyncClient.send``, patched for the run.

Why there. openai 3.x and anthropic 2.x send every request through
``SyncAPIClient._send_request`` -> ``self._client.send(request, stream=...)``, where
``_client`` is an ``httpx2.Client`` (or ``AsyncClient``), made by the SDK or passed as
``http_client=``. Replacing ``send`` on those two classes reaches every client instance,
including module-level ones made at import time before the plugin could wrap anything, sync
and async, whatever transport the client was given, without touching the SDKs' private
code (which changes between versions) and without asking the app to change. The request
seen there is complete (URL, headers, JSON body), and the response handed back is a plain
``httpx2.Response``, so the SDK's own parsing and streaming code runs unchanged. The
transport level (what respx patches) would miss clients that bring their own transport.

What is served. Only requests the SDKs build for the model APIs
(:func:`~pytest_llmeval.intercept.routing.classify`), while an intercepting test runs, and
not the plugin's own provider calls (:data:`~pytest_llmeval.calls.caller.PLUGIN_CALL`).
Everything else goes to the original ``send`` untouched.

Retries. The plugin retries (``calls/retry.py``) and answers the SDK with the final
response and ``x-should-retry: false``, which Stainless SDKs honour; a failure without a
response is raised as the plugin's own error, which the SDKs do not retry either.

Patching ``send`` is the plugin's own mechanism, installed once per process on first use
and removed when the run ends; tests never patch anything.
"""

from __future__ import annotations

import os
import threading
import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pytest

from pytest_llmeval.calls.caller import PLUGIN_CALL
from pytest_llmeval.errors import CacheMissError, LLMEvalError, ProviderError
from pytest_llmeval.intercept.exchange import HttpExchange, InterceptedRequest, keyed_headers, messages_of
from pytest_llmeval.intercept.routing import classify, route
from pytest_llmeval.recording import current_record, reset_current, set_current
from pytest_llmeval.store.redaction import PLACEHOLDER_KEYS

if TYPE_CHECKING:
    from pytest_llmeval.calls.caller import Caller
    from pytest_llmeval.models import Completion, ModelSpec
    from pytest_llmeval.recording import CaseRecord

__all__ = ["Interceptor", "Scope", "PLACEHOLDER_KEYS"]

_PLACEHOLDER_VALUES = frozenset(PLACEHOLDER_KEYS.values())


@dataclass
class Scope:
    """The intercepting test running now: where its app's calls are logged and routed."""

    test_id: str
    under_test: ModelSpec | None  # the `llm` fixture's model, when the test uses it
    route: tuple[str, ...]
    sample: int
    tags: list[str]
    record: CaseRecord | None = None
    errors: list[LLMEvalError] = field(default_factory=list)


class _Patch:
    """The process-wide replacement of ``send``: one per process, whatever the runs (pytester)."""

    lock = threading.Lock()
    installed: dict[str, Any] = {}  # "sync" / "async" -> the original send
    owner: Interceptor | None = None


class Interceptor:
    """Serves intercepted SDK requests through the run's :class:`~pytest_llmeval.calls.caller.Caller`."""

    def __init__(self, caller: Caller) -> None:
        self.caller = caller
        self.scope: Scope | None = None
        self._warned: set[str] = set()
        self._errors: dict[str, tuple[int, dict[str, str], bytes]] = {}  # key -> final error response
        self._forward_client: Any = None
        self._env_set: list[str] = []
        self._lock = threading.Lock()

    # -- the run ---------------------------------------------------------------------------
    def install(self) -> None:
        """Replace ``httpx2``'s ``send`` for this run (idempotent)."""
        import httpx2  # an SDK dependency: the run intercepts, so an SDK is there

        with _Patch.lock:
            _Patch.owner = self
            if _Patch.installed:
                return
            sync_send, async_send = httpx2.Client.send, httpx2.AsyncClient.send
            _Patch.installed = {"sync": sync_send, "async": async_send}

            def send(client: Any, request: Any, **kwargs: Any) -> Any:
                owner = _Patch.owner
                if owner is None:
                    return sync_send(client, request, **kwargs)
                if PLUGIN_CALL.get():
                    return sync_send(client, _without_placeholder(request), **kwargs)
                return owner.handle(client, request, kwargs, sync_send)

            async def asend(client: Any, request: Any, **kwargs: Any) -> Any:
                owner = _Patch.owner
                if owner is None:
                    return await async_send(client, request, **kwargs)
                if PLUGIN_CALL.get():
                    return await async_send(client, _without_placeholder(request), **kwargs)
                return await owner.ahandle(client, request, kwargs, async_send)

            send.__doc__ = sync_send.__doc__
            asend.__doc__ = async_send.__doc__
            httpx2.Client.send = send  # type: ignore[method-assign,assignment]
            httpx2.AsyncClient.send = asend  # type: ignore[method-assign,assignment]

    def uninstall(self) -> None:
        """Put ``send`` back and remove the placeholder keys (the end of the run)."""
        with _Patch.lock:
            if _Patch.owner is self and _Patch.installed:
                import httpx2

                httpx2.Client.send = _Patch.installed["sync"]  # type: ignore[method-assign]
                httpx2.AsyncClient.send = _Patch.installed["async"]  # type: ignore[method-assign]
                _Patch.installed = {}
                _Patch.owner = None
        for name in self._env_set:
            if os.environ.get(name) in _PLACEHOLDER_VALUES:
                del os.environ[name]
        self._env_set = []
        if self._forward_client is not None:
            self._forward_client.close()
            self._forward_client = None

    def supply_placeholder_keys(self) -> None:
        """Replay needs no key: SDK clients made at import time must construct all the same."""
        for name, value in PLACEHOLDER_KEYS.items():
            if not os.environ.get(name):
                os.environ[name] = value
                self._env_set.append(name)

    # -- one request -------------------------------------------------------------------------
    def _prepare(self, client: Any, request: Any) -> tuple[InterceptedRequest | None, Scope | None]:
        """The request as the caller takes it, or ``None`` when it is not ours to serve."""
        scope = self.scope
        api = classify(request.method, request.url.path, request.headers) if scope is not None else None
        if scope is None or api is None:
            _refuse_placeholder(request)  # not served: it would go out, and never with the placeholder
            return None, None
        import json

        url = str(request.url)
        try:
            body = json.loads(request.read() or b"{}")  # the SDKs send JSON bytes: nothing to stream
        except ValueError:
            return None, None  # not a JSON model call after all: not ours
        if not isinstance(body, dict):
            return None, None
        path = request.url.path.rstrip("/")
        base = url.split("?", 1)[0].rstrip("/")[: -len(api.suffix)] if path.endswith(api.suffix) else url
        app_model = str(body.get("model") or "")
        target = route(api, app_model, base, under_test=scope.under_test, only=scope.route, where=scope.test_id)
        if target.routed:
            body = {**body, "model": target.model}
        content = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        query = f"?{request.url.query.decode()}" if request.url.query else ""
        headers = [(k, v) for k, v in request.headers.multi_items() if k.lower() not in ("content-length", "host")]
        exchange = HttpExchange(
            api=api.name,
            spec=target.spec,
            url=target.base_url + api.suffix + query,
            method="POST",
            headers=headers,
            content=content,
            stream=bool(body.get("stream")),
            endpoint=target.base_url,
            send=self._sender(client, base),
        )
        intercepted = InterceptedRequest(
            model=target.spec,
            messages=messages_of(api.name, body),
            params={},
            sample=scope.sample,
            endpoint=target.base_url,
            api=api.name + query,
            body=body,
            keyed_headers=keyed_headers(request.headers),
            provider=exchange,
            role="llm" if target.routed else "app",
        )
        key = intercepted.key
        exchange.on_error = lambda status, kept, data: self._errors.__setitem__(key, (status, kept, data))
        return intercepted, scope

    def handle(self, client: Any, request: Any, kwargs: dict[str, Any], original: Any) -> Any:
        """``httpx2.Client.send`` while interception is on."""
        intercepted, scope = self._prepare_or_record(client, request)
        if intercepted is None or scope is None:
            return original(client, request, **kwargs)
        return self._serve(intercepted, scope, request)

    async def ahandle(self, client: Any, request: Any, kwargs: dict[str, Any], original: Any) -> Any:
        """``httpx2.AsyncClient.send`` while interception is on: the call runs in a worker
        thread, so awaits made together are in flight together."""
        intercepted, scope = self._prepare_or_record(client, request)
        if intercepted is None or scope is None:
            return await original(client, request, **kwargs)
        import anyio.to_thread

        return await anyio.to_thread.run_sync(self._serve, intercepted, scope, request)

    def _prepare_or_record(self, client: Any, request: Any) -> tuple[InterceptedRequest | None, Scope | None]:
        try:
            return self._prepare(client, request)
        except LLMEvalError as exc:
            if self.scope is not None:
                self.scope.errors.append(exc)
            raise

    def _serve(self, intercepted: InterceptedRequest, scope: Scope, request: Any) -> Any:
        import httpx2

        token = None
        if current_record() is None and scope.record is not None:
            token = set_current(scope.record)  # a thread the app started itself
        try:
            # A routed call is the model under test's own: it counts in the eval's latency and output.
            completion = self.caller.call(intercepted, test_id=scope.test_id, role=intercepted.role, tags=scope.tags)
        except ProviderError as exc:
            scope.errors.append(exc)
            final = self._errors.pop(intercepted.key, None)
            if final is None:
                raise
            status, headers, data = final
            # The app sees the server's own error through its SDK, which must not retry it.
            return httpx2.Response(
                status, headers={**headers, "x-should-retry": "false"}, content=data, request=request
            )
        except LLMEvalError as exc:
            scope.errors.append(exc)
            raise
        finally:
            if token is not None:
                reset_current(token)
        self._note(scope, intercepted, completion)
        stored = self.caller.lookup(intercepted, completion.key) or {}
        return _response(stored.get("http") or {}, request, completion.latency_s)

    def _note(self, scope: Scope, request: InterceptedRequest, completion: Completion) -> None:
        record = scope.record
        if record is None:
            return
        with self._lock:
            completions = getattr(record, "completions", None)
            if completions is not None:
                completions.append(completion)
            if request.role == "llm":
                record.output = completion.text
                record.prompt = request.messages

    # -- sending -----------------------------------------------------------------------------
    def _sender(self, client: Any, base_url: str) -> Any:
        """How an intercepted request is really sent: through the app's own sync client (its
        transport, proxies and TLS settings), or for an async client through a plain sync one,
        since the caller makes calls from worker threads."""
        import httpx2

        original = _Patch.installed["sync"]
        if isinstance(client, httpx2.Client):
            target = client
        else:
            transport = getattr(client, "_transport", None)
            if transport is not None and type(transport) is not httpx2.AsyncHTTPTransport:
                self._warn_once(
                    type(client).__name__ + type(transport).__name__,
                    f"llmeval: the app's async HTTP client ({type(client).__name__} for {base_url}) uses its own "
                    f"transport ({type(transport).__name__}), which the plugin cannot use from its call threads; "
                    "its intercepted model calls are sent through a standard HTTP client instead",
                )
            target = self._forwarding_client()

        def send(method: str, url: str, headers: list[tuple[str, str]], content: bytes, timeout: float) -> Any:
            if self.caller.mode == "replay":  # defence in depth: the caller never gets here in replay
                raise CacheMissError(f"--llmeval-cache=replay: {url} would be called")
            # The placeholder key is never sent: without it a local server still answers,
            # a real API says that the key is missing.
            headers = [(k, v) for k, v in headers if not _is_placeholder(k, v)]
            req = httpx2.Request(
                method, url, headers=headers, content=content, extensions={"timeout": httpx2.Timeout(timeout).as_dict()}
            )

            def exchange() -> Any:
                resp = original(target, req, stream=True)
                try:
                    return resp.status_code, resp.headers, resp.read()
                finally:
                    resp.close()

            from pytest_llmeval.providers._common import RequestTimeout, within

            try:
                # ``within``: the timeout above bounds each read, not the request (a server
                # that drip-feeds its answer would never trip it), as for the plugin's own calls.
                return within(exchange, timeout)
            except (httpx2.TimeoutException, RequestTimeout):
                raise ProviderError(f"request to {url} timed out", retryable=True) from None
            except httpx2.RequestError as exc:
                raise ProviderError(f"cannot reach {url} ({type(exc).__name__}: {exc})", retryable=True) from None

        return send

    def _forwarding_client(self) -> Any:
        with self._lock:
            if self._forward_client is None:
                import httpx2

                self._forward_client = httpx2.Client(timeout=None, follow_redirects=False)
            return self._forward_client

    def _warn_once(self, key: str, message: str) -> None:
        planner = self.caller.planner
        if key in self._warned or (planner is not None and planner.context is not None):
            return  # a planning run's warnings are dropped: the real run says it
        self._warned.add(key)
        warnings.warn(pytest.PytestWarning(message), stacklevel=2)


_AUTH_HEADERS = ("authorization", "x-api-key", "api-key")


def _is_placeholder(name: str, value: str) -> bool:
    return name.lower() in _AUTH_HEADERS and any(p in value for p in _PLACEHOLDER_VALUES)


def _without_placeholder(request: Any) -> Any:
    """The plugin's own provider call, minus a placeholder key it picked up from the environment."""
    for name in _AUTH_HEADERS:
        if _is_placeholder(name, request.headers.get(name) or ""):
            del request.headers[name]
    return request


def _refuse_placeholder(request: Any) -> None:
    for name in _AUTH_HEADERS:
        if _is_placeholder(name, request.headers.get(name) or ""):
            raise CacheMissError(
                f"no API key is set, and a request to {request.url.host}{request.url.path} carries the placeholder "
                "the plugin supplies so that SDK clients made at import time construct: it is not sent. Only the "
                "model calls of intercepting evals (@pytest.mark.llmeval(intercept=True)) are served from the "
                "store; set a real key to let other requests through"
            )


def _response(http: dict[str, Any], request: Any, latency_s: float) -> Any:
    import datetime
    import json

    import httpx2

    headers = {**(http.get("headers") or {}), "x-should-retry": "false"}
    if "sse" in http:
        content = str(http["sse"]).encode("utf-8")
        headers.setdefault("content-type", "text/event-stream; charset=utf-8")
    else:
        content = json.dumps(http.get("body"), ensure_ascii=False).encode("utf-8")
        headers.setdefault("content-type", "application/json")
    response = httpx2.Response(int(http.get("status") or 200), headers=headers, content=content, request=request)
    response.elapsed = datetime.timedelta(seconds=latency_s)  # set by the transport otherwise; SDKs read it
    return response
