"""Deterministic checks on model output: ``exact``, ``includes``, ``regex``, ``is_json``,
``jsonpath``.

Each check returns a :class:`CheckResult` that is truthy when it passes, so a test reads
``assert exact(answer, "Paris")``; the result records itself against the running test.
"""

from __future__ import annotations

import difflib
import json
import math
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import cache, lru_cache
from typing import TYPE_CHECKING, Any

from pytest_llmeval.recording import record_result
from pytest_llmeval.text import short_repr

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

# The fields whose reading counts as the test using a check's result (see CheckResult.used).
_LOOKED_AT = frozenset({"passed", "expected", "actual", "explanation", "metadata"})


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

    # Whether the test looked at the result (its truth value or any of its fields, so also
    # score, value, verdict, str()): a failed check nobody looked at is warned about at the
    # end of the test. A list, because the dataclass is frozen; left out of ==.
    _looked: list[bool] = field(default_factory=list, compare=False, repr=False)

    def __getattribute__(self, name: str) -> Any:
        if name in _LOOKED_AT:
            looked = object.__getattribute__(self, "_looked")
            if not looked:
                looked.append(True)
        return object.__getattribute__(self, name)

    def __bool__(self) -> bool:
        return self.passed

    @property
    def used(self) -> bool:
        """Whether the test asserted or used this result (truth value, ``score``, ``value``,
        ``verdict`` or text); checked by the plugin when the test ends."""
        return bool(self._looked)

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
            f" | expected: {short_repr(self.expected, _REPR_VALUE_CHARS)}"
            f" | actual: {short_repr(self.actual, _REPR_VALUE_CHARS)}"
            f" | why: {self.explanation}>"
        )

    def __str__(self) -> str:
        return self.describe()

    def describe(self) -> str:
        """A readable multi-line description, for reports and terminal sections."""
        return "\n".join(
            [
                f"{self.name}: {self.verdict}",
                f"  expected: {short_repr(self.expected, _DESCRIBE_VALUE_CHARS)}",
                f"  actual:   {short_repr(self.actual, _DESCRIBE_VALUE_CHARS)}",
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
            details.append(
                f"{short_repr(norm_actual, _REPR_VALUE_CHARS)} != {short_repr(norm_expected, _REPR_VALUE_CHARS)}"
            )
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
    listed = ", ".join(short_repr(n, _REPR_VALUE_CHARS) for n in (found if passed else missing))
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
        explanation = f"matched {short_repr(match.group(0), _REPR_VALUE_CHARS)} at characters {start}-{end}"
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
#
# Validation is the ``jsonschema`` library's, in the draft the schema's ``$schema`` names
# (2020-12 when it names none). Two guards sit in front of it, because a schema mistake
# must never read as a passing check: the schema itself is validated against its draft's
# meta-schema, and a keyword its draft does not know (a typo such as "properies", which
# JSON Schema itself would silently ignore) is an error. Formats are asserted, and a
# format this installation cannot check is an error too, not an annotation.

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")

# Keywords that only annotate, in every draft: ignoring them cannot make a check pass
# wrongly. The meta-schemas list them too; this keeps drafts whose meta-schema is terse.
_ANNOTATIONS = frozenset(
    {
        "$schema", "$id", "id", "$comment", "$anchor", "$dynamicAnchor", "$recursiveAnchor", "$vocabulary",
        "$defs", "definitions", "title", "description", "default", "examples", "deprecated", "readOnly",
        "writeOnly", "contentMediaType", "contentEncoding", "contentSchema", "then", "else",
    }
)  # fmt: skip
# Where keywords hold schemas, for the walk that checks every subschema's keywords. Other
# keyword values (property names, enum members, defaults) are data and are not walked.
_SCHEMA_VALUED = frozenset(
    {
        "additionalProperties", "additionalItems", "items", "contains", "propertyNames", "not", "if", "then",
        "else", "unevaluatedItems", "unevaluatedProperties", "contentSchema",
    }
)  # fmt: skip
_SCHEMA_MAPS = frozenset(
    {"properties", "patternProperties", "$defs", "definitions", "dependentSchemas", "dependencies"}
)
_SCHEMA_ARRAYS = frozenset({"allOf", "anyOf", "oneOf", "prefixItems", "items"})


def _schema_error(where: str, message: str) -> ValueError:
    return ValueError(f"is_json(): invalid schema at {where}: {message}")


def _pointer(path: Iterable[Any]) -> str:
    """A location in the schema as a JSON Pointer fragment: ``#/properties/a``."""
    parts = [str(part).replace("~", "~0").replace("/", "~1") for part in path]
    return "#" + "".join(f"/{part}" for part in parts)


def _validator_class(schema: Any) -> Any:
    """The jsonschema validator class of the draft ``schema`` names (2020-12 by default)."""
    from jsonschema import Draft202012Validator, validators

    cls = validators.validator_for(schema, default=Draft202012Validator)
    named = schema.get("$schema") if isinstance(schema, dict) else None
    if named is not None:
        known = (cls.META_SCHEMA.get("$id") or cls.META_SCHEMA.get("id") or "").rstrip("#")
        # jsonschema falls back to its latest draft for a $schema it does not know; a
        # misspelt draft URL would then be validated by rules the author did not pick.
        if not isinstance(named, str) or named.rstrip("#") != known:
            raise _schema_error("#/$schema", f"unknown JSON Schema draft {named!r}")
    return cls


@cache
def _vocabulary(cls: Any) -> frozenset[str]:
    """Every keyword the draft of validator class ``cls`` defines."""
    meta = cls.META_SCHEMA
    keywords = set(cls.VALIDATORS) | set(meta.get("properties", {})) | _ANNOTATIONS
    refs = [part["$ref"] for part in meta.get("allOf", ()) if isinstance(part, dict) and "$ref" in part]
    if refs:
        # 2019-09 and later spread their keywords over vocabulary meta-schemas.
        from jsonschema_specifications import REGISTRY

        resolver = REGISTRY.resolver(base_uri=meta.get("$id", ""))
        for ref in refs:
            keywords |= set(resolver.lookup(ref).contents.get("properties", {}))
    return frozenset(keywords)


def _unknown_keywords(schema: Any, vocabulary: frozenset[str], path: tuple[Any, ...] = ()) -> None:
    """A ``ValueError`` for the first keyword, in any subschema, outside ``vocabulary``."""
    if not isinstance(schema, dict):
        return
    for key, value in schema.items():
        if key not in vocabulary:
            close = difflib.get_close_matches(key, sorted(vocabulary), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ValueError(
                f"is_json(): unsupported JSON Schema keyword {key!r} at {_pointer(path)} "
                f"(unknown to the schema's draft, so it would be ignored{hint})"
            )
        here = (*path, key)
        if key in _SCHEMA_MAPS and isinstance(value, dict):
            for name, sub in value.items():
                _unknown_keywords(sub, vocabulary, (*here, name))
        elif key in _SCHEMA_ARRAYS and isinstance(value, list):
            for index, sub in enumerate(value):
                _unknown_keywords(sub, vocabulary, (*here, index))
        elif key in _SCHEMA_VALUED:
            _unknown_keywords(value, vocabulary, here)


def _unchecked_formats(schema: Any, checkable: Iterable[str], path: tuple[Any, ...] = ()) -> Iterator[str]:
    """``format`` values no checker of this installation asserts, with where they are."""
    if isinstance(schema, dict):
        fmt = schema.get("format")
        if isinstance(fmt, str) and fmt not in checkable:
            yield f"{fmt!r} at {_pointer((*path, 'format'))}"
        for key, value in schema.items():
            if key in _SCHEMA_MAPS and isinstance(value, dict):
                for name, sub in value.items():
                    yield from _unchecked_formats(sub, checkable, (*path, key, name))
            elif key in _SCHEMA_ARRAYS and isinstance(value, list):
                for index, sub in enumerate(value):
                    yield from _unchecked_formats(sub, checkable, (*path, key, index))
            elif key in _SCHEMA_VALUED:
                yield from _unchecked_formats(value, checkable, (*path, key))


def _refs(schema: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[str, tuple[Any, ...]]]:
    """Every ``$ref`` in ``schema`` with where it is; ``("", path)`` marks an embedded ``$id``."""
    if isinstance(schema, dict):
        if path and ("$id" in schema or "id" in schema):
            yield "", path
        if isinstance(schema.get("$ref"), str):
            yield schema["$ref"], (*path, "$ref")
        for key, value in schema.items():
            if key in _SCHEMA_MAPS and isinstance(value, dict):
                for name, sub in value.items():
                    yield from _refs(sub, (*path, key, name))
            elif key in _SCHEMA_ARRAYS and isinstance(value, list):
                for index, sub in enumerate(value):
                    yield from _refs(sub, (*path, key, index))
            elif key in _SCHEMA_VALUED:
                yield from _refs(value, (*path, key))


def _check_refs(schema: Any, cls: Any) -> None:
    """A ``ValueError`` for a ``$ref`` that does not resolve, even where the data never
    reaches it (it would fail only for some outputs otherwise)."""
    refs = list(_refs(schema))
    if not refs or any(not ref for ref, _ in refs):
        return  # embedded $id resources change the base URI: left to validation time
    from referencing import Registry
    from referencing.exceptions import Unresolvable
    from referencing.jsonschema import specification_with

    spec = specification_with(cls.META_SCHEMA.get("$id") or cls.META_SCHEMA.get("id"))
    resource = spec.create_resource(schema)
    uri = resource.id() or ""
    resolver = Registry().with_resource(uri, resource).resolver(base_uri=uri)
    for ref, path in refs:
        try:
            resolver.lookup(ref)
        except Unresolvable:
            raise _schema_error(
                _pointer(path), f"$ref {ref!r} does not resolve; only references inside the schema are followed"
            ) from None


def _meta_error_message(error: Any) -> str:
    """The meta-schema's complaint about a schema, said for the schema's author."""
    keyword = error.path[-1] if error.path else None
    instance = error.instance
    if keyword == "type" and error.validator in ("anyOf", "enum", "type"):
        return f"unknown type {instance!r}; known: array, boolean, integer, null, number, object, string"
    if keyword == "items" and isinstance(instance, list):
        return "a list of item schemas (tuple form) is written prefixItems since draft 2020-12"
    if keyword == "pattern" and error.validator == "format" and isinstance(instance, str):
        try:
            re.compile(instance)
        except re.error as err:
            return f"invalid regular expression {instance!r}: {err}"
    return str(error.message)


def _compile_schema(schema: Any) -> Any:
    """A jsonschema validator for ``schema``; ``ValueError`` naming the part that is wrong."""
    from jsonschema import exceptions

    if not isinstance(schema, (dict, bool)):
        raise _schema_error("#", f"a schema must be an object or boolean, got {schema!r}")
    cls = _validator_class(schema)
    meta = cls(cls.META_SCHEMA, format_checker=cls.FORMAT_CHECKER)
    problem = exceptions.best_match(meta.iter_errors(schema))
    if problem is not None:
        raise _schema_error(_pointer(problem.path), _meta_error_message(problem))
    _unknown_keywords(schema, _vocabulary(cls))
    _check_refs(schema, cls)
    checker = cls.FORMAT_CHECKER
    unchecked = list(_unchecked_formats(schema, checker.checkers))
    if unchecked:
        raise _schema_error(
            unchecked[0].rpartition(" at ")[2],
            f"format {unchecked[0].rpartition(' at ')[0]} cannot be checked by this installation, so it would "
            f"always pass; checkable formats: {', '.join(sorted(checker.checkers))} (more come with "
            "`pip install jsonschema[format]`)",
        )
    return cls(schema, format_checker=checker)


def _child_path(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    if _IDENTIFIER.match(key):
        return f"{path}.{key}"
    return f"{path}[{json.dumps(key, ensure_ascii=False)}]"


def _instance_path(error: Any) -> str:
    path = "$"
    for part in error.absolute_path:
        path = _child_path(path, part)
    return path


def _violations(validator: Any, value: Any) -> list[str]:
    """One ``"<json path>: <message>"`` per violation of ``value``, in document order."""
    from referencing.exceptions import Unresolvable

    try:
        errors = list(validator.iter_errors(value))
    except Unresolvable as err:
        # Remote references are never fetched: an eval must not reach the network.
        raise ValueError(
            f"is_json(): the schema's $ref cannot be resolved ({err}); only references inside the schema "
            "(#/$defs/...) are followed"
        ) from None
    messages: list[str] = []
    for error in errors:
        messages.extend(_violation_messages(validator, error))
    return messages


def _violation_messages(validator: Any, error: Any) -> list[str]:
    """What one jsonschema error says, in the words of the other checks: expected, got, why."""
    path, kind, arg, value = _instance_path(error), error.validator, error.validator_value, error.instance
    if kind is None:  # a `false` schema
        return [f"{path}: no value is allowed here (schema is false)"]
    if kind == "type":
        names = arg if isinstance(arg, list) else [arg]
        return [f"{path}: expected {' or '.join(names)}, got {_json_type(value)}"]
    if kind == "required":
        suffix = " is a required property"
        name = error.message[: -len(suffix)] if error.message.endswith(suffix) else error.message
        return [f"{path}: missing required property {name}"]
    if kind == "additionalProperties" and arg is False and isinstance(value, dict):
        known = error.schema.get("properties", {})
        patterns = error.schema.get("patternProperties", {})
        extra = [k for k in value if k not in known and not any(re.search(p, k) for p in patterns)]
        return [f"{path}: unexpected property {k!r} (additionalProperties is false)" for k in extra]
    if kind in ("anyOf", "oneOf"):
        if kind == "oneOf":
            matching = [i for i, sub in enumerate(arg) if validator.evolve(schema=sub).is_valid(value)]
            if len(matching) > 1:
                return [f"{path}: matches {len(matching)} oneOf alternatives {matching}, expected exactly one"]
        return [f"{path}: matches no {kind} alternative ({_alternatives(validator, error)})"]
    simple = {
        "enum": lambda: f"{_short_json(value)} is not one of {_short_json(arg)}",
        "const": lambda: f"expected {_short_json(arg)}, got {_short_json(value)}",
        "minimum": lambda: f"{value} is less than minimum {arg}",
        "maximum": lambda: f"{value} is greater than maximum {arg}",
        "exclusiveMinimum": lambda: f"{value} is not greater than exclusiveMinimum {arg}",
        "exclusiveMaximum": lambda: f"{value} is not less than exclusiveMaximum {arg}",
        "minLength": lambda: f"string of {len(value)} chars is shorter than minLength {arg}",
        "maxLength": lambda: f"string of {len(value)} chars is longer than maxLength {arg}",
        "pattern": lambda: f"{_short_json(value)} does not match pattern {arg!r}",
        "minItems": lambda: f"array of {len(value)} item(s) has fewer than minItems {arg}",
        "maxItems": lambda: f"array of {len(value)} item(s) has more than maxItems {arg}",
        "not": lambda: "must not match the 'not' schema",
        "format": lambda: f"{_short_json(value)} is not a valid {arg!r}",
    }
    if kind in simple:
        return [f"{path}: {simple[kind]()}"]
    return [f"{path}: {error.message}"]  # the library's own words for the rarer keywords


def _alternatives(validator: Any, error: Any) -> str:
    """The first reason each alternative of an anyOf/oneOf failed: ``[0] ...; [1] ...``."""
    first: dict[int, str] = {}
    for sub in error.context:
        index = sub.relative_schema_path[0]
        if index not in first:
            first[index] = _violation_messages(validator, sub)[0]
    return "; ".join(f"[{i}] {first[i]}" for i in sorted(first))


# --------------------------------------------------------------------------- is_json


def is_json(output: Any, schema: dict[str, Any] | bool | None = None) -> CheckResult:
    """Pass when ``output`` is JSON (and, with ``schema``, valid against it).

    When the whole output is not JSON, the first fenced code block (```` ```json ````,
    ```` ``` ```` or ``~~~``) that parses is used. The parsed document is
    ``result.value`` (also ``result.metadata["value"]``). ``schema`` is a JSON Schema,
    validated with the ``jsonschema`` library in the draft its ``$schema`` names (2020-12
    by default), formats included. A mistake in the schema raises ``ValueError`` naming
    the bad part, before the output is looked at: a schema the meta-schema rejects, a
    keyword the draft does not know (``"properies"``), a format that cannot be checked, a
    ``$ref`` that does not resolve inside the schema (none is fetched)::

        result = is_json(answer, {"type": "object", "required": ["name"]})
        assert result
        assert result.value["name"] == "Ada"
    """
    validator = _compile_schema(schema) if schema is not None else None
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
    if validator is None:
        return _finish(CheckResult("is_json", True, expected, text, f"valid JSON: {found}", metadata))
    errors = _violations(validator, parsed.value)
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
