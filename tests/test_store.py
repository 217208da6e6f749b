"""The SQLite store on its own: schema, keys, secrets, damage, pruning, export and import."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pytest_llmeval.models import ModelSpec, Request, key_of
from pytest_llmeval.store import Store, StoreError, StoreWarning, to_iso_utc
from pytest_llmeval.store.migrations import MIGRATIONS
from pytest_llmeval.store.misses import differing_fields, explain_miss
from pytest_llmeval.store.redaction import REDACTED, redact_secrets


def make_request(prompt: str, model: str = "openai:gpt-4o-mini", **params: Any) -> Request:
    return Request(
        ModelSpec.parse(model), [{"role": "user", "content": prompt}], params, endpoint="http://127.0.0.1:1/v1"
    )


def log(
    store: Store,
    run_id: str,
    test_id: str,
    req: Request,
    text: str,
    *,
    role: str = "llm",
    ts: str = "2025-06-01T00:00:00.000+00:00",
    error: str | None = None,
) -> None:
    """One call as the caller logs it (and stores its answer)."""
    response = {"text": text, "usage": {"input_tokens": 3, "output_tokens": 1, "cached_input_tokens": 0}}
    if error is None:
        store.put(req.key, req.key_payload(), response)
    store.log_call(
        {
            "run_id": run_id,
            "ts": ts,
            "test_id": test_id,
            "model": str(req.model),
            "role": role,
            "key": req.key,
            "request": json.dumps(req.key_payload()),
            "response": None if error else json.dumps(response),
            "error": error,
        }
    )


def start(store: Store, run_id: str, started_at: str) -> None:
    store.start_run(run_id, cache_mode="use", args=[])
    store.execute("UPDATE runs SET started_at = ? WHERE id = ?", (started_at, run_id))


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(tmp_path / "cache.db")
    yield s
    s.close()


# -- schema and keys ------------------------------------------------------------------------
def test_migrations_are_recorded_once_and_the_file_is_wal(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "cache.db"
    Store(path).close()
    with Store(path) as again:
        names = [r[0] for r in again.execute("SELECT name FROM migrations ORDER BY name")]
        assert names == [name for name, _ in MIGRATIONS]
        assert again.execute("PRAGMA journal_mode") == [("wal",)]
        assert int(again.execute("PRAGMA busy_timeout")[0][0]) >= 10_000
    assert len({name for name, _ in MIGRATIONS}) == len(MIGRATIONS)
    assert [name for name, _ in MIGRATIONS] == sorted(name for name, _ in MIGRATIONS)


def test_an_older_schema_is_migrated_forward(tmp_path: Path) -> None:
    path = tmp_path / "cache.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)")
    conn.executescript(MIGRATIONS[0][1])
    conn.execute("INSERT INTO migrations VALUES (?, 'then')", (MIGRATIONS[0][0],))
    conn.commit()
    conn.close()
    with Store(path) as s:
        assert {r[0] for r in s.execute("SELECT name FROM migrations")} == {n for n, _ in MIGRATIONS}
        indexes = {r[0] for r in s.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
        assert {"calls_ts", "runs_started"} <= indexes


def test_the_key_of_a_stored_request_can_be_recomputed() -> None:
    req = make_request("hi", temperature=0.5, stop=["x"])
    assert key_of(req.key_payload()) == req.key
    assert key_of(json.loads(json.dumps(req.key_payload(), indent=3))) == req.key
    assert key_of({**req.key_payload(), "sample": 1}) != req.key


def test_the_store_imports_nothing_of_the_package_but_models() -> None:
    # The rule of docs/ARCHITECTURE.md: the store can be read (CLI, notebooks) without the plugin.
    import ast

    import pytest_llmeval.store as package

    for module in Path(package.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(module.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            for name in names:
                if name.startswith("pytest_llmeval"):
                    allowed = name == "pytest_llmeval.models" or name.startswith("pytest_llmeval.store")
                    assert allowed, f"{module.name} imports {name}"


def test_put_get_and_overwrite(store: Store) -> None:
    req = make_request("hi")
    assert store.get(req.key) is None
    store.put(req.key, req.key_payload(), {"text": "one"})
    store.put(req.key, req.key_payload(), {"text": "two"})
    assert store.get(req.key) == {"text": "two"}
    assert store.execute("SELECT COUNT(*) FROM responses") == [(1,)]


def test_iso_dates() -> None:
    assert to_iso_utc("2025-03-04") == "2025-03-04T00:00:00.000+00:00"
    assert to_iso_utc("2025-03-04T10:00+02:00") == "2025-03-04T08:00:00.000+00:00"
    with pytest.raises(ValueError, match="not an ISO date: 'last tuesday'"):
        to_iso_utc("last tuesday")


# -- replay misses --------------------------------------------------------------------------
def test_a_miss_names_the_nearest_stored_request_and_what_differs(store: Store) -> None:
    stored = make_request("What is the capital of Peru?", temperature=0.0)
    store.put(stored.key, stored.key_payload(), {"text": "Lima"})
    far = make_request("something else entirely", temperature=0.7, seed=1)
    store.put(far.key, far.key_payload(), {"text": "x"})
    asked = make_request("What is the capital of Peru?", temperature=0.2)
    message = explain_miss(store, asked, "test_geo.py::test_capital[peru]")
    assert message.splitlines() == [
        "--llmeval-cache=replay: no stored answer for openai:gpt-4o-mini in test test_geo.py::test_capital[peru] "
        f"(key {asked.key[:16]}...; cache {store.path}).",
        "The nearest stored request differs in: params.temperature.",
        "Prompt: 'What is the capital of Peru?'",
        "Record it by running once with --llmeval-cache=use and an API key.",
    ]
    other = make_request("hi", model="anthropic:claude-haiku-4-5")
    message = explain_miss(store, other, None)
    assert "in a call outside a test" in message
    assert "The cache holds no answer at all for anthropic:claude-haiku-4-5." in message
    long = make_request("x" * 500)
    assert "'" + "x" * 200 + "' ..." in explain_miss(store, long, None)


def test_differing_fields_go_one_level_deep() -> None:
    a = {"v": 1, "params": {"t": 0, "seed": 1}, "messages": [1, 2], "endpoint": "a"}
    assert differing_fields(a, a) == []
    assert differing_fields(a, {**a, "params": {"t": 1}}) == ["params.seed", "params.t"]
    assert differing_fields(a, {**a, "messages": [1, 3]}) == ["messages[1]"]
    assert differing_fields(a, {**a, "messages": [1]}) == ["messages (count 1 stored, 2 asked)"]
    assert differing_fields(a, {**a, "endpoint": "b", "v": 2}) == ["endpoint", "v"]


# -- secrets --------------------------------------------------------------------------------
def test_secret_values_in_the_environment_are_never_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "sk-unit-" + os.urandom(8).hex()
    monkeypatch.setenv("SOME_API_KEY", secret)
    monkeypatch.setenv("SHORT_TOKEN", "1")  # too short to be a key: never redacted
    path = tmp_path / "cache.db"
    with Store(path) as s:
        req = make_request(f"my key is {secret}, 1 2 3")
        s.start_run("r", cache_mode="use", args=["--flag", secret])
        log(s, "r", "t::x", req, f"you said {secret}")
        log(s, "r", "t::y", make_request("other"), "x", error=f"HTTP 401: bad key {secret}")
        assert s.get(req.key) == {
            "text": f"you said {REDACTED}",
            "usage": {"input_tokens": 3, "output_tokens": 1, "cached_input_tokens": 0},
        }
        raw = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.is_file())
        assert secret.encode() not in raw
        assert b"1 2 3" in raw
    assert redact_secrets(f"a {secret} b", [secret]) == f"a {REDACTED} b"


# -- damaged and unusable files ---------------------------------------------------------------
def test_a_garbage_file_is_moved_aside_with_a_warning(tmp_path: Path) -> None:
    path = tmp_path / "cache.db"
    path.write_bytes(b"\x00garbage" * 1000)
    with pytest.warns(StoreWarning, match=r"cache.db is not a usable database .*moved it to cache.db.corrupt-"):
        s = Store(path)
    with s:
        s.put("k", {"provider": "p", "model": "m"}, {"text": "fresh"})
        assert s.get("k") == {"text": "fresh"}
    (aside,) = tmp_path.glob("cache.db.corrupt-*")
    assert aside.read_bytes() == b"\x00garbage" * 1000


def test_without_repair_a_damaged_file_is_an_error_and_untouched(tmp_path: Path) -> None:
    path = tmp_path / "cache.db"
    path.write_bytes(b"garbage" * 1000)
    with pytest.raises(StoreError, match=r"cache.db cannot be used: file is not a database"):
        Store(path, repair=False)
    assert path.read_bytes() == b"garbage" * 1000


REPAIR_RACE = """
import sys, time, warnings
from pytest_llmeval.store import Store
deadline = float(sys.argv[2])
while time.time() < deadline:
    pass
