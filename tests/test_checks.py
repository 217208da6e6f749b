"""The deterministic checks: what passes, what fails, and what the failure says."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from dataclasses import FrozenInstanceError
from pathlib import Path
from typing import Any

import pytest

from pytest_llmeval import recording
from pytest_llmeval.checks import (
    CheckResult,
    exact,
    includes,
    is_json,
    jsonpath,
    regex,
)


class Completion:
    """Stands in for the provider's Completion: only ``.text`` matters to checks."""

    def __init__(self, text: str) -> None:
        self.text = text


# --------------------------------------------------------------------------- CheckResult


def make(passed: bool, **kw: Any) -> CheckResult:
    defaults: dict[str, Any] = {
        "name": "demo",
        "expected": "a",
        "actual": "b",
        "explanation": "because",
    }
    defaults.update(kw)
    return CheckResult(passed=passed, **defaults)


def test_result_truthiness_and_score() -> None:
    assert make(True)
    assert not make(False)
    assert make(True).score == 1.0
    assert make(False).score == 0.0


def test_result_is_frozen() -> None:
    with pytest.raises(FrozenInstanceError):
        make(True).passed = False  # type: ignore[misc]


def test_failure_repr_shows_expected_actual_and_why() -> None:
    result = exact("The capital is Lyon!", "Paris")
    text = repr(result)
    assert "exact FAILED" in text
    assert "expected: 'Paris'" in text
    assert "actual: 'The capital is Lyon!'" in text
    assert "'the capital is lyon' != 'paris'" in text
    assert "ignore_case" in text and "strip_punctuation" in text


def test_repr_is_one_line_and_fits_pytests_limit_for_short_values() -> None:
    # pytest escapes newlines of a failing assert's repr and cuts it at 240 characters.
    text = repr(exact("Lyon", "Paris"))
    assert "\n" not in text
    assert len(text) <= 240


def test_describe_is_multi_line() -> None:
    text = str(exact("Lyon", "Paris"))
    lines = text.splitlines()
    assert lines[0] == "exact: FAILED"
    assert lines[1].strip().startswith("expected: 'Paris'")
    assert lines[2].strip().startswith("actual:   'Lyon'")
    assert lines[3].strip().startswith("why:")


def test_huge_output_is_shortened_in_repr_and_describe() -> None:
    output = "x" * 10_000_000
    result = exact(output, "y")
    for text in (repr(result), result.describe()):
        assert len(text) < 2_000
        assert "10,000,000 chars" in text
        assert "expected: 'y'" in text


def test_control_characters_are_escaped() -> None:
    result = exact("bell\x07\x1b[31mred\r\n", "x")
    text = repr(result)
    assert "\x1b" not in text and "\x07" not in text and "\r" not in text
    assert "\\x1b" in text and "\\x07" in text


def test_to_dict_is_json_safe_and_shortens() -> None:
    result = regex("a" * 50_000, re.compile("b"))
    data = result.to_dict(max_chars=100)
    json.dumps(data, allow_nan=False)
    assert data["passed"] is False and data["score"] == 0.0
    assert len(data["actual"]) < 200 and "50,000 chars" in data["actual"]
    assert result.to_dict(max_chars=None)["actual"] == "a" * 50_000


def test_to_dict_converts_awkward_values() -> None:
    data = make(True, metadata={"nan": float("nan"), "t": (1, 2), 3: {1}, "o": object()})
    out = data.to_dict()
    json.dumps(out, allow_nan=False)
    assert out["metadata"]["t"] == [1, 2]
    assert out["metadata"]["3"] == [1]
    assert out["metadata"]["nan"] == "nan"


def test_every_check_records_its_result() -> None:
    record = recording.CaseRecord(nodeid="t::x")
    token = recording.set_current(record)
    try:
        results = [
            exact("a", "a"),
            includes("abc", "b"),
            regex("abc", "c"),
            is_json("{}"),
            jsonpath('{"a": 1}', "$.a", 1),
            is_json("nope"),
        ]
    finally:
        recording.reset_current(token)
    assert record.results == results


def test_checks_accept_completion_objects() -> None:
    answer = Completion('{"city": "Paris"}')
    assert exact(Completion("Paris."), "paris")
    assert includes(answer, "Paris")
    assert regex(answer, "Par")
    assert is_json(answer)
    assert jsonpath(answer, "$.city", "Paris")


