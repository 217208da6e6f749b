"""The core loop end to end: pytester runs, real SDKs, the fake server on loopback."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest
from fakeapi import FakeAPI

from pytest_llmeval.errors import ProviderError
from pytest_llmeval.models import ModelSpec

TWO_MODELS = ["--llmeval-model", "openai:gpt-4o-mini", "--llmeval-model", "anthropic:claude-haiku-4-5"]

CAPITALS = [
    {"id": "france", "country": "France", "capital": "Paris"},
    {"id": "japan", "country": "Japan", "capital": "Tokyo"},
    {"id": "peru", "country": "Peru", "capital": "Lima"},
]


def write_capitals(pytester: pytest.Pytester) -> None:
    pytester.makefile(".jsonl", capitals="\n".join(json.dumps(c) for c in CAPITALS))
    pytester.makepyfile(
        test_capitals="""
        import pytest
        from pytest_llmeval import cases, exact

        @pytest.mark.llmeval(min_pass_rate=0.5)
        @pytest.mark.parametrize("case", cases("capitals.jsonl"))
        def test_capital(llm, case):
            answer = llm(f"What is the capital of {case['country']}? Answer with one word.")
            assert exact(answer, case["capital"])
        """
    )


def test_eval_over_jsonl_runs_once_per_case_and_model(pytester: pytest.Pytester, fake_api: FakeAPI) -> None:
    write_capitals(pytester)
    fake_api.reply("Paris.", when="France")
    fake_api.reply("Tokyo", when="Japan")
    fake_api.reply("Cusco", when="Peru")
    result = pytester.runpytest("-v", *TWO_MODELS)
    result.stdout.fnmatch_lines(
        [
            "*test_capital?openai:gpt-4o-mini-france? PASSED*",
            "*test_capital?openai:gpt-4o-mini-peru? FAILED*",
            "*test_capital?anthropic:claude-haiku-4-5-japan? PASSED*",
        ]
    )
    result.assert_outcomes(passed=4, failed=2)
    assert fake_api.count("openai") == 3
    assert fake_api.count("anthropic") == 3
    # The failure shows expected, actual and the normalisation applied.
    result.stdout.fnmatch_lines(["*expected*Lima*actual*Cusco*normalised*"])


def test_system_prompt_and_params_map_onto_each_api(pytester: pytest.Pytester, fake_api: FakeAPI) -> None:
    pytester.makepyfile(
        """
        def test_it(llm):
            llm("hi", system="be terse", temperature=0.2, stop=["END"], seed=7)
            c = llm.chat([{"role": "system", "content": "sys"}, {"role": "user", "content": "a"},
                          {"role": "assistant", "content": "b"}, {"role": "user", "content": "c"}], max_tokens=50)
            assert c.text == "echo: c" and c.usage.input_tokens > 0 and not c.cached
        """
    )
    pytester.runpytest(*TWO_MODELS).assert_outcomes(passed=2)
    openai_bodies = [r.body for r in fake_api.requests if r.provider == "openai"]
    anthropic_bodies = [r.body for r in fake_api.requests if r.provider == "anthropic"]
    first = openai_bodies[0]
    assert first["messages"][0] == {"role": "system", "content": "be terse"}
    assert first["temperature"] == 0.2 and first["stop"] == ["END"] and first["seed"] == 7
    # OpenAI's own API gets max_completion_tokens; multi-turn messages pass unchanged.
    assert [m["role"] for m in openai_bodies[1]["messages"]] == ["system", "user", "assistant", "user"]
    a_first = anthropic_bodies[0]
    assert a_first["system"] == "be terse"
    assert a_first["messages"] == [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]
    assert a_first["max_tokens"] == 1024  # required by the API; our default
    assert a_first["stop_sequences"] == ["END"] and "seed" not in a_first and "stop" not in a_first
    assert anthropic_bodies[1]["max_tokens"] == 50
    assert [m["role"] for m in anthropic_bodies[1]["messages"]] == ["user", "assistant", "user"]


def test_max_tokens_becomes_max_completion_tokens_only_on_openai_itself(monkeypatch: pytest.MonkeyPatch) -> None:
    from pytest_llmeval.models import ModelSpec, Request
    from pytest_llmeval.providers.openai import OpenAIProvider

    monkeypatch.delenv("OPENAI_BASE_URL")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-unused")
    spec = ModelSpec.parse("openai:gpt-4o-mini")
    provider = OpenAIProvider(spec)
    body = provider.build_body(Request(spec, [{"role": "user", "content": "x"}], {"max_tokens": 5}))
    assert body["max_completion_tokens"] == 5 and "max_tokens" not in body
    local = ModelSpec.parse("openai:llama3@http://127.0.0.1:11434/v1")
    provider = OpenAIProvider(local)
    params = {"max_tokens": 5, "top_k": 3, "extra_body": {"min_p": 0.1}}
    body = provider.build_body(Request(local, [{"role": "user", "content": "x"}], params))
    # Every parameter is a field of the JSON body, the SDK's extra_body merged in.
    assert body["max_tokens"] == 5 and body["top_k"] == 3 and body["min_p"] == 0.1 and "extra_body" not in body


def test_local_server_form_needs_no_key(
    pytester: pytest.Pytester, fake_api: FakeAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY")
    pytester.makepyfile("def test_it(llm):\n    assert llm('ping') == 'echo: ping'\n")
    result = pytester.runpytest("--llmeval-model", f"openai:llama3@{fake_api.openai_base_url}")
    result.assert_outcomes(passed=1)
    request = fake_api.requests[-1]
    assert "authorization" not in request.headers
    assert request.body["model"] == "llama3"


def test_local_server_form_sends_key_when_set(pytester: pytest.Pytester, fake_api: FakeAPI) -> None:
    pytester.makepyfile("def test_it(llm):\n    assert llm('ping') == 'echo: ping'\n")
    pytester.runpytest("--llmeval-model", f"openai:llama3@{fake_api.openai_base_url}").assert_outcomes(passed=1)
    assert fake_api.requests[-1].headers["authorization"].startswith("Bearer sk-test")


def test_models_precedence_cli_then_marker_then_ini(pytester: pytest.Pytester, fake_api: FakeAPI) -> None:
    pytester.makeini("[pytest]\nllmeval_models =\n    openai:from-ini\n")
    pytester.makepyfile(
        """
        import pytest

        def test_ini(llm):
            assert llm.model == "openai:from-ini"

        @pytest.mark.llmeval(models=["openai:from-marker", "anthropic:m2"])
        def test_marker(llm):
            assert llm.model in ("openai:from-marker", "anthropic:m2")
        """
    )
    pytester.runpytest().assert_outcomes(passed=3)
    result = pytester.runpytest("--llmeval-model", "openai:from-cli", "-v")
    result.stdout.fnmatch_lines(["*test_ini?openai:from-cli? FAILED*", "*test_marker?openai:from-cli? FAILED*"])


@pytest.mark.parametrize(
    "source, args, message",
    [
        ("def test_it(llm):\n    llm('x')\n", [], "*uses the llm fixture but no model is configured*--llmeval-model*"),
        (
            "def test_it(llm):\n    llm('x')\n",
            ["--llmeval-model", "nope:m"],
            "*unknown provider 'nope'*known providers: anthropic, local, openai*",
        ),
        (
            "def test_it(llm):\n    llm('x')\n",
            ["--llmeval-model", "gpt-4o"],
            "*invalid model 'gpt-4o' (--llmeval-model)*PROVIDER:MODEL*",
        ),
        (
            "import pytest\n@pytest.mark.llmeval(min_pass_rate=2)\ndef test_it(llm):\n    pass\n",
            ["--llmeval-model", "openai:m"],
            "*test_*.py::test_it: @pytest.mark.llmeval min_pass_rate= must be a number from 0 to 1, got 2*",
        ),
        (
            "import pytest\n@pytest.mark.llmeval(repeats=2)\ndef test_it():\n    pass\n",
            [],
            "*unknown argument(s) repeats; valid: models, min_pass_rate, repeat, judge, tags*",
        ),
        ("def test_it():\n    pass\n", ["--llmeval-cache", "bogus"], "*invalid choice: 'bogus'*"),
        (
            "def test_it():\n    pass\n",
            ["--llmeval-min-pass-rate", "1.5"],
            "*--llmeval-min-pass-rate: must be between 0.0 and 1.0, got 1.5*",
        ),
    ],
    ids=[
        "no-model",
        "unknown-provider",
        "bad-model-name",
        "bad-threshold",
        "bad-marker-kwarg",
        "bad-cache-mode",
        "bad-cli-rate",
    ],
)
def test_configuration_mistakes_are_usage_errors(
    pytester: pytest.Pytester, fake_api: FakeAPI, source: str, args: list[str], message: str
) -> None:
    pytester.makepyfile(source)
    result = pytester.runpytest(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])
    assert fake_api.count() == 0


def test_missing_api_key_names_the_variable(
    pytester: pytest.Pytester, fake_api: FakeAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY")
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    pytester.makepyfile("def test_it(llm):\n    llm('x')\n")
    result = pytester.runpytest(*TWO_MODELS)
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(["*OPENAI_API_KEY is not set*", "*ANTHROPIC_API_KEY is not set*"])
    assert fake_api.count() == 0


def test_unreachable_server_is_a_clear_error(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-unused")
    pytester.makepyfile("def test_it(llm):\n    llm('x')\n")
    result = pytester.runpytest("--llmeval-model", "openai:m@http://127.0.0.1:9/v1", "--llmeval-retries", "1")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["*ProviderError: openai:m@http://127.0.0.1:9/v1: cannot reach http://127.0.0.1:9/v1*gave up after 2 attempts*"]
    )
    result.stdout.no_fnmatch_line("*sk-unused*")


def test_http_errors_name_status_and_model(pytester: pytest.Pytester, fake_api: FakeAPI) -> None:
    fake_api.fault("400", count=5)
    pytester.makepyfile("def test_it(llm):\n    llm('x')\n")
    result = pytester.runpytest("--llmeval-model", "anthropic:claude-haiku-4-5")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*ProviderError: anthropic:claude-haiku-4-5: HTTP 400 from http://127.0.0.1:*"])
    assert fake_api.count() == 1  # a 400 is not retried


def test_importing_the_plugin_does_not_import_the_sdks() -> None:
    code = (
        "import sys, pytest_llmeval, pytest_llmeval.plugin\n"
        "assert 'openai' not in sys.modules and 'anthropic' not in sys.modules, 'SDK imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_a_run_without_evals_imports_no_sdk_and_writes_no_cache(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import sys
        def test_plain():
            assert "openai" not in sys.modules and "anthropic" not in sys.modules
        """
    )
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(passed=1)
    assert not (pytester.path / ".llmeval").exists()


