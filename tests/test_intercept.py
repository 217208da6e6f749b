"""``intercept=True``: the application's own SDK calls, served through the plugin.

Every test runs a real pytest (``pytester``) whose app code uses the real ``openai`` and
``anthropic`` clients (module-level ones among them) against tests/fakeapi.py. Nothing is
mocked or patched by the tests: the interception is the plugin's own.
"""

from __future__ import annotations

import json
import sqlite3

import pytest
from fakeapi import FakeAPI

APP = '''
import json
import os

import anthropic
import httpx2
import openai

client = openai.OpenAI()  # made at import time, before any test runs
claude = anthropic.Anthropic()


def classify(text, model="gpt-4o-mini"):
    reply = client.chat.completions.create(model=model, messages=[{"role": "user", "content": text}])
    return reply.choices[0].message.content


def chat_stream(text):
    parts = []
    stream = client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": text}], stream=True,
        stream_options={"include_usage": True},
    )
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            parts.append(chunk.choices[0].delta.content)
    return "".join(parts)


def raw_stream(text, provider):
    """The bytes of the stream as the SDK received them."""
    if provider == "openai":
        ctx = client.chat.completions.with_streaming_response.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": text}], stream=True)
    else:
        ctx = claude.messages.with_streaming_response.create(
            model="claude-haiku-4-5", max_tokens=64, messages=[{"role": "user", "content": text}], stream=True)
    with ctx as response:
        return b"".join(response.iter_bytes())


def claude_stream(text):
    with claude.messages.stream(
        model="claude-haiku-4-5", max_tokens=64, messages=[{"role": "user", "content": text}]
    ) as stream:
        return "".join(stream.text_stream)


def claude_says(text):
    reply = claude.messages.create(model="claude-haiku-4-5", max_tokens=64, messages=[{"role": "user", "content": text}])
    return reply.content[0].text


def respond(text, stream=False):
    if not stream:
        return client.responses.create(model="gpt-4o-mini", input=text).output_text
    parts = [e.delta for e in client.responses.create(model="gpt-4o-mini", input=text, stream=True)
             if e.type == "response.output_text.delta"]
    return "".join(parts)


def weather_tool(city):
    reply = client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": f"weather in {city}"}],
        tools=[{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}],
    )
    return reply.choices[0].message.tool_calls[0].function.name


def embed(text):
    # Not a model call the plugin serves: it goes to the server untouched.
    return client.embeddings.create(model="text-embedding-3-small", input=text)


def plain_post(text):
    # Not SDK traffic (no X-Stainless headers): untouched even on a model path.
    url = os.environ["OPENAI_BASE_URL"] + "/chat/completions"
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}]}
    return httpx2.post(url, json=body, headers={"authorization": "Bearer k"}).json()["choices"][0]["message"]["content"]
'''


@pytest.fixture
def app(pytester: pytest.Pytester, fake_api: FakeAPI) -> pytest.Pytester:
    pytester.makepyfile(myapp=APP)
    pytester.makeini("[pytest]\naddopts = -p no:randomly -p no:cacheprovider\n")
    return pytester


def log_rows(pytester: pytest.Pytester) -> list[dict]:
    db = sqlite3.connect(pytester.path / ".llmeval" / "cache.db")
    db.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in db.execute("SELECT * FROM calls ORDER BY rowid")]
    finally:
        db.close()


def store_text(pytester: pytest.Pytester) -> str:
    db = sqlite3.connect(pytester.path / ".llmeval" / "cache.db")
    try:
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        return "\n".join(str(row) for t in tables for row in db.execute(f"SELECT * FROM {t}"))
    finally:
        db.close()


