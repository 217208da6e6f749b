"""A real HTTP server on 127.0.0.1 that imitates the OpenAI and Anthropic endpoints we call.

Tests never mock the SDKs: they point the real ``openai.OpenAI`` / ``anthropic.Anthropic``
clients (or ``OPENAI_BASE_URL`` / ``ANTHROPIC_BASE_URL`` in a pytester subprocess) at this
server. Chat completions, the Responses API (``/v1/responses``) and Anthropic messages are
served, each also streamed (``stream=True``: server-sent events as the real APIs send them).
Answers come from rules (:meth:`FakeAPI.reply`), failures from :meth:`FakeAPI.fault`
and :meth:`FakeAPI.fault_rate`; everything received is kept in :attr:`FakeAPI.requests`.
Standard library only.

Rule usage ``{"input_tokens", "output_tokens", "cached_input_tokens"}`` is written to the wire
as given: OpenAI ``prompt_tokens`` / ``completion_tokens`` / ``prompt_tokens_details.cached_tokens``,
Anthropic ``input_tokens`` / ``output_tokens`` / ``cache_read_input_tokens``.
"""

from __future__ import annotations

import json
import random
import select
import socket
import struct
import threading
import time
import traceback
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["FakeAPI", "FakeBatch", "Recorded", "FAULT_KINDS", "HOSTILE_KINDS"]

MODEL_PATHS = {"/v1/chat/completions": "openai", "/v1/messages": "anthropic", "/v1/responses": "openai"}
FAULT_KINDS = frozenset({"429", "500", "503", "529", "400", "timeout", "reset", "garbage", "html"})
OPENAI_ROLES = ("system", "developer", "user", "assistant", "tool")
# status -> (OpenAI error type, OpenAI code, Anthropic error type, default message)
_ERRORS: dict[int, tuple[str, str | None, str, str]] = {
    400: ("invalid_request_error", None, "invalid_request_error", "Invalid request (injected)."),
    401: ("invalid_request_error", "invalid_api_key", "authentication_error", "Incorrect API key provided."),
    404: ("invalid_request_error", "unknown_url", "not_found_error", "Unknown request URL."),
    429: ("requests", "rate_limit_exceeded", "rate_limit_error", "Rate limit reached (injected)."),
    500: ("server_error", None, "api_error", "The server had an error (injected)."),
    503: ("server_error", None, "api_error", "Service unavailable (injected)."),
    529: ("server_error", None, "overloaded_error", "Overloaded (injected)."),
}
_GARBAGE = b"<html><body>502 Bad Gateway</body></html> {not json"


@dataclass
class Recorded:
    """One request as received. ``status`` is 0 while pending or when no response was sent."""

    provider: str  # "openai" | "anthropic" (guessed from headers for unknown paths)
    path: str
    headers: dict[str, str]  # lower-case names
    body: Any  # parsed JSON, or None
    status: int = 0
    fault: str | None = None  # the injected fault kind, if any


@dataclass
class _Fault:
    kind: str
    remaining: int = 1
    when: str | None = None
    provider: str | None = None
    retry_after: float | None = None
    retry_after_ms: int | None = None
    hang: float = 30.0


class _BadRequest(Exception):
    """Raised by validation; becomes a 400 in the provider's error shape."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


def _text_of(content: Any) -> str:
    """Text of a message content: a plain string, or the concatenation of its text parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") in ("text", "input_text")
        )
    return ""


