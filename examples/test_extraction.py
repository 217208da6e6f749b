"""Structured output: the model returns JSON, checked field by field with JSONPath.

`response_format` asks for JSON that follows a schema. OpenAI models and the embedded model
honour it (the embedded one by constrained decoding, so the JSON is always well-formed);
for Anthropic, ask for JSON in the prompt instead and keep the same checks.
"""

import pytest

from pytest_llmeval import cases, is_json, jsonpath

PERSON = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer"}, "city": {"type": "string"}},
    "required": ["name", "age", "city"],
}


@pytest.mark.llmeval(min_pass_rate=1.0)  # SmolLM2-135M: 6 of 6
@pytest.mark.parametrize("case", cases("data/people.jsonl"))
def test_extract_person(llm, case):
    reply = llm(
        f"Extract the person's name, age and city from this text as JSON.\nText: {case['text']}",
        temperature=0,
        max_tokens=60,
        response_format={"type": "json_schema", "json_schema": {"name": "person", "schema": PERSON}},
    )
    assert is_json(reply, schema=PERSON)
    assert jsonpath(reply, "$.age", case["age"])
    assert jsonpath(reply, "$.city", case["city"])
