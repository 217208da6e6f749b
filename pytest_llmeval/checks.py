"""Deterministic checks on model output: ``exact``, ``includes``, ``regex``, ``is_json``,
``jsonpath``.

Each check returns a :class:`CheckResult` that is truthy when it passes, so a test reads
``assert exact(answer, "Paris")``; the result records itself against the running test.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from pytest_llmeval.recording import record_result

if TYPE_CHECKING:
    from jsonpath_ng import JSONPath

__all__ = ["CheckResult", "exact", "includes", "is_json", "jsonpath", "regex"]

# Room for one value in the one-line repr; pytest cuts reprs longer than 240 characters
# (at default verbosity), so each part has to stay well below that on its own.
_REPR_VALUE_CHARS = 60
# Room for one value in the multi-line description and in explanations.
_DESCRIBE_VALUE_CHARS = 400


class _Missing:
    """Sentinel type for "no expected value given" (``None`` is a valid JSON value)."""

    def __repr__(self) -> str:
        return "<missing>"


_MISSING: Any = _Missing()


# --------------------------------------------------------------------------- result


@dataclass(frozen=True, repr=False)
class CheckResult:
    """The outcome of one check: truthy when it passed.

    ``expected`` and ``actual`` are what the check compared, ``explanation`` says why it
    passed or failed (including any normalisation applied) and ``metadata`` holds
    check-specific details, e.g. the parsed document under ``"value"`` for ``is_json``.
    """

    name: str
    passed: bool
    expected: Any
    actual: Any
    explanation: str
    metadata: dict[str, Any] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return self.passed

    @property
    def score(self) -> float:
        """1.0 when the check passed, else 0.0 (the same scale as a judge's grade)."""
        return 1.0 if self.passed else 0.0

    @property
    def value(self) -> Any:
        """The parsed or matched value (``is_json``, ``jsonpath``), else ``None``."""
        return self.metadata.get("value")

    @property
    def verdict(self) -> str:
        """``"PASSED"`` or ``"FAILED"``."""
        return "PASSED" if self.passed else "FAILED"

    def __repr__(self) -> str:
        # One line on purpose: pytest escapes newlines in the repr it shows for a failed
        # ``assert check(...)`` and cuts it to 240 characters, so a multi-line repr would
        # print as one long line of literal "\n"s. ``str()`` gives the multi-line form.
        return (
            f"<{self.name} {self.verdict}"
            f" | expected: {shorten(self.expected, _REPR_VALUE_CHARS)}"
            f" | actual: {shorten(self.actual, _REPR_VALUE_CHARS)}"
            f" | why: {self.explanation}>"
        )

    def __str__(self) -> str:
        return self.describe()

    def describe(self) -> str:
        """A readable multi-line description, for reports and terminal sections."""
        return "\n".join(
            [
                f"{self.name}: {self.verdict}",
                f"  expected: {shorten(self.expected, _DESCRIBE_VALUE_CHARS)}",
                f"  actual:   {shorten(self.actual, _DESCRIBE_VALUE_CHARS)}",
                f"  why:      {self.explanation}",
            ]
        )

    def to_dict(self, *, max_chars: int | None = 10_000) -> dict[str, Any]:
        """A JSON-safe dict for reports; strings longer than ``max_chars`` are shortened."""
        return {
            "name": self.name,
            "passed": self.passed,
            "score": self.score,
            "expected": _json_safe(self.expected, max_chars),
            "actual": _json_safe(self.actual, max_chars),
            "explanation": self.explanation,
            "metadata": _json_safe(self.metadata, max_chars),
        }


def shorten(value: Any, limit: int = _DESCRIBE_VALUE_CHARS) -> str:
    """``repr(value)``, cut in the middle with a note of the full length when too long.

    ``repr`` shows control characters escaped, so a stray ``\\x1b`` or ``\\r`` in model
    output cannot garble the terminal. Strings are cut before ``repr`` so that a 10 MB
    output costs nothing to describe.
    """
    if isinstance(value, str):
        if len(value) <= limit:
            return repr(value)
        half = max(limit // 2, 1)
        return f"{value[:half]!r} ... {value[-half:]!r} ({len(value):,} chars, shortened)"
    text = repr(value)
    if len(text) <= limit:
        return text
    half = max(limit // 2, 1)
    return f"{text[:half]} ... {text[-half:]} ({len(text):,} chars of repr, shortened)"


def _json_safe(value: Any, max_chars: int | None) -> Any:
    if value is None or isinstance(value, (bool, int)):
        return value
    if isinstance(value, float):
        # NaN and infinities are not JSON; keep them readable rather than invalid.
        return value if math.isfinite(value) else repr(value)
    if isinstance(value, str):
        if max_chars is not None and len(value) > max_chars:
            half = max_chars // 2
            return f"{value[:half]}...[{len(value):,} chars, shortened]...{value[-half:]}"
        return value
    if isinstance(value, re.Pattern):
        return value.pattern
    if isinstance(value, dict):
        return {str(k): _json_safe(v, max_chars) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_json_safe(v, max_chars) for v in value]
    return _json_safe(repr(value), max_chars)


def _finish(result: CheckResult) -> CheckResult:
    record_result(result)
    return result


def _text(value: Any, check: str, argument: str = "output") -> str:
    """The text of a str or of a Completion-like object with ``.text``."""
    text = getattr(value, "text", value)
    if not isinstance(text, str):
        raise TypeError(
            f"{check}() expects {argument} to be a str or an object with a .text str "
            f"(a Completion), got {type(value).__name__}"
        )
    return text


# --------------------------------------------------------------------------- exact

# Sentence-final and clause punctuation across scripts: ASCII, CJK full-width and
# ideographic, Arabic, Devanagari, Armenian, Ethiopic, Greek, plus ellipses.
_TRAILING_PUNCTUATION = (
    ".!?,;:"
    "\u2026\u2025\u203c\u2047\u2048\u2049"  # … ‥ ‼ ⁇ ⁈ ⁉
    "\u3002\u3001\uff0e\uff01\uff1f\uff0c\uff1b\uff1a\uff61\uff64"  # 。、．！？，；：｡､
    "\u061f\u060c\u061b\u06d4"  # ؟ ، ؛ ۔
    "\u0964\u0965"  # । ॥
    "\u0589\u1362\u1363\u1364\u1367"  # ։ ። ፣ ፤ ፧
    "\u037e"  # Greek question mark
)
_WHITESPACE_RUN = re.compile(r"\s+")
# Below this length two strings are compared at a glance; no need to point at a character.
_SHORT_TEXT = 40


def _normalise(
    text: str,
    *,
    ignore_case: bool,
    strip: bool,
    strip_punctuation: bool,
    collapse_whitespace: bool,
) -> str:
    if collapse_whitespace:
        text = _WHITESPACE_RUN.sub(" ", text)
    if strip:
        text = text.strip()
    if strip_punctuation:
        # With strip on, "Paris. " and "Paris !" lose both the mark and the space.
        chars = _TRAILING_PUNCTUATION + (" \t\r\n\f\v" if strip else "")
        text = text.rstrip(chars)
        if strip:
            text = text.rstrip()
    if ignore_case:
        text = text.casefold()
    return text


def _first_difference(a: str, b: str) -> str:
    for index, (x, y) in enumerate(zip(a, b, strict=False)):
        if x != y:
            return f"first difference at character {index}: {x!r} vs {y!r}"
    shorter, longer = ("actual", "expected") if len(a) < len(b) else ("expected", "actual")
    return f"{shorter} ends at character {min(len(a), len(b))} where {longer} goes on"


def exact(
    output: Any,
    expected: Any,
    *,
    ignore_case: bool = True,
    strip: bool = True,
    strip_punctuation: bool = True,
    collapse_whitespace: bool = True,
) -> CheckResult:
    """Pass when ``output`` equals ``expected`` after normalisation.

    By default both sides are case-folded (``ignore_case``), stripped of surrounding
    whitespace (``strip``), of trailing punctuation such as ``. ! ? , ; :`` and ``。``
    (``strip_punctuation``), and inner runs of whitespace become one space
    (``collapse_whitespace``). Pass ``False`` to switch one off; all off is a plain
    ``==``. ``output`` may be a str or a Completion (anything with ``.text``)::

        assert exact(answer, "Paris")                 # "paris." passes
        assert exact(answer, "Paris", ignore_case=False)
    """
    actual = _text(output, "exact")
    wanted = _text(expected, "exact", "expected")
    options = {
        "ignore_case": ignore_case,
        "strip": strip,
        "strip_punctuation": strip_punctuation,
        "collapse_whitespace": collapse_whitespace,
    }
    applied = [name for name, enabled in options.items() if enabled]
    norm_actual = _normalise(actual, **options)
    norm_expected = _normalise(wanted, **options)
    passed = norm_actual == norm_expected
    # The normalisation list goes last: pytest cuts long reprs in the middle, and the
    # normalised forms are what a reader needs first.
    how = f"normalised: {', '.join(applied)}" if applied else "no normalisation"
    if passed:
        explanation = f"equal ({how})"
    else:
        details = []
        if norm_actual != actual or norm_expected != wanted:
            details.append(f"{shorten(norm_actual, _REPR_VALUE_CHARS)} != {shorten(norm_expected, _REPR_VALUE_CHARS)}")
        if max(len(norm_actual), len(norm_expected)) > _SHORT_TEXT:
            details.append(_first_difference(norm_actual, norm_expected))
        explanation = "; ".join(["not equal", *details]) + f" ({how})"
    return _finish(
        CheckResult(
            name="exact",
            passed=passed,
            expected=wanted,
            actual=actual,
            explanation=explanation,
            metadata={"normalisations": applied},
        )
    )


# --------------------------------------------------------------------------- includes


def includes(
    output: Any,
    *needles: str,
    any: bool = False,  # the public contract names it `any`; shadowing is local
    ignore_case: bool = True,
) -> CheckResult:
    """Pass when every needle (or, with ``any=True``, at least one) occurs in ``output``.

    Matching is case-insensitive unless ``ignore_case=False``::

        assert includes(answer, "Paris", "France")
        assert includes(answer, "yes", "certainly", any=True)
    """
    if not needles:
        raise ValueError("includes() needs at least one needle to look for")
    text = _text(output, "includes")
    for needle in needles:
        if not isinstance(needle, str):
            raise TypeError(f"includes() needles must be str, got {type(needle).__name__}")
    haystack = text.casefold() if ignore_case else text
    found = [n for n in needles if (n.casefold() if ignore_case else n) in haystack]
    missing = [n for n in needles if n not in found]
    passed = bool(found) if any else not missing
    mode = "any" if any else "all"
    case_note = "ignoring case" if ignore_case else "case-sensitive"
    listed = ", ".join(shorten(n, _REPR_VALUE_CHARS) for n in (found if passed else missing))
    if passed and any:
        explanation = f"found {listed} ({case_note})"
    elif passed:
        explanation = f"all {len(needles)} found ({case_note})"
    elif any:
        explanation = f"none found: {listed} ({case_note})"
    else:
        explanation = f"missing {len(missing)} of {len(needles)}: {listed} ({case_note})"
    return _finish(
        CheckResult(
            name="includes",
            passed=passed,
            expected=list(needles),
            actual=text,
            explanation=explanation,
            metadata={
                "mode": mode,
                "found": found,
                "missing": missing,
                "ignore_case": ignore_case,
            },
        )
    )


# --------------------------------------------------------------------------- regex


def _compile(pattern: str | re.Pattern[str], flags: int) -> re.Pattern[str]:
    try:
        if isinstance(pattern, re.Pattern):
            # re.compile refuses flags together with a compiled pattern; merge them.
            return pattern if not flags else re.compile(pattern.pattern, pattern.flags | flags)
        if not isinstance(pattern, str):
            raise TypeError(f"regex() pattern must be a str or compiled pattern, got {type(pattern).__name__}")
        return re.compile(pattern, flags)
    except re.error as err:
        shown = pattern.pattern if isinstance(pattern, re.Pattern) else pattern
        raise ValueError(f"invalid regular expression {shown!r}: {err}") from None


def regex(output: Any, pattern: str | re.Pattern[str], *, flags: int = 0) -> CheckResult:
    """Pass when ``pattern`` matches somewhere in ``output`` (``re.search``).

    ``metadata`` holds the ``match``, its ``span``, ``groups`` and named ``groupdict``::

        assert regex(answer, r"\\b(19|20)\\d\\d\\b")
        assert regex(answer, "^yes", flags=re.IGNORECASE | re.MULTILINE)
    """
    compiled = _compile(pattern, flags)
    text = _text(output, "regex")
    match = compiled.search(text)
    if match is None:
        explanation = f"no match for /{compiled.pattern}/ in the output"
        metadata: dict[str, Any] = {
            "match": None,
            "span": None,
            "groups": [],
            "groupdict": {},
        }
    else:
        start, end = match.span()
        explanation = f"matched {shorten(match.group(0), _REPR_VALUE_CHARS)} at characters {start}-{end}"
        metadata = {
            "match": match.group(0),
            "span": [start, end],
            "groups": list(match.groups()),
            "groupdict": match.groupdict(),
        }
    metadata["flags"] = compiled.flags
    return _finish(
        CheckResult(
            name="regex",
            passed=match is not None,
            expected=compiled.pattern,
            actual=text,
            explanation=explanation,
            metadata=metadata,
        )
    )


# --------------------------------------------------------------------------- JSON parsing

# A fenced code block: ``` or ~~~ (3 or more), an optional language tag, then the body up
# to the same fence. The tag may sit on the fence line with the JSON after it.
_FENCED_BLOCK = re.compile(
    r"(?P<fence>`{3,}|~{3,})[ \t]*(?P<lang>[A-Za-z0-9_+.#-]*)[ \t]*\n?(?P<body>.*?)(?P=fence)",
    re.DOTALL,
)


@dataclass(frozen=True)
class _Parsed:
    ok: bool
    value: Any = None
    source: str = ""  # "output" or "fenced block N"
    error: str = ""


def _reject_constant(name: str) -> Any:
    # Python's json accepts NaN and Infinity, which are not JSON and break other parsers.
    raise ValueError(f"{name} is not valid JSON")


def _loads(text: str) -> Any:
    return json.loads(text, parse_constant=_reject_constant)


def _parse_json(text: str) -> _Parsed:
    """Parse the whole output as JSON, else the first fenced code block that parses."""
    if not text.strip():
        return _Parsed(ok=False, error="output is empty")
    try:
        return _Parsed(ok=True, value=_loads(text), source="output")
    except (ValueError, RecursionError) as err:
        bare_error = str(err)
    block_errors: list[str] = []
    for number, block in enumerate(_FENCED_BLOCK.finditer(text), start=1):
        try:
            value = _loads(block.group("body"))
        except (ValueError, RecursionError) as err:
            block_errors.append(f"block {number}: {err}")
            continue
        return _Parsed(ok=True, value=value, source=f"fenced block {number}")
    error = f"not valid JSON ({bare_error})"
    if block_errors:
        error += f"; {len(block_errors)} fenced code block(s), none is valid JSON ({'; '.join(block_errors)})"
    else:
        error += " and no fenced code block found"
    return _Parsed(ok=False, error=error)


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, (list, tuple)):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _describe_json(value: Any) -> str:
    kind = _json_type(value)
    if isinstance(value, dict):
        return f"an object with {len(value)} key(s)"
    if isinstance(value, list):
        return f"an array of {len(value)} item(s)"
    return f"a {kind}"


def _json_equal(a: Any, b: Any) -> bool:
    """JSON equality: ``true`` is not ``1``, ``1`` is ``1.0``, tuples are arrays."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_json_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_json_equal(a[k], b[k]) for k in a)
    return type(a) is type(b) and bool(a == b)


def _short_json(value: Any, limit: int = _REPR_VALUE_CHARS) -> str:
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        text = repr(value)
    if len(text) <= limit:
        return text
    half = limit // 2
    return f"{text[:half]}...{text[-half:]}"


# --------------------------------------------------------------------------- JSON Schema

_TYPES = ("null", "boolean", "integer", "number", "string", "array", "object")
# Keywords that only annotate: ignoring them cannot make a check pass wrongly.
_ANNOTATIONS = frozenset(
    {
        "$schema",
        "$id",
        "$comment",
        "title",
        "description",
        "default",
        "examples",
        "deprecated",
    }
)
_SCHEMA_KEYWORDS = frozenset(
    {
        "type",
        "properties",
        "required",
        "additionalProperties",
        "items",
        "enum",
        "const",
        "minimum",
        "maximum",
        "exclusiveMinimum",
        "exclusiveMaximum",
        "minLength",
        "maxLength",
        "pattern",
        "minItems",
        "maxItems",
        "anyOf",
        "oneOf",
        "allOf",
        "not",
    }
)
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def _schema_error(where: str, message: str) -> ValueError:
    return ValueError(f"is_json(): invalid schema at {where}: {message}")


def _check_schema(schema: Any, where: str = "#") -> None:
    """Reject schemas this validator cannot honour, before any data is looked at."""
    if isinstance(schema, bool):
        return
    if not isinstance(schema, dict):
        raise _schema_error(where, f"a schema must be an object or boolean, got {schema!r}")
    for key, arg in schema.items():
        at = f"{where}/{key}"
        if key in _ANNOTATIONS:
            continue
        if key not in _SCHEMA_KEYWORDS:
            supported = ", ".join(sorted(_SCHEMA_KEYWORDS))
            raise ValueError(f"is_json(): unsupported JSON Schema keyword {key!r} at {where} (supported: {supported})")
        _check_keyword(key, arg, at)


def _check_keyword(key: str, arg: Any, at: str) -> None:
    if key == "type":
        names = arg if isinstance(arg, list) else [arg]
        unknown = [n for n in names if n not in _TYPES]
        if unknown or not names:
            raise _schema_error(at, f"unknown type {unknown or arg!r}; known: {', '.join(_TYPES)}")
    elif key == "properties":
        if not isinstance(arg, dict):
            raise _schema_error(at, "must be an object of schemas")
        for name, sub in arg.items():
            _check_schema(sub, f"{at}/{name}")
    elif key == "required":
        if not isinstance(arg, list) or not all(isinstance(n, str) for n in arg):
            raise _schema_error(at, "must be a list of property names")
    elif key in ("additionalProperties", "not"):
        _check_schema(arg, at)
    elif key == "items":
        if isinstance(arg, list):
            raise _schema_error(at, "a list of item schemas (tuple form) is not supported")
        _check_schema(arg, at)
    elif key == "enum":
        if not isinstance(arg, list):
            raise _schema_error(at, "must be a list")
    elif key in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        if isinstance(arg, bool) or not isinstance(arg, (int, float)):
            raise _schema_error(at, f"must be a number, got {arg!r}")
    elif key in ("minLength", "maxLength", "minItems", "maxItems"):
        if isinstance(arg, bool) or not isinstance(arg, int) or arg < 0:
            raise _schema_error(at, f"must be a non-negative integer, got {arg!r}")
    elif key == "pattern":
        if not isinstance(arg, str):
            raise _schema_error(at, "must be a string")
        try:
            re.compile(arg)
        except re.error as err:
            raise _schema_error(at, f"invalid regular expression {arg!r}: {err}") from None
    elif key in ("anyOf", "oneOf", "allOf"):
        if not isinstance(arg, list) or not arg:
            raise _schema_error(at, "must be a non-empty list of schemas")
        for index, sub in enumerate(arg):
            _check_schema(sub, f"{at}/{index}")


def _child_path(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    if _IDENTIFIER.match(key):
        return f"{path}.{key}"
    return f"{path}[{json.dumps(key, ensure_ascii=False)}]"


def _type_matches(value: Any, name: str) -> bool:
    if name == "integer":
        # JSON Schema counts 1.0 as an integer; Python's json parses it as float.
        return _json_type(value) == "integer" or (isinstance(value, float) and value.is_integer())
    if name == "number":
        return _json_type(value) in ("integer", "number")
    return _json_type(value) == name


def _validate(value: Any, schema: Any, path: str = "$") -> Iterator[str]:
    """Yield one ``"<json path>: <message>"`` per violation, in document order."""
    if schema is True:
        return
    if schema is False:
        yield f"{path}: no value is allowed here (schema is false)"
        return
    if "type" in schema:
        names = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        if not any(_type_matches(value, n) for n in names):
            yield f"{path}: expected {' or '.join(names)}, got {_json_type(value)}"
            return  # further keywords would only repeat the type mismatch
    if "enum" in schema and not any(_json_equal(value, e) for e in schema["enum"]):
        yield f"{path}: {_short_json(value)} is not one of {_short_json(schema['enum'])}"
    if "const" in schema and not _json_equal(value, schema["const"]):
        yield f"{path}: expected {_short_json(schema['const'])}, got {_short_json(value)}"
    if isinstance(value, str):
        yield from _validate_string(value, schema, path)
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        yield from _validate_number(value, schema, path)
    elif isinstance(value, list):
        yield from _validate_array(value, schema, path)
    elif isinstance(value, dict):
        yield from _validate_object(value, schema, path)
    yield from _validate_combinators(value, schema, path)


def _validate_string(value: str, schema: dict[str, Any], path: str) -> Iterator[str]:
    if "minLength" in schema and len(value) < schema["minLength"]:
        yield f"{path}: string of {len(value)} chars is shorter than minLength {schema['minLength']}"
    if "maxLength" in schema and len(value) > schema["maxLength"]:
        yield f"{path}: string of {len(value)} chars is longer than maxLength {schema['maxLength']}"
    if "pattern" in schema and re.search(schema["pattern"], value) is None:
        yield f"{path}: {_short_json(value)} does not match pattern {schema['pattern']!r}"


def _validate_number(value: float, schema: dict[str, Any], path: str) -> Iterator[str]:
    if "minimum" in schema and value < schema["minimum"]:
        yield f"{path}: {value} is less than minimum {schema['minimum']}"
    if "maximum" in schema and value > schema["maximum"]:
        yield f"{path}: {value} is greater than maximum {schema['maximum']}"
    if "exclusiveMinimum" in schema and value <= schema["exclusiveMinimum"]:
        yield f"{path}: {value} is not greater than exclusiveMinimum {schema['exclusiveMinimum']}"
    if "exclusiveMaximum" in schema and value >= schema["exclusiveMaximum"]:
        yield f"{path}: {value} is not less than exclusiveMaximum {schema['exclusiveMaximum']}"


def _validate_array(value: list[Any], schema: dict[str, Any], path: str) -> Iterator[str]:
    if "minItems" in schema and len(value) < schema["minItems"]:
        yield f"{path}: array of {len(value)} item(s) has fewer than minItems {schema['minItems']}"
    if "maxItems" in schema and len(value) > schema["maxItems"]:
        yield f"{path}: array of {len(value)} item(s) has more than maxItems {schema['maxItems']}"
    if "items" in schema:
        for index, item in enumerate(value):
            yield from _validate(item, schema["items"], _child_path(path, index))


def _validate_object(value: dict[str, Any], schema: dict[str, Any], path: str) -> Iterator[str]:
    for name in schema.get("required", []):
        if name not in value:
            yield f"{path}: missing required property {name!r}"
    properties: dict[str, Any] = schema.get("properties", {})
    extra = schema.get("additionalProperties", True)
    for key, item in value.items():
        if key in properties:
            yield from _validate(item, properties[key], _child_path(path, key))
        elif extra is False:
            yield f"{path}: unexpected property {key!r} (additionalProperties is false)"
        elif extra is not True:
            yield from _validate(item, extra, _child_path(path, key))


def _validate_combinators(value: Any, schema: dict[str, Any], path: str) -> Iterator[str]:
    for sub in schema.get("allOf", []):
        yield from _validate(value, sub, path)
    if "anyOf" in schema:
        failures = [list(_validate(value, sub, path)) for sub in schema["anyOf"]]
        if all(failures):
            yield f"{path}: matches no anyOf alternative ({_alternatives(failures)})"
    if "oneOf" in schema:
        failures = [list(_validate(value, sub, path)) for sub in schema["oneOf"]]
        matching = [i for i, errors in enumerate(failures) if not errors]
        if not matching:
            yield f"{path}: matches no oneOf alternative ({_alternatives(failures)})"
        elif len(matching) > 1:
            yield (f"{path}: matches {len(matching)} oneOf alternatives {matching}, expected exactly one")
    if "not" in schema and not any(True for _ in _validate(value, schema["not"], path)):
        yield f"{path}: must not match the 'not' schema"


def _alternatives(failures: Sequence[list[str]]) -> str:
    return "; ".join(f"[{i}] {errors[0]}" for i, errors in enumerate(failures))


# --------------------------------------------------------------------------- is_json


def is_json(output: Any, schema: dict[str, Any] | bool | None = None) -> CheckResult:
    """Pass when ``output`` is JSON (and, with ``schema``, valid against it).

    When the whole output is not JSON, the first fenced code block (```` ```json ````,
    ```` ``` ```` or ``~~~``) that parses is used. The parsed document is
    ``result.value`` (also ``result.metadata["value"]``). ``schema`` is a JSON Schema
    subset: ``type``, ``properties``, ``required``, ``additionalProperties``, ``items``,
    ``enum``, ``const``, ``minimum``, ``maximum``, ``exclusiveMinimum``,
    ``exclusiveMaximum``, ``minLength``, ``maxLength``, ``pattern``, ``minItems``,
    ``maxItems``, ``anyOf``, ``oneOf``, ``allOf``, ``not``; any other keyword raises
    ``ValueError`` rather than being ignored::

        result = is_json(answer, {"type": "object", "required": ["name"]})
        assert result
        assert result.value["name"] == "Ada"
    """
    if schema is not None:
        _check_schema(schema)
    text = _text(output, "is_json")
    parsed = _parse_json(text)
    # The schema goes in metadata, not `expected`: printed whole it would crowd the
    # violation out of pytest's 240-character assertion line.
    expected = "valid JSON" if schema is None else "valid JSON matching the schema"
    metadata: dict[str, Any] = {"value": parsed.value, "source": parsed.source or None}
    if schema is not None:
        metadata["schema"] = schema
    if not parsed.ok:
        return _finish(CheckResult("is_json", False, expected, text, parsed.error, metadata))
    found = f"{_describe_json(parsed.value)} from {'the ' if parsed.source == 'output' else ''}"
    found += parsed.source
    if schema is None:
        return _finish(CheckResult("is_json", True, expected, text, f"valid JSON: {found}", metadata))
    errors = list(_validate(parsed.value, schema))
    metadata["errors"] = errors
    if errors:
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        explanation = f"{errors[0]}{more}; parsed {found}"
    else:
        explanation = f"valid JSON matching the schema: {found}"
    return _finish(CheckResult("is_json", not errors, expected, text, explanation, metadata))


# --------------------------------------------------------------------------- jsonpath


@lru_cache(maxsize=256)
def _compile_jsonpath(path: str) -> JSONPath:
    # Imported here: jsonpath-ng (and its PLY parser) costs import time for every pytest
    # run, and most runs never evaluate a JSONPath. Parsing costs ~30 ms, hence the cache.
    from jsonpath_ng.exceptions import JSONPathError
    from jsonpath_ng.ext import parse

    try:
        return parse(path)
    except JSONPathError as err:
        raise ValueError(f"invalid JSONPath expression {path!r}: {err}") from None


def _datum_path(datum: Any) -> str:
    """``$.items[1].name`` for a jsonpath-ng match, instead of its ``((items.[1]).name)``."""
    parts: list[str] = []
    node = datum
    while node is not None and getattr(node, "path", None) is not None:
        step = node.path
        kind = type(step).__name__
        if kind == "Fields" and len(step.fields) == 1:
            parts.append(_child_path("", step.fields[0]))
        elif kind == "Index" and len(getattr(step, "indices", ())) == 1:
            parts.append(f"[{step.indices[0]}]")
        elif kind == "Root":
            break
        else:
            return str(datum.full_path)
        node = node.context
    return "$" + "".join(reversed(parts))


def jsonpath(output: Any, path: str, expected: Any = _MISSING) -> CheckResult:
    """Pass when the JSONPath ``path`` matches the JSON in ``output`` (and equals ``expected``).

    The JSON is found as in :func:`is_json`, fenced blocks included. ``path`` uses
    jsonpath-ng's extended syntax, filters included (``$.items[?(@.price > 3)].name``).
    Without ``expected`` one match or more passes; with it, a single match is compared
    with ``expected`` and several matches are compared as a list of values. Comparison
    is JSON equality (``true`` is not ``1``). ``result.value`` is the matched value(s)::

        assert jsonpath(answer, "$.city", "Paris")
        assert jsonpath(answer, "$.items[*].sku", ["A1", "B2"])
    """
    if not isinstance(path, str):
        raise TypeError(f"jsonpath() path must be a str, got {type(path).__name__}")
    compiled = _compile_jsonpath(path)
    text = _text(output, "jsonpath")
    shown_expected: Any = f"a match for {path}" if expected is _MISSING else expected
    parsed = _parse_json(text)
    if not parsed.ok:
        return _finish(CheckResult("jsonpath", False, shown_expected, text, parsed.error, {}))
    try:
        matches = compiled.find(parsed.value)
    except re.error as err:
        # A filter's =~ regex is only compiled when evaluated.
        raise ValueError(f"invalid JSONPath expression {path!r}: {err}") from None
    values = [m.value for m in matches]
    metadata: dict[str, Any] = {
        "path": path,
        "paths": [_datum_path(m) for m in matches],
        "matches": values,
        "source": parsed.source,
    }
    if not matches:
        explanation = f"no match for {path}"
        return _finish(CheckResult("jsonpath", False, shown_expected, text, explanation, metadata))
    actual = values[0] if len(values) == 1 else values
    metadata["value"] = actual
    where = ", ".join(metadata["paths"][:5]) + (" ..." if len(values) > 5 else "")
    count = "1 match" if len(values) == 1 else f"{len(values)} matches (compared as a list)"
    if expected is _MISSING:
        passed = True
        explanation = f"{count} for {path} at {where}"
    else:
        passed = _json_equal(actual, expected)
        verb = "equals" if passed else "differs from"
        explanation = f"{count} for {path} at {where}; value {verb} expected"
    return _finish(CheckResult("jsonpath", passed, shown_expected, actual, explanation, metadata))
