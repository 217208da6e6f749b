"""Model names, requests and completions: the plain data every other module passes around."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypedDict, get_args

from pytest_llmeval.errors import ConfigError
from pytest_llmeval.store.redaction import secrets_in_url, without_credentials

__all__ = [
    "ModelSpec",
    "Request",
    "Completion",
    "Usage",
    "ToolCall",
    "StoredCompletion",
    "StoredUsage",
    "StoredToolCall",
    "canonical_json",
    "key_of",
    "CacheMode",
    "CACHE_MODES",
    "DEFAULT_CACHE_PATH",
]

# The cache's plain data lives here, not in store/: the plugin's options, the caller, the
# store and the command line all need it, and this is the one module all of them may
# import (the store imports nothing else of the package, and importing store/ costs sqlite3).

#: How the store is used: ``use`` replays hits and stores misses, ``replay`` never calls
#: a model, ``refresh`` calls everything and overwrites, ``off`` neither reads nor writes.
CacheMode = Literal["use", "replay", "refresh", "off"]
#: The cache modes' names, in the order the help text lists them.
CACHE_MODES: tuple[CacheMode, ...] = get_args(CacheMode)
#: Where the store lives, relative to the rootdir (the plugin) or the current directory (the CLI).
DEFAULT_CACHE_PATH = ".llmeval/cache.db"

# Bump when the meaning of a cache key changes, so old entries stop matching.
KEY_VERSION = 1


def canonical_json(value: Any) -> str:
    """JSON with sorted keys and no spaces: equal values give equal text.

    Always encodable as UTF-8: a lone surrogate (which a model's JSON reply can carry as
    ``\\ud800``) makes the whole text fall back to ASCII escapes, so SQLite and the cache
    key hash never fail on it.
    """
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return text


def key_of(payload: dict[str, Any]) -> str:
    """The cache key of a request payload (:meth:`Request.key_payload`): a versioned sha256
    of its canonical JSON, so a stored request's key can be recomputed from the stored text."""
    import hashlib  # here, not at module level: OpenSSL's import is paid only by evals

    digest = hashlib.sha256(canonical_json(payload).encode("utf-8")).hexdigest()
    return f"v{payload.get('v')}-{digest}"


#: What a model label may be: it appears in test ids and report names, so no spaces,
#: brackets or the ``:``/``@``/``=`` that structure a model name.
_LABEL_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")

_FORMS = "e.g. openai:gpt-4o-mini, anthropic:claude-haiku-4-5, local:smollm2 or openai:NAME@http://host:port/v1"
_PROVIDER = r"[A-Za-z][A-Za-z0-9_.-]*"
# "@http://" or "@https://" (any case) starts the base URL.
_URL_START = r"@https?://"
_HOST = r"(localhost|\d{1,3}(\.\d{1,3}){3}|\[[0-9a-fA-F:]+\]|[\w-]+(\.[\w-]+)*\.[A-Za-z]{2,})(:\d*)?(/.*)?"


def _looks_like_host(text: str) -> bool:
    """Whether the part after a model name's ``@`` is a server address written without a
    scheme (``127.0.0.1:1234``, ``localhost:8080/v1``, ``host.example.com``) rather than a
    version tag (``claude-3-5-sonnet@20240620``)."""
    return bool(re.fullmatch(_HOST, text)) or bool(re.fullmatch(r"[\w.-]+:\d+(/.*)?", text)) or text.startswith("/")


def _check_url(url: str, bad: Callable[[str], ConfigError]) -> None:
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        port = parts.port  # raises on a port that is not a number
    except ValueError as exc:
        raise bad(f"the base URL {url!r} is not valid ({exc}); expected http://host:port/v1") from None
    if not parts.hostname:
        raise bad(f"the base URL {url!r} has no host; expected http://host:port/v1")
    del port