@pytest.mark.parametrize(
    "call",
    [
        lambda: exact(42, "42"),
        lambda: exact(None, "x"),
        lambda: exact("42", 42),
        lambda: includes(b"bytes", "b"),
        lambda: regex(["a"], "a"),
        lambda: is_json({"a": 1}),
        lambda: jsonpath(1, "$"),
    ],
)
def test_non_text_output_is_a_type_error(call: Any) -> None:
    with pytest.raises(TypeError, match=r"str or an object with a \.text"):
        call()


# --------------------------------------------------------------------------- exact


def test_exact_default_normalisation() -> None:
    assert exact("  The   Eiffel\nTower!  ", "the eiffel tower")


def test_exact_pass_explains_normalisation() -> None:
    result = exact("Paris.", "paris")
    assert result.explanation.startswith("equal")
    assert result.metadata["normalisations"] == [
        "ignore_case",
        "strip",
        "strip_punctuation",
        "collapse_whitespace",
    ]


def test_exact_ignore_case_off() -> None:
    assert exact("paris", "Paris", ignore_case=False).passed is False
    assert exact("Paris", "Paris", ignore_case=False)


def test_exact_casefold_handles_german_sharp_s() -> None:
    assert exact("STRASSE", "straße")


def test_exact_strip_off() -> None:
    assert not exact(" Paris", "Paris", strip=False)
    # Trailing whitespace protects trailing punctuation when strip is off.
    assert not exact("Paris. ", "Paris", strip=False)
    assert exact("Paris.", "Paris", strip=False)


def test_exact_strip_punctuation_off() -> None:
    assert not exact("Paris.", "Paris", strip_punctuation=False)
    assert exact("Paris.", "Paris.", strip_punctuation=False)


def test_exact_strips_only_trailing_punctuation() -> None:
    assert not exact("¿Paris?", "Paris")
    assert not exact("Pa.ris", "Paris")
    assert exact("Paris...", "Paris")
    assert exact("Paris !?", "paris")


@pytest.mark.parametrize("mark", ["。", "！", "？", "，", "…", "؟", "।", "、", "：", ";"])
def test_exact_strips_unicode_punctuation(mark: str) -> None:
    assert exact(f"东京{mark}", "东京")


def test_exact_collapse_whitespace_off() -> None:
    assert not exact("New  York", "New York", collapse_whitespace=False)
    assert exact("New\tYork", "new york")


def test_exact_all_off_is_plain_equality() -> None:
    off = {
        "ignore_case": False,
        "strip": False,
        "strip_punctuation": False,
        "collapse_whitespace": False,
    }
    assert exact(" A. ", " A. ", **off)
    result = exact("A.", "A", **off)
    assert not result
    assert "no normalisation" in result.explanation
    assert result.metadata["normalisations"] == []


def test_exact_failure_shows_normalised_forms_only_when_they_differ() -> None:
    assert "'lyon' != 'paris'" in exact("Lyon.", "Paris").explanation
    plain = exact("lyon", "paris").explanation
    assert "!=" not in plain and plain.startswith("not equal")


def test_exact_points_at_first_difference_in_long_text() -> None:
    base = "a" * 50
    result = exact(base + "b", base + "c")
    assert "first difference at character 50: 'b' vs 'c'" in result.explanation
    shorter = exact(base, base + "tail")
    assert "actual ends at character 50" in shorter.explanation


# --------------------------------------------------------------------------- includes


def test_includes_all() -> None:
    assert includes("Paris is the capital of France", "paris", "FRANCE")
    result = includes("Paris is lovely", "Paris", "France", "Europe")
    assert not result
    assert "'France', 'Europe'" in result.explanation
    assert result.metadata["missing"] == ["France", "Europe"]
    assert result.metadata["found"] == ["Paris"]


def test_includes_any() -> None:
    assert includes("Sure, yes.", "no", "yes", any=True)
    result = includes("maybe", "no", "yes", any=True)
    assert not result
    assert "none found" in result.explanation
    assert "'no', 'yes'" in result.explanation


def test_includes_case_sensitive() -> None:
    assert not includes("paris", "Paris", ignore_case=False)
    assert includes("Paris", "Paris", ignore_case=False)
    assert "case-sensitive" in includes("x", "X", ignore_case=False).explanation


def test_includes_needs_a_needle() -> None:
    with pytest.raises(ValueError, match="at least one needle"):
        includes("text")


def test_includes_rejects_non_str_needles() -> None:
    with pytest.raises(TypeError, match="needles must be str"):
        includes("42", 42)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- regex


