"""The store and the cache modes end to end: pytester runs, real SDKs, the fake server.

Every run here writes its store to ``.llmeval/cache.db`` under the pytester directory and
the tests read it back with plain SQL, as a user would.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from fakeapi import FakeAPI

OPENAI = ["--llmeval-model", "openai:gpt-4o-mini"]
TWO_MODELS = [*OPENAI, "--llmeval-model", "anthropic:claude-haiku-4-5"]

CAPITALS_TEST = """
import pytest
from pytest_llmeval import exact

@pytest.mark.llmeval(tags=["geo", "smoke"])
@pytest.mark.parametrize("country, capital", [("France", "Paris"), ("Japan", "Tokyo"), ("Peru", "Lima")])
def test_capital(llm, country, capital):
    assert exact(llm(f"Capital of {country}? One word."), capital)
"""


def answer_capitals(fake_api: FakeAPI) -> None:
    fake_api.reply("Paris", when="France")
    fake_api.reply("Tokyo", when="Japan")
    fake_api.reply("Lima", when="Peru")


def db_path(pytester: pytest.Pytester) -> Path:
    return pytester.path / ".llmeval" / "cache.db"


def query(path: Path, sql: str, args: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(sql, args).fetchall()
    finally:
        conn.close()


# -- the cache modes ------------------------------------------------------------------------
def test_a_suite_run_twice_makes_no_request_the_second_time(pytester: pytest.Pytester, fake_api: FakeAPI) -> None:
    pytester.makepyfile(test_capitals=CAPITALS_TEST)
    answer_capitals(fake_api)
    pytester.runpytest(*TWO_MODELS).assert_outcomes(passed=6)
    assert fake_api.count() == 6
    fake_api.clear()  # no rules left: a request now would be answered "echo: ..." and fail
    result = pytester.runpytest(*TWO_MODELS)
    result.assert_outcomes(passed=6)
    assert fake_api.count() == 0
    result.stdout.fnmatch_lines(["*model calls: 6 (6 from cache)*"])
    runs = query(db_path(pytester), "SELECT id FROM runs ORDER BY started_at")
    assert len(runs) == 2
    hits = query(db_path(pytester), "SELECT cached, COUNT(*) FROM calls WHERE run_id = ? GROUP BY cached", runs[1])
    assert hits == [(1, 6)]


def test_replay_with_an_empty_store_calls_nothing_and_errors_every_case(
    pytester: pytest.Pytester, fake_api: FakeAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    # CI without keys: replay must not even need one.
    monkeypatch.delenv("OPENAI_API_KEY")
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    pytester.makepyfile(test_capitals=CAPITALS_TEST)
    result = pytester.runpytest(*TWO_MODELS, "--llmeval-cache=replay")
    result.assert_outcomes(failed=6)
    assert result.ret != 0
    assert fake_api.count() == 0
    for model in ("openai:gpt-4o-mini", "anthropic:claude-haiku-4-5"):
        for country in ("France", "Japan", "Peru"):
            result.stdout.fnmatch_lines(
                [
                    f"*CacheMissError: --llmeval-cache=replay: no stored answer for {model} "
                    f"in test test_capitals.py::test_capital?{model}-{country}-*",
                ]
            )
    result.stdout.fnmatch_lines(["*The cache holds no answer at all for openai:gpt-4o-mini.*"])
    result.stdout.fnmatch_lines(["*Prompt: 'Capital of Peru? One word.'*"])
    # The error is logged too: the call log says what was missed, and nothing was stored.
    rows = query(db_path(pytester), "SELECT COUNT(*), SUM(error LIKE '%no stored answer%') FROM calls")
    assert rows == [(6, 6)]
    assert query(db_path(pytester), "SELECT COUNT(*) FROM responses") == [(0,)]


VARIED_TEST = """
import os

def test_it(llm):
    temperature = float(os.environ["LLMEVAL_T"])
    assert llm("Say something.", temperature=temperature, max_tokens=20) == "fixed"