def _input_messages(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The conversation of a request: ``messages``, or the Responses API's ``input``."""
    if "messages" in body:
        return body["messages"]
    given = body.get("input")
    if isinstance(given, str):
        return [{"role": "user", "content": given}]
    return [m for m in given or () if isinstance(m, dict)]


def _last_user_text(body: dict[str, Any]) -> str:
    users = [m for m in _input_messages(body) if m.get("role") == "user"]
    return _text_of(users[-1].get("content")) if users else ""


def _is_content(content: Any) -> bool:
    return isinstance(content, str) or (
        isinstance(content, list) and all(isinstance(p, dict) and "type" in p for p in content)
    )


# ----- batch endpoints (OpenAI Batch + files, Anthropic Message Batches) ------------------------
# A separate block: the FakeAPI class below mixes it in; the model endpoints above know nothing of
# it but one routing line in FakeAPI._handle_one.

_BATCH_PREFIXES = ("/v1/files", "/v1/batches", "/v1/messages/batches")


@dataclass
class _BatchError:
    when: str
    message: str
    status: int = 400
    provider: str | None = None


@dataclass
class FakeBatch:
    """One batch as the fake server keeps it (``lines``: the requests, in submission order)."""

    id: str
    provider: str  # "openai" | "anthropic"
    lines: list[dict[str, Any]]
    created: float  # time.monotonic() at creation
    created_at: int  # wall-clock seconds, as the APIs report it
    delay: float
    state: str = "in_progress"  # in_progress | ended | expired | cancelled
    results: dict[str, dict[str, Any]] | None = None  # custom_id -> outcome, once ended
    output_file_id: str | None = None
    error_file_id: str | None = None
    retrieves: int = 0
    input_file_id: str | None = None


class _BatchEndpoints:
    """Mixed into :class:`FakeAPI`: the batch endpoints as the ``openai`` and ``anthropic`` SDKs call them.

    A batch ends ``batch_delay`` seconds after it was created (checked whenever it is retrieved);
    its answers come from the same rules as live calls, at that moment. :meth:`batch_error` makes
    matching requests of a batch fail one by one; :meth:`expire_batches` and
    :meth:`cancel_batches` end pending batches the way the providers do.
    """

    _lock: threading.Lock
    _requests: list[Recorded]

    def _batch_init(self) -> None:
        #: Seconds from a batch's creation until it has ended.
        self.batch_delay = 0.0
        self._batches: dict[str, FakeBatch] = {}
        self._files: dict[str, bytes] = {}
        self._batch_errors: list[_BatchError] = []

    # ----- configuration -------------------------------------------------------------------
    @property
    def batches(self) -> list[FakeBatch]:
        """Every batch created, in creation order."""
        with self._lock:
            return list(self._batches.values())

    def batch_requests(self) -> list[Recorded]:
        """The requests received on the batch and file endpoints."""
        with self._lock:
            return [r for r in self._requests if r.path.startswith(_BATCH_PREFIXES)]

    def batch_error(self, when: str, message: str = "Invalid request (injected).", *, status: int = 400,
                    provider: str | None = None) -> None:  # fmt: skip
        """Inside batches, requests whose last user text contains ``when`` fail with ``message``."""
        with self._lock:
            self._batch_errors.append(_BatchError(when, message, status, provider))

    def expire_batches(self, *, except_when: str | None = None) -> int:
        """End every pending batch as expired; requests whose text contains ``except_when`` are
        answered first (a partly done batch). Returns how many batches expired."""
        return self._end_pending("expired", except_when)

    def cancel_batches(self) -> int:
        """End every pending batch as cancelled (as if cancelled elsewhere)."""
        return self._end_pending("cancelled", None)

    # ----- routing -------------------------------------------------------------------------
    def _batch_handle(self, h: _Handler, rec: Recorded, path: str, raw: bytes | None) -> None:
        parts = path.split("/")[2:]  # after "", "v1"
        method = h.command
        try:
            if parts[0] == "files":
                if method == "POST" and len(parts) == 1:
                    return self._file_upload(h, rec, raw or b"")
                if method == "GET" and len(parts) == 3 and parts[2] == "content":
                    data = self._files.get(parts[1])
                    if data is None:
                        return self._error(h, rec, 404, f"No such File object: {parts[1]}")
                    return self._send(h, rec, 200, data, ctype="application/octet-stream")
            elif parts[0] == "batches":
                if method == "POST" and len(parts) == 1:
                    return self._openai_batch_create(h, rec)
                if len(parts) >= 2:
                    batch = self._batch_get(parts[1], "openai")
                    if batch is None:
                        return self._error(h, rec, 404, f"No batch found with id '{parts[1]}'.")
                    if method == "POST" and parts[2:] == ["cancel"]:
                        self._batch_cancel(batch)
                    return self._send(h, rec, 200, json.dumps(self._openai_batch_json(batch)).encode())
            elif parts[:2] == ["messages", "batches"]:
                if method == "POST" and len(parts) == 2:
                    return self._anthropic_batch_create(h, rec)
                if len(parts) >= 3:
                    batch = self._batch_get(parts[2], "anthropic")
                    if batch is None:
                        return self._error(h, rec, 404, f"No batch found with id '{parts[2]}'.")
                    if method == "POST" and parts[3:] == ["cancel"]:
                        self._batch_cancel(batch)
                    elif method == "GET" and parts[3:] == ["results"]:
                        if batch.results is None:
                            return self._error(h, rec, 400, "The batch is still processing.")
                        lines = [json.dumps({"custom_id": cid, "result": out}) for cid, out in batch.results.items()]
                        return self._send(h, rec, 200, ("\n".join(lines) + "\n").encode(), ctype="application/binary")
                    return self._send(h, rec, 200, json.dumps(self._anthropic_batch_json(batch, h)).encode())
        except _BadRequest as exc:
            return self._error(h, rec, 400, str(exc), exc.param)
        return self._error(h, rec, 404, f"Unknown request URL: {method} {h.path}")

    # ----- OpenAI --------------------------------------------------------------------------
    def _file_upload(self, h: _Handler, rec: Recorded, raw: bytes) -> None:
        from email.parser import BytesParser
        from email.policy import HTTP

        ctype = rec.headers.get("content-type", "")
        message = BytesParser(policy=HTTP).parsebytes(b"Content-Type: " + ctype.encode() + b"\r\n\r\n" + raw)
        fields: dict[str, bytes] = {}
        filename = "upload"
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            fields[str(name)] = part.get_payload(decode=True) or b""
            filename = part.get_filename() or filename
        if "file" not in fields or fields.get("purpose") != b"batch":
            raise _BadRequest("expected a multipart upload with a file and purpose=batch", "file")
        file_id = "file-" + uuid.uuid4().hex[:24]
        with self._lock:
            self._files[file_id] = fields["file"]
        obj = {"id": file_id, "object": "file", "bytes": len(fields["file"]), "created_at": int(time.time()),
               "filename": filename, "purpose": "batch", "status": "processed"}  # fmt: skip
        self._send(h, rec, 200, json.dumps(obj).encode())

    def _openai_batch_create(self, h: _Handler, rec: Recorded) -> None:
        body = rec.body if isinstance(rec.body, dict) else {}
        data = self._files.get(str(body.get("input_file_id")))
        if data is None:
            raise _BadRequest(f"Invalid 'input_file_id': {body.get('input_file_id')!r}.", "input_file_id")
        if body.get("endpoint") != "/v1/chat/completions" or body.get("completion_window") != "24h":
            raise _BadRequest("FakeAPI batches support endpoint /v1/chat/completions, window 24h", "endpoint")
        lines = [json.loads(line) for line in data.decode().splitlines() if line.strip()]
        batch = self._batch_new("batch_", "openai", lines)
        batch.input_file_id = body["input_file_id"]
        self._send(h, rec, 200, json.dumps(self._openai_batch_json(batch)).encode())

    def _openai_batch_json(self, batch: FakeBatch) -> dict[str, Any]:
        results = batch.results or {}
        completed = sum(1 for r in results.values() if r["type"] == "succeeded")
        failed = sum(1 for r in results.values() if r["type"] == "errored")
        status = {"ended": "completed"}.get(batch.state, batch.state)
        return {
            "id": batch.id, "object": "batch", "endpoint": "/v1/chat/completions", "errors": None,
            "input_file_id": batch.input_file_id, "completion_window": "24h", "status": status,
            "output_file_id": batch.output_file_id, "error_file_id": batch.error_file_id,
            "created_at": batch.created_at, "metadata": None,
            "request_counts": {"total": len(batch.lines), "completed": completed, "failed": failed},
        }  # fmt: skip

    # ----- Anthropic -----------------------------------------------------------------------
    def _anthropic_batch_create(self, h: _Handler, rec: Recorded) -> None:
        body = rec.body if isinstance(rec.body, dict) else {}
        requests = body.get("requests")
        if not isinstance(requests, list) or not requests:
            raise _BadRequest("requests: at least one request is required")
        ids = [r.get("custom_id") for r in requests]
        if len(set(ids)) != len(ids) or not all(isinstance(i, str) and 0 < len(i) <= 64 for i in ids):
            raise _BadRequest("requests: custom_id values must be unique strings of 1 to 64 characters")
        batch = self._batch_new("msgbatch_", "anthropic", requests)
        self._send(h, rec, 200, json.dumps(self._anthropic_batch_json(batch, h)).encode())

    def _anthropic_batch_json(self, batch: FakeBatch, h: _Handler) -> dict[str, Any]:
        results = batch.results or {}
        counts = {k: 0 for k in ("processing", "succeeded", "errored", "canceled", "expired")}
        for out in results.values():
            counts[out["type"]] += 1
        counts["processing"] = len(batch.lines) - len(results)
        host = h.headers.get("host", "127.0.0.1")
        return {
            "id": batch.id, "type": "message_batch",
            "processing_status": "in_progress" if batch.results is None else "ended",
            "request_counts": counts, "created_at": _iso(batch.created_at), "expires_at": _iso(batch.created_at + 86400),
            "ended_at": None if batch.results is None else _iso(time.time()), "archived_at": None,
            "cancel_initiated_at": None,
            "results_url": None if batch.results is None else f"http://{host}/v1/messages/batches/{batch.id}/results",
        }  # fmt: skip

    # ----- shared --------------------------------------------------------------------------
    def _batch_new(self, prefix: str, provider: str, lines: list[dict[str, Any]]) -> FakeBatch:
        batch = FakeBatch(prefix + uuid.uuid4().hex[:20], provider, lines, time.monotonic(), int(time.time()),
                          self.batch_delay)  # fmt: skip
        with self._lock:
            self._batches[batch.id] = batch
        return batch

    def _batch_get(self, batch_id: str, provider: str) -> FakeBatch | None:
        with self._lock:
            batch = self._batches.get(batch_id)
        if batch is None or batch.provider != provider:
            return None
        batch.retrieves += 1
        if batch.results is None and time.monotonic() - batch.created >= batch.delay:
            self._batch_finish(batch, "ended", None)
        return batch

    def _batch_cancel(self, batch: FakeBatch) -> None:
        if batch.results is None:
            self._batch_finish(batch, "cancelled", None)

    def _end_pending(self, state: str, except_when: str | None) -> int:
        pending = [b for b in self.batches if b.results is None]
        for batch in pending:
            self._batch_finish(batch, state, except_when)
        return len(pending)

    def _batch_finish(self, batch: FakeBatch, state: str, answered_when: str | None) -> None:
        """Work out every request's outcome: answered, errored, or missing (expired/cancelled)."""
        results: dict[str, dict[str, Any]] = {}
        for line in batch.lines:
            body = line.get("body") if batch.provider == "openai" else line.get("params")
            text = _last_user_text(body) if isinstance(body, dict) and isinstance(body.get("messages"), list) else ""
            if state != "ended" and (answered_when is None or answered_when not in text):
                results[line["custom_id"]] = {"type": "expired" if state == "expired" else "canceled"}
                continue
            results[line["custom_id"]] = self._batch_outcome(batch.provider, body, text)
        with self._lock:
            batch.state = state
            batch.results = results
            if batch.provider == "openai":
                out = [self._openai_line(cid, r) for cid, r in results.items() if r["type"] == "succeeded"]
                err = [self._openai_line(cid, r) for cid, r in results.items() if r["type"] != "succeeded"]
                if out:
                    batch.output_file_id = "file-" + uuid.uuid4().hex[:24]
                    self._files[batch.output_file_id] = "".join(json.dumps(x) + "\n" for x in out).encode()
                if err:
                    batch.error_file_id = "file-" + uuid.uuid4().hex[:24]
                    self._files[batch.error_file_id] = "".join(json.dumps(x) + "\n" for x in err).encode()

    def _batch_outcome(self, provider: str, body: Any, text: str) -> dict[str, Any]:
        fake: Any = self
        with self._lock:
            errors = [e for e in self._batch_errors if e.provider in (None, provider) and e.when in text]
        try:
            (fake._validate_openai if provider == "openai" else fake._validate_anthropic)(body)
            if errors:
                raise _BadRequest(errors[-1].message)
        except _BadRequest as exc:
            kind = "invalid_request_error"
            return {"type": "errored", "error": {"type": "error", "error": {"type": kind, "message": str(exc)}}}
        ans = fake._answer(body, provider, text)
        if provider == "openai":
            return {"type": "succeeded", "message": fake._openai_response(body, ans)}
        return {"type": "succeeded", "message": fake._anthropic_response(body, ans)}

    @staticmethod
    def _openai_line(custom_id: str, result: dict[str, Any]) -> dict[str, Any]:
        line: dict[str, Any] = {"id": "batch_req_" + uuid.uuid4().hex[:20], "custom_id": custom_id}
        if result["type"] == "succeeded":
            line["response"] = {"status_code": 200, "request_id": "req_" + uuid.uuid4().hex, "body": result["message"]}
            line["error"] = None
        elif result["type"] == "errored":
            message = result["error"]["error"]["message"]
            line["response"] = {"status_code": 400, "request_id": "req_" + uuid.uuid4().hex,
                                "body": {"error": {"message": message, "type": "invalid_request_error"}}}  # fmt: skip
            line["error"] = None
        else:
            line["response"] = None
            code = "batch_expired" if result["type"] == "expired" else "batch_cancelled"
            line["error"] = {
                "code": code,
                "message": f"This request could not be executed before the batch {result['type']}.",
            }
        return line


def _iso(seconds: float) -> str:
    import datetime as _dt

    return _dt.datetime.fromtimestamp(seconds, _dt.timezone.utc).isoformat().replace("+00:00", "Z")


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # a hung handler must never keep the interpreter alive
    block_on_close = False  # server_close() must not join handler threads
    request_queue_size = 256  # 64+ simultaneous connects would overflow the default backlog of 5
    fake: FakeAPI

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Stay quiet: clients dropping connections (timeouts, resets) is normal here."""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the SDKs' connection pools expect
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        """No request logging to stderr."""

    def setup(self) -> None:
        super().setup()
        # Headers and body are separate writes; without NODELAY, Nagle + delayed ACK cost ~40 ms a request.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.fake._track(self.connection, add=True)

    def finish(self) -> None:
        try:
            super().finish()
        except OSError:
            pass
        self.server.fake._track(self.connection, add=False)

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        self.server.fake._handle(self, self.rfile.read(length) if length else b"")

    def do_GET(self) -> None:
        self.server.fake._handle(self, None)

    do_PUT = do_PATCH = do_POST
    do_DELETE = do_GET


# ----- hostile servers (issue 15): empty 200s, outages, drip-feeding, quota and auth errors -----
# One block, mixed into FakeAPI: the fault machinery below reaches it through three one-line
# hooks (FakeAPI._take_fault, FakeAPI._fail, FakeAPI.clear).

#: What :meth:`FakeAPI.hostile` can make the next matching requests get.
HOSTILE_KINDS = frozenset(
    {
        "empty",  # 200 with `{}`
        "no-content",  # 200; OpenAI `choices: []`, Anthropic `content: []`
        "null-content",  # 200; OpenAI `message.content: null` (no tool call, no refusal), Anthropic `content: null`
        "blank-choice",  # 200; OpenAI `choices: [{}]`, Anthropic `content: [{}]`
        "error-200",  # 200 carrying the provider's error object
        "299",  # a 2xx other than 200, with no body
        "drip",  # a right answer, one byte every `interval` seconds (status line and headers included)
        "quota",  # 429 insufficient_quota: not a rate limit, the account has no credit left
        "credit",  # Anthropic's 400 "Your credit balance is too low": the same, as Anthropic says it
        "401",  # the key is rejected
        "401-echo",  # the key is rejected and the error echoes the Authorization header back
        "403",  # the key may not use this endpoint or model
        "no-schema-500",  # a JSON-schema response_format gets HTTP 500, as llama-cpp-python's server answers it
        "no-schema-400",  # a JSON-schema response_format gets HTTP 400; other requests are answered
        "no-format-400",  # any response_format but text gets HTTP 400; other requests are answered
    }
)
_HOSTILE_STATUS = {"401": 401, "401-echo": 401, "403": 403, "quota": 429, "credit": 400}
_HOSTILE_MESSAGE = {
    400: "Your credit balance is too low to access the Anthropic API. Please go to Plans & Billing to upgrade or purchase credits.",
    401: "Incorrect API key provided.",
    403: "Your API key does not have permission to use the specified resource.",
    429: "You exceeded your current quota, please check your plan and billing details.",
}


@dataclass
class _Hostile(_Fault):
    interval: float = 1.0  # "drip": seconds between two bytes


@dataclass
class _Outage:
    seconds: float
    status: int
    provider: str | None
    until: float | None = None  # time.monotonic() at which it ends; set by the first request


class _HostileServer:
    """The hostile behaviours of :class:`FakeAPI` (a mixin: it uses FakeAPI's lock, faults and sender)."""

    _lock: threading.Lock
    _faults: list[_Fault]
    _stopping: threading.Event

    def hostile(
        self, kind: str, *, count: int = 1, when: str | None = None, provider: str | None = None, interval: float = 1.0
    ) -> None:
        """Make the next ``count`` matching valid model requests get ``kind`` (see HOSTILE_KINDS).

        ``interval``: for "drip", the seconds between two bytes of the answer.
        """
        if kind not in HOSTILE_KINDS:
            raise ValueError(f"unknown hostile kind {kind!r}; expected one of {sorted(HOSTILE_KINDS)}")
        with self._lock:
            self._faults.append(_Hostile(kind, count, when, provider, interval=interval))

    def outage(self, seconds: float, *, status: int = 503, provider: str | None = None) -> None:
        """Answer every model request with ``status`` for ``seconds`` from the first one that
        comes (a server starting up, however long the client takes to start).

        For "the first N requests", ``fault("503", count=N)`` does it.
        """
        with self._lock:
            self._outage_list().append(_Outage(seconds, status, provider))

    def _outage_list(self) -> list[_Outage]:
        return self.__dict__.setdefault("_outages", [])

    def _take_outage(self, provider: str) -> _Fault | None:
        """The fault of an outage in progress, if any (``self._lock`` held)."""
        outages = self._outage_list()
        now = time.monotonic()
        for outage in outages:
            if outage.provider in (None, provider) and outage.until is None:
                outage.until = now + outage.seconds
        outages[:] = [o for o in outages if o.until is None or o.until > now]
        for outage in outages:
            if outage.provider in (None, provider):
                return _Fault(str(outage.status))
        return None

    def _clear_hostile(self) -> None:
        self._outage_list().clear()
        # Answers still being drip-fed stop: a client thread that gave up at its deadline may
        # still be reading, and the next test must not see that request in flight.
        self.__dict__["_epoch"] = self.__dict__.get("_epoch", 0) + 1

    def _fail_hostile(self, h: _Handler, rec: Recorded, flt: _Hostile) -> None:
        fake: Any = self  # the FakeAPI this is mixed into
        anthropic = rec.provider == "anthropic"
        kind = flt.kind
        body: Any
        if kind in _HOSTILE_STATUS:
            status = _HOSTILE_STATUS[kind]
            message = _HOSTILE_MESSAGE[status]
            if kind == "401-echo":  # as some proxies do: the request's own header, verbatim
                message += f" Received header: Authorization: {rec.headers.get('authorization', '')}"
            if anthropic:
                kinds = {
                    400: "invalid_request_error",
                    401: "authentication_error",
                    403: "permission_error",
                    429: "rate_limit_error",
                }
                body = {"type": "error", "error": {"type": kinds[status], "message": message}}
            else:
                code = {
                    400: "invalid_request_error",
                    401: "invalid_api_key",
                    403: "unsupported_country_region_territory",
                    429: "insufficient_quota",
                }
                kinds = {400: "invalid_request_error", 401: "invalid_request_error", 403: "invalid_request_error"}
                kinds[429] = "insufficient_quota"
                body = {"error": {"message": message, "type": kinds[status], "param": None, "code": code[status]}}
            return fake._send(h, rec, status, json.dumps(body).encode())
        if kind == "299":
            return fake._send(h, rec, 299, b"")
        if kind.startswith(("no-schema", "no-format")):
            rejected = ("json_schema",) if kind.startswith("no-schema") else ("json_schema", "json_object")
            return self._reject_schema(h, rec, 500 if kind == "no-schema-500" else 400, rejected)
        if kind == "drip":
            return self._drip(h, rec, flt.interval)
        if kind == "error-200":
            if anthropic:
                body = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
            else:
                body = {
                    "error": {"message": "The server had an error processing your request.", "type": "server_error"}
                }
        elif kind == "empty":
            body = {}
        elif anthropic:
            body = fake._anthropic_response(rec.body, {"text": "x"})
            body["content"] = {"no-content": [], "null-content": None, "blank-choice": [{}]}[kind]
        else:
            body = fake._openai_response(rec.body, {"text": "x"})
            if kind == "no-content":
                body["choices"] = []
            elif kind == "blank-choice":
                body["choices"] = [{}]
            else:  # null-content
                body["choices"][0]["message"].update(content=None, refusal=None, tool_calls=None)
        fake._send(h, rec, 200, json.dumps(body).encode())

    def _reject_schema(self, h: _Handler, rec: Recorded, status: int, rejected: tuple[str, ...]) -> None:
        """A server that does not know the response formats ``rejected``."""
        fake: Any = self
        if ((rec.body or {}).get("response_format") or {}).get("type") not in rejected:
            ans = fake._answer(rec.body, rec.provider, _last_user_text(rec.body))
            make = fake._anthropic_response if rec.provider == "anthropic" else fake._openai_response
            return fake._send(h, rec, 200, json.dumps(make(rec.body, ans)).encode())
        # llama-cpp-python's wording (a FastAPI validation error it reports as a 500).
        message = (
            "1 validation error:\n  {'type': 'literal_error', 'loc': ('body', 'response_format', 'type'), "
            "'msg': \"Input should be 'text' or 'json_object'\", 'input': 'json_schema'}"
        )
        kind = "internal_server_error" if status == 500 else "invalid_request_error"
        body = {"error": {"message": message, "type": kind, "param": "response_format", "code": None}}
        fake._send(h, rec, status, json.dumps(body).encode())

    def _drip(self, h: _Handler, rec: Recorded, interval: float) -> None:
        """A right answer sent one byte at a time: no single read waits longer than ``interval``."""
        fake: Any = self
        ans = fake._answer(rec.body, rec.provider, _last_user_text(rec.body))
        make = fake._anthropic_response if rec.provider == "anthropic" else fake._openai_response
        data = json.dumps(make(rec.body, ans)).encode()
        head = f"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {len(data)}\r\n\r\n"
        wire = head.encode() + data
        h.close_connection = True
        rec.status = 200
        epoch = self.__dict__.get("_epoch", 0)
        try:
            for i in range(len(wire)):
                if self._stopping.wait(interval) or self.__dict__.get("_epoch", 0) != epoch:
                    return
                h.wfile.write(wire[i : i + 1])
                h.wfile.flush()
        except OSError:  # the client gave up: what a deadline is for
            pass


class FakeAPI(_BatchEndpoints, _HostileServer):
    """Imitation OpenAI + Anthropic HTTP API on an ephemeral 127.0.0.1 port; thread-safe.

    ``with FakeAPI() as api: openai.OpenAI(api_key="k", base_url=api.openai_base_url)``.
    """

    def __init__(self, *, latency: float = 0.0, require_key: str | None = None) -> None:
        self.latency = latency
        self.require_key = require_key
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._requests: list[Recorded] = []
        self._rules: list[tuple[Any, str | None, str | None]] = []  # (answer, when, provider)
        self._faults: list[_Fault] = []
        self._rate: tuple[float, list[str], random.Random, float | None] | None = None
        self._conns: set[socket.socket] = set()
        self._server: _Server | None = None
        self._in_flight = 0
        #: The most requests that were being handled at one moment (concurrency, without a clock).
        self.peak_in_flight = 0
        self._batch_init()  # the batch endpoints' state (see _BatchEndpoints)

    # ----- lifecycle -------------------------------------------------------------------------
    def start(self) -> FakeAPI:
        """Bind an ephemeral port and serve from a daemon thread (no-op when already started)."""
        if self._server is None:
            self._stopping.clear()
            self._server = _Server(("127.0.0.1", 0), _Handler)
            self._server.fake = self
            # A short poll interval keeps stop() fast.
            threading.Thread(
                target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="FakeAPI", daemon=True
            ).start()
        return self

    def stop(self) -> None:
        """Stop serving; hanging requests and idle keep-alive connections are released at once."""
        server, self._server = self._server, None
        if server is None:
            return
        self._stopping.set()
        server.shutdown()
        server.server_close()
        with self._lock:
            conns = list(self._conns)
        for conn in conns:  # wakes handler threads blocked reading the next keep-alive request
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def __enter__(self) -> FakeAPI:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        if self._server is None:
            raise RuntimeError("FakeAPI is not started")
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def openai_base_url(self) -> str:
        """What ``OPENAI_BASE_URL`` / ``openai.OpenAI(base_url=)`` takes."""
        return self.url + "/v1"

    @property
    def anthropic_base_url(self) -> str:
        """What ``ANTHROPIC_BASE_URL`` takes (the SDK appends ``/v1/messages`` itself)."""
        return self.url

    # ----- configuration ---------------------------------------------------------------------
    @property
    def requests(self) -> list[Recorded]:
        """Every request received, in arrival order (a copy)."""
        with self._lock:
            return list(self._requests)

    def count(self, provider: str | None = None) -> int:
        """Number of model requests received (faulted and rejected ones included)."""
        with self._lock:
            return sum(1 for r in self._requests if r.path in MODEL_PATHS and provider in (None, r.provider))

    def reply(self, answer: Any, *, when: str | None = None, provider: str | None = None) -> None:
        """Add an answer rule; later rules win. ``answer``: str, dict, or callable(body) -> str | dict.

        ``when`` must occur in the last user message's text; ``provider`` limits the rule to one API.
        """
        with self._lock:
            self._rules.append((answer, when, provider))

    def fault(
        self,
        kind: str,
        *,
        count: int = 1,
        when: str | None = None,
        retry_after: float | None = None,
        retry_after_ms: int | None = None,
        hang: float = 30.0,
        provider: str | None = None,
    ) -> None:
        """Make the next ``count`` matching valid model requests fail with ``kind`` (see FAULT_KINDS).

        "garbage" is a 200 claiming JSON that is not; "html" a 200 ``text/html`` page; "timeout"
        answers nothing for ``hang`` seconds (or until the client or the server gives up).
        """
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; expected one of {sorted(FAULT_KINDS)}")
        with self._lock:
            self._faults.append(_Fault(kind, count, when, provider, retry_after, retry_after_ms, hang))

    def fault_rate(self, rate: float, kinds: list[str], *, seed: int = 0, retry_after: float | None = None) -> None:
        """Fail each request with probability ``rate``; the sequence of draws is fixed by ``seed``."""
        if bad := set(kinds) - FAULT_KINDS:
            raise ValueError(f"unknown fault kinds {sorted(bad)}")
        with self._lock:
            self._rate = (rate, list(kinds), random.Random(seed), retry_after) if rate > 0 and kinds else None

    def clear(self) -> None:
        """Drop rules, faults and recorded requests; latency back to 0."""
        with self._lock:
            self._rules.clear()
            self._faults.clear()
            self._requests.clear()
            self._rate = None
            self.latency = 0.0
            self.peak_in_flight = 0
            self._clear_hostile()
        self._batch_init()

    # ----- request handling ------------------------------------------------------------------
    def _track(self, conn: socket.socket, *, add: bool) -> None:
        with self._lock:
            (self._conns.add if add else self._conns.discard)(conn)

    def _handle(self, h: _Handler, raw: bytes | None) -> None:
        with self._lock:
            self._in_flight += 1
            self.peak_in_flight = max(self.peak_in_flight, self._in_flight)
        try:
            self._handle_one(h, raw)
        finally:
            with self._lock:
                self._in_flight -= 1

    def _handle_one(self, h: _Handler, raw: bytes | None) -> None:
        path = h.path.split("?", 1)[0].rstrip("/")
        headers = {k.lower(): v for k, v in h.headers.items()}
        provider = MODEL_PATHS.get(path) or ("anthropic" if "anthropic-version" in headers else "openai")
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = None
        rec = Recorded(provider, path, headers, body)
        with self._lock:
            self._requests.append(rec)
        if self.latency > 0:
            self._stopping.wait(self.latency)
        if path.startswith(_BATCH_PREFIXES):
            return self._batch_handle(h, rec, path, raw)
        if path not in MODEL_PATHS or h.command != "POST":
            return self._error(h, rec, 404, f"Unknown request URL: {h.command} {h.path}")
        if self.require_key is not None:
            # anthropic 2.x sends api_key as `authorization: Bearer`; older SDKs as `x-api-key`.
            ok = headers.get("authorization") == f"Bearer {self.require_key}"
            if not ok and not (provider == "anthropic" and headers.get("x-api-key") == self.require_key):
                return self._error(h, rec, 401, None)
        validate = {"/v1/responses": self._validate_responses, "/v1/messages": self._validate_anthropic}
        try:
            validate.get(path, self._validate_openai)(body)
        except _BadRequest as exc:
            return self._error(h, rec, 400, str(exc), exc.param)
        user_text = _last_user_text(body)
        if flt := self._take_fault(provider, user_text):
            rec.fault = flt.kind
            return self._fail(h, rec, flt)
        try:
            ans = self._answer(body, provider, user_text)
            if path == "/v1/responses":
                payload = self._responses_response(body, ans)
            elif provider == "openai":
                payload = self._openai_response(body, ans)
            else:
                payload = self._anthropic_response(body, ans)
        except Exception as exc:  # a broken rule should fail the test loudly, with its traceback
            return self._error(h, rec, 500, f"FakeAPI rule failed: {exc!r}\n{traceback.format_exc()}")
        if body.get("stream"):
            events = {"/v1/responses": _responses_events, "/v1/messages": _anthropic_events}.get(path, _openai_events)
            return self._send(h, rec, 200, events(body, payload), ctype="text/event-stream; charset=utf-8")
        self._send(h, rec, 200, json.dumps(payload).encode())

    def _take_fault(self, provider: str, user_text: str) -> _Fault | None:
        with self._lock:
            if outage := self._take_outage(provider):
                return outage
            for flt in self._faults:
                if flt.provider in (None, provider) and (flt.when is None or flt.when in user_text):
                    flt.remaining -= 1
                    if flt.remaining <= 0:
                        self._faults.remove(flt)
                    return flt
            if self._rate:
                rate, kinds, rng, retry_after = self._rate
                if rng.random() < rate:
                    return _Fault(rng.choice(kinds), retry_after=retry_after)
        return None

    def _fail(self, h: _Handler, rec: Recorded, flt: _Fault) -> None:
        if isinstance(flt, _Hostile):
            return self._fail_hostile(h, rec, flt)
        if flt.kind in ECHO_AUTH_KINDS:
            return self._fail_echoing_auth(h, rec, flt)
        if flt.kind == "reset":
            h.close_connection = True
            # SO_LINGER 0 makes close() send RST; rfile holds a reference that would defer the close.
            h.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            h.rfile.close()
            h.connection.close()
        elif flt.kind == "timeout":
            h.close_connection = True
            deadline = time.monotonic() + flt.hang
            while not self._stopping.is_set() and time.monotonic() < deadline:
                # Stop hanging once the client gives up (EOF), so idle threads do not pile up.
                if select.select([h.connection], [], [], 0.05)[0] and not h.connection.recv(1, socket.MSG_PEEK):
                    break
        elif flt.kind in ("garbage", "html"):
            self._send(h, rec, 200, _GARBAGE, ctype="application/json" if flt.kind == "garbage" else "text/html")
        else:
            extra: dict[str, str] = {}
            if flt.retry_after is not None:
                extra["retry-after"] = f"{flt.retry_after:g}"
            if flt.retry_after_ms is not None:
                extra["retry-after-ms"] = str(flt.retry_after_ms)
            self._error(h, rec, int(flt.kind), None, headers=extra)

    def _error(
        self, h: _Handler, rec: Recorded, status: int, message: str | None, param: str | None = None, **kw: Any
    ) -> None:
        oa_type, oa_code, an_type, default = _ERRORS[status]
        if rec.provider == "anthropic":
            body: dict[str, Any] = {"type": "error", "error": {"type": an_type, "message": message or default}}
        else:
            body = {"error": {"message": message or default, "type": oa_type, "param": param, "code": oa_code}}
        self._send(h, rec, status, json.dumps(body).encode(), **kw)

    def _send(
        self,
        h: _Handler,
        rec: Recorded,
        status: int,
        data: bytes,
        headers: dict[str, str] | None = None,
        ctype: str = "application/json",
    ) -> None:
        rec.status = status
        try:
            h.send_response(status)
            h.send_header("content-type", ctype)
            h.send_header("content-length", str(len(data)))
            # Both SDKs surface this as the response's `_request_id`.
            h.send_header("x-request-id" if rec.provider == "openai" else "request-id", "req_" + uuid.uuid4().hex)
            for name, value in (headers or {}).items():
                h.send_header(name, value)
            h.end_headers()
            h.wfile.write(data)
        except OSError:  # the client is already gone (e.g. it timed out during our latency)
            h.close_connection = True

    # ----- validation ------------------------------------------------------------------------
    @staticmethod
    def _validate_openai(body: Any) -> None:
        if not isinstance(body, dict):
            raise _BadRequest("We could not parse the JSON body of your request.")
        if not isinstance(body.get("model"), str):
            raise _BadRequest("you must provide a model parameter", "model")
        msgs = body.get("messages")
        if not isinstance(msgs, list) or not msgs:
            raise _BadRequest("Invalid 'messages': expected a non-empty array.", "messages")
        n = body.get("n")
        if n is not None and (not isinstance(n, int) or not 1 <= n <= 128):
            raise _BadRequest(f"Invalid 'n': {n!r}.", "n")
        for i, m in enumerate(msgs):
            role = m.get("role") if isinstance(m, dict) else None
            if role not in OPENAI_ROLES:
                raise _BadRequest(
                    f"Invalid value: {role!r}. Supported values are: {OPENAI_ROLES}.", f"messages[{i}].role"
                )
            # An assistant turn that only calls tools has content null.
            if not _is_content(m.get("content")) and not (role == "assistant" and m.get("content") is None):
                raise _BadRequest(f"Invalid type for 'messages[{i}].content'.", f"messages[{i}].content")

    @staticmethod
    def _validate_responses(body: Any) -> None:
        if not isinstance(body, dict):
            raise _BadRequest("We could not parse the JSON body of your request.")
        if not isinstance(body.get("model"), str):
            raise _BadRequest("you must provide a model parameter", "model")
        given = body.get("input")
        if not (isinstance(given, str) and given) and not (isinstance(given, list) and given):
            raise _BadRequest("Invalid 'input': expected a string or a non-empty array.", "input")

    @staticmethod
    def _validate_anthropic(body: Any) -> None:
        if not isinstance(body, dict):
            raise _BadRequest("There was an issue with your request body: expected a JSON object.")
        for name in ("model", "max_tokens", "messages"):
            if name not in body:
                raise _BadRequest(f"{name}: Field required")
        max_tokens = body["max_tokens"]
        if not isinstance(body["model"], str):
            raise _BadRequest("model: Input should be a valid string")
        if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
            raise _BadRequest("max_tokens: Input should be a valid integer greater than or equal to 1")
        system = body.get("system")
        if system is not None and not (
            isinstance(system, str) or (_is_content(system) and all(b["type"] == "text" for b in system))
        ):
            raise _BadRequest("system: Input should be a valid string or a list of text blocks")
        msgs = body["messages"]
        if not isinstance(msgs, list) or not msgs:
            raise _BadRequest("messages: at least one message is required")
        for i, m in enumerate(msgs):
            role = m.get("role") if isinstance(m, dict) else None
            if role == "system":  # the real API's wording
                raise _BadRequest(
                    'messages: Unexpected role "system". The Messages API accepts a top-level `system` '
                    'parameter, not "system" as an input message role.'
                )
            if role not in ("user", "assistant"):
                raise _BadRequest(f"messages.{i}.role: Input should be 'user' or 'assistant'")
            if not _is_content(m.get("content")):
                raise _BadRequest(f"messages.{i}.content: Input should be a valid string or list of content blocks")

    # ----- answers ---------------------------------------------------------------------------
    def _answer(self, body: dict[str, Any], provider: str, user_text: str) -> dict[str, Any]:
        """The last matching rule's answer as a dict (``text`` and/or ``tool``/``tools``, ...)."""
        with self._lock:
            matching = [a for a, when, p in self._rules if p in (None, provider) and (when or "") in user_text]
        if not matching:
            fmt = (body.get("response_format") or {}).get("type")
            # Loosely honour JSON mode: a JSON-mode caller still gets parseable output by default.
            text = json.dumps({"echo": user_text}) if fmt in ("json_object", "json_schema") else f"echo: {user_text}"
            return {"text": text}
        answer = matching[-1]
        answer = answer(body) if callable(answer) else answer  # run outside the lock: it may be slow
        return {"text": answer} if isinstance(answer, str) else dict(answer)

    @staticmethod
    def _usage(body: dict[str, Any], ans: dict[str, Any], tools: list[dict[str, Any]]) -> dict[str, int]:
        """Word counts by default (prompt = system + all messages), overridden by the rule's usage."""
        prompt = " ".join(
            [_text_of(body.get("system") or body.get("instructions"))]
            + [_text_of(m.get("content")) for m in _input_messages(body)]
        )
        output = " ".join([ans.get("text") or ans.get("refusal") or ""] + [json.dumps(t.get("input")) for t in tools])
        usage = {"input_tokens": len(prompt.split()), "output_tokens": len(output.split()), "cached_input_tokens": 0}
        return {**usage, **(ans.get("usage") or {})}

    def _openai_response(self, body: dict[str, Any], ans: dict[str, Any]) -> dict[str, Any]:
        tools = ([ans["tool"]] if ans.get("tool") else []) + list(ans.get("tools") or [])
        calls = [
            {
                "id": "call_" + uuid.uuid4().hex[:24],
                "type": "function",
                "function": {"name": t["name"], "arguments": json.dumps(t.get("input", {}))},
            }
            for t in tools
        ]
        stop: str | None = ans.get("stop_reason")
        stop = {"max_tokens": "length", "end_turn": "stop", "tool_use": "tool_calls"}.get(stop or "", stop)
        message = {
            "role": "assistant",
            # Like the real API: content is null for a pure refusal or a pure tool call.
            "content": ans.get("text") if ("text" in ans or not (calls or "refusal" in ans)) else None,
            "refusal": ans.get("refusal"),
            "tool_calls": calls or None,
            "annotations": [],
        }
        choice = {"message": message, "finish_reason": stop or ("tool_calls" if calls else "stop"), "logprobs": None}
        u = self._usage(body, ans, tools)
        return {
            "id": "chatcmpl-" + uuid.uuid4().hex,
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body["model"],
            "choices": [{"index": i, **choice} for i in range(body.get("n") or 1)],
            "usage": {
                "prompt_tokens": u["input_tokens"],
                "completion_tokens": u["output_tokens"],
                "total_tokens": u["input_tokens"] + u["output_tokens"],
                "prompt_tokens_details": {"cached_tokens": u["cached_input_tokens"], "audio_tokens": 0},
                "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0},
            },
            "service_tier": "default",
            "system_fingerprint": "fp_fakeapi",
        }

    def _anthropic_response(self, body: dict[str, Any], ans: dict[str, Any]) -> dict[str, Any]:
        tools = ([ans["tool"]] if ans.get("tool") else []) + list(ans.get("tools") or [])
        text = ans.get("text", ans.get("refusal"))
        content: list[dict[str, Any]] = [{"type": "text", "text": text}] if text is not None else []
        content += [
            {"type": "tool_use", "id": "toolu_" + uuid.uuid4().hex[:24], "name": t["name"], "input": t.get("input", {})}
            for t in tools
        ]
        stop: str | None = ans.get("stop_reason")
        stop = {"length": "max_tokens", "stop": "end_turn", "tool_calls": "tool_use"}.get(stop or "", stop)
        u = self._usage(body, ans, tools)
        return {
            "id": "msg_" + uuid.uuid4().hex[:24],
            "type": "message",
            "role": "assistant",
            "model": body["model"],
            "content": content,
            "stop_reason": stop or ("tool_use" if tools else "refusal" if "refusal" in ans else "end_turn"),
            "stop_sequence": None,
            "usage": {
                "input_tokens": u["input_tokens"],
                "output_tokens": u["output_tokens"],
                "cache_read_input_tokens": u["cached_input_tokens"],
                "cache_creation_input_tokens": u.get("cache_creation_input_tokens", 0),
            },
        }

    # ----- hostile servers: error bodies that echo the credentials (see ECHO_AUTH_KINDS) -----
    def _fail_echoing_auth(self, h: _Handler, rec: Recorded, flt: _Fault) -> None:
        status = int(flt.kind.split("-", 1)[0])
        names = ("authorization", "x-api-key")
        sent = "; ".join(f"{name}: {rec.headers[name]}" for name in names if name in rec.headers)
        self._error(h, rec, status, f"Request rejected (injected). Headers received: {sent or 'none'}")

    def _responses_response(self, body: dict[str, Any], ans: dict[str, Any]) -> dict[str, Any]:
        tools = ([ans["tool"]] if ans.get("tool") else []) + list(ans.get("tools") or [])
        output: list[dict[str, Any]] = []
        if "text" in ans or "refusal" in ans or not tools:
            part = (
                {"type": "refusal", "refusal": ans["refusal"]}
                if "refusal" in ans and "text" not in ans
                else {"type": "output_text", "text": ans.get("text", ""), "annotations": []}
            )
            output.append(
                {"type": "message", "id": "msg_" + uuid.uuid4().hex[:24], "status": "completed",
                 "role": "assistant", "content": [part]}
            )  # fmt: skip
        output += [
            {"type": "function_call", "id": "fc_" + uuid.uuid4().hex[:24], "call_id": "call_" + uuid.uuid4().hex[:24],
             "name": t["name"], "arguments": json.dumps(t.get("input", {})), "status": "completed"}
            for t in tools
        ]  # fmt: skip
        u = self._usage(body, ans, tools)
        return {
            "id": "resp_" + uuid.uuid4().hex,
            "object": "response",
            "created_at": int(time.time()),
            "status": "completed",
            "error": None,
            "incomplete_details": None,
            "instructions": body.get("instructions"),
            "model": body["model"],
            "output": output,
            "parallel_tool_calls": True,
            "tool_choice": body.get("tool_choice", "auto"),
            "tools": body.get("tools", []),
            "usage": {
                "input_tokens": u["input_tokens"],
                "input_tokens_details": {"cached_tokens": u["cached_input_tokens"]},
                "output_tokens": u["output_tokens"],
                "output_tokens_details": {"reasoning_tokens": 0},
                "total_tokens": u["input_tokens"] + u["output_tokens"],
            },
        }


# ----- streams (server-sent events, as the real APIs send them) --------------------------------
def _pieces(text: str) -> list[str]:
    """A text cut into word-sized deltas, as models stream it ("Hello", " world", "!")."""
    out: list[str] = []
    for i, word in enumerate(text.split(" ")):
        out.append(word if i == 0 else " " + word)
    return [p for p in out if p] or ([text] if text else [])


def _sse(data: Any, event: str | None = None) -> bytes:
    head = f"event: {event}\n" if event else ""
    return (head + "data: " + (data if isinstance(data, str) else json.dumps(data)) + "\n\n").encode()


def _openai_events(body: dict[str, Any], payload: dict[str, Any]) -> bytes:
    choice = payload["choices"][0]
    message = choice["message"]
    base = {"id": payload["id"], "object": "chat.completion.chunk", "created": payload["created"],
            "model": payload["model"], "system_fingerprint": payload["system_fingerprint"]}  # fmt: skip

    def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> bytes:
        return _sse({**base, "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
                     **extra})  # fmt: skip

    out = [chunk({"role": "assistant", "content": "", "refusal": None})]
    for piece in _pieces(message["content"] or ""):
        out.append(chunk({"content": piece}))
    for i, call in enumerate(message["tool_calls"] or ()):
        out.append(chunk({"tool_calls": [{"index": i, "id": call["id"], "type": "function",
                                          "function": {"name": call["function"]["name"], "arguments": ""}}]}))  # fmt: skip
        out.append(chunk({"tool_calls": [{"index": i, "function": {"arguments": call["function"]["arguments"]}}]}))
    out.append(chunk({}, choice["finish_reason"]))
    if (body.get("stream_options") or {}).get("include_usage"):
        out.append(_sse({**base, "choices": [], "usage": payload["usage"]}))
    out.append(_sse("[DONE]"))
    return b"".join(out)


def _anthropic_events(body: dict[str, Any], payload: dict[str, Any]) -> bytes:
    usage = payload["usage"]
    start = {**payload, "content": [], "stop_reason": None, "usage": {**usage, "output_tokens": 1}}
    out = [_sse({"type": "message_start", "message": start}, "message_start")]
    for i, block in enumerate(payload["content"]):
        if block["type"] == "text":
            out.append(_sse({"type": "content_block_start", "index": i, "content_block": {"type": "text", "text": ""}},
                            "content_block_start"))  # fmt: skip
            for piece in _pieces(block["text"]):
                out.append(_sse({"type": "content_block_delta", "index": i,
                                 "delta": {"type": "text_delta", "text": piece}}, "content_block_delta"))  # fmt: skip
        else:
            out.append(_sse({"type": "content_block_start", "index": i,
                             "content_block": {**block, "input": {}}}, "content_block_start"))  # fmt: skip
            out.append(_sse({"type": "content_block_delta", "index": i,
                             "delta": {"type": "input_json_delta", "partial_json": json.dumps(block["input"])}},
                            "content_block_delta"))  # fmt: skip
        out.append(_sse({"type": "content_block_stop", "index": i}, "content_block_stop"))
    out.append(_sse({"type": "message_delta", "delta": {"stop_reason": payload["stop_reason"], "stop_sequence": None},
                     "usage": {"output_tokens": usage["output_tokens"]}}, "message_delta"))  # fmt: skip
    out.append(_sse({"type": "message_stop"}, "message_stop"))
    return b"".join(out)


def _responses_events(body: dict[str, Any], payload: dict[str, Any]) -> bytes:
    seq = iter(range(1_000_000))

    def event(kind: str, **data: Any) -> bytes:
        return _sse({"type": kind, "sequence_number": next(seq), **data}, kind)

    pending = {**payload, "status": "in_progress", "output": [], "usage": None}
    out = [event("response.created", response=pending), event("response.in_progress", response=pending)]
    for i, item in enumerate(payload["output"]):
        if item["type"] == "message":
            out.append(event("response.output_item.added", output_index=i,
                             item={**item, "status": "in_progress", "content": []}))  # fmt: skip
            for j, part in enumerate(item["content"]):
                if part["type"] != "output_text":
                    continue
                out.append(event("response.content_part.added", item_id=item["id"], output_index=i, content_index=j,
                                 part={**part, "text": ""}))  # fmt: skip
                for piece in _pieces(part["text"]):
                    out.append(event("response.output_text.delta", item_id=item["id"], output_index=i,
                                     content_index=j, delta=piece, logprobs=[]))  # fmt: skip
                out.append(event("response.output_text.done", item_id=item["id"], output_index=i, content_index=j,
                                 text=part["text"], logprobs=[]))  # fmt: skip
                out.append(event("response.content_part.done", item_id=item["id"], output_index=i, content_index=j,
                                 part=part))  # fmt: skip
        else:
            out.append(event("response.output_item.added", output_index=i,
                             item={**item, "arguments": "", "status": "in_progress"}))  # fmt: skip
            out.append(event("response.function_call_arguments.delta", item_id=item["id"], output_index=i,
                             delta=item["arguments"]))  # fmt: skip
            out.append(event("response.function_call_arguments.done", item_id=item["id"], output_index=i,
                             arguments=item["arguments"]))  # fmt: skip
        out.append(event("response.output_item.done", output_index=i, item=item))
    out.append(event("response.completed", response=payload))
    return b"".join(out)


#: Faults whose error body repeats the request's ``Authorization`` / ``x-api-key`` header, as
#: some proxies and self-hosted servers do on a rejected key or a bad request.
ECHO_AUTH_KINDS = frozenset({"401-echo-auth", "400-echo-auth"})
FAULT_KINDS = FAULT_KINDS | ECHO_AUTH_KINDS
__all__ += ["ECHO_AUTH_KINDS"]