def test_regex_search_and_groups() -> None:
    result = regex("Born in 1815, died 1852.", r"(?P<year>\d{4})")
    assert result
    assert result.metadata["match"] == "1815"
    assert result.metadata["groups"] == ["1815"]
    assert result.metadata["groupdict"] == {"year": "1815"}
    assert result.metadata["span"] == [8, 12]
    assert "matched '1815'" in result.explanation


def test_regex_no_match() -> None:
    result = regex("no digits", r"\d+")
    assert not result
    assert result.explanation == r"no match for /\d+/ in the output"
    assert result.metadata["groups"] == []


def test_regex_flags() -> None:
    assert not regex("Yes", "^yes$")
    assert regex("Yes", "^yes$", flags=re.IGNORECASE)
    assert regex("intro\nyes", "^yes$", flags=re.MULTILINE)


def test_regex_compiled_pattern_with_and_without_extra_flags() -> None:
    compiled = re.compile("^yes", re.IGNORECASE)
    assert regex("YES", compiled)
    assert regex("no\nYES", compiled, flags=re.MULTILINE)


def test_regex_invalid_pattern_is_named() -> None:
    with pytest.raises(ValueError, match=r"invalid regular expression '\(unclosed'"):
        regex("x", "(unclosed")


# --------------------------------------------------------------------------- is_json


def test_is_json_bare_with_whitespace() -> None:
    result = is_json('\n  {"a": [1, 2]}  \n')
    assert result
    assert result.value == {"a": [1, 2]}
    assert result.metadata["value"] == {"a": [1, 2]}
    assert result.metadata["source"] == "output"


@pytest.mark.parametrize("scalar", ["42", '"text"', "null", "true", "[]"])
def test_is_json_accepts_any_json_value(scalar: str) -> None:
    assert is_json(scalar)


def test_is_json_fenced_with_language_tag() -> None:
    result = is_json('Here you go:\n```json\n{"name": "Ada"}\n```\nAnything else?')
    assert result
    assert result.value == {"name": "Ada"}
    assert result.metadata["source"] == "fenced block 1"
    assert "fenced block 1" in result.explanation


def test_is_json_fenced_without_language_tag() -> None:
    assert is_json("Sure.\n```\n[1, 2, 3]\n```").value == [1, 2, 3]


def test_is_json_fenced_on_one_line_and_tildes() -> None:
    assert is_json('```json {"a": 1}```').value == {"a": 1}
    assert is_json('~~~json\n{"a": 2}\n~~~').value == {"a": 2}


def test_is_json_takes_first_block_that_parses() -> None:
    text = '```python\nprint(\'hi\')\n```\n```json\n{"a": 1}\n```\n```json\n{"b": 2}\n```'
    result = is_json(text)
    assert result.value == {"a": 1}
    assert result.metadata["source"] == "fenced block 2"


def test_is_json_no_block_parses() -> None:
    result = is_json("```json\n{oops}\n```\n```\nnot json\n```")
    assert not result
    assert result.value is None
    assert "2 fenced code block(s), none is valid JSON" in result.explanation
    assert "block 1: Expecting property name" in result.explanation
    assert "line 1 column 2" in result.explanation


def test_is_json_invalid_is_a_failure_with_position() -> None:
    result = is_json('{"a": 1,\n "b": }')
    assert not result
    assert "line 2 column 7" in result.explanation
    assert "no fenced code block" in result.explanation


def test_is_json_rejects_nan_and_empty() -> None:
    assert "NaN is not valid JSON" in is_json('{"a": NaN}').explanation
    assert is_json("   ").explanation == "output is empty"


ORDER_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["id", "items"],
    "additionalProperties": False,
    "properties": {
        "id": {"type": "integer", "minimum": 1},
        "status": {"enum": ["open", "paid"]},
        "items": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "properties": {
                    "sku": {"type": "string", "pattern": "^[A-Z]\\d+$"},
                    "price": {"type": "number", "minimum": 0},
                },
            },
        },
    },
}


def test_is_json_schema_pass() -> None:
    order = {"id": 7, "status": "paid", "items": [{"sku": "A1", "price": 2.5}]}
    result = is_json(json.dumps(order), ORDER_SCHEMA)
    assert result, result.explanation
    assert result.metadata["errors"] == []