@dataclass(frozen=True)
class ModelSpec:
    """A model named ``PROVIDER:MODEL`` or ``PROVIDER:MODEL@BASE_URL``, with an optional
    ``LABEL=`` in front.

    ``str(spec)`` is always ``PROVIDER:MODEL[@URL]`` (what the cache key, the provider and
    ``llm.model`` see); :attr:`display` is what test ids, reports and the baseline use: the
    label when there is one, so a changed port or URL does not change them.
    """

    provider: str
    name: str
    base_url: str | None = None
    label: str | None = None

    @classmethod
    def parse(cls, text: str, *, source: str = "model") -> ModelSpec:
        """Parse ``openai:gpt-4o-mini``, ``openai:llama3@http://localhost:11434/v1`` or
        ``smol=openai:smollm2@http://127.0.0.1:8911/v1`` (labelled).

        ``source`` names where the text came from (an option, the marker), for the error
        message. A malformed name is a :class:`~pytest_llmeval.errors.ConfigError` that says
        how to write it, so that it is never sent anywhere as a model name: a comma-joined
        list, whitespace inside, an empty part, ``@host:port`` without a scheme.
        """
        if not isinstance(text, str):
            raise ConfigError(f"invalid model {text!r} ({source}): expected a string PROVIDER:MODEL, {_FORMS}")
        raw = text.strip()

        def bad(why: str) -> ConfigError:
            return ConfigError(f"invalid model {text!r} ({source}): {why}")

        label = None
        if "=" in raw.partition(":")[0]:
            # An "=" before the provider's ":" can only be a label: neither a provider nor
            # a model name before the colon holds one.
            label, _, raw = raw.partition("=")
            label, raw = label.strip(), raw.strip()
            if not label or not set(label) <= _LABEL_CHARS:
                raise ConfigError(
                    f"invalid model label {label!r} in {text!r} ({source}): a label is letters, digits, "
                    "'_', '.' or '-', as in smol=openai:smollm2@http://127.0.0.1:8911/v1"
                )

        if "," in raw:
            parts = [p.strip() for p in raw.split(",") if p.strip()]
            if len(parts) > 1 and all(":" in p for p in parts):
                raise bad(
                    "this is a comma-joined list of models; give one model per line in the ini file "
                    "(llmeval_models), one --llmeval-model option per model, or a list in models=[...]"
                )
            if "://" not in raw.split(",", 1)[0]:
                raise bad("a model name cannot contain ','; expected PROVIDER:MODEL, " + _FORMS)
        if not raw:
            raise bad(f"the name is empty; expected PROVIDER:MODEL, {_FORMS}")
        if any(c.isspace() for c in raw):
            raise bad("the name contains whitespace; write PROVIDER:MODEL without spaces, e.g. openai:gpt-4o-mini")
        if ":" not in raw:
            raise bad(f"expected PROVIDER:MODEL, {_FORMS}")
        provider, _, rest = raw.partition(":")
        if not provider or not rest:
            raise bad(f"provider and model must not be empty; expected PROVIDER:MODEL, {_FORMS}")
        if not re.fullmatch(_PROVIDER, provider):
            raise bad(f"{provider!r} is not a provider name (letters, digits, '_', '-', '.'); expected PROVIDER:MODEL")
        base_url = None
        # Only an "@" that starts a URL separates the base URL: model names may contain "@"
        # (Vertex AI's claude-3-5-sonnet@20240620).
        match = re.search(_URL_START, rest, re.IGNORECASE)
        if match is not None:
            rest, base_url = rest[: match.start()], rest[match.start() + 1 :]
            if "://" in base_url[len(match[0]) - 1 :]:
                raise bad("more than one URL in the name; expected PROVIDER:MODEL@http://host:port/v1")
            _check_url(base_url, bad)
            base_url = match[0][1:].lower() + base_url[len(match[0]) - 1 :]
        elif "@" in rest:
            name, _, after = rest.rpartition("@")
            if "://" in after:
                scheme = after.split("://", 1)[0]
                raise bad(
                    f"the base URL's scheme {scheme!r} is not http or https; write {provider}:{name}@http://{after.split('://', 1)[1]}"
                )
            if _looks_like_host(after):
                raise bad(
                    f"'@{after}' has no scheme, so it is not read as a server address; "
                    f"write {provider}:{name}@http://{after}{'' if '/' in after else '/v1'}"
                )
        if not rest or rest.startswith("@"):
            raise bad(f"the model name is empty; expected PROVIDER:MODEL, {_FORMS}")
        return cls(provider.lower(), rest, base_url.rstrip("/") if base_url else None, label)

    @property
    def secrets(self) -> tuple[str, ...]:
        """Credentials inside the base URL (``http://user:KEY@host``, ``?api_key=KEY``), if any."""
        return secrets_in_url(self.base_url)

    def __str__(self) -> str:
        base = f"{self.provider}:{self.name}"
        return f"{base}@{self.base_url}" if self.base_url else base

    @property
    def display(self) -> str:
        """The model's name in test ids, reports and baseline matching: its label, else
        ``PROVIDER:MODEL[@URL]``."""
        return self.label or str(self)

    @property
    def spec_text(self) -> str:
        """The text that :meth:`parse` turns back into this spec, label included."""
        return f"{self.label}={self}" if self.label else str(self)