def test_refused_params_never_reach_the_key(pytester: pytest.Pytester, fake_api: FakeAPI) -> None:
    pytester.makepyfile("def test_it(llm):\n    llm('x', api_key='sk-secret-xyz')\n")
    result = pytester.runpytest("--llmeval-model", "openai:m")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*parameter(s) api_key cannot be passed to a model call*"])
    assert fake_api.count() == 0


@pytest.mark.parametrize(
    ("provider", "data", "why"),
    [
        ("openai", ["not", "an", "object"], "expected a JSON object, got list"),
        ("openai", {"choices": []}, "has no choices"),
        ("openai", {"choices": ["text"]}, "unreadable response"),
        ("openai", {"choices": [{"message": {}}], "usage": {"prompt_tokens": "many"}}, "unreadable response"),
        ("anthropic", "a string", "expected a JSON object, got str"),
        ("anthropic", {"content": [None]}, "unreadable response"),
    ],
)
def test_a_reply_of_the_wrong_shape_is_a_retryable_provider_error(provider: str, data: Any, why: str) -> None:
    from pytest_llmeval.providers import anthropic as anthropic_provider
    from pytest_llmeval.providers import openai as openai_provider
    from pytest_llmeval.providers._common import parse_json_reply

    module = {"openai": openai_provider, "anthropic": anthropic_provider}[provider]
    spec = ModelSpec.parse(f"{provider}:m")
    with pytest.raises(ProviderError, match=why) as info:
        parse_json_reply(module._parse_response, data, spec, "http://127.0.0.1:1")
    assert info.value.retryable