def test_is_json_schema_violation_path() -> None:
    order = {"id": 7, "items": [{"price": 1}, {"price": 2}, {"price": "3"}]}
    result = is_json(json.dumps(order), ORDER_SCHEMA)
    assert not result
    assert result.explanation.startswith("$.items[2].price: expected number, got string")
    assert result.value == order  # the parsed document is there even when invalid
    assert result.expected == "valid JSON matching the schema"
    assert result.metadata["schema"] is ORDER_SCHEMA


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"items": [{}]}, "$: missing required property 'id'"),
        ({"id": 0, "items": [{}]}, "$.id: 0 is less than minimum 1"),
        ({"id": 1.5, "items": [{}]}, "$.id: expected integer, got number"),
        ({"id": 1, "items": []}, "$.items: array of 0 item(s) has fewer than minItems 1"),
        ({"id": 1, "items": [{}], "x": 1}, "$: unexpected property 'x'"),
        ({"id": 1, "items": [{}], "status": "lost"}, '$.status: "lost" is not one of'),
        ({"id": 1, "items": [{"sku": "a1"}]}, '$.items[0].sku: "a1" does not match pattern'),
        ([], "$: expected object, got array"),
    ],
)
def test_is_json_schema_messages(document: Any, message: str) -> None:
    result = is_json(json.dumps(document), ORDER_SCHEMA)
    assert not result
    assert message in result.explanation


def test_is_json_reports_count_of_further_violations() -> None:
    result = is_json('{"x": 1}', ORDER_SCHEMA)
    assert len(result.metadata["errors"]) == 3
    assert "(and 2 more)" in result.explanation


@pytest.mark.parametrize(
    ("schema", "good", "bad", "message"),
    [
        ({"type": "integer"}, "3", "true", "expected integer, got boolean"),
        ({"type": "integer"}, "3.0", "3.5", "expected integer, got number"),
        ({"type": "number"}, "3", '"3"', "expected number, got string"),
        ({"type": "boolean"}, "false", "0", "expected boolean, got integer"),
        ({"type": "null"}, "null", "0", "expected null, got integer"),
        ({"type": ["string", "null"]}, "null", "1", "expected string or null, got integer"),
        ({"const": True}, "true", "1", "expected true, got 1"),
        ({"enum": [1, "a"]}, "1.0", "true", 'true is not one of [1, "a"]'),
        ({"maximum": 10}, "10", "11", "11 is greater than maximum 10"),
        ({"exclusiveMinimum": 0}, "1", "0", "0 is not greater than exclusiveMinimum 0"),
        ({"exclusiveMaximum": 5}, "4", "5", "5 is not less than exclusiveMaximum 5"),
        ({"minLength": 2}, '"ab"', '"a"', "shorter than minLength 2"),
        ({"maxLength": 2}, '"ab"', '"abc"', "longer than maxLength 2"),
        ({"maxItems": 1}, "[1]", "[1, 2]", "more than maxItems 1"),
        ({"additionalProperties": {"type": "string"}}, '{"a": "x"}', '{"a": 1}', "$.a: expected string"),
        ({"properties": {"a b": {"type": "string"}}}, '{"a b": "x"}', '{"a b": 1}', '$["a b"]: expected'),
        ({"anyOf": [{"type": "string"}, {"type": "null"}]}, "null", "1", "matches no anyOf"),
        ({"oneOf": [{"type": "integer"}, {"minimum": 0}]}, "-1", "1", "matches 2 oneOf alternatives [0, 1]"),
        ({"oneOf": [{"type": "string"}, {"type": "null"}]}, '"a"', "1", "matches no oneOf"),
        ({"allOf": [{"type": "number"}, {"minimum": 5}]}, "6", "4", "4 is less than minimum 5"),
        ({"not": {"type": "null"}}, "1", "null", "must not match the 'not' schema"),
        (False, None, "1", "no value is allowed here"),
    ],
)
def test_is_json_schema_keywords(schema: Any, good: str | None, bad: str, message: str) -> None:
    if good is not None:
        assert is_json(good, schema), is_json(good, schema).explanation
    result = is_json(bad, schema)
    assert not result
    assert message in result.explanation


def test_is_json_anyof_explains_each_alternative() -> None:
    schema = {"anyOf": [{"type": "string"}, {"type": "object", "required": ["a"]}]}
    result = is_json("{}", schema)
    assert "[0] $: expected string, got object" in result.explanation
    assert "[1] $: missing required property 'a'" in result.explanation


def test_is_json_annotations_are_allowed() -> None:
    schema = {"$schema": "https://json-schema.org/draft/2020-12/schema", "title": "T", "type": "object"}
    assert is_json("{}", schema)