def test_a_module_level_client_is_served_logged_and_replayed(app: pytest.Pytester, fake_api: FakeAPI) -> None:
    app.makepyfile(
        """
        import pytest
        from myapp import classify

        @pytest.mark.llmeval(intercept=True, tags=["triage"])
        @pytest.mark.parametrize("text", ["refund please", "app crashes"])
        def test_classify(text):
            assert classify(text) == f"echo: {text}"
        """
    )
    app.runpytest().assert_outcomes(passed=2)
    assert fake_api.count() == 2
    rows = log_rows(app)
    assert [r["test_id"].split("::")[1] for r in rows] == ["test_classify[refund please]", "test_classify[app crashes]"]
    assert {r["role"] for r in rows} == {"app"} and {r["model"] for r in rows} == {"openai:gpt-4o-mini"}
    assert all(r["input_tokens"] > 0 and r["output_tokens"] > 0 and r["cached"] == 0 for r in rows)
    assert json.loads(rows[0]["tags"]) == ["triage"]
    # Auth never reaches the store.
    assert "sk-test-openai" not in store_text(app) and "Bearer" not in store_text(app)
    # Replay: nothing reaches the server, the answers are the stored ones.
    result = app.runpytest("--llmeval-cache=replay")
    result.assert_outcomes(passed=2)
    assert fake_api.count() == 2
    result.stdout.fnmatch_lines(["*model calls: 2 (2 from cache)*"])


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_a_stream_is_replayed_byte_for_byte(app: pytest.Pytester, fake_api: FakeAPI, provider: str) -> None:
    app.makepyfile(
        f"""
        import pathlib
        import pytest
        from myapp import raw_stream

        @pytest.mark.llmeval(intercept=True)
        def test_stream():
            data = raw_stream("tell me a story", "{provider}")
            assert b"story" in data
            runs = len(list(pathlib.Path().glob("stream-*")))
            pathlib.Path(f"stream-{{runs}}").write_bytes(data)
        """
    )
    app.runpytest().assert_outcomes(passed=1)
    app.runpytest("--llmeval-cache=replay").assert_outcomes(passed=1)
    assert fake_api.count() == 1
    live, replayed = (app.path / "stream-0").read_bytes(), (app.path / "stream-1").read_bytes()
    assert live == replayed and live.count(b"data: ") > 3
    assert (b"event: message_start" in live) == (provider == "anthropic")


def test_streams_and_the_responses_api_give_the_app_the_same_text(app: pytest.Pytester, fake_api: FakeAPI) -> None:
    app.makepyfile(
        """
        import pytest
        from myapp import chat_stream, claude_stream, claude_says, respond, weather_tool

        @pytest.mark.llmeval(intercept=True)
        def test_all():
            assert chat_stream("one two three") == "echo: one two three"
            assert claude_stream("four five") == "echo: four five"
            assert claude_says("six") == "echo: six"
            assert respond("seven") == "echo: seven"
            assert respond("eight nine", stream=True) == "echo: eight nine"
            assert weather_tool("Oslo") == "get_weather"
        """
    )
    fake_api.reply({"tool": {"name": "get_weather", "input": {"city": "Oslo"}}}, when="weather")
    app.runpytest().assert_outcomes(passed=1)
    assert fake_api.count() == 6
    app.runpytest("--llmeval-cache=replay").assert_outcomes(passed=1)
    assert fake_api.count() == 6
    rows = log_rows(app)
    streamed = [r for r in rows if json.loads(r["request"])["params"].get("stream")]
    assert len(streamed) == 6  # 3 live + 3 replayed
    # Usage comes from the stream itself (the final usage chunk, message_delta, response.completed).
    assert all(r["output_tokens"] > 0 for r in rows)


def test_llm_calls_lists_the_apps_completions_too(app: pytest.Pytester, fake_api: FakeAPI) -> None:
    fake_api.reply({"tool": {"name": "get_weather", "input": {"city": "Oslo"}}}, when="weather")
    app.makepyfile(
        """
        import pytest
        from myapp import classify, weather_tool

        @pytest.mark.llmeval(intercept=True, route="not-this-one")
        def test_calls(llm):
            assert llm("hello") == "echo: hello"
            assert classify("ticket") == "echo: ticket"
            weather_tool("Oslo")
            calls = llm.calls
            assert [c.text for c in calls] == ["echo: hello", "echo: ticket", ""]
            assert calls[1].usage.input_tokens == 1 and calls[1].usage.output_tokens == 2
            assert calls[2].tool_calls[0].name == "get_weather"
            assert calls[2].tool_calls[0].arguments == {"city": "Oslo"}
        """
    )
    app.runpytest("--llmeval-model", "openai:gpt-4o").assert_outcomes(passed=1)