with warnings.catch_warnings(record=True) as seen:
    warnings.simplefilter("always")
    s = Store(sys.argv[1])
for i in range(50):
    s.put(f"k{sys.argv[3]}-{i}", {"provider": "p", "model": "m"}, {"text": "x"})
s.close()
print(len(seen))
"""


def test_workers_finding_one_damaged_file_repair_it_once(tmp_path: Path) -> None:
    import time

    path = tmp_path / "cache.db"
    path.write_bytes(b"garbage" * 1000)
    script = tmp_path / "race.py"
    script.write_text(REPAIR_RACE)
    go = str(time.time() + 2.0)  # all three open at the same moment
    procs = [
        subprocess.Popen([sys.executable, str(script), str(path), go, str(i)], stdout=subprocess.PIPE, text=True)
        for i in range(3)
    ]
    warned = [int(p.communicate(timeout=120)[0]) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0]
    assert len(list(tmp_path.glob("cache.db.corrupt-*"))) == 1
    assert sum(warned) == 1
    with Store(path) as s:
        assert s.execute("SELECT COUNT(*) FROM responses") == [(150,)]


def test_workers_creating_one_new_store_together_keep_every_answer(tmp_path: Path) -> None:
    """xdist workers that start together create the same store: each must get it writable
    (it used to happen that one got "database is locked" while another switched the new
    file to WAL, fell back to an in-memory store and lost its answers, with a warning no
    one saw)."""
    import time

    script = tmp_path / "race.py"
    script.write_text(REPAIR_RACE)
    for round_ in range(6):
        path = tmp_path / f"run{round_}" / ".llmeval" / "cache.db"
        go = str(time.time() + 1.0)
        procs = [
            subprocess.Popen([sys.executable, str(script), str(path), go, str(i)], stdout=subprocess.PIPE, text=True)
            for i in range(3)
        ]
        warned = [int(p.communicate(timeout=120)[0]) for p in procs]
        assert [p.returncode for p in procs] == [0, 0, 0]
        assert warned == [0, 0, 0], f"round {round_}: a worker could not open the new store"
        with Store(path) as s:
            assert s.execute("SELECT COUNT(*) FROM responses") == [(150,)]


def test_a_path_that_cannot_be_opened_gives_an_in_memory_store(tmp_path: Path) -> None:
    (tmp_path / "blocker").write_text("a file where a folder should be")
    with pytest.warns(StoreWarning, match=r"cannot be opened .*in-memory cache that is not kept"):
        s = Store(tmp_path / "blocker" / "cache.db")
    with s:
        assert s.in_memory and s.problem
        s.put("k", {"provider": "p", "model": "m"}, {"text": "kept for this run"})
        assert s.get("k") == {"text": "kept for this run"}


def test_a_failed_write_warns_and_does_not_raise(store: Store) -> None:
    store.execute("CREATE TRIGGER nope BEFORE INSERT ON responses BEGIN SELECT RAISE(ABORT, 'disk says no'); END")
    store.execute("CREATE TRIGGER nope2 BEFORE INSERT ON calls BEGIN SELECT RAISE(ABORT, 'disk says no'); END")
    with pytest.warns(StoreWarning, match="cache write to .* failed \\(disk says no\\); the answer was not stored"):
        store.put("k", {"provider": "p", "model": "m"}, {"text": "x"})
    with pytest.warns(StoreWarning, match="call log write to .* failed \\(disk says no\\)"):
        log(store, "r", "t", make_request("x"), "y", error="boom")
        store.flush()  # call-log rows are written in batches (issue 17)
    assert store.get("k") is None


def test_a_store_that_can_be_read_but_not_written_replays_and_warns_once(tmp_path: Path) -> None:
    path = tmp_path / "cache.db"
    with Store(path) as s:
        s.put("k", {"provider": "p", "model": "m"}, {"text": "old"})
    # A directory where SQLite must create its -wal file: writing is impossible even for root.
    (tmp_path / "cache.db-wal").mkdir()
    with pytest.warns(StoreWarning, match="cache.db is read-only .*stored answers are replayed but new ones are not"):
        s = Store(path)
    with s, warnings.catch_warnings():
        warnings.simplefilter("error")  # said once at open; writes are silent no-ops
        assert s.readonly and not s.in_memory
        assert s.get("k") == {"text": "old"}
        s.put("k2", {"provider": "p", "model": "m"}, {"text": "new"})
        s.log_call({"run_id": "r", "ts": "t", "model": "m", "role": "llm", "key": "k", "request": "{}"})
        assert s.get("k2") is None


@pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root ignores file permissions; needs a normal user"
)
def test_a_read_only_file_is_read_and_never_written(tmp_path: Path) -> None:
    path = tmp_path / "cache.db"
    with Store(path) as s:
        s.put("k", {"provider": "p", "model": "m"}, {"text": "old"})
    path.chmod(0o444)
    tmp_path.chmod(0o555)
    try:
        with pytest.warns(StoreWarning, match="is read-only"):
            s = Store(path)
        with s, warnings.catch_warnings():
            warnings.simplefilter("error")  # said once at open; writes are silent no-ops
            assert s.readonly and s.get("k") == {"text": "old"}
            s.put("k2", {"provider": "p", "model": "m"}, {"text": "new"})
            s.log_call({"run_id": "r", "ts": "t", "model": "m", "role": "llm", "key": "k", "request": "{}"})
    finally:
        tmp_path.chmod(0o755)
        path.chmod(0o644)


# -- stats and pruning -----------------------------------------------------------------------
def test_stats(store: Store) -> None:
    start(store, "r1", "2025-01-01T00:00:00.000+00:00")
    log(store, "r1", "t::a", make_request("a"), "A")
    log(store, "r1", "t::b", make_request("b", "anthropic:claude-haiku-4-5"), "B")
    store.log_call({"run_id": "r1", "ts": "t", "model": "openai:gpt-4o-mini", "role": "llm", "key": "x",
                    "request": "{}", "cached": 1})  # fmt: skip
    figures = store.stats()
    assert figures["entries"] == 2 and figures["runs"] == 1 and figures["calls"] == 3 and figures["hits"] == 1
    assert figures["hit_rate"] == pytest.approx(1 / 3)
    assert figures["entries_per_model"] == {"anthropic:claude-haiku-4-5": 1, "openai:gpt-4o-mini": 1}
    assert figures["calls_per_model"]["openai:gpt-4o-mini"]["calls"] == 2
    assert figures["size_bytes"] > 0


def test_prune_keep_runs_drops_answers_the_last_runs_did_not_use(store: Store) -> None:
    old, both, new = make_request("old"), make_request("both"), make_request("new")
    start(store, "r1", "2025-01-01T00:00:00.000+00:00")
    log(store, "r1", "t::old", old, "o")
    log(store, "r1", "t::both", both, "b")
    start(store, "r2", "2025-02-01T00:00:00.000+00:00")
    log(store, "r2", "t::both", both, "b")
    log(store, "r2", "t::new", new, "n")
    store.put("v1-imported", {"provider": "p", "model": "m"}, {"text": "never used"})
    assert store.prune(keep_runs=2)["responses"] == 1  # only the never-used import
    counts = store.prune(keep_runs=1)
    assert counts == {"responses": 1, "calls": 0, "runs": 0, "outcomes": 0}
    assert {r[0] for r in store.execute("SELECT key FROM responses")} == {both.key, new.key}
    assert store.execute("SELECT COUNT(*) FROM calls") == [(4,)]  # the log is kept


def test_prune_older_than_drops_old_answers_and_old_log_rows(store: Store) -> None:
    stale, reused = make_request("stale"), make_request("reused")
    start(store, "r1", "2025-01-01T00:00:00.000+00:00")
    log(store, "r1", "t::stale", stale, "s", ts="2025-01-01T00:00:01.000+00:00")
    log(store, "r1", "t::reused", reused, "r", ts="2025-01-01T00:00:02.000+00:00")
    store.record_outcome("r1", "t::stale", "openai:gpt-4o-mini", 0, "passed", 1.0)
    start(store, "r2", "2025-03-01T00:00:00.000+00:00")
    log(store, "r2", "t::reused", reused, "r", ts="2025-03-01T00:00:01.000+00:00")
    store.record_outcome("r2", "t::reused", "openai:gpt-4o-mini", 0, "passed", 1.0)
    store.execute("UPDATE responses SET created_at = '2025-01-01T00:00:00.000+00:00'")
    counts = store.prune(older_than=to_iso_utc("2025-02-01"))
    assert counts == {"responses": 1, "calls": 2, "runs": 1, "outcomes": 1}
    assert [r[0] for r in store.execute("SELECT key FROM responses")] == [reused.key]
    assert store.execute("SELECT run_id FROM calls") == [("r2",)]
    assert store.execute("PRAGMA integrity_check") == [("ok",)]


# -- export and import -----------------------------------------------------------------------
def test_export_is_sorted_canonical_and_stable(store: Store) -> None:
    for word in ("zeta", "alpha", "émigré"):
        req = make_request(word, temperature=0.1)
        store.put(req.key, req.key_payload(), {"text": word.upper(), "usage": {"output_tokens": 1}})
    lines = list(store.export_lines())
    assert [json.loads(line)["key"] for line in lines] == sorted(json.loads(line)["key"] for line in lines)
    for line in lines:
        entry = json.loads(line)
        assert list(entry) == ["key", "request", "response"]
        assert line == json.dumps(entry, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        assert key_of(entry["request"]) == entry["key"]
    assert "émigré" in "".join(lines)  # readable in a diff, not \\u-escaped
    assert list(store.export_lines()) == lines


def test_import_reports_bad_lines_by_number_and_imports_nothing(store: Store, tmp_path: Path) -> None:
    good = make_request("good")
    tampered = make_request("tampered")
    payload = tampered.key_payload()
    payload["messages"] = [{"role": "user", "content": "edited by hand"}]
    lines = [
        json.dumps({"key": good.key, "request": good.key_payload(), "response": {"text": "ok"}}),
        "",
        "{not json",
        json.dumps({"key": tampered.key, "request": payload, "response": {"text": "x"}}),
        json.dumps({"key": "k", "request": {}}),
    ]
    result = store.import_lines(lines)
    assert not result["imported"]
    assert [n for n, _ in result["bad"]] == [3, 4, 5]
    assert "not JSON" in result["bad"][0][1]
    assert "does not match its request" in result["bad"][1][1]
    assert "key, request and response" in result["bad"][2][1]
    assert store.execute("SELECT COUNT(*) FROM responses") == [(0,)]
    result = store.import_lines(lines, skip_bad=True)
    assert result["imported"] and result["added"] == 1
    assert store.get(good.key) == {"text": "ok"}


def test_import_counts_added_replaced_and_unchanged(store: Store) -> None:
    a, b = make_request("a"), make_request("b")
    store.put(a.key, a.key_payload(), {"text": "A"})
    store.put(b.key, b.key_payload(), {"text": "B"})
    lines = [
        json.dumps({"key": a.key, "request": a.key_payload(), "response": {"text": "A"}}),
        json.dumps({"key": b.key, "request": b.key_payload(), "response": {"text": "B2"}}),
        json.dumps({"key": make_request("c").key, "request": make_request("c").key_payload(), "response": {}}),
    ]
    result = store.import_lines(lines)
    assert (result["added"], result["replaced"], result["unchanged"]) == (1, 1, 1)
    assert store.get(b.key) == {"text": "B2"}


# -- fine-tuning source -----------------------------------------------------------------------
def test_passing_conversations_come_from_the_latest_run_of_each_test(store: Store) -> None:
    model = "openai:gpt-4o-mini"
    start(store, "r1", "2025-01-01T00:00:00.000+00:00")
    log(store, "r1", "t::flips", make_request("q1"), "old good answer")
    store.record_outcome("r1", "t::flips", model, 0, "passed", 1.0)
    log(store, "r1", "t::steady", make_request("q2"), "steady answer")
    log(store, "r1", "t::steady", make_request("grade q2"), "PASS", role="judge")
    store.record_outcome("r1", "t::steady", model, 0, "passed", 1.0)
    log(store, "r1", "t::fixed", make_request("q3"), "wrong")
    store.record_outcome("r1", "t::fixed", model, 0, "failed", 0.0)
    start(store, "r2", "2025-02-01T00:00:00.000+00:00")
    log(store, "r2", "t::flips", make_request("q1"), "new bad answer")
    store.record_outcome("r2", "t::flips", model, 0, "failed", 0.0)
    log(store, "r2", "t::fixed", make_request("q3"), "right")
    log(store, "r2", "t::fixed", make_request("q3b"), "boom", error="ProviderError")
    store.record_outcome("r2", "t::fixed", model, 0, "passed", 1.0)
    got = [(t, resp["text"]) for t, _, _, resp in store.passing_conversations()]
    assert got == [("t::fixed", "right"), ("t::steady", "steady answer")]