"""


def test_replay_miss_names_the_nearest_differing_field(
    pytester: pytest.Pytester, fake_api: FakeAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile(VARIED_TEST)
    fake_api.reply("fixed")
    monkeypatch.setenv("LLMEVAL_T", "0.2")
    pytester.runpytest(*OPENAI).assert_outcomes(passed=1)
    pytester.runpytest(*OPENAI, "--llmeval-cache=replay").assert_outcomes(passed=1)
    monkeypatch.setenv("LLMEVAL_T", "0.3")
    result = pytester.runpytest(*OPENAI, "--llmeval-cache=replay")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*no stored answer for openai:gpt-4o-mini in test test_replay_miss_names_the_nearest_differing_field.py"
            "::test_it?openai:gpt-4o-mini?*",
            "*The nearest stored request differs in: params.temperature.*",
        ]
    )
    assert fake_api.count() == 1


def test_replay_miss_after_a_base_url_change_names_the_endpoint(
    pytester: pytest.Pytester, fake_api: FakeAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile(VARIED_TEST)
    monkeypatch.setenv("LLMEVAL_T", "0.2")
    fake_api.reply("fixed")
    pytester.runpytest(*OPENAI).assert_outcomes(passed=1)
    with FakeAPI() as other:
        other.reply("fixed")
        monkeypatch.setenv("OPENAI_BASE_URL", other.openai_base_url)
        result = pytester.runpytest(*OPENAI, "--llmeval-cache=replay")
        result.assert_outcomes(failed=1)
        result.stdout.fnmatch_lines(["*The nearest stored request differs in: endpoint.*"])
        # In "use" mode the other server is a miss, so it is asked.
        pytester.runpytest(*OPENAI).assert_outcomes(passed=1)
        assert other.count() == 1
    assert fake_api.count() == 1


def test_a_base_url_in_the_model_name_is_part_of_the_key(pytester: pytest.Pytester, fake_api: FakeAPI) -> None:
    pytester.makepyfile("def test_it(llm):\n    assert llm('hello') == 'echo: hello'\n")
    pytester.runpytest("--llmeval-model", f"openai:llama3@{fake_api.openai_base_url}").assert_outcomes(passed=1)
    with FakeAPI() as other:
        pytester.runpytest("--llmeval-model", f"openai:llama3@{other.openai_base_url}").assert_outcomes(passed=1)
        assert other.count() == 1
        # And the first URL still hits.
        pytester.runpytest("--llmeval-model", f"openai:llama3@{fake_api.openai_base_url}").assert_outcomes(passed=1)
    assert fake_api.count() == 1


REFRESH_TEST = """
import os

def test_a(llm):
    assert llm("first") == os.environ["LLMEVAL_WANT"]

def test_b(llm):
    assert llm("second") == os.environ["LLMEVAL_WANT"]
