"""The one redaction step: every writer (the store, the results document and the reports
built from it, pytest's reports, error messages) passes its text through here.

A *secret* is a value the run knows to be one: an environment variable whose name marks a
key, token, secret or password (``OPENAI_API_KEY``, ``AZURE_OPENAI_KEY``, ``HF_TOKEN``, ...),
the credentials inside a model URL (``http://user:KEY@host/v1``, ``?api_key=KEY``), and any
value handed to :func:`remember` (keys given to SDK clients). Each one is replaced by
``[redacted]`` whole and as any fragment of :data:`MIN_SECRET_LENGTH` characters or more (a
server that shows "...the last 8 characters" of a key gives nothing away), plain,
percent-encoded and base64-encoded at any offset (a URL's ``user:password`` travels as
``Authorization: Basic base64(user:password)``). Credentials written into a URL are
redacted even when the run did not know them.

Standard library only, and nothing else of the package: the store, the errors and the
session all use it, and importing it must stay cheap.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterable, Iterator, Mapping
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit, urlunsplit

__all__ = [
    "REDACTED",
    "MIN_SECRET_LENGTH",
    "Redactor",
    "secrets_from_env",
    "secrets_in_url",
    "without_credentials",
    "remember",
    "forget",
    "current",
    "redact_secrets",
    "redact_data",
    "strings_in",
]

#: What a secret is replaced with.
REDACTED = "[redacted]"
#: Shorter values ("1", "true", "dev") would redact ordinary text; this is also the
#: shortest fragment of a secret that is redacted.
MIN_SECRET_LENGTH = 8

# Names of environment variables whose values are secrets. "KEY" only as a word of the
# name (AZURE_OPENAI_KEY, KEY_VAULT_KEY), so that MONKEY_PATCH is not one.
_SECRET_NAME = r"(API_?KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL|PRIVATE_?KEY|(?:^|_)(?:ACCESS_?|AUTH_?)?KEYS?(?:_|$)|(?:^|_)AUTH(?:_|$))"
# ...but not those that name where a secret is kept: redacting every fragment of a path
# would redact every path under the same folder.
_LOCATION_NAME = r"_(FILE|FILENAME|PATH|DIR|ID)$"
# Query parameters of a URL whose values are secrets.
_SECRET_PARAM = r"(key|token|secret|password|passwd|sig|signature|auth|credential)"
# Credentials written into any URL in a text: scheme://user:PASSWORD@ and ?api_key=VALUE.
_URL_USERINFO = r"(?P<pre>\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s/@:]*:)(?P<secret>[^\s/@]+)(?=@)"
_URL_PARAM = (
    r"(?P<pre>[?&](?:[\w.-]*(?:key|token|secret|password|passwd|sig|signature|credential)[\w.-]*)=)"
    r"(?P<secret>[^&\s#\"'<>:;,)\]]+)"
)


#: API keys the plugin supplies for a run when none is set (under ``--llmeval-cache=replay``,
#: or ``use`` with ini ``llmeval_intercept = true``), so an SDK client made at import time
#: still constructs. Never sent (intercept/transport.py strips or refuses them) and not
#: secrets (store/redaction.py leaves them alone).
PLACEHOLDER_KEYS = {
    "OPENAI_API_KEY": "sk-llmeval-replay-placeholder-never-sent",
    "ANTHROPIC_API_KEY": "sk-ant-llmeval-replay-placeholder-never-sent",
}
_PLACEHOLDERS = frozenset(PLACEHOLDER_KEYS.values())


def secrets_from_env(environ: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """Values of environment variables named like keys (``*API_KEY``, ``*_KEY``, ``*TOKEN``,
    ``*SECRET``, ``*PASSWORD``, ...) of :data:`MIN_SECRET_LENGTH` characters or more, and the
    credentials inside URL-valued ones (``*_URL`` with ``user:password@``), longest first."""
    found: set[str] = set()
    for name, value in (os.environ if environ is None else environ).items():
        found.update(_secrets_of_variable(name, value))
    return tuple(sorted(found, key=len, reverse=True))


def _secrets_of_variable(name: str, value: str) -> tuple[str, ...]:
    if "://" in value:
        return secrets_in_url(value)
    if value in _PLACEHOLDERS:
        return ()  # the plugin's own stand-in for a missing key, not a secret
    if (
        re.search(_SECRET_NAME, name, re.IGNORECASE)
        and not re.search(_LOCATION_NAME, name, re.IGNORECASE)
        and len(value) >= MIN_SECRET_LENGTH
    ):
        return (value,)
    return ()


def secrets_in_url(url: str | None) -> tuple[str, ...]:
    """The credentials inside ``url``: its user and password, and the values of query
    parameters named like keys (``api_key``, ``token``, ``sig``, ...)."""
    if not url or ("@" not in url and "?" not in url):
        return ()
    try:
        parts = urlsplit(url.strip())
        found = [parts.password or "", parts.username or ""] if "@" in parts.netloc else []
        found += [
            v for k, v in parse_qsl(parts.query, keep_blank_values=False) if re.search(_SECRET_PARAM, k, re.IGNORECASE)
        ]
    except ValueError:
        return ()
    out = {unquote(s) for s in found} | set(found)
    return tuple(s for s in out if len(s) >= MIN_SECRET_LENGTH)


def without_credentials(url: str) -> str:
    """``url`` without its user, password and key-like query parameters: what may be
    stored and shown as an endpoint."""
    if not url or ("@" not in url and "?" not in url):
        return url
    try:
        parts = urlsplit(url)
        netloc = parts.netloc.rpartition("@")[2]
        pairs = parse_qsl(parts.query, keep_blank_values=True)
        query = urlencode([(k, v) for k, v in pairs if not re.search(_SECRET_PARAM, k, re.IGNORECASE)])
    except ValueError:
        return url
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def _encoded_forms(secret: str) -> set[str]:
    """``secret`` as it travels inside other text: plain, percent-encoded, and the part of
    its base64 encoding that does not depend on the bytes around it, at each of the three
    offsets it can have in a base64 group (standard and URL-safe alphabets)."""
    import base64  # here: only runs that know a secret pay for it

    forms = {secret, quote(secret, safe="")}
    raw = secret.encode("utf-8", "surrogatepass")
    for offset in range(3):
        encoded = base64.b64encode(b"\0" * offset + raw).decode("ascii").rstrip("=")
        # Output character j carries input bits 6j..6j+5: keep those made of the secret only.
        start = -(-8 * offset // 6)
        end = (8 * (offset + len(raw))) // 6
        core = encoded[start:end]
        forms.update((core, core.replace("+", "-").replace("/", "_")))
    return {f for f in forms if len(f) >= MIN_SECRET_LENGTH}


class Redactor:
    """Replaces the given secrets (and URL credentials in any text) by ``[redacted]``.

    Build once and reuse: the fragments of every secret are computed up front.
    """

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self.secrets = frozenset(s for s in secrets if isinstance(s, str) and len(s) >= MIN_SECRET_LENGTH)
        forms: set[str] = set()
        for secret in self.secrets:
            forms |= _encoded_forms(secret)
        n = MIN_SECRET_LENGTH
        # Every n-character window of every form: any fragment of n or more characters
        # contains one, and runs of overlapping windows are redacted as one piece.
        self._grams = frozenset(f[i : i + n] for f in forms for i in range(len(f) - n + 1))
        # Every window of n characters contains a block of n/2 that starts at a multiple of
        # n/2: looking those blocks up first is done without a Python loop per character,
        # so a long text without a secret (a base64 image in a prompt) costs little.
        half = n // 2
        self._blocks = frozenset(g[i : i + half] for g in self._grams for i in range(half + 1))

    def _aligned_blocks(self, text: str) -> Iterator[str]:
        half = MIN_SECRET_LENGTH // 2
        return map("".join, zip(*(text[i::half] for i in range(half)), strict=False))

    def may_hold(self, text: str) -> bool:
        """Whether ``text`` may hold something to redact; ``False`` means it certainly does not.

        Valid for several strings joined into one (any separator): every window of
        :data:`MIN_SECRET_LENGTH` characters inside one of them contains an aligned block of
        the joined text, so one check answers for all of them. A fragment that only spans a
        separator is a false alarm, which costs the full redaction and nothing else.
        """
        if _may_hold_url_credentials(text) and (
            re.search(_URL_USERINFO, text) or re.search(_URL_PARAM, text, re.IGNORECASE)
        ):
            return True
        return bool(self._grams) and not self._blocks.isdisjoint(self._aligned_blocks(text))

    def redact(self, text: str) -> str:
        """``text`` with every secret, fragment and URL credential replaced by ``[redacted]``."""
        if not isinstance(text, str) or len(text) < MIN_SECRET_LENGTH:
            return text  # too short for a secret, a fragment or a URL's credentials
        if "@" in text and "://" in text:
            text = re.sub(_URL_USERINFO, lambda m: m["pre"] + REDACTED, text)
        if "=" in text and ("?" in text or "&" in text):
            text = re.sub(_URL_PARAM, lambda m: m["pre"] + REDACTED, text, flags=re.IGNORECASE)
        if not self._grams or self._blocks.isdisjoint(self._aligned_blocks(text)):
            return text
        n, half = MIN_SECRET_LENGTH, MIN_SECRET_LENGTH // 2
        grams, blocks = self._grams, self._blocks
        starts: set[int] = set()
        for k, block in enumerate(self._aligned_blocks(text)):
            if block in blocks:
                q = k * half
                # The windows that contain this aligned block start at q - half .. q.
                starts.update(p for p in range(max(0, q - half), q + 1) if text[p : p + n] in grams)
        spans: list[list[int]] = []
        for start in sorted(starts):
            end = start + n
            if spans and start <= spans[-1][1]:
                spans[-1][1] = max(spans[-1][1], end)
            else:
                spans.append([start, end])
        if not spans:
            return text
        pieces: list[str] = []
        last = 0
        for start, end in spans:
            pieces += (text[last:start], REDACTED)
            last = end
        pieces.append(text[last:])
        return "".join(pieces)

    def redact_values(self, values: Iterable[Any]) -> tuple[Any, ...]:
        """``values`` as a tuple, each string among them redacted, other values as they are.

        One check of all the strings together first: a row with nothing to redact (nearly
        every row) costs one pass over its text, not one call per column.
        """
        values = tuple(values)
        if not self.may_hold("\0".join(v for v in values if isinstance(v, str))):
            return values
        return tuple(self.redact(v) if isinstance(v, str) else v for v in values)

    def redact_data(self, value: Any) -> Any:
        """``value`` (JSON-like: dicts, lists, tuples, strings) with every string, dict keys
        included, redacted. Other values are returned as they are. When nothing needs
        redacting (one check of all its strings together), that is ``value`` itself, not a
        copy; otherwise a copy."""
        strings: list[str] = []
        strings_in(value, strings)
        if not strings or not self.may_hold("\0".join(strings)):
            return value
        return self._redact_copy(value)

    def _redact_copy(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.redact(value)
        if isinstance(value, dict):
            return {self._redact_copy(k): self._redact_copy(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self._redact_copy(v) for v in value]
        if isinstance(value, tuple):
            return tuple(self._redact_copy(v) for v in value)
        return value


def _may_hold_url_credentials(text: str) -> bool:
    """What :data:`_URL_USERINFO` (``://`` then ``@``) and :data:`_URL_PARAM` (``?`` or ``&``
    then ``=``) need, checked without a regex: most texts have neither."""
    return ("@" in text and "://" in text) or ("=" in text and ("?" in text or "&" in text))


def strings_in(value: Any, out: list[str]) -> None:
    """Append every string in the JSON-like ``value`` (dict keys included) to ``out``."""
    if isinstance(value, str):
        out.append(value)
    elif isinstance(value, dict):
        for k, v in value.items():
            if isinstance(k, str):
                out.append(k)
            if isinstance(v, str):
                out.append(v)
            elif isinstance(v, (dict, list, tuple)):
                strings_in(v, out)
    elif isinstance(value, (list, tuple)):
        for v in value:
            if isinstance(v, str):
                out.append(v)
            elif isinstance(v, (dict, list, tuple)):
                strings_in(v, out)


class _Known:
    """Secrets the run learned besides the environment (keys in model URLs, keys handed to
    SDK clients), and the redactor for them together with the environment's.

    Process-wide on purpose: secrets are a property of the process (like ``os.environ``,
    their main source), and the places that must redact (an error built deep inside a
    provider, a store opened by the caller) have no handle on the run's session.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._extra: set[str] = set()
        self._cached: tuple[frozenset[str], Redactor] | None = None
        # What each environment variable (name, value) holds: scanning every variable with
        # two regexes on each write cost ~1 ms per case (issue 17), and the environment does
        # change while tests run (pytest sets PYTEST_CURRENT_TEST for every phase).
        self._variables: dict[tuple[Any, Any], tuple[str, ...]] = {}
        self._last: tuple[dict[Any, Any], frozenset[str]] | None = None

    def remember(self, secrets: Iterable[str]) -> None:
        with self._lock:
            self._extra.update(s for s in secrets if isinstance(s, str) and len(s) >= MIN_SECRET_LENGTH)

    def forget(self, secrets: Iterable[str]) -> None:
        with self._lock:
            self._extra.difference_update(secrets)

    def redactor(self) -> Redactor:
        # The environment is read every time: tests and conftest files set keys late.
        with self._lock:
            wanted = self._env_secrets() | self._extra
            if self._cached is None or self._cached[0] != wanted:
                self._cached = (wanted, Redactor(wanted))
            return self._cached[1]

    def _env_secrets(self) -> frozenset[str]:
        # os.environ keeps its raw (bytes, on POSIX) mapping in `_data`: reading it skips a
        # decode per variable. Anywhere else, the decoded items.
        raw = getattr(os.environ, "_data", None)
        last = self._last
        if isinstance(raw, dict) and last is not None:
            # The common case, in one C-level comparison: nothing changed but the variable
            # pytest sets for every phase (which names no secret).
            snapshot, secrets = last
            snapshot[_PYTEST_CURRENT] = raw.get(_PYTEST_CURRENT)
            if _PYTEST_CURRENT not in raw:
                del snapshot[_PYTEST_CURRENT]
            if snapshot == raw:
                return secrets
        pairs = raw.items() if isinstance(raw, dict) else os.environ.items()
        known = self._variables
        if len(known) > 4096:  # PYTEST_CURRENT_TEST takes a new value per test phase
            known.clear()
        found: set[str] = set()
        for pair in pairs:
            of_variable = known.get(pair)
            if of_variable is None:
                name, value = (os.fsdecode(part) for part in pair)
                of_variable = known[pair] = _secrets_of_variable(name, value)
            if of_variable:
                found.update(of_variable)
        result = frozenset(found)
        if isinstance(raw, dict):
            self._last = (dict(raw), result)
        return result