@dataclass(frozen=True)
class Request:
    """One model call, provider-neutral.

    ``messages`` are OpenAI-style ``{"role", "content"}`` dicts (roles system, user,
    assistant); content is text or a list of ``{"type": "text", "text": ...}`` parts, which
    may carry Anthropic's ``cache_control``. ``params`` holds generation parameters
    (``temperature``, ``max_tokens``, ``top_p``, ``stop``, ``seed``, ...) and the neutral
    ``tools`` / ``tool_choice`` / ``response_format`` entries.
    """

    model: ModelSpec
    messages: list[dict[str, Any]]
    params: dict[str, Any] = field(default_factory=dict)
    sample: int = 0
    # The effective endpoint (explicit @URL, or the SDK's env variable): part of the key,
    # because two servers behind one model name give different answers.
    endpoint: str = ""

    def key_payload(self) -> dict[str, Any]:
        """Everything that changes the answer, and nothing secret."""
        return {
            "v": KEY_VERSION,
            "provider": self.model.provider,
            "model": self.model.name,
            # Credentials in a URL do not change the answer, and the key must be
            # recomputable from the stored (redacted) request.
            "endpoint": without_credentials(self.endpoint),
            "messages": self.messages,
            "params": self.params,
            "sample": self.sample,
        }

    @property
    def key(self) -> str:
        """The cache key: :func:`key_of` this request's payload."""
        return key_of(self.key_payload())


class StoredUsage(TypedDict):
    """Token counts in a :class:`StoredCompletion` (0 when the provider did not say)."""

    input_tokens: int  # every prompt token, cached ones included
    output_tokens: int
    cached_input_tokens: int  # prompt tokens the provider served from its prompt cache


class StoredToolCall(TypedDict):
    """A tool call in a :class:`StoredCompletion`."""

    name: str
    arguments: Any  # parsed from JSON; None when the model's arguments were not valid JSON
    raw_arguments: str  # the arguments as the model wrote them ("" when it sent parsed ones)


class _StoredCompletionFields(TypedDict):
    text: str
    model: str
    usage: StoredUsage
    tool_calls: list[StoredToolCall]
    finish_reason: str | None
    refusal: str | None


class StoredCompletion(_StoredCompletionFields, total=False):
    """A completion as a provider returns it and the store keeps it (JSON-safe).

    ``text`` is the answer's text ("" when it has only tool calls), ``model`` the model
    that answered as the server named it, ``usage`` its token counts, ``tool_calls`` the
    tool calls it made, ``finish_reason`` the provider's own stop reason (``"stop"``,
    ``"length"``, ``"max_tokens"``, ``"tool_calls"``...) and ``refusal`` the reason given
    when the model refused, else ``None``. ``latency_s`` is the request's own time in
    seconds: a provider sets it when it can time the request alone (after its SDK import
    and client start, outside any lock), else the caller times the whole attempt.
    """

    latency_s: float


@dataclass(frozen=True)
class Usage:
    """Token counts as the provider reported them."""

    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0

    def to_dict(self) -> StoredUsage:
        """The stored form."""
        return {
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cached_input_tokens": self.cached_input_tokens,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Usage:
        data = data or {}
        return cls(
            int(data.get("input_tokens") or 0),
            int(data.get("output_tokens") or 0),
            int(data.get("cached_input_tokens") or 0),
        )


@dataclass(frozen=True)
class ToolCall:
    """A tool (function) call the model made; ``arguments`` already parsed from JSON."""

    name: str
    arguments: Any
    raw_arguments: str = ""


@dataclass(frozen=True)
class Completion:
    """A model's answer. ``str(completion)`` is its text."""

    text: str
    model: str
    usage: Usage = field(default_factory=Usage)
    cached: bool = False
    latency_s: float = 0.0
    tool_calls: tuple[ToolCall, ...] = ()
    finish_reason: str | None = None
    refusal: str | None = None
    key: str = ""
    cost_usd: float = 0.0

    def __str__(self) -> str:
        return self.text

    def to_dict(self) -> StoredCompletion:
        """The stored form (without ``cached``, ``latency_s`` and ``key``, which vary per call)."""
        return {
            "text": self.text,
            "model": self.model,
            "usage": self.usage.to_dict(),
            "tool_calls": [
                {"name": t.name, "arguments": t.arguments, "raw_arguments": t.raw_arguments} for t in self.tool_calls
            ],
            "finish_reason": self.finish_reason,
            "refusal": self.refusal,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], **extra: Any) -> Completion:
        """A completion from its stored form (:class:`StoredCompletion`); ``extra`` sets the
        per-call fields (``cached``, ``latency_s``, ``key``, ``cost_usd``)."""
        return cls(
            text=data.get("text") or "",
            model=data.get("model") or "",
            usage=Usage.from_dict(data.get("usage")),
            tool_calls=tuple(
                ToolCall(t["name"], t.get("arguments"), t.get("raw_arguments", ""))
                for t in data.get("tool_calls") or ()
            ),
            finish_reason=data.get("finish_reason"),
            refusal=data.get("refusal"),
            **extra,
        )