"""


def test_refresh_calls_everything_again_and_overwrites(
    pytester: pytest.Pytester, fake_api: FakeAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile(REFRESH_TEST)
    fake_api.reply("old")
    monkeypatch.setenv("LLMEVAL_WANT", "old")
    pytester.runpytest(*TWO_MODELS).assert_outcomes(passed=4)
    assert fake_api.count() == 4
    fake_api.clear()
    fake_api.reply("new")
    monkeypatch.setenv("LLMEVAL_WANT", "new")
    pytester.runpytest(*TWO_MODELS).assert_outcomes(failed=4)  # "use" replays the old answers
    assert fake_api.count() == 0
    pytester.runpytest(*TWO_MODELS, "--llmeval-cache=refresh").assert_outcomes(passed=4)
    assert fake_api.count() == 4
    fake_api.clear()
    pytester.runpytest(*TWO_MODELS, "--llmeval-cache=replay").assert_outcomes(passed=4)
    assert fake_api.count() == 0
    stored = query(db_path(pytester), "SELECT json_extract(response, '$.text') FROM responses")
    assert sorted(stored) == [("new",)] * 4


def test_off_neither_reads_nor_stores_answers(pytester: pytest.Pytester, fake_api: FakeAPI) -> None:
    pytester.makepyfile(test_capitals=CAPITALS_TEST)
    answer_capitals(fake_api)
    pytester.runpytest(*OPENAI).assert_outcomes(passed=3)
    before = query(db_path(pytester), "SELECT key, response, created_at FROM responses ORDER BY key")
    assert len(before) == 3
    pytester.runpytest(*OPENAI, "--llmeval-cache=off").assert_outcomes(passed=3)
    pytester.runpytest(*OPENAI, "--llmeval-cache=off").assert_outcomes(passed=3)
    assert fake_api.count() == 9  # off never reads the store
    assert query(db_path(pytester), "SELECT key, response, created_at FROM responses ORDER BY key") == before
    # The calls are still logged (the log is the dataset), as misses.
    logged = query(
        db_path(pytester),
        "SELECT r.cache_mode, c.cached, COUNT(*) FROM calls c JOIN runs r ON r.id = c.run_id "
        "GROUP BY r.cache_mode, c.cached ORDER BY r.cache_mode",
    )
    assert logged == [("off", 0, 6), ("use", 0, 3)]


def test_off_on_a_fresh_directory_stores_no_answer(pytester: pytest.Pytester, fake_api: FakeAPI) -> None:
    pytester.makepyfile(test_capitals=CAPITALS_TEST)
    answer_capitals(fake_api)
    pytester.runpytest(*OPENAI, "--llmeval-cache=off").assert_outcomes(passed=3)
    assert query(db_path(pytester), "SELECT COUNT(*) FROM responses") == [(0,)]


# -- the key --------------------------------------------------------------------------------
KEY_TEST = """
import json
import pytest

TOOL = {"name": "lookup", "description": "Find a city.", "parameters": {"type": "object", "properties": {}}}
BASE = {
    "temperature": 0.2,
    "max_tokens": 40,
    "top_p": 0.9,
    "stop": ["END"],
    "seed": 7,
    "presence_penalty": 0.0,
    "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}},
}
MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Name a city."}]
VARIANTS = {
    "temperature": {"temperature": 0.3},
    "temperature int vs float": {"temperature": 1},
    "max_tokens": {"max_tokens": 41},
    "top_p": {"top_p": 0.8},
    "stop": {"stop": ["END", "STOP"]},
    "seed": {"seed": 8},
    "presence_penalty": {"presence_penalty": 0.1},
    "frequency_penalty (new param)": {"frequency_penalty": 0.5},
    "response_format": {"response_format": {"type": "json_object"}},
    "tools": {"tools": [TOOL]},
    "tool_choice": {"tools": [TOOL], "tool_choice": "none"},
}


def reordered(value):
    if isinstance(value, dict):
        return {k: reordered(value[k]) for k in reversed(list(value))}
    if isinstance(value, list):
        return [reordered(v) for v in value]
    return value


def test_keys(llm):
    first = llm.chat(MESSAGES, **BASE)
    assert not first.cached
    # Same request, every JSON object's keys in reverse order: the same key.
    again = llm.chat(reordered(MESSAGES), **reordered(BASE))
    assert again.cached and again.key == first.key
    hits = [name for name, change in VARIANTS.items() if llm.chat(MESSAGES, **{**BASE, **change}).cached]
    assert hits == [], f"these parameter changes hit the cache: {hits}"
    other_messages = [
        [{"role": "system", "content": "Be brief!"}, MESSAGES[1]],
        [MESSAGES[1]],
        [MESSAGES[0], {"role": "user", "content": "Name a town."}],
        [MESSAGES[0], {"role": "user", "content": [{"type": "text", "text": "Name a city."}]}],
    ]
    hits = [i for i, messages in enumerate(other_messages) if llm.chat(messages, **BASE).cached]
    assert hits == [], f"these message changes hit the cache: {hits}"
