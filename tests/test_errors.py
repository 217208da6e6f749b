"""Machinery errors say the cause and the fix in a few lines, before anything is sent
(issue 15): malformed model names, missing keys, replay misses, hostile output under xdist."""

from __future__ import annotations

import json

import pytest
from fakeapi import FakeAPI

OPENAI = ["--llmeval-model", "openai:gpt-4o-mini"]

CASES_TEST = """
import pytest

@pytest.mark.parametrize("n", range({n}))
def test_case(llm, n):
    assert llm(f"question {{n}}") == f"echo: question {{n}}"
"""


# -- xdist: what travels through execnet ------------------------------------------------------
def test_a_lone_surrogate_or_nul_in_model_output_survives_xdist(pytester: pytest.Pytester, fake_api: FakeAPI) -> None:
    pytest.importorskip("xdist")
    hostile = "\ud800 \x00"
    fake_api.reply(hostile)
    pytester.makepyfile(CASES_TEST.format(n=4))
    result = pytester.runpytest_subprocess(*OPENAI, "-n", "2", "--llmeval-json=results.json", "-p", "no:randomly")
    output = result.stdout.str() + result.stderr.str()
    assert "INTERNALERROR" not in output
    result.assert_outcomes(failed=4)
    # The controller's results hold the very values the model sent, for every case.
    cases = json.loads((pytester.path / "results.json").read_text(encoding="utf-8"))["cases"]
    assert len(cases) == 4
    assert all(c["output"] == hostile and c["outcome"] == "failed" for c in cases), [c["output"] for c in cases]


# -- model names --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("where", "value", "message"),
    [
        (
            "cli",
            "openai:gpt-4o-mini@127.0.0.1:{port}",
            "*--llmeval-model*'@127.0.0.1:*' has no scheme*write openai:gpt-4o-mini@http://127.0.0.1:*/v1*",
        ),
        ("cli", "openai:a,anthropic:b", "*--llmeval-model*comma-joined list*one --llmeval-model option per model*"),
        ("cli", "", "*--llmeval-model*the name is empty*"),
        ("cli", "openai:gpt 4o", "*--llmeval-model*contains whitespace*"),
        ("ini", "openai:a, anthropic:b", "*ini option llmeval_models*comma-joined list*one model per line*"),
        ("ini", "openai:m@localhost:{port}", "*ini option llmeval_models*has no scheme*openai:m@http://localhost:*"),
        ("marker", "openai:a, anthropic:b", "*marker models=*comma-joined list*"),
        ("judge", "openai:j@127.0.0.1:{port}/v1", "*--llmeval-judge*has no scheme*openai:j@http://127.0.0.1:*/v1*"),
    ],
)
def test_a_malformed_model_name_is_a_usage_error_and_is_never_sent(
    pytester: pytest.Pytester, fake_api: FakeAPI, where: str, value: str, message: str
) -> None:
    value = value.format(port=fake_api.url.rsplit(":", 1)[1])
    args: list[str] = []
    models = "None"
    if where == "cli":
        args = ["--llmeval-model", value]
    elif where == "ini":
        pytester.makeini(f"[pytest]\nllmeval_models =\n    {value}\n")
    elif where == "marker":
        models = repr([value])
    else:
        args = [*OPENAI, "--llmeval-judge", value]
    pytester.makepyfile(
        f"""
        import pytest

        @pytest.mark.llmeval(models={models})
        def test_it(llm, judge):
            assert judge(llm("hello"), "says hello")
        """
    )
    result = pytester.runpytest(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR, result.stdout.str() + result.stderr.str()
    result.stderr.fnmatch_lines([message])
    assert fake_api.count() == 0


# -- a missing API key --------------------------------------------------------------------------
@pytest.mark.parametrize("concurrency", ["8", "0"], ids=["planned", "one-at-a-time"])
def test_a_missing_key_is_one_short_line_and_cached_cases_still_pass(
    pytester: pytest.Pytester, fake_api: FakeAPI, monkeypatch: pytest.MonkeyPatch, concurrency: str
) -> None:
    pytester.makepyfile(CASES_TEST.format(n=6))
    # Record two of the six cases with a key.
    pytester.runpytest(
        *OPENAI, "-k", "test_case[openai:gpt-4o-mini-0] or test_case[openai:gpt-4o-mini-1]"
    ).assert_outcomes(passed=2)
    monkeypatch.delenv("OPENAI_API_KEY")
    fake_api.clear()
    local = f"openai:local@{fake_api.openai_base_url}"  # a local server needs no key
    result = pytester.runpytest(
        *OPENAI, "--llmeval-model", local, f"--llmeval-concurrency={concurrency}", "-p", "no:randomly"
    )
    # The cached cases pass, the local server's cases pass, the rest error without a request.
    result.assert_outcomes(passed=2 + 6, failed=4)
    assert fake_api.count() == 6 and all("/v1/chat/completions" == r.path for r in fake_api.requests)
    assert all(r.body["model"] == "local" for r in fake_api.requests)
    output = result.stdout.str()
    notice = [
        line
        for line in output.splitlines()
        if line.startswith("pytest-llmeval: openai:gpt-4o-mini: OPENAI_API_KEY is not set")
    ]
    assert len(notice) == 1, output
    # Each failed case shows the same one-line cause and fix, and none of the plugin's source.
    assert output.count("MissingKeyError: openai:gpt-4o-mini: OPENAI_API_KEY is not set. Set it") == 4
    assert "pytest_llmeval/" not in output and "def _get_client" not in output
    failures = output.split("= FAILURES =", 1)[1].split(" llmeval summary ", 1)[0]
    assert len(failures.splitlines()) <= 4 * 6, failures


def test_no_key_is_asked_for_under_replay(
    pytester: pytest.Pytester, fake_api: FakeAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile(CASES_TEST.format(n=2))
    pytester.runpytest(*OPENAI).assert_outcomes(passed=2)
    monkeypatch.delenv("OPENAI_API_KEY")
    result = pytester.runpytest(*OPENAI, "--llmeval-cache=replay")
    result.assert_outcomes(passed=2)
    assert "OPENAI_API_KEY" not in result.stdout.str()


# -- short messages -----------------------------------------------------------------------------
def test_replay_misses_on_an_empty_store_print_a_few_lines_per_case(
    pytester: pytest.Pytester, fake_api: FakeAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY")
    n = 20
    pytester.makepyfile(CASES_TEST.format(n=n))
    result = pytester.runpytest(*OPENAI, "--llmeval-cache=replay")
    result.assert_outcomes(failed=n)
    output = result.stdout.str()
    assert output.count("CacheMissError: --llmeval-cache=replay: no stored answer for openai:gpt-4o-mini") == n
    assert output.count("Record it by running once with --llmeval-cache=use") == n
    # The test's own line is shown, the plugin's frames are not.
    assert output.count('assert llm(f"question {n}")') == n
    assert "pytest_llmeval/" not in output
    assert len(output.splitlines()) < 12 * n, output
    assert fake_api.count() == 0


def test_the_full_traceback_is_still_there_on_request(pytester: pytest.Pytester, fake_api: FakeAPI) -> None:
    pytester.makepyfile(CASES_TEST.format(n=1))
    result = pytester.runpytest(*OPENAI, "--llmeval-cache=replay", "--tb=long")
    result.assert_outcomes(failed=1)
    assert "pytest_llmeval/calls/caller.py" in result.stdout.str()
