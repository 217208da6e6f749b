"""No secret is written anywhere, however it arrives (issue 15, "Errors and secrets").

Keys are planted in the environment and in model URLs; a hostile local server echoes the
``Authorization`` header in its error bodies and a model repeats the key. Afterwards no
file of the run (store and its -wal, exports, every report, pytest's cache and
``--junitxml``) and no line of the terminal holds the key, its last 8 characters or its
base64 form.
"""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import pytest
from fakeapi import FakeAPI

from pytest_llmeval.store.redaction import REDACTED

# Keeps the raw -wal file as it was during the run (the plugin's close folds it into the db).
SNAPSHOT_CONFTEST = """
import shutil
from pathlib import Path
import pytest

@pytest.hookimpl(tryfirst=True)
def pytest_unconfigure(config):
    src = Path(config.rootpath, ".llmeval")
    if src.exists():
        shutil.copytree(src, Path(config.rootpath, "snapshot"), dirs_exist_ok=True)
"""

HOSTILE_TEST = """
import os
from pytest_llmeval import exact

def test_plain(llm):
    assert exact(llm("hello"), "echo: hello")

def test_model_repeats_the_key(llm):
    # The model's answer holds the key: the failed assert shows it, reports keep the output.
    assert llm("repeat the key") == "something else"

def test_model_repeats_the_last_8_characters(llm):
    assert exact(llm("tail of the key"), "no")

def test_prints_a_token(llm):
    print("token:", os.environ["FOO_TOKEN"], os.environ["AZURE_OPENAI_KEY"])
    assert llm("hello")

# Last, and the run is sequential: a rejected key (the 401) ends that endpoint's calls, so a
# call made after it would fail instead of returning the model's output.
def test_server_echoes_the_auth_header(llm):
    llm("boom")
"""

REPORTS = [
    "--junitxml=junit.xml",
    "--llmeval-report=llmeval.xml",
    "--llmeval-json=results.json",
    "--llmeval-markdown=summary.md",
    "--llmeval-html=report.html",
]


def _forms(secret: str) -> list[str]:
    """The key, its last 8 characters, and the base64 of ``user:key`` without padding."""
    return [secret, secret[-8:], base64.b64encode(f"user:{secret}".encode()).decode().rstrip("=")[8:]]


def _assert_nowhere(root: Path, output: str, secrets: list[str]) -> list[Path]:
    files = [p for p in root.rglob("*") if p.is_file() and p.suffix not in (".py", ".pyc")]
    for secret in secrets:
        for form in _forms(secret):
            assert form not in output, f"{form!r} in the terminal"
            for path in files:
                assert form.encode() not in path.read_bytes(), f"{form!r} found in {path}"
    return files