"""


def test_every_parameter_change_misses_and_key_order_does_not(pytester: pytest.Pytester, fake_api: FakeAPI) -> None:
    pytester.makepyfile(KEY_TEST)
    fake_api.reply('{"city": "Lyon"}')
    pytester.runpytest(*OPENAI).assert_outcomes(passed=1)
    assert fake_api.count() == 1 + 11 + 4
    # A new run: the reordered request is a hit from the store, not only from this run's memory.
    fake_api.clear()
    pytester.runpytest(*OPENAI).assert_outcomes(passed=0, failed=1)  # first.cached is now True
    assert fake_api.count() == 0


def test_model_and_repeat_sample_are_part_of_the_key(pytester: pytest.Pytester, fake_api: FakeAPI) -> None:
    pytester.makepyfile("def test_it(llm):\n    llm('same prompt')\n")
    pytester.runpytest(*TWO_MODELS, "--llmeval-repeat", "3").assert_outcomes(passed=6)
    assert fake_api.count() == 6
    pytester.runpytest(*TWO_MODELS, "--llmeval-repeat", "3").assert_outcomes(passed=6)
    assert fake_api.count() == 6
    samples = query(
        db_path(pytester), "SELECT model, json_extract(request, '$.sample') FROM responses ORDER BY model, 2"
    )
    assert samples == [("claude-haiku-4-5", i) for i in range(3)] + [("gpt-4o-mini", i) for i in range(3)]


# -- the call log ---------------------------------------------------------------------------
LOG_TEST = """
import pytest

@pytest.mark.llmeval(tags=["geo", "smoke"])
def test_capital(llm):
    assert llm("Capital of France? One word.", temperature=0) == "Paris"
"""

# The query the README shows: what did a model say for a test.
WHAT_DID_M_SAY = """
SELECT ts, json_extract(response, '$.text') AS answer
FROM calls
WHERE model = ? AND test_id LIKE ? AND ts >= ?
ORDER BY ts
"""


def test_the_call_log_keeps_every_field_and_answers_plain_sql(pytester: pytest.Pytester, fake_api: FakeAPI) -> None:
    pytester.makepyfile(test_geo=LOG_TEST)
    fake_api.reply({"text": "Paris", "usage": {"input_tokens": 1200, "output_tokens": 3, "cached_input_tokens": 1024}})
    started = dt.datetime.now(dt.timezone.utc)
    pytester.runpytest(*OPENAI).assert_outcomes(passed=1)
    pytester.runpytest(*OPENAI).assert_outcomes(passed=1)
    assert fake_api.count() == 1
    path = db_path(pytester)
    answers = query(path, WHAT_DID_M_SAY, ("openai:gpt-4o-mini", "test_geo.py::test_capital%", "2000-01-01"))
    assert [a for _, a in answers] == ["Paris", "Paris"]

    conn = sqlite3.connect(path)
    conn.row_factory = sqlite3.Row
    rows = [dict(r) for r in conn.execute("SELECT * FROM calls ORDER BY id")]
    conn.close()
    first, second = rows
    assert dt.datetime.fromisoformat(first["ts"]) >= started - dt.timedelta(seconds=5)
    assert first["test_id"] == "test_geo.py::test_capital[openai:gpt-4o-mini]"
    assert first["model"] == "openai:gpt-4o-mini" and first["role"] == "llm"
    request = json.loads(first["request"])
    assert request["messages"] == [{"role": "user", "content": "Capital of France? One word."}]
    assert request["params"] == {"temperature": 0} and request["endpoint"] == fake_api.openai_base_url
    assert json.loads(first["response"])["text"] == "Paris"
    assert (first["input_tokens"], first["output_tokens"], first["cached_input_tokens"]) == (1200, 3, 1024)
    assert first["latency_s"] > 0
    # gpt-4o-mini: 176 fresh input tokens at $0.15/M, 1024 cached at $0.075/M, 3 output at $0.60/M.
    assert first["cost_usd"] == pytest.approx((176 * 0.15 + 1024 * 0.075 + 3 * 0.60) / 1e6)
    assert json.loads(first["tags"]) == ["geo", "smoke"]
    assert (first["cached"], second["cached"]) == (0, 1)
    assert second["cost_usd"] == 0 and second["error"] is None
    assert first["key"] == second["key"] and first["run_id"] != second["run_id"]


# -- concurrency and crashes ----------------------------------------------------------------
MANY_TEST = """
import pytest