def test_reply_parsing_keeps_text_parts_tools_usage_and_refusals() -> None:
    from pytest_llmeval.providers import anthropic as anthropic_provider
    from pytest_llmeval.providers import openai as openai_provider

    spec = ModelSpec.parse("openai:m")
    data = {
        "model": "m-2024",
        "choices": [
            {
                "finish_reason": "tool_calls",
                "message": {
                    "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}],
                    "refusal": None,
                    "tool_calls": [
                        {"function": {"name": "f", "arguments": '{"x": 1}'}},
                        {"function": {"name": "g", "arguments": "{not json"}},
                    ],
                },
            }
        ],
        "usage": {"prompt_tokens": 10, "completion_tokens": 3, "prompt_tokens_details": {"cached_tokens": 4}},
    }
    out = openai_provider._parse_response(data, spec)
    assert out["text"] == "ab" and out["model"] == "m-2024" and out["finish_reason"] == "tool_calls"
    assert out["tool_calls"] == [
        {"name": "f", "arguments": {"x": 1}, "raw_arguments": '{"x": 1}'},
        {"name": "g", "arguments": None, "raw_arguments": "{not json"},
    ]
    assert out["usage"] == {"input_tokens": 10, "output_tokens": 3, "cached_input_tokens": 4}
    ant = anthropic_provider._parse_response(
        {
            "content": [{"type": "text", "text": "no"}, {"type": "tool_use", "name": "t", "input": {"y": 2}}],
            "stop_reason": "refusal",
            "usage": {
                "input_tokens": 5,
                "cache_read_input_tokens": 7,
                "cache_creation_input_tokens": 1,
                "output_tokens": 2,
            },
        },
        ModelSpec.parse("anthropic:m"),
    )
    assert ant["text"] == "no" and ant["model"] == "m" and ant["refusal"] == "refused by the model"
    assert ant["tool_calls"] == [{"name": "t", "arguments": {"y": 2}, "raw_arguments": ""}]
    assert ant["usage"] == {"input_tokens": 13, "output_tokens": 2, "cached_input_tokens": 7}


def test_every_public_name_resolves_and_the_contract_types_are_exported() -> None:
    code = (
        "import sys, pytest_llmeval as p\n"
        "assert 'openai' not in sys.modules and 'anthropic' not in sys.modules\n"
        "missing = [n for n in p.__all__ if getattr(p, n, None) is None]\n"
        "assert not missing, missing\n"
        "assert {'Provider', 'StoredCompletion', 'Request', 'LLM', 'EvalResult'} <= set(p.__all__)\n"
        "assert 'openai' not in sys.modules and 'anthropic' not in sys.modules\n"
        "print('ok')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.stdout.strip() == "ok", proc.stderr