# The raw key of PYTEST_CURRENT_TEST in os.environ._data (bytes on POSIX, str on Windows).
_PYTEST_CURRENT: Any = (
    os.environ.encodekey("PYTEST_CURRENT_TEST") if hasattr(os.environ, "encodekey") else "PYTEST_CURRENT_TEST"
)

_KNOWN = _Known()


def remember(*secrets: str) -> None:
    """Add secrets to what every redaction of this process replaces (e.g. a key given to
    an SDK client, or found in a model URL). Values shorter than 8 characters are ignored."""
    _KNOWN.remember(secrets)


def forget(*secrets: str) -> None:
    """Undo :func:`remember` (the run that learned them has ended)."""
    _KNOWN.forget(secrets)


def current() -> Redactor:
    """The redactor for everything known now: the environment's secrets and :func:`remember`\\ ed ones."""
    return _KNOWN.redactor()


def redact_secrets(text: str, secrets: Iterable[str] | None = None) -> str:
    """``text`` with every secret replaced by ``[redacted]``: the given ones, or (default)
    everything :func:`current` knows.

    Keys never reach the store or reports by design; this catches servers, models and
    prompts that echo one back.
    """
    return (current() if secrets is None else Redactor(secrets)).redact(text)


def redact_data(value: Any) -> Any:
    """:meth:`Redactor.redact_data` with everything :func:`current` knows."""
    return current().redact_data(value)
