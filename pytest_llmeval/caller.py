"""Every model call goes through here: cache lookup, the provider, retries, the call log."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import CacheMissError, LLMEvalError, ProviderError
from .models import Completion, Request, Usage, canonical_json
from .pricing import estimate_cost
from .recording import CallInfo, record_call
from .registry import ProviderRegistry
from .retry import RetryPolicy, call_with_retries
from .store import Store, now_iso

__all__ = ["Caller", "CACHE_MODES"]

CACHE_MODES = ("use", "replay", "refresh", "off")


@dataclass
class CallerStats:
    """Run-level tallies (retries are not visible per test)."""

    calls: int = 0
    hits: int = 0
    retries: int = 0
    errors: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)


class Caller:
    """Resolves requests to completions according to the cache mode.

    - ``use``: a stored answer is replayed; a miss calls the model and stores the answer.
    - ``replay``: never calls a model; a miss is a :class:`CacheMissError`.
    - ``refresh``: calls every request once in this run and overwrites the stored answer.
    - ``off``: calls every request once in this run and stores nothing.
    The store is opened on the first call, so a run without evals never touches the disk.
    """

    def __init__(
        self,
        *,
        registry: ProviderRegistry,
        store_path: Path,
        mode: str = "use",
        timeout_s: float = 60.0,
        retry: RetryPolicy | None = None,
        run_id: str = "",
        run_args: list[str] | None = None,
        prices: dict[str, tuple[float, float, float]] | None = None,
    ) -> None:
        self.registry = registry
        self.store_path = store_path
        self.mode = mode
        self.timeout_s = timeout_s
        self.retry = retry or RetryPolicy()
        self.run_id = run_id
        self.run_args = run_args or []
        self.prices = prices
        self.stats = CallerStats()
        self._store: Store | None = None
        self._store_lock = threading.Lock()
        # Answers fetched in this run: in "refresh" and "off" a request is called once per
        # run, and a repeat of it in the same run (the planning pass, or a rerun) reads this.
        self._fresh: dict[str, dict[str, Any]] = {}

    # -- store ---------------------------------------------------------------------------
    @property
    def store(self) -> Store:
        with self._store_lock:
            if self._store is None:
                self._store = Store(self.store_path)
                self._store.start_run(self.run_id, cache_mode=self.mode, args=self.run_args)
            return self._store

    @property
    def store_opened(self) -> bool:
        return self._store is not None

    def close(self) -> None:
        if self._store is not None:
            self._store.finish_run(self.run_id)
            self._store.close()

    # -- calls ---------------------------------------------------------------------------
    def lookup(self, request: Request) -> dict[str, Any] | None:
        """The answer this run would replay for ``request`` without calling, if any."""
        key = request.key
        fresh = self._fresh.get(key)
        if fresh is not None:
            return fresh
        if self.mode in ("use", "replay"):
            return self.store.get(key)
        return None

    def call(
        self, request: Request, *, test_id: str | None = None, role: str = "llm", tags: list[str] | None = None
    ) -> Completion:
        """The completion for ``request``: replayed when the mode allows, else called."""
        key = request.key
        provider = self.registry.get(request.model)
        started = time.perf_counter()
        stored = self.lookup(request)
        cached = stored is not None
        error: str | None = None
        try:
            if stored is None:
                if self.mode == "replay":
                    raise CacheMissError(self.explain_miss(request, test_id))
                stored = self._call_provider(provider, request)
                self._fresh[key] = stored
                if self.mode != "off":
                    self.store.put(key, request.key_payload(), stored)
        except LLMEvalError as exc:
            error = str(exc)
            with self.stats.lock:
                self.stats.errors += 1
            raise
        finally:
            latency = time.perf_counter() - started
            if error is not None:
                self._log(request, test_id, role, tags, None, latency, cached=False, error=error)
        usage = Usage.from_dict(stored.get("usage"))
        cost = 0.0 if cached else estimate_cost(request.model, usage, self.prices)
        completion = Completion.from_dict(stored, cached=cached, latency_s=latency, key=key, cost_usd=cost)
        with self.stats.lock:
            self.stats.calls += 1
            self.stats.hits += int(cached)
        self._log(request, test_id, role, tags, stored, completion.latency_s, cached=cached, cost=cost)
        record_call(
            CallInfo(
                key=key,
                model=str(request.model),
                cached=cached,
                latency_s=completion.latency_s,
                input_tokens=completion.usage.input_tokens,
                output_tokens=completion.usage.output_tokens,
                cached_input_tokens=completion.usage.cached_input_tokens,
                cost_usd=cost,
                role=role,
            )
        )
        return completion

    def _call_provider(self, provider: Any, request: Request) -> dict[str, Any]:
        def once() -> dict[str, Any]:
            started = time.perf_counter()
            result = provider.complete(request, timeout=self.timeout_s)
            result = dict(result)
            # The model's own latency is kept with the answer, so a replay can report it.
            result["latency_s"] = round(time.perf_counter() - started, 6)
            return result

        def count_retry(_exc: ProviderError, _wait: float) -> None:
            with self.stats.lock:
                self.stats.retries += 1

        return call_with_retries(once, self.retry, on_retry=count_retry)

    def _log(
        self,
        request: Request,
        test_id: str | None,
        role: str,
        tags: list[str] | None,
        response: dict[str, Any] | None,
        latency: float,
        *,
        cached: bool,
        cost: float = 0.0,
        error: str | None = None,
    ) -> None:
        usage = (response or {}).get("usage") or {}
        self.store.log_call(
            {
                "run_id": self.run_id,
                "ts": now_iso(),
                "test_id": test_id,
                "model": str(request.model),
                "role": role,
                "key": request.key,
                "request": canonical_json(request.key_payload()),
                "response": canonical_json(response) if response is not None else None,
                "input_tokens": int(usage.get("input_tokens") or 0),
                "output_tokens": int(usage.get("output_tokens") or 0),
                "cached_input_tokens": int(usage.get("cached_input_tokens") or 0),
                "latency_s": latency,
                "cost_usd": cost,
                "tags": json.dumps(tags) if tags else None,
                "cached": int(cached),
                "error": error,
            }
        )

    # -- replay misses -------------------------------------------------------------------
    def explain_miss(self, request: Request, test_id: str | None) -> str:
        """Why replay found nothing: the nearest stored request and the fields that differ."""
        where = f"test {test_id}" if test_id else "a call outside a test"
        lines = [
            f"--llmeval-cache=replay: no stored answer for {request.model} in {where} "
            f"(key {request.key[:16]}...; cache {self.store_path})."
        ]
        wanted = request.key_payload()
        best: tuple[int, list[str]] | None = None
        for candidate in self.store.candidates(request.model.provider, request.model.name):
            differing = _differing_fields(wanted, candidate)
            if best is None or len(differing) < best[0]:
                best = (len(differing), differing)
            if best[0] <= 1:
                break
        if best is None:
            lines.append(f"The cache holds no answer at all for {request.model}.")
        else:
            lines.append("The nearest stored request differs in: " + ", ".join(best[1]) + ".")
        last_user = next((m for m in reversed(request.messages) if m.get("role") == "user"), None)
        if last_user is not None:
            text = str(last_user.get("content"))
            lines.append(f"Prompt: {text[:200]!r}" + (" ..." if len(text) > 200 else ""))
        lines.append("Record it by running once with --llmeval-cache=use and an API key.")
        return "\n".join(lines)


def _differing_fields(wanted: dict[str, Any], stored: dict[str, Any]) -> list[str]:
    fields: list[str] = []
    for name in sorted(set(wanted) | set(stored)):
        a, b = wanted.get(name), stored.get(name)
        if canonical_json(a) == canonical_json(b):
            continue
        if isinstance(a, dict) and isinstance(b, dict):
            sub = [k for k in sorted(set(a) | set(b)) if canonical_json(a.get(k)) != canonical_json(b.get(k))]
            fields.extend(f"{name}.{k}" for k in sub)
        elif isinstance(a, list) and isinstance(b, list):
            if len(a) != len(b):
                fields.append(f"{name} (count {len(b)} stored, {len(a)} asked)")
            else:
                fields.extend(
                    f"{name}[{i}]" for i, (x, y) in enumerate(zip(a, b, strict=True)) if canonical_json(x) != canonical_json(y)
                )
        else:
            fields.append(name)
    return fields
