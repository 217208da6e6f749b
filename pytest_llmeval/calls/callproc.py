"""Model calls of the planning pass, made by a helper process on another core.

The SDKs spend about 2.5 ms of CPU per call (building and sending the request, reading the reply)
and half a second or more on their import. In the pytest process that CPU competes, under
one GIL, with the planning runs and with the other calls in flight, so a concurrent run
would be CPU-bound long before it is bound by the API. A planning pass over many tests
(planner.HELPER_MIN_TESTS) therefore starts one helper process (``python -m
pytest_llmeval.calls.callproc``), and from then on the run's calls to ``openai`` and
``anthropic`` go through it: the pytest process keeps everything else (cache, call log,
budget, rate limits, retries: the helper makes single attempts), and only the SDK work
moves out. The pytest process then never imports the SDKs.

Protocol: one JSON object per line each way. To the helper
``{"id", "model", "request", "timeout"}``; back ``{"id", "ok": stored answer}`` or
``{"id", "error": {"message", "status", "retryable", "retry_after"}}``. The helper ends
when its standard input closes, so it never outlives the run.

Only the built-in HTTP providers go out (a provider added by a plugin lives in the pytest
process and may not exist in a fresh one; the local model is loaded once, here). The
helper starts with the first call it is to make, with this process's environment at that
moment: the moment the provider here would have made its SDK client and read the API key
(fixtures set up before that call, session ones included, have run). Each call names the
endpoint of the provider here, which is part of the cache key.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from pytest_llmeval.errors import ProviderError
from pytest_llmeval.models import ModelSpec, Request, canonical_json

__all__ = ["CallProcess", "RemoteProvider", "remote_capable"]

# Extra seconds the pytest process waits beyond a call's own timeout before it gives up on
# the helper (its SDK applies the timeout itself; this only guards against a stuck helper).
_GRACE_S = 30.0


def _builtin_classes() -> dict[str, type]:
    from pytest_llmeval.providers.anthropic import AnthropicProvider
    from pytest_llmeval.providers.openai import OpenAIProvider

    return {"openai": OpenAIProvider, "anthropic": AnthropicProvider}


def remote_capable(provider: Any) -> bool:
    """Whether ``provider`` is a built-in HTTP provider the helper can make again."""
    spec = getattr(provider, "spec", None)
    if not isinstance(spec, ModelSpec):
        return False
    return type(provider) is _builtin_classes().get(spec.provider)


class _Pending:
    __slots__ = ("done", "reply")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.reply: dict[str, Any] | None = None


class CallProcess:
    """The pytest side: starts the helper on first use, matches answers to calls."""

    def __init__(self, concurrency: int) -> None:
        self.concurrency = max(1, concurrency)
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._pending: dict[int, _Pending] = {}
        self._next_id = 0
        self._dead: str | None = None
        self._stderr: deque[bytes] = deque(maxlen=40)
        self._stderr_reader: threading.Thread | None = None
        self._warm: list[tuple[str, str]] = []

    @property
    def dead(self) -> str | None:
        """Why the helper cannot take calls any more (``None`` while it can, or before it starts)."""
        return self._dead

    def _argv(self) -> list[str]:
        return [sys.executable, "-m", "pytest_llmeval.calls.callproc", str(self.concurrency)]

    def _ensure_started(self) -> subprocess.Popen[bytes]:
        # Called with self._lock held.
        if self._proc is None:
            try:
                self._proc = subprocess.Popen(
                    self._argv(),
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    env=_helper_env(),
                )
            except OSError as exc:
                self._dead = f"cannot start the call helper process ({exc})"
                raise ProviderError(self._dead, retryable=True) from None
            assert self._proc.stdin is not None
            try:
                for model, endpoint in self._warm:
                    self._proc.stdin.write(
                        canonical_json({"warm": model, "endpoint": endpoint}).encode("utf-8") + b"\n"
                    )
            except OSError:
                pass  # it died at once: the reader below finds out and says why
            threading.Thread(target=self._read_answers, name="llmeval-callproc-reader", daemon=True).start()
            self._stderr_reader = threading.Thread(
                target=self._read_stderr, name="llmeval-callproc-stderr", daemon=True
            )
            self._stderr_reader.start()
        return self._proc

    def warm(self, targets: list[tuple[str, str]]) -> None:
        """Have the helper import the SDKs of these ``(model, endpoint)`` pairs as soon as it
        starts, before their first call arrives. It starts with the first call (see module doc)."""
        with self._lock:
            self._warm = list(targets)

    def complete(self, spec: ModelSpec, endpoint: str, request: Request, timeout: float) -> dict[str, Any]:
        """What ``provider.complete(request, timeout=timeout)`` returns, made by the helper
        with a provider for ``spec`` that calls ``endpoint``."""
        pending = _Pending()
        with self._lock:
            if self._dead is not None:
                raise ProviderError(self._dead, retryable=True)
            proc = self._ensure_started()
            self._next_id += 1
            call_id = self._next_id
            self._pending[call_id] = pending
            line = canonical_json(
                {
                    "id": call_id,
                    "model": str(spec),
                    "endpoint": endpoint,
                    "request": _request_to_dict(request),
                    "timeout": timeout,
                }
            )
            try:
                assert proc.stdin is not None
                proc.stdin.write(line.encode("utf-8") + b"\n")
                proc.stdin.flush()
            except OSError:
                self._pending.pop(call_id, None)
                self._dead = self._why_dead()
                raise ProviderError(self._dead, retryable=True) from None
        if not pending.done.wait(timeout + _GRACE_S):
            with self._lock:
                self._pending.pop(call_id, None)
            raise ProviderError(
                f"{spec}: the call helper process gave no answer within {timeout + _GRACE_S:g} s", retryable=True
            )
        reply = pending.reply or {}
        if "ok" in reply:
            answer: dict[str, Any] = reply["ok"]
            return answer
        error = reply.get("error") or {"message": f"{spec}: the call helper process ended"}
        raise ProviderError(
            str(error.get("message")),
            status=error.get("status"),
            retryable=bool(error.get("retryable")),
            retry_after=error.get("retry_after"),
        )

    def _read_answers(self) -> None:
        proc = self._proc
        assert proc is not None and proc.stdout is not None
        for raw in proc.stdout:
            try:
                reply = json.loads(raw)
                call_id = int(reply["id"])
            except (ValueError, KeyError, TypeError):
                continue  # not ours (a library printing to stdout): ignored
            with self._lock:
                pending = self._pending.pop(call_id, None)
            if pending is not None:
                pending.reply = reply
                pending.done.set()
        proc.wait()
        if self._stderr_reader is not None:
            self._stderr_reader.join(timeout=5)  # its last words, for the error message
        with self._lock:
            self._dead = self._dead or self._why_dead()
            stranded, self._pending = self._pending, {}
        for pending in stranded.values():
            pending.reply = {"error": {"message": self._dead, "retryable": True}}
            pending.done.set()

    def _read_stderr(self) -> None:
        proc = self._proc
        assert proc is not None and proc.stderr is not None
        for raw in proc.stderr:
            self._stderr.append(raw)

    def _why_dead(self) -> str:
        proc = self._proc
        code = proc.poll() if proc is not None else None
        tail = b"".join(self._stderr).decode("utf-8", "replace").strip()
        text = f"the call helper process (python -m pytest_llmeval.calls.callproc) ended with exit code {code}"
        return text + (f": {tail[-1500:]}" if tail else "")

    def close(self) -> None:
        """End the helper (closing its input ends it; a stuck one is killed)."""
        with self._lock:
            proc, self._dead = self._proc, self._dead or "the call helper process was closed"
        if proc is None:
            return
        try:
            assert proc.stdin is not None
            proc.stdin.close()
        except OSError:
            pass
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class RemoteProvider:
    """A built-in provider whose calls the helper process makes (same endpoint, same errors).

    Once the helper has died (it could not start, or crashed), calls are made here in the
    pytest process by the provider itself: a call that was in flight fails with a retryable
    error, and its retry lands here.
    """

    def __init__(self, provider: Any, process: CallProcess) -> None:
        self.spec: ModelSpec = provider.spec
        self.endpoint: str = getattr(provider, "endpoint", "")
        self._local = provider
        self._process = process

    def complete(self, request: Request, *, timeout: float) -> dict[str, Any]:
        if self._process.dead is not None:
            result: dict[str, Any] = self._local.complete(request, timeout=timeout)
            return result
        return self._process.complete(self.spec, self.endpoint, request, timeout)


def _helper_env() -> dict[str, str]:
    """This process's environment, with this package importable as it is here."""
    env = dict(os.environ)
    package_root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
    return env