@pytest.mark.parametrize(
    ("keyword", "hint"),
    [("properies", "properties"), ("minimun", "minimum"), ("requierd", "required"), ("addtionalProperties", None)],
)
def test_is_json_unsupported_keyword_raises(keyword: str, hint: str | None) -> None:
    # JSON Schema itself ignores an unknown keyword, so a typo would make the check pass.
    schema = {"type": "object", "properties": {"a": {keyword: "x"}}}
    with pytest.raises(
        ValueError, match=f"unsupported JSON Schema keyword '{re.escape(keyword)}' at #/properties/a"
    ) as info:
        is_json("{}", schema)  # raised even though "a" is absent from the data
    if hint is not None:
        assert f"did you mean '{hint}'?" in str(info.value)


def test_is_json_unknown_keywords_are_found_in_every_subschema() -> None:
    for schema, where in [
        ({"items": {"maxItem": 1}}, "#/items"),
        ({"anyOf": [{"type": "string"}, {"minimun": 1}]}, "#/anyOf/1"),
        ({"$defs": {"p": {"typ": "string"}}}, "#/$defs/p"),
        ({"additionalProperties": {"patern": "a"}}, "#/additionalProperties"),
        ({"not": {"constt": 1}}, "#/not"),
    ]:
        with pytest.raises(ValueError, match=f"unsupported JSON Schema keyword .* at {re.escape(where)} "):
            is_json("{}", schema)
    # Values that are data, not schemas, may hold any keys.
    assert is_json('{"properies": 1}', {"properties": {"properies": {"const": 1}}, "default": {"minimun": 0}})


def test_is_json_keywords_follow_the_draft_of_the_schema() -> None:
    # prefixItems exists from draft 2020-12; in a draft-07 schema it would be ignored.
    draft7 = {"$schema": "http://json-schema.org/draft-07/schema#", "prefixItems": [{"type": "string"}]}
    with pytest.raises(ValueError, match="unsupported JSON Schema keyword 'prefixItems' at #"):
        is_json("[1]", draft7)
    assert not is_json("[1]", {"prefixItems": [{"type": "string"}]})
    tuple_items = {"$schema": "http://json-schema.org/draft-07/schema#", "items": [{"type": "string"}]}
    assert is_json('["a", 1]', tuple_items.copy() | {"additionalItems": {"type": "integer"}})
    assert "$[0]: expected string, got integer" in is_json("[1]", tuple_items).explanation


@pytest.mark.parametrize(
    ("schema", "good", "bad", "message"),
    [
        ({"format": "email"}, '"a@b.org"', '"nope"', "$: \"nope\" is not a valid 'email'"),
        ({"format": "date"}, '"2024-02-29"', '"2023-02-29"', "is not a valid 'date'"),
        ({"uniqueItems": True}, "[1, 2]", "[1, 1]", "has non-unique elements"),
        ({"patternProperties": {"^n_": {"type": "number"}}}, '{"n_a": 1}', '{"n_a": "1"}', "$.n_a: expected number"),
        (
            {"$defs": {"id": {"type": "integer"}}, "properties": {"id": {"$ref": "#/$defs/id"}}},
            '{"id": 1}',
            '{"id": "1"}',
            "$.id: expected integer, got string",
        ),
        ({"multipleOf": 5}, "10", "7", "7 is not a multiple of 5"),
        ({"dependentRequired": {"a": ["b"]}}, '{"a": 1, "b": 2}', '{"a": 1}', "'b' is a dependency of 'a'"),
        ({"if": {"minimum": 10}, "then": {"multipleOf": 10}}, "20", "15", "15 is not a multiple of 10"),
    ],
)
def test_is_json_checks_the_whole_standard(schema: Any, good: str, bad: str, message: str) -> None:
    # The keywords the hand-written validator refused are checked by jsonschema now.
    assert is_json(good, schema), is_json(good, schema).explanation
    result = is_json(bad, schema)
    assert not result
    assert message in result.explanation


def test_is_json_validates_the_schema_before_the_output() -> None:
    with pytest.raises(ValueError, match="cannot be checked by this installation, so it would always pass"):
        is_json("{}", {"properties": {"home": {"format": "no-such-format"}}})
    with pytest.raises(ValueError, match=re.escape("at #/properties/a/$ref: $ref '#/$defs/b' does not resolve")):
        is_json("{}", {"properties": {"a": {"$ref": "#/$defs/b"}}})
    with pytest.raises(ValueError, match="only references inside the schema are followed"):
        is_json("1", {"$ref": "https://example.com/schema.json"})  # never fetched
    with pytest.raises(ValueError, match=re.escape("at #/$schema: unknown JSON Schema draft")):
        is_json("{}", {"$schema": "https://json-schema.org/draft/2020-12/schma"})


