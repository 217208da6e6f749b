"""Integration: a real third-party OpenAI-compatible server, ``llama_cpp.server``, on loopback.

It serves the same SmolLM2 GGUF file that ``local:smollm2`` runs in-process, and the tests
reach it as ``openai:smollm2@http://127.0.0.1:PORT/v1`` through the official ``openai``
SDK with no API key, exactly as a user would reach Ollama, vLLM or llama.cpp. They skip
locally without ``pip install -e '.[local-server]'`` and fail instead under
``LLMEVAL_REQUIRE_LOCAL=1`` (CI).
"""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from localmodel import INSTALL, require_local_model

STARTUP_TIMEOUT_S = 120.0


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The base URL of a ``llama_cpp.server`` serving SmolLM2 on a free loopback port."""
    gguf = require_local_model()
    for module in ("uvicorn", "fastapi", "sse_starlette", "starlette_context", "pydantic_settings"):
        if importlib.util.find_spec(module) is None:
            reason = f"{module} (llama-cpp-python[server]) not installed: {INSTALL}"
            if os.environ.get("LLMEVAL_REQUIRE_LOCAL") == "1":
                pytest.fail(f"LLMEVAL_REQUIRE_LOCAL=1 but {reason}", pytrace=False)
            pytest.skip(reason)
    port = _free_port()
    log = tmp_path_factory.mktemp("llama-server") / "server.log"
    cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--host", "127.0.0.1",
           "--port", str(port), "--n_ctx", "4096", "--n_threads", "1", "--n_threads_batch", "1"]  # fmt: skip
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    base_url = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    try:
        while True:
            if proc.poll() is not None:
                pytest.fail(
                    f"llama_cpp.server exited with {proc.returncode}:\n{log.read_text(errors='replace')[-3000:]}"
                )
            try:
                with urllib.request.urlopen(f"{base_url}/models", timeout=2) as response:
                    if response.status == 200:
                        break
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"llama_cpp.server not ready after {STARTUP_TIMEOUT_S:.0f}s:\n{log.read_text()[-3000:]}")
            time.sleep(0.2)
        yield base_url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


@pytest.fixture
def model(llama_server: str) -> str:
    return f"openai:smollm2@{llama_server}"


def test_eval_runs_against_the_server_without_an_api_key(pytester: pytest.Pytester, model: str) -> None:
    assert "OPENAI_API_KEY" not in os.environ  # removed by conftest: the server needs none
    pytester.makefile(
        ".jsonl",
        capitals="\n".join(
            json.dumps(c) for c in ({"id": "france", "country": "France"}, {"id": "italy", "country": "Italy"})
        ),
    )
    pytester.makepyfile(
        """
        import pytest
        from pytest_llmeval import cases

        @pytest.mark.llmeval(min_pass_rate=0.5)
        @pytest.mark.parametrize("case", cases("capitals.jsonl"))
        def test_capital(llm, case):
            c = llm.chat([{"role": "system", "content": "Answer with one word."},
                          {"role": "user", "content": f"What is the capital of {case['country']}?"}],
                         temperature=0, max_tokens=10)
            assert c.text.strip() and c.usage.input_tokens > 0 and c.usage.output_tokens > 0
            assert not c.cached
        """
    )
    result = pytester.runpytest("-v", "--llmeval-model", model)
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines([f"*test_capital?{model}-france? PASSED*"])
    # The call log names the server as the endpoint, and holds no key or auth header.
    db = pytester.path / ".llmeval" / "cache.db"
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT request FROM calls").fetchall()
    assert len(rows) == 2
    assert all(json.loads(r[0])["endpoint"] == model.split("@", 1)[1] for r in rows)
    assert all("authorization" not in r[0].lower() for r in rows)


def test_parameters_reach_the_server(pytester: pytest.Pytester, model: str) -> None:
    pytester.makepyfile(
        """
        def test_params(llm):
            cut = llm.chat([{"role": "user", "content": "Count from 1 to 50."}], temperature=0, max_tokens=4)
            assert cut.usage.output_tokens == 4 and cut.finish_reason == "length"
            a = llm("Write one sentence about the sea.", temperature=1.2, seed=11, max_tokens=20)
            b = llm("Write one sentence about the sea.", temperature=1.2, seed=11, max_tokens=20,
                    top_k=40)  # a different key, the same sampling: a real second request
            assert a == b
            named = llm("What is your name?", system="Your name is Zorblax.", temperature=0, max_tokens=20)
            assert "Zorblax" in named
        """
    )
    pytester.runpytest("--llmeval-model", model, "--llmeval-cache=off").assert_outcomes(passed=1)


def test_embedded_and_served_model_agree(pytester: pytest.Pytester, model: str) -> None:
    # The same GGUF, chat template and greedy decoding in-process and behind the server:
    # the embedded provider maps messages and parameters as llama.cpp's own server does.
    pytester.makepyfile(
        """
        import pytest

        PROMPTS = ["What is the capital of France?", "Name three colours.", "What is 12 plus 30?"]
        answers = {}

        @pytest.mark.parametrize("prompt", PROMPTS)
        def test_answer(llm, prompt):
            answers.setdefault(prompt, {})[llm.model.split(":")[0]] = llm(
                prompt, system="You are a concise assistant.", temperature=0, max_tokens=40
            )

        def test_same():
            assert len(answers) == 3
            for prompt, by_provider in answers.items():
                assert by_provider["local"] == by_provider["openai"], prompt
        """
    )
    result = pytester.runpytest("-p", "no:randomly", "--llmeval-model", "local:smollm2", "--llmeval-model", model)
    result.assert_outcomes(passed=7)


def test_forced_tool_call_through_the_server(pytester: pytest.Pytester, model: str) -> None:
    pytester.makepyfile(
        """
        def test_tool(llm):
            tool = {"name": "answer", "parameters": {"type": "object", "required": ["city"],
                    "properties": {"city": {"type": "string"}}}}
            c = llm.chat([{"role": "user", "content": "Capital of France? Call answer."}],
                         temperature=0, tools=[tool], tool_choice={"name": "answer"})
            [call] = c.tool_calls
            assert call.name == "answer" and isinstance(call.arguments["city"], str)
        """
    )
    pytester.runpytest("--llmeval-model", model, "--llmeval-cache=off").assert_outcomes(passed=1)


def test_a_second_run_replays_without_the_server(pytester: pytest.Pytester, model: str) -> None:
    pytester.makepyfile(
        """
        def test_once(llm):
            assert llm("Say hello.", temperature=0, max_tokens=8).strip()
        """
    )
    pytester.runpytest("--llmeval-model", model).assert_outcomes(passed=1)
    # Same model string and URL, replay mode: answered from the store, no request needed.
    pytester.runpytest("--llmeval-model", model, "--llmeval-cache=replay").assert_outcomes(passed=1)
    # A server that is gone is a clear error naming the endpoint, not a hang.
    gone = f"openai:smollm2@http://127.0.0.1:{_free_port()}/v1"
    result = pytester.runpytest("--llmeval-model", gone, "--llmeval-cache=off", "--llmeval-retries=0")
    assert result.ret != 0
    result.stdout.fnmatch_lines([f"*ProviderError: {gone}: *Connect*refused*"])


# llama_cpp.server answers HTTP 500 to response_format type json_schema (it knows text and
# json_object only): the judge falls back to its strict text path, once, and says so.
def test_judge_through_the_server(pytester: pytest.Pytester, model: str) -> None:
    pytester.makepyfile(
        """
        def test_graded(judge):
            assert judge("Paris is the capital of France.", "Names the capital of France") is not None
        """
    )
    result = pytester.runpytest("--llmeval-judge", model, "--llmeval-cache=off", "--llmeval-retries=0")
    result.assert_outcomes(passed=1)