def test_the_apps_requests_go_to_the_model_under_test(app: pytest.Pytester, fake_api: FakeAPI) -> None:
    app.makepyfile(
        """
        import pytest
        from myapp import classify

        @pytest.mark.llmeval(intercept=True)
        def test_routed(llm):
            assert classify("hi") == "echo: hi"
        """
    )
    app.runpytest("--llmeval-model", "openai:gpt-4o", "--llmeval-model", "openai:o3-mini").assert_outcomes(passed=2)
    assert [r.body["model"] for r in fake_api.requests] == ["gpt-4o", "o3-mini"]
    assert {r["model"] for r in log_rows(app)} == {"openai:gpt-4o", "openai:o3-mini"}
    assert {r["role"] for r in log_rows(app)} == {"llm"}


def test_a_name_at_url_model_replaces_the_apps_endpoint(
    app: pytest.Pytester, fake_api: FakeAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The app's own client points nowhere: only the model under test's URL reaches the server.
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    app.makepyfile(
        """
        import pytest
        from myapp import classify

        @pytest.mark.llmeval(intercept=True)
        def test_routed(llm):
            assert classify("hi") == "echo: hi"
        """
    )
    app.runpytest("--llmeval-model", f"openai:qwen@{fake_api.openai_base_url}").assert_outcomes(passed=1)
    assert [(r.path, r.body["model"]) for r in fake_api.requests] == [("/v1/chat/completions", "qwen")]


def test_route_limits_the_replacement_to_the_named_models(app: pytest.Pytester, fake_api: FakeAPI) -> None:
    app.makepyfile(
        """
        import pytest
        from myapp import classify

        @pytest.mark.llmeval(intercept=True, route=["gpt-4o"])
        def test_two_models(llm):
            assert classify("a", model="gpt-4o") == "echo: a"
            assert classify("b", model="gpt-3.5-turbo") == "echo: b"
        """
    )
    app.runpytest("--llmeval-model", "openai:gpt-4.1").assert_outcomes(passed=1)
    assert [r.body["model"] for r in fake_api.requests] == ["gpt-4.1", "gpt-3.5-turbo"]
    assert [(r["model"], r["role"]) for r in log_rows(app)] == [
        ("openai:gpt-4.1", "llm"),
        ("openai:gpt-3.5-turbo", "app"),
    ]


def test_an_app_speaking_another_providers_api_is_an_error_naming_both(app: pytest.Pytester, fake_api: FakeAPI) -> None:
    app.makepyfile(
        """
        import pytest
        from myapp import claude_says

        @pytest.mark.llmeval(intercept=True)
        def test_mismatch(llm):
            try:
                claude_says("hi")
            except Exception:
                pass  # the app swallows it: the case must still be an error
        """
    )
    result = app.runpytest("--llmeval-model", "openai:gpt-4o")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*the app calls Anthropic's messages API (model 'claude-haiku-4-5') but the model under test is openai:gpt-4o*"
        ]
    )
    result.stdout.fnmatch_lines(["*gpt-4o*1*0*0*1*"])  # counted as an error in the summary
    assert fake_api.count() == 0


def test_other_traffic_goes_out_untouched(app: pytest.Pytester, fake_api: FakeAPI) -> None:
    app.makepyfile(
        """
        import openai, pytest
        from myapp import embed, plain_post

        @pytest.mark.llmeval(intercept=True)
        def test_other():
            with pytest.raises(openai.NotFoundError):
                embed("x")  # another path of the same server: the fake answers 404 itself
            assert plain_post("direct") == "echo: direct"
        """
    )
    app.runpytest("--llmeval-cache=replay").assert_outcomes(passed=1)
    assert [r.path for r in fake_api.requests] == ["/v1/embeddings", "/v1/chat/completions"]
    assert not (app.path / ".llmeval" / "cache.db").exists() or log_rows(app) == []