def _request_to_dict(request: Request) -> dict[str, Any]:
    return {
        "messages": request.messages,
        "params": request.params,
        "sample": request.sample,
        "endpoint": request.endpoint,
    }


# -- the helper process ---------------------------------------------------------------------
def _serve(concurrency: int) -> None:
    classes = _builtin_classes()
    providers: dict[tuple[str, str], Any] = {}
    providers_lock = threading.Lock()
    out_lock = threading.Lock()
    out = sys.stdout.buffer
    # What the SDKs or anything else print must not mix with the answers.
    sys.stdout = sys.stderr

    def provider_for(model: str, endpoint: str) -> Any:
        with providers_lock:
            provider = providers.get((model, endpoint))
            if provider is None:
                spec = ModelSpec.parse(model)
                provider = providers[(model, endpoint)] = classes[spec.provider](spec)
                # The endpoint pytest's own provider has (it is part of the cache key), not
                # one read from this process's environment.
                provider.endpoint = endpoint
            return provider

    def warm(model: str, endpoint: str) -> None:
        try:
            provider_for(model, endpoint)._get_client()  # imports the SDK and makes its client
        except Exception:  # noqa: BLE001, S110 - the first real call reports what is wrong
            pass

    def one(message: dict[str, Any]) -> None:
        reply: dict[str, Any] = {"id": message["id"]}
        try:
            provider = provider_for(message["model"], message["endpoint"])
            data = message["request"]
            request = Request(
                model=provider.spec,
                messages=data["messages"],
                params=data["params"],
                sample=data["sample"],
                endpoint=data["endpoint"],
            )
            reply["ok"] = provider.complete(request, timeout=float(message["timeout"]))
        except ProviderError as exc:
            reply["error"] = {
                "message": str(exc),
                "status": exc.status,
                "retryable": exc.retryable,
                "retry_after": exc.retry_after,
            }
        except Exception as exc:  # noqa: BLE001 - reported to the pytest process, not lost
            reply["error"] = {"message": f"{message.get('model')}: {type(exc).__name__}: {exc}", "retryable": False}
        line = canonical_json(reply).encode("utf-8") + b"\n"
        with out_lock:
            out.write(line)
            out.flush()

    pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="llmeval-helper")
    for raw in sys.stdin.buffer:
        if raw.strip():
            message = json.loads(raw)
            if "warm" in message:
                pool.submit(warm, message["warm"], message["endpoint"])
            else:
                pool.submit(one, message)
    # Input closed: the run is over. Calls still in flight are of no use to anyone, and an
    # orderly interpreter exit (joining them, tearing the SDKs down) would hold pytest up.
    with out_lock:
        out.flush()
        os._exit(0)


if __name__ == "__main__":
    _serve(int(sys.argv[1]) if len(sys.argv) > 1 else 8)