@pytest.mark.parametrize("i", range(15))
def test_many(llm, i):
    assert llm(f"item {i}") == f"echo: item {i}"
"""


def test_three_xdist_workers_share_one_store(pytester: pytest.Pytester, fake_api: FakeAPI) -> None:
    pytester.makepyfile(MANY_TEST)
    result = pytester.runpytest("-n", "3", *TWO_MODELS)
    result.assert_outcomes(passed=30)
    assert "database is locked" not in result.stdout.str() + result.stderr.str()
    assert fake_api.count() == 30
    path = db_path(pytester)
    assert query(path, "SELECT COUNT(*) FROM responses") == [(30,)]
    assert query(path, "SELECT COUNT(*), COUNT(DISTINCT test_id), COUNT(DISTINCT run_id) FROM calls") == [(30, 30, 1)]
    assert query(path, "PRAGMA integrity_check") == [("ok",)]
    assert query(path, "SELECT COUNT(*), SUM(outcome = 'passed') FROM outcomes") == [(30, 30)]
    fake_api.clear()
    result = pytester.runpytest("-n", "3", *TWO_MODELS)
    result.assert_outcomes(passed=30)
    assert "database is locked" not in result.stdout.str() + result.stderr.str()
    assert fake_api.count() == 0
    assert query(path, "SELECT COUNT(*), SUM(cached) FROM calls") == [(60, 30)]


HAMMER = """
import sys
from pytest_llmeval.store import Store

store = Store(sys.argv[1])
store.start_run("hammer", cache_mode="use", args=[])
payload = "x" * 20000  # several pages per row: a kill often lands inside a write
i = 0
while True:
    key = f"v1-hammer-{i}"
    store.put(key, {"provider": "openai", "model": "m", "i": i}, {"text": payload, "i": i})
    store.log_call({"run_id": "hammer", "ts": "t", "model": "openai:m", "role": "llm", "key": key,
                    "request": "{}", "response": payload})
    if i == 20:
        print("writing", flush=True)
    i += 1
"""


def test_a_run_killed_mid_write_leaves_a_healthy_store(pytester: pytest.Pytester, fake_api: FakeAPI) -> None:
    path = db_path(pytester)
    script = pytester.path / "hammer.py"
    script.write_text(HAMMER)
    for delay in (0.0, 0.13, 0.37):
        proc = subprocess.Popen([sys.executable, str(script), str(path)], stdout=subprocess.PIPE, text=True)
        try:
            assert proc.stdout is not None and proc.stdout.readline() == "writing\n"
            time.sleep(delay)
        finally:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
        assert proc.returncode == -signal.SIGKILL
        # The WAL of a killed writer is still there; integrity_check reads through it.
        assert query(path, "PRAGMA integrity_check") == [("ok",)]
        # No partial entry: every stored response is whole JSON with its full payload.
        for (text,) in query(path, "SELECT response FROM responses"):
            assert len(json.loads(text)["text"]) == 20000
    assert query(path, "SELECT COUNT(*) > 60 FROM responses") == [(1,)]
    pytester.makepyfile(test_capitals=CAPITALS_TEST)
    answer_capitals(fake_api)
    pytester.runpytest(*OPENAI).assert_outcomes(passed=3)
    pytester.runpytest(*OPENAI).assert_outcomes(passed=3)
    assert fake_api.count() == 3
    assert query(path, "PRAGMA integrity_check") == [("ok",)]


# -- secrets --------------------------------------------------------------------------------
SNAPSHOT_CONFTEST = """
import shutil
from pathlib import Path
import pytest

@pytest.hookimpl(tryfirst=True)
def pytest_unconfigure(config):
    # Before the plugin closes the store (and SQLite folds the WAL into the file): keep
    # the raw -wal and -shm files as they were during the run.
    src = Path(config.rootpath, ".llmeval")
    if src.exists():
        shutil.copytree(src, Path(config.rootpath, "snapshot"), dirs_exist_ok=True)
"""

SECRET_TEST = """
def test_passes(llm):
    assert llm("hello") == "echo: hello"