def test_replay_without_a_key_constructs_the_client_and_sends_nothing(
    app: pytest.Pytester, fake_api: FakeAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    app.makepyfile(
        """
        import pytest
        from myapp import classify

        @pytest.mark.llmeval(intercept=True)
        def test_classify():
            assert classify("refund") == "echo: refund"
        """
    )
    app.runpytest().assert_outcomes(passed=1)  # recorded with the key
    monkeypatch.delenv("OPENAI_API_KEY")
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    import os

    app.runpytest("--llmeval-cache=replay").assert_outcomes(passed=1)
    assert fake_api.count() == 1
    assert "OPENAI_API_KEY" not in os.environ  # the placeholder is gone with the run
    assert "placeholder" not in store_text(app)
    # Without a key and outside replay the SDK refuses to construct, as it always did.
    result = app.runpytest()
    result.stdout.fnmatch_lines(["*OPENAI_API_KEY*"])


def test_a_replay_miss_fails_the_case_even_when_the_app_swallows_it(app: pytest.Pytester, fake_api: FakeAPI) -> None:
    app.makepyfile(
        """
        import pytest
        from myapp import classify

        @pytest.mark.llmeval(intercept=True)
        def test_swallowed():
            try:
                answer = classify("never recorded")
            except Exception:
                answer = "fallback"
            assert answer == "fallback"
        """
    )
    result = app.runpytest("--llmeval-cache=replay")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*CacheMissError*no stored answer for openai:gpt-4o-mini in test*test_swallowed*"])
    assert fake_api.count() == 0
    assert result.ret != 0


def test_the_sdks_retries_do_not_multiply_the_plugins(app: pytest.Pytester, fake_api: FakeAPI) -> None:
    fake_api.fault("500", count=20)
    app.makepyfile(
        """
        import openai, pytest
        from myapp import classify

        @pytest.mark.llmeval(intercept=True)
        def test_server_error():
            with pytest.raises(openai.InternalServerError):
                classify("x")
        """
    )
    result = app.runpytest("--llmeval-retries", "1")
    # The SDK (max_retries=2 by default) would have made 3 attempts per plugin attempt.
    assert fake_api.count() == 2
    result.assert_outcomes(failed=1)  # a server that keeps failing is an error of the case
    result.stdout.fnmatch_lines(["*HTTP 500*gave up after 2 attempts*"])


def test_a_drip_feeding_server_ends_the_apps_call_at_the_deadline(app: pytest.Pytester, fake_api: FakeAPI) -> None:
    # One byte every 0.5 s: each read comes in time, the whole answer would take minutes.
    fake_api.hostile("drip", interval=0.5, count=10)
    app.makepyfile(
        """
        import pytest
        from myapp import classify

        @pytest.mark.llmeval(intercept=True)
        def test_slow():
            classify("x")
        """
    )
    result = app.runpytest("--llmeval-timeout", "2", "--llmeval-retries", "0")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*timed out*"])
    assert fake_api.count() == 1


def test_the_planning_pass_makes_app_calls_together(app: pytest.Pytester, fake_api: FakeAPI) -> None:
    fake_api.latency = 0.3
    app.makepyfile(
        """
        import pytest
        from myapp import classify

        @pytest.mark.llmeval(intercept=True)
        @pytest.mark.parametrize("i", range(8))
        def test_case(i):
            assert classify(f"ticket {i}") == f"echo: ticket {i}"
            assert classify(f"again {i}") == f"echo: again {i}"
        """
    )
    app.runpytest("--llmeval-concurrency", "4").assert_outcomes(passed=8)
    assert fake_api.count() == 16  # each request once: the planning pass never calls twice
    assert fake_api.peak_in_flight >= 3


def test_under_xdist(app: pytest.Pytester, fake_api: FakeAPI) -> None:
    app.makepyfile(
        """
        import pytest
        from myapp import classify

        @pytest.mark.llmeval(intercept=True)
        @pytest.mark.parametrize("i", range(4))
        def test_case(i):
            assert classify(f"t{i}") == f"echo: t{i}"
        """
    )
    result = app.runpytest("-n", "2", "--llmeval-json", "out.json")
    result.assert_outcomes(passed=4)
    assert fake_api.count() == 4
    cases = json.loads((app.path / "out.json").read_text())["cases"]
    assert len(cases) == 4 and all(c["calls"] and c["calls"][0]["role"] == "app" for c in cases)


def test_the_ini_option_intercepts_every_eval(app: pytest.Pytester, fake_api: FakeAPI) -> None:
    app.makeini("[pytest]\naddopts = -p no:randomly\nllmeval_intercept = true\n")
    app.makepyfile(
        """
        import pytest
        from myapp import classify

        @pytest.mark.llmeval()
        def test_on():
            assert classify("a") == "echo: a"

        @pytest.mark.llmeval(intercept=False)
        def test_off():
            assert classify("b") == "echo: b"
        """
    )
    # No planning pass: its planning run of test_off would call the server a second time.
    app.runpytest("--llmeval-concurrency", "0").assert_outcomes(passed=2)
    assert fake_api.count() == 2
    assert [r["test_id"].split("::")[1] for r in log_rows(app)] == ["test_on"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ("intercept='yes'", "intercept= must be True or False"),
        ("intercept=True, route=3", "route= must be a model name or a list"),
        ("intercept=False, route='gpt-4o'", "route= only applies with intercept=True"),
    ],
)
def test_bad_marker_arguments_are_usage_errors(pytester: pytest.Pytester, args: str, message: str) -> None:
    pytester.makepyfile(
        f"""
        import pytest

        @pytest.mark.llmeval({args})
        def test_x():
            pass
        """
    )
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert message in result.stderr.str()