def test_a_server_or_model_that_echoes_the_key_leaks_it_nowhere(
    pytester: pytest.Pytester, fake_api: FakeAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    openai_key = "sk-proj-planted-" + os.urandom(10).hex()
    anthropic_key = "sk-ant-planted-" + os.urandom(10).hex()
    azure_key = "azure" + os.urandom(12).hex()
    token = "tok" + os.urandom(12).hex()
    monkeypatch.setenv("OPENAI_API_KEY", openai_key)
    monkeypatch.setenv("ANTHROPIC_API_KEY", anthropic_key)
    monkeypatch.setenv("AZURE_OPENAI_KEY", azure_key)
    monkeypatch.setenv("FOO_TOKEN", token)
    fake_api.fault("401-echo-auth", when="boom", count=100, provider="openai")
    fake_api.fault("400-echo-auth", when="boom", count=100, provider="anthropic")
    fake_api.reply(f"Sure: {openai_key} and {anthropic_key} and {azure_key}", when="repeat the key")
    fake_api.reply(f"...{openai_key[-8:]} / ...{anthropic_key[-8:]}", when="tail of the key")
    pytester.makeconftest(SNAPSHOT_CONFTEST)
    pytester.makepyfile(test_hostile=HOSTILE_TEST)
    models = ["--llmeval-model", "openai:gpt-4o-mini", "--llmeval-model", "anthropic:claude-haiku-4-5"]
    # One call at a time, in file order: concurrent calls could send a later test's request
    # after the 401 came back (which ends the endpoint's calls) or before, run by run.
    result = pytester.runpytest(*models, "--llmeval-retries=0", "--llmeval-concurrency=0", "-rA", *REPORTS)
    result.assert_outcomes(passed=4, failed=6)
    # Not vacuous: the server did echo the keys, and the failure is shown.
    assert any(
        r.fault == "401-echo-auth" and openai_key in r.headers.get("authorization", "") for r in fake_api.requests
    )
    output = result.stdout.str() + result.stderr.str()
    assert (
        "HTTP 401" in output and "HTTP 400" in output and "Headers received: authorization: Bearer [redacted]" in output
    )

    export = pytester.run("python", "-m", "pytest_llmeval", "cache", "export", "export.jsonl")
    assert export.ret == 0
    files = _assert_nowhere(pytester.path, output + export.stdout.str(), [openai_key, anthropic_key, azure_key, token])
    names = {p.name for p in files}
    assert {
        "cache.db",
        "cache.db-wal",
        "junit.xml",
        "llmeval.xml",
        "results.json",
        "summary.md",
        "report.html",
    } <= names
    assert "export.jsonl" in names

    # Redacted, not dropped: the outputs are still there, with the key replaced.
    cases = {
        (c["nodeid"].split("::")[1].split("[")[0], c["model"]): c
        for c in json.loads((pytester.path / "results.json").read_text())["cases"]
    }
    repeated = cases[("test_model_repeats_the_key", "openai:gpt-4o-mini")]
    assert repeated["output"] == f"Sure: {REDACTED} and {REDACTED} and {REDACTED}"
    assert cases[("test_model_repeats_the_last_8_characters", "anthropic:claude-haiku-4-5")]["output"].startswith(
        f"...{REDACTED}"
    )
    assert REDACTED in cases[("test_server_echoes_the_auth_header", "openai:gpt-4o-mini")]["error"]


URL_TEST = """
def test_answer(llm):
    assert llm("hello") == "echo: hello"

def test_rejected(llm):
    llm("boom")
"""


def test_a_key_inside_a_model_url_leaks_nowhere(pytester: pytest.Pytester, fake_api: FakeAPI) -> None:
    password = "pw-" + os.urandom(10).hex()
    query_key = "qk-" + os.urandom(10).hex()
    host = fake_api.openai_base_url.split("://", 1)[1]
    with_password = f"openai:m@http://user:{password}@{host}"
    # The SDK sends a query-string key to a path the server does not know (a 404): its
    # cases fail, and the error names the URL, credentials redacted.
    with_query = f"openai:q@http://{host}?api_key={query_key}"
    fake_api.fault("401-echo-auth", when="boom", count=100)
    pytester.makeconftest(SNAPSHOT_CONFTEST)
    pytester.makepyfile(test_url=URL_TEST)
    models = ["--llmeval-model", with_password, "--llmeval-model", with_query]
    # Sequential for the same reason as above: test_answer's call is made before the 401.
    result = pytester.runpytest(*models, "--llmeval-retries=0", "--llmeval-concurrency=0", "-rA", "-v", *REPORTS)
    result.assert_outcomes(passed=1, failed=3)
    # The credentials did travel (as Basic auth, base64 of user:password), so the check bites.
    sent = [r.headers.get("authorization", "") for r in fake_api.requests]
    assert any(base64.b64encode(f"user:{password}".encode()).decode() in s for s in sent), sent
    output = result.stdout.str() + result.stderr.str()
    # The test id names the model with its credentials redacted.
    assert f"test_answer[openai:m@http://user:{REDACTED}@" in output
    assert f"test_answer[openai:q@http://{host}?api_key={REDACTED}]" in output
    assert "HTTP 401" in output and "HTTP 404" in output
    _assert_nowhere(pytester.path, output, [password, query_key])
    # The cache key ignores the credentials: the stored request still matches its key.
    export = pytester.run("python", "-m", "pytest_llmeval", "cache", "export", "export.jsonl")
    assert export.ret == 0
    _assert_nowhere(pytester.path, export.stdout.str(), [password, query_key])
    fresh = pytester.path / "fresh.db"
    imported = pytester.run("python", "-m", "pytest_llmeval", "cache", "import", "export.jsonl", "--path", str(fresh))
    assert imported.ret == 0, imported.stdout.str() + imported.stderr.str()
    assert "1 added" in imported.stdout.str() or "added 1" in imported.stdout.str(), imported.stdout.str()


# -- the redaction step on its own --------------------------------------------------------------
def test_any_fragment_and_encoding_of_a_secret_is_redacted() -> None:
    from pytest_llmeval.store.redaction import Redactor

    key = "sk-live-" + "Q7fW2xZr9LmN4pB8vT1y"
    redactor = Redactor([key])
    encoded = base64.b64encode(f"someone:{key}".encode()).decode()
    for text in (key, key[-8:], key[5:17], f"Bearer {key}", encoded, base64.urlsafe_b64encode(key.encode()).decode()):
        clean = redactor.redact(f"<{text}>")
        assert REDACTED in clean and key[-8:] not in clean and text not in clean, clean
    # Fewer than 8 characters of it, or unrelated text, stay as they are.
    assert redactor.redact(f"{key[:7]} and {key[-7:]} 0123456789") == f"{key[:7]} and {key[-7:]} 0123456789"
    # Credentials written into any URL are redacted even when nobody announced them.
    assert Redactor().redact("see http://bob:hunter2hunter2@h/v1?x=1&api_key=abc123") == (
        f"see http://bob:{REDACTED}@h/v1?x=1&api_key={REDACTED}"
    )


def test_one_check_for_a_whole_row_misses_no_fragment() -> None:
    """redact_data/redact_values check all strings of a row at once before redacting any:
    a fragment at any offset of any string, after strings of any length, is still caught."""
    from pytest_llmeval.store.redaction import Redactor

    key = "sk-live-" + "Q7fW2xZr9LmN4pB8vT1y"
    redactor = Redactor([key])
    for pad in range(9):
        for start in range(len(key) - 8 + 1):
            fragment = key[start : start + 8]
            row = {"a" * pad: "x" * (pad % 5), "calls": [{"n": 1, "out": "y" * pad + fragment + "z"}]}
            clean = redactor.redact_data(row)
            assert fragment not in json.dumps(clean), (pad, start)
            values = redactor.redact_values(("p" * pad, 3, None, "q" * (pad % 3) + fragment))
            assert fragment not in values[3] and values[:3] == ("p" * pad, 3, None), (pad, start)
    # Nothing to redact: the very same object back (no copy per case), URLs in text checked too.
    row = {"prompt": "What is 2 + 2?", "calls": [{"out": "4"}]}
    assert redactor.redact_data(row) is row
    url_row = ["fine", "see http://bob:hunter2hunter2@h/v1"]
    assert redactor.redact_data(url_row) == ["fine", f"see http://bob:{REDACTED}@h/v1"]


def test_environment_names_that_mark_a_secret() -> None:
    from pytest_llmeval.store.redaction import secrets_from_env

    env = {
        "AZURE_OPENAI_KEY": "a" * 20,
        "FOO_TOKEN": "b" * 20,
        "DB_PASSWORD": "c" * 20,
        "MY_API_KEY": "d" * 20,
        "PROXY_URL": "http://u:" + "e" * 20 + "@proxy:3128",
        "MONKEY_BUSINESS": "f" * 20,  # "KEY" only as a word of the name
        "SSH_KEY_PATH": "/home/someone/.ssh/id_ed25519",  # where a key is kept, not a key
        "PWD": "/home/someone/project",
        "SHORT_TOKEN": "1",
    }
    assert set(secrets_from_env(env)) == {"a" * 20, "b" * 20, "c" * 20, "d" * 20, "e" * 20}