def test_fails(llm):
    assert llm("ping") == "pong"

def test_errors(llm):
    llm("boom")
"""

ECHO_TEST = """
import os

def test_echoed_key(llm):
    # A prompt (or a server) that echoes the key: the store must still never keep it.
    key = os.environ["OPENAI_API_KEY"] if llm.model.startswith("openai") else os.environ["ANTHROPIC_API_KEY"]
    assert llm("my key is " + key).startswith("echo: my key is")
"""


def test_a_planted_api_key_is_never_stored_or_reported(
    pytester: pytest.Pytester, fake_api: FakeAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    openai_key = "sk-planted-" + os.urandom(8).hex()
    anthropic_key = "sk-ant-planted-" + os.urandom(8).hex()
    monkeypatch.setenv("OPENAI_API_KEY", openai_key)
    monkeypatch.setenv("ANTHROPIC_API_KEY", anthropic_key)
    pytester.makeconftest(SNAPSHOT_CONFTEST)
    pytester.makepyfile(test_secret=SECRET_TEST, test_echo=ECHO_TEST)
    fake_api.fault("500", when="boom", count=100)
    reports = ["--junitxml=junit.xml", "--llmeval-report=llmeval.xml", "--llmeval-json=results.json"]
    result = pytester.runpytest("test_secret.py", *TWO_MODELS, "--llmeval-retries=0", "-rA", *reports)
    result.assert_outcomes(passed=2, failed=4)
    # The keys did reach the server, so the test is not vacuous.
    sent = [r.headers.get("authorization", "") + r.headers.get("x-api-key", "") for r in fake_api.requests]
    assert any(openai_key in s for s in sent) and any(anthropic_key in s for s in sent)

    def assert_nowhere(expected: set[str]) -> None:
        files = [p for p in pytester.path.rglob("*") if p.is_file() and p.suffix != ".py"]
        names = {p.name for p in files}
        assert expected <= names, names
        for secret in (openai_key, anthropic_key):
            for p in files:
                assert secret.encode() not in p.read_bytes(), f"{secret} found in {p}"

    assert_nowhere({"cache.db", "cache.db-wal", "junit.xml", "llmeval.xml", "results.json"})
    for secret in (openai_key, anthropic_key):
        assert secret not in result.stdout.str() + result.stderr.str()

    # An echo of the key (by a server, a model or a prompt) is redacted in the store, not dropped.
    pytester.runpytest("test_echo.py", *TWO_MODELS).assert_outcomes(passed=2)
    assert_nowhere({"cache.db", "cache.db-wal"})
    answers = query(db_path(pytester), "SELECT response FROM calls WHERE test_id LIKE '%test_echoed_key%'")
    assert len(answers) == 2 and all("echo: my key is [redacted]" in a for (a,) in answers)


# -- damaged and unwritable stores -----------------------------------------------------------
def test_a_corrupt_cache_file_is_a_warning_and_a_fresh_store(pytester: pytest.Pytester, fake_api: FakeAPI) -> None:
    path = db_path(pytester)
    path.parent.mkdir()
    garbage = os.urandom(4096) + b"not a database at all" * 100
    path.write_bytes(garbage)
    pytester.makepyfile(test_capitals=CAPITALS_TEST)
    answer_capitals(fake_api)
    result = pytester.runpytest(*OPENAI)
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(
        ["*StoreWarning: llmeval cache *cache.db is not a usable database (file is not a database); "
         "moved it to cache.db.corrupt-* and started an empty one*"]
    )  # fmt: skip
    aside = list(path.parent.glob("cache.db.corrupt-*"))
    assert [p.read_bytes() for p in aside] == [garbage]  # kept for inspection, untouched
    assert query(path, "PRAGMA integrity_check") == [("ok",)]
    assert query(path, "SELECT COUNT(*) FROM responses") == [(3,)]
    result = pytester.runpytest(*OPENAI)
    result.assert_outcomes(passed=3)
    assert "StoreWarning" not in result.stdout.str()
    assert fake_api.count() == 3


def test_an_unopenable_cache_path_is_a_warning_and_a_run_in_memory(
    pytester: pytest.Pytester, fake_api: FakeAPI
) -> None:
    (pytester.path / "adir").mkdir()  # a directory where the file should be
    pytester.makepyfile(test_capitals=CAPITALS_TEST)
    answer_capitals(fake_api)
    result = pytester.runpytest(*OPENAI, "--llmeval-cache-path", "adir")
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(["*StoreWarning: llmeval cache *adir cannot be opened (*in-memory cache*"])
    assert fake_api.count() == 3
    # Said once more after the summary, where it cannot scroll away with the warnings.
    assert result.stdout.str().count("pytest-llmeval: llmeval cache") == 1


def test_an_unopenable_cache_path_is_said_under_xdist_too(pytester: pytest.Pytester, fake_api: FakeAPI) -> None:
    # A worker opens the store in a planning thread, outside any test: its warning reached no
    # one, and the run looked as if its answers were kept.
    (pytester.path / "adir").mkdir()
    pytester.makepyfile(test_capitals=CAPITALS_TEST)
    answer_capitals(fake_api)
    result = pytester.runpytest(*OPENAI, "--llmeval-cache-path", "adir", "-n", "2")
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(["pytest-llmeval: llmeval cache *adir cannot be opened (*in-memory cache*"])
    assert result.stdout.str().count("pytest-llmeval: llmeval cache") == 1  # one line, not one per worker


def block_writes(path: Path) -> None:
    """Make every later insert fail inside SQLite, as a full disk or a revoked lock would."""
    from pytest_llmeval.store import Store

    Store(path).close()
    conn = sqlite3.connect(path)
    for table in ("responses", "calls", "runs", "outcomes"):
        conn.execute(
            f"CREATE TRIGGER no_{table} BEFORE INSERT ON {table} BEGIN SELECT RAISE(ABORT, 'disk says no'); END"
        )
    conn.commit()
    conn.close()


def test_a_failed_write_is_a_warning_not_a_test_error(pytester: pytest.Pytester, fake_api: FakeAPI) -> None:
    block_writes(db_path(pytester))
    pytester.makepyfile(test_capitals=CAPITALS_TEST)
    answer_capitals(fake_api)
    result = pytester.runpytest(*OPENAI)
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(
        [
            "*StoreWarning: llmeval cache write to *cache.db failed (disk says no); the answer was not stored*",
            "*StoreWarning: llmeval call log write to *cache.db failed (disk says no)*",
        ]
    )
    assert fake_api.count() == 3


@pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root ignores file permissions; needs a normal user"
)
def test_a_read_only_cache_replays_and_warns_once(pytester: pytest.Pytester, fake_api: FakeAPI) -> None:
    pytester.makepyfile(test_capitals=CAPITALS_TEST)
    answer_capitals(fake_api)
    pytester.runpytest(*OPENAI).assert_outcomes(passed=3)
    path = db_path(pytester)
    pytester.makepyfile(test_more="def test_new(llm):\n    llm('new question')\n")
    path.chmod(0o444)
    path.parent.chmod(0o555)
    try:
        result = pytester.runpytest(*OPENAI)
    finally:
        path.parent.chmod(0o755)
        path.chmod(0o644)
    result.assert_outcomes(passed=4)
    assert fake_api.count() == 4  # three replayed, the new one called
    result.stdout.fnmatch_lines(["*StoreWarning: llmeval cache *cache.db is read-only*"])
    assert query(path, "SELECT COUNT(*) FROM responses") == [(3,)]


def test_the_sql_example_in_the_store_docstring_runs(pytester: pytest.Pytester, fake_api: FakeAPI) -> None:
    from pytest_llmeval import store

    pytester.makepyfile(test_capitals=CAPITALS_TEST)
    answer_capitals(fake_api)
    pytester.runpytest(*OPENAI).assert_outcomes(passed=3)
    sql = textwrap.dedent(store.__doc__.split("::", 1)[1]).strip()
    rows = query(db_path(pytester), sql)
    assert sorted(json.loads(r)["text"] for _, r in rows) == ["Lima", "Paris", "Tokyo"]
