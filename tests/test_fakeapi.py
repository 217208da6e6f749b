"""The fake OpenAI/Anthropic server, driven by the real SDK clients (no mocks, no internet)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import anthropic
import openai
import pytest
from fakeapi import FakeAPI

HI = [{"role": "user", "content": "hello there"}]


@pytest.fixture(scope="module")
def server() -> Iterator[FakeAPI]:
    with FakeAPI() as api:
        yield api


@pytest.fixture
def api(server: FakeAPI) -> FakeAPI:
    server.clear()
    return server


@pytest.fixture
def oai(api: FakeAPI) -> openai.OpenAI:
    # An explicit timeout keeps a misbehaving server from stalling the suite.
    return openai.OpenAI(api_key="k", base_url=api.openai_base_url, max_retries=0, timeout=5)


@pytest.fixture
def ant(api: FakeAPI) -> anthropic.Anthropic:
    return anthropic.Anthropic(api_key="k", base_url=api.anthropic_base_url, max_retries=0, timeout=5)


def ask_openai(client: openai.OpenAI, text: str = "hello there", **kw: Any) -> Any:
    return client.chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": text}], **kw)


def ask_anthropic(client: anthropic.Anthropic, text: str = "hello there", **kw: Any) -> Any:
    return client.messages.create(
        model="claude-test", max_tokens=50, messages=[{"role": "user", "content": text}], **kw
    )


# ----- answers ----------------------------------------------------------------------------
def test_default_echo_openai(api: FakeAPI, oai: openai.OpenAI) -> None:
    r = ask_openai(oai, "What is 2+2?")
    assert r.object == "chat.completion" and r.model == "gpt-test"
    assert r.choices[0].message.content == "echo: What is 2+2?"
    assert r.choices[0].finish_reason == "stop" and r.choices[0].message.refusal is None
    assert r.usage.prompt_tokens == 3 and r.usage.completion_tokens == 4 and r.usage.total_tokens == 7
    assert r._request_id.startswith("req_")
    (rec,) = api.requests
    assert (rec.provider, rec.path, rec.status) == ("openai", "/v1/chat/completions", 200)
    assert rec.body["messages"][0]["content"] == "What is 2+2?"
    assert rec.headers["authorization"] == "Bearer k"


def test_default_echo_anthropic(api: FakeAPI, ant: anthropic.Anthropic) -> None:
    m = ant.messages.create(
        model="claude-test",
        max_tokens=20,
        system=[{"type": "text", "text": "be brief", "cache_control": {"type": "ephemeral"}}],
        messages=[{"role": "user", "content": [{"type": "text", "text": "one "}, {"type": "text", "text": "two"}]}],
    )
    assert m.type == "message" and m.role == "assistant" and m.model == "claude-test"
    assert m.content[0].type == "text" and m.content[0].text == "echo: one two"
    assert m.stop_reason == "end_turn" and m.stop_sequence is None
    assert (m.usage.input_tokens, m.usage.output_tokens) == (4, 3)  # system words count too
    assert m.usage.cache_read_input_tokens == 0
    assert api.requests[0].provider == "anthropic" and api.count("anthropic") == 1 and api.count("openai") == 0


def test_rules_when_later_wins_and_callable(api: FakeAPI, oai: openai.OpenAI, ant: anthropic.Anthropic) -> None:
    api.reply("generic")
    api.reply("Paris", when="France")
    api.reply("Berlin", when="Germany", provider="anthropic")
    api.reply(lambda body: {"text": f"{len(body['messages'])} messages"}, when="count")
    assert ask_openai(oai, "capital of France?").choices[0].message.content == "Paris"
    assert ask_openai(oai, "capital of Germany?").choices[0].message.content == "generic"
    assert ask_anthropic(ant, "capital of Germany?").content[0].text == "Berlin"
    assert ask_anthropic(ant, "count these").content[0].text == "1 messages"
    api.reply("later")  # later rules win over earlier ones, including `when` rules
    assert ask_openai(oai, "capital of France?").choices[0].message.content == "later"
    # only the LAST user message is matched
    msgs = [
        {"role": "user", "content": "France"},
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": "bye"},
    ]
    api.reply("matched France", when="France")
    r = oai.chat.completions.create(model="m", messages=msgs)
    assert r.choices[0].message.content == "later"


def test_n_choices_and_json_mode(api: FakeAPI, oai: openai.OpenAI) -> None:
    r = ask_openai(oai, "x", n=3)
    assert [c.message.content for c in r.choices] == ["echo: x"] * 3 and [c.index for c in r.choices] == [0, 1, 2]
    r = ask_openai(oai, "x", response_format={"type": "json_object"})
    assert json.loads(r.choices[0].message.content) == {"echo": "x"}


def test_tool_answers_parse(api: FakeAPI, oai: openai.OpenAI, ant: anthropic.Anthropic) -> None:
    api.reply({"tool": {"name": "get_weather", "input": {"city": "Oslo"}}})
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
    r = ask_openai(oai, "weather?", tools=tools)
    choice = r.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    call = choice.message.tool_calls[0]
    assert isinstance(call, openai.types.chat.ChatCompletionMessageFunctionToolCall)
    assert call.function.name == "get_weather" and json.loads(call.function.arguments) == {"city": "Oslo"}
    assert call.id.startswith("call_")

    m = ask_anthropic(ant, "weather?", tools=[{"name": "get_weather", "input_schema": {"type": "object"}}])
    assert m.stop_reason == "tool_use"
    (block,) = m.content
    assert isinstance(block, anthropic.types.ToolUseBlock)
    assert block.name == "get_weather" and block.input == {"city": "Oslo"} and block.id.startswith("toolu_")


def test_usage_override_refusal_and_stop_reason(api: FakeAPI, oai: openai.OpenAI, ant: anthropic.Anthropic) -> None:
    usage = {"input_tokens": 120, "output_tokens": 7, "cached_input_tokens": 100}
    api.reply({"text": "cut", "usage": usage, "stop_reason": "max_tokens"})
    r = ask_openai(oai)
    assert (r.usage.prompt_tokens, r.usage.completion_tokens, r.usage.total_tokens) == (120, 7, 127)
    assert r.usage.prompt_tokens_details.cached_tokens == 100
    assert r.choices[0].finish_reason == "length"  # mapped to OpenAI's name
    m = ask_anthropic(ant)
    assert (m.usage.input_tokens, m.usage.output_tokens, m.usage.cache_read_input_tokens) == (120, 7, 100)
    assert m.stop_reason == "max_tokens"
    api.reply({"refusal": "I can't help with that."})
    msg = ask_openai(oai).choices[0].message
    assert msg.refusal == "I can't help with that." and msg.content is None
    m = ask_anthropic(ant)
    assert m.stop_reason == "refusal" and m.content[0].text == "I can't help with that."


def test_broken_rule_is_a_500_naming_the_error(api: FakeAPI, oai: openai.OpenAI) -> None:
    api.reply(lambda body: 1 / 0)
    with pytest.raises(openai.InternalServerError, match="ZeroDivisionError"):
        ask_openai(oai)


# ----- faults -----------------------------------------------------------------------------
def test_429_with_retry_after_headers(api: FakeAPI, oai: openai.OpenAI, ant: anthropic.Anthropic) -> None:
    api.fault("429", count=2, retry_after=2, retry_after_ms=1500)
    with pytest.raises(openai.RateLimitError) as oe:
        ask_openai(oai)
    assert oe.value.response.headers["retry-after"] == "2"
    assert oe.value.response.headers["retry-after-ms"] == "1500"
    assert oe.value.body["code"] == "rate_limit_exceeded"  # openai SDK's .body is the inner "error" object
    with pytest.raises(anthropic.RateLimitError) as ae:
        ask_anthropic(ant)
    assert ae.value.body["error"]["type"] == "rate_limit_error"
    assert ask_openai(oai).choices[0].message.content.startswith("echo")  # count exhausted
    assert api.count() == 3 and [r.status for r in api.requests] == [429, 429, 200]
    assert [r.fault for r in api.requests] == ["429", "429", None]


def test_sdk_retries_honour_retry_after_ms(api: FakeAPI) -> None:
    client = openai.OpenAI(api_key="k", base_url=api.openai_base_url, max_retries=2, timeout=5)
    api.fault("429", count=2, retry_after_ms=10)
    assert ask_openai(client).choices[0].message.content == "echo: hello there"
    assert api.count() == 3


@pytest.mark.parametrize(
    ("kind", "oai_exc", "ant_exc"),
    [
        ("500", openai.InternalServerError, anthropic.InternalServerError),
        ("503", openai.InternalServerError, anthropic.ServiceUnavailableError),
        ("529", openai.InternalServerError, anthropic.OverloadedError),
        ("400", openai.BadRequestError, anthropic.BadRequestError),
    ],
)
def test_status_faults(
    api: FakeAPI, oai: openai.OpenAI, ant: anthropic.Anthropic, kind: str, oai_exc: type, ant_exc: type
) -> None:
    api.fault(kind, count=2)
    with pytest.raises(oai_exc) as oe:
        ask_openai(oai)
    assert oe.value.status_code == int(kind)
    with pytest.raises(ant_exc):
        ask_anthropic(ant)


def test_fault_when_only_hits_matching_requests(api: FakeAPI, oai: openai.OpenAI) -> None:
    api.fault("500", when="boom")
    assert ask_openai(oai, "calm").choices[0].message.content == "echo: calm"
    with pytest.raises(openai.InternalServerError):
        ask_openai(oai, "boom")
    assert ask_openai(oai, "boom").choices[0].message.content == "echo: boom"


def test_timeout_fault(api: FakeAPI) -> None:
    api.fault("timeout", count=2)
    with pytest.raises(openai.APITimeoutError):
        ask_openai(openai.OpenAI(api_key="k", base_url=api.openai_base_url, max_retries=0, timeout=0.3))
    with pytest.raises(anthropic.APITimeoutError):
        ask_anthropic(anthropic.Anthropic(api_key="k", base_url=api.anthropic_base_url, max_retries=0, timeout=0.3))
    assert [r.status for r in api.requests] == [0, 0]  # no response was ever sent


def test_reset_fault(api: FakeAPI, oai: openai.OpenAI, ant: anthropic.Anthropic) -> None:
    api.fault("reset", count=2)
    with pytest.raises(openai.APIConnectionError) as oe:
        ask_openai(oai)
    assert not isinstance(oe.value, openai.APITimeoutError)
    with pytest.raises(anthropic.APIConnectionError) as ae:
        ask_anthropic(ant)
    assert not isinstance(ae.value, anthropic.APITimeoutError)
    assert ask_openai(oai).choices[0].message.content.startswith("echo")  # server still fine


def test_garbage_fault(api: FakeAPI, oai: openai.OpenAI, ant: anthropic.Anthropic) -> None:
    # A 200 claiming JSON but not JSON: both SDKs let the raw json.JSONDecodeError escape
    # (a ValueError, NOT an openai/anthropic APIError).
    api.fault("garbage", count=2)
    with pytest.raises(json.JSONDecodeError):
        ask_openai(oai)
    with pytest.raises(json.JSONDecodeError):
        ask_anthropic(ant)
    # An honest text/html 200: both SDKs silently return the body as a str instead of a model.
    api.fault("html", count=2)
    assert isinstance(ask_openai(oai), str)
    assert isinstance(ask_anthropic(ant), str)


def test_fault_rate_is_deterministic(api: FakeAPI, oai: openai.OpenAI) -> None:
    def run() -> list[int]:
        api.clear()
        api.fault_rate(0.5, ["500", "429"], seed=7)
        for _ in range(20):
            try:
                ask_openai(oai)
            except openai.APIStatusError:
                pass
        return [r.status for r in api.requests]

    first = run()
    assert first == run()
    assert {429, 500, 200} == set(first)
    api.fault_rate(0, [])
    assert ask_openai(oai).choices[0].message.content.startswith("echo")


# ----- validation, auth, routing ----------------------------------------------------------
def test_openai_validation(api: FakeAPI, oai: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as e:
        oai.chat.completions.create(model="m", messages=[])
    assert e.value.body["type"] == "invalid_request_error" and e.value.body["param"] == "messages"
    with pytest.raises(openai.BadRequestError):
        oai.chat.completions.create(model="m", messages=[{"role": "wizard", "content": "x"}])  # type: ignore[list-item]
    with pytest.raises(openai.BadRequestError):
        oai.post("/chat/completions", body={"messages": HI}, cast_to=object)  # no model


def test_anthropic_validation(api: FakeAPI, ant: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.BadRequestError, match="max_tokens"):
        # the SDK's signature requires max_tokens, so go below it
        ant.post("/v1/messages", body={"model": "c", "messages": HI}, cast_to=anthropic.types.Message)
    with pytest.raises(anthropic.BadRequestError, match="system") as e:
        ant.messages.create(model="c", max_tokens=5, messages=[{"role": "system", "content": "x"}, *HI])  # type: ignore[list-item]
    assert e.value.status_code == 400 and e.value.body["error"]["type"] == "invalid_request_error"
    assert api.count("anthropic") == 2


def test_require_key() -> None:
    with FakeAPI(require_key="sekrit") as api:
        bad_o = openai.OpenAI(api_key="nope", base_url=api.openai_base_url, max_retries=0)
        bad_a = anthropic.Anthropic(api_key="nope", base_url=api.anthropic_base_url, max_retries=0, timeout=5)
        with pytest.raises(openai.AuthenticationError):
            ask_openai(bad_o)
        with pytest.raises(anthropic.AuthenticationError) as e:
            ask_anthropic(bad_a)
        assert e.value.body["error"]["type"] == "authentication_error"
        good_o = openai.OpenAI(api_key="sekrit", base_url=api.openai_base_url, max_retries=0)
        good_a = anthropic.Anthropic(api_key="sekrit", base_url=api.anthropic_base_url, max_retries=0, timeout=5)
        assert ask_openai(good_o).choices[0].message.content == "echo: hello there"
        assert ask_anthropic(good_a).content[0].text == "echo: hello there"
        # the anthropic SDK sends its key as a Bearer token; x-api-key is accepted too
        raw = good_a.with_options(default_headers={"authorization": anthropic.omit, "x-api-key": "sekrit"})
        assert ask_anthropic(raw).content[0].text == "echo: hello there"
        assert [r.status for r in api.requests] == [401, 401, 200, 200, 200]


def test_unknown_path_is_404(api: FakeAPI, oai: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError):
        oai.models.list()
    assert api.requests[0].status == 404 and api.count() == 0


# ----- concurrency and lifecycle ----------------------------------------------------------
def test_64_concurrent_requests_with_latency(api: FakeAPI, oai: openai.OpenAI) -> None:
    api.latency = 0.5
    with ThreadPoolExecutor(64) as pool:
        answers = list(pool.map(lambda i: ask_openai(oai, f"q{i}").choices[0].message.content, range(64)))
    assert answers == [f"echo: q{i}" for i in range(64)]
    # Served side by side, not one after another (a count, not a clock).
    assert api.peak_in_flight >= 8, api.peak_in_flight
    assert api.count("openai") == 64


def test_stop_is_quick_despite_hanging_requests() -> None:
    api = FakeAPI().start()
    api.fault("timeout", hang=60)
    errors: list[BaseException] = []

    def call() -> None:
        try:
            ask_openai(openai.OpenAI(api_key="k", base_url=api.openai_base_url, max_retries=0, timeout=30))
        except BaseException as exc:  # noqa: BLE001 - collected for the assertion below
            errors.append(exc)

    caller = threading.Thread(target=call)
    caller.start()
    while api.count() == 0:
        time.sleep(0.01)
    api.stop()
    caller.join(10)  # the client's own timeout is 30 s: only the server's stop can end it this soon
    assert not caller.is_alive()
    assert len(errors) == 1 and isinstance(errors[0], openai.APIConnectionError)