@pytest.mark.parametrize(
    ("schema", "message"),
    [
        ({"type": "float"}, "unknown type"),
        ({"items": [{"type": "string"}]}, "tuple form"),
        ({"minLength": -1}, "at #/minLength: -1 is less than the minimum of 0"),
        ({"pattern": "("}, "invalid regular expression"),
        ({"anyOf": []}, "at #/anyOf: [] should be non-empty"),
        ({"required": "a"}, "at #/required: 'a' is not of type 'array'"),
        ({"minimum": "1"}, "at #/minimum: '1' is not of type 'number'"),
        ({"properties": {"a": {"type": "strin"}}}, "at #/properties/a/type: unknown type 'strin'"),
        ("object", "must be an object or boolean"),
    ],
)
def test_is_json_malformed_schema_raises(schema: Any, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        is_json("{}", schema)


# --------------------------------------------------------------------------- jsonpath

SHOP = json.dumps(
    {
        "store": "Corner",
        "items": [
            {"sku": "A1", "price": 2, "tags": ["x"]},
            {"sku": "B2", "price": 7},
            {"sku": "C3", "price": 12},
        ],
        "open": True,
    }
)


def test_jsonpath_single_match_with_expected() -> None:
    result = jsonpath(SHOP, "$.store", "Corner")
    assert result
    assert result.value == "Corner"
    assert result.metadata["paths"] == ["$.store"]
    assert not jsonpath(SHOP, "$.store", "Other")


def test_jsonpath_without_expected_passes_on_a_match() -> None:
    assert jsonpath(SHOP, "$.items[0].tags")
    assert jsonpath('{"a": false}', "$.a")  # a falsy value is still a match


def test_jsonpath_no_match() -> None:
    result = jsonpath(SHOP, "$.owner")
    assert not result
    assert result.explanation == "no match for $.owner"
    assert not jsonpath(SHOP, "$.owner", None)


def test_jsonpath_multiple_matches_compare_as_list() -> None:
    result = jsonpath(SHOP, "$.items[*].sku", ["A1", "B2", "C3"])
    assert result
    assert "3 matches" in result.explanation
    assert result.metadata["paths"] == ["$.items[0].sku", "$.items[1].sku", "$.items[2].sku"]
    assert not jsonpath(SHOP, "$.items[*].sku", "A1")


def test_jsonpath_filter() -> None:
    assert jsonpath(SHOP, "$.items[?(@.price > 5)].sku", ["B2", "C3"])
    assert jsonpath(SHOP, "$.items[?(@.sku == 'C3')].price", 12)
    assert not jsonpath(SHOP, "$.items[?(@.price > 100)].sku")


def test_jsonpath_json_equality() -> None:
    assert not jsonpath(SHOP, "$.open", 1)  # true is not 1 in JSON
    assert jsonpath(SHOP, "$.items[0].price", 2.0)
    assert jsonpath(SHOP, "$.items[0].tags", ("x",))


def test_jsonpath_fenced_output() -> None:
    assert jsonpath('Result:\n```json\n{"ok": true}\n```', "$.ok", True)


def test_jsonpath_invalid_json_is_a_failure() -> None:
    result = jsonpath("{nope", "$.a", 1)
    assert not result
    assert "not valid JSON" in result.explanation
    assert "line 1 column 2" in result.explanation


@pytest.mark.parametrize("path", ["$.items[", "$[a:b]", "$.a[?(@.x == 'open)]"])
def test_jsonpath_invalid_expression_is_named(path: str) -> None:
    with pytest.raises(ValueError, match=re.escape(f"invalid JSONPath expression {path!r}")):
        jsonpath(SHOP, path)


def test_jsonpath_invalid_filter_regex_is_named() -> None:
    with pytest.raises(ValueError, match="invalid JSONPath expression"):
        jsonpath(SHOP, "$.items[?(@.sku =~ '[')]")


@pytest.mark.parametrize("library", ["jsonpath_ng", "jsonschema"])
def test_checks_module_does_not_import_its_libraries_eagerly(library: str) -> None:
    code = f"import sys, pytest_llmeval.checks; print({library!r} in sys.modules)"
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=root)
    assert out.stdout.strip() == "False"