def test_a_custom_async_transport_is_named_once(app: pytest.Pytester, fake_api: FakeAPI) -> None:
    app.makepyfile(
        """
        import anyio, httpx2, openai, pytest

        class Logged(httpx2.AsyncHTTPTransport):
            pass

        aclient = openai.AsyncOpenAI(http_client=httpx2.AsyncClient(transport=Logged()))

        async def ask(text):
            reply = await aclient.chat.completions.create(model="m", messages=[{"role": "user", "content": text}])
            return reply.choices[0].message.content

        @pytest.mark.llmeval(intercept=True)
        def test_custom():
            assert anyio.run(ask, "a") == "echo: a"
            assert anyio.run(ask, "b") == "echo: b"
        """
    )
    result = app.runpytest_subprocess()  # a warning of an in-process run can land in the outer run
    result.assert_outcomes(passed=1)
    assert result.stdout.str().count("uses its own transport (Logged)") == 1
    assert fake_api.count() == 2
    app.runpytest("--llmeval-cache=replay").assert_outcomes(passed=1)
    assert fake_api.count() == 2


def test_a_run_without_intercepting_evals_leaves_httpx2_alone(pytester: pytest.Pytester, fake_api: FakeAPI) -> None:
    pytester.makepyfile(
        """
        import httpx2

        def test_plain(llm):
            assert llm("x") == "echo: x"
            assert httpx2.Client.send.__module__ == "httpx2._client"
        """
    )
    pytester.runpytest("--llmeval-model", "openai:gpt-4o-mini").assert_outcomes(passed=1)


def test_the_store_keeps_the_stream_and_the_body(app: pytest.Pytester, fake_api: FakeAPI) -> None:
    app.makepyfile(
        """
        import pytest
        from myapp import chat_stream, classify

        @pytest.mark.llmeval(intercept=True)
        def test_both():
            classify("json body")
            chat_stream("sse body")
        """
    )
    app.runpytest().assert_outcomes(passed=1)
    db = sqlite3.connect(app.path / ".llmeval" / "cache.db")
    rows = [json.loads(r[0]) for r in db.execute("SELECT response FROM calls ORDER BY rowid")]
    db.close()
    assert rows[0]["http"]["body"]["object"] == "chat.completion"
    assert rows[1]["http"]["sse"].endswith("data: [DONE]\n\n")
    assert rows[1]["http"]["headers"]["content-type"].startswith("text/event-stream")
    assert all("authorization" not in json.dumps(r).lower() for r in rows)


def test_the_example_app_replays_offline_without_a_key(tmp_path) -> None:
    # examples/app: a module-level openai.OpenAI() client, no key, replayed from the recording.
    from test_examples import outcomes, run_examples

    proc = run_examples(tmp_path, "--llmeval-cache=replay", "--llmeval-json", str(tmp_path / "r.json"), "-k", "triage")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-5000:]
    seen = outcomes(proc.stdout)
    assert "ERROR" not in seen.values(), out[-5000:]
    for name in ("test_classify_ticket", "test_draft_reply"):
        assert len([t for t in seen if t.split("[")[0].endswith(name)]) == 6, sorted(seen)
    cases = [c for c in json.loads((tmp_path / "r.json").read_text())["cases"] if "app/" in c["nodeid"]]
    assert len(cases) == 12 and all(c["calls"] and all(k["cached"] for k in c["calls"]) for c in cases)
    assert {k["role"] for c in cases for k in c["calls"]} == {"llm"}  # routed to the model under test
