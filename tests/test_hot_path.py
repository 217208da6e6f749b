"""What issue 17 took off the per-case path keeps its guarantees: batched call-log rows are
all written (and read back through the store at once), the outcomes of a run go in as one
transaction, and a key set while the run goes on is still redacted."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from pytest_llmeval.store import redaction
from pytest_llmeval.store.db import LOG_BATCH_ROWS, Store


def _row(i: int) -> dict[str, object]:
    return {"run_id": "r", "ts": f"t{i}", "model": "openai:m", "role": "llm", "key": f"k{i}", "request": "{}"}


def test_call_log_rows_are_written_in_batches_and_none_is_lost(tmp_path: Path) -> None:
    path = tmp_path / "c.db"
    with Store(path) as store:
        for i in range(LOG_BATCH_ROWS + 5):
            store.log_call(_row(i))
        # Another connection sees the full batch that was written, not the rows still pending...
        with sqlite3.connect(path) as other:
            assert other.execute("SELECT COUNT(*) FROM calls").fetchone()[0] == LOG_BATCH_ROWS
        # ...and a read through the store itself writes those first.
        assert store.execute("SELECT COUNT(*) FROM calls")[0][0] == LOG_BATCH_ROWS + 5
        store.log_call(_row(-1))
    with sqlite3.connect(path) as other:  # closing writes the rest
        assert other.execute("SELECT COUNT(*) FROM calls").fetchone()[0] == LOG_BATCH_ROWS + 6


def test_the_outcomes_of_a_run_are_one_transaction(tmp_path: Path) -> None:
    with Store(tmp_path / "c.db") as store:
        store.execute("CREATE TRIGGER nope BEFORE INSERT ON outcomes WHEN NEW.test_id = 't3' BEGIN "
                      "SELECT RAISE(ABORT, 'disk says no'); END")  # fmt: skip
        rows = [(f"t{i}", "openai:m", 0, "passed", 1.0) for i in range(5)]
        with pytest.warns(Warning, match="disk says no"):
            store.record_outcomes("r", rows)
        assert store.execute("SELECT COUNT(*) FROM outcomes")[0][0] == 0  # all or nothing
        store.record_outcomes("r", rows[:3])
        assert store.execute("SELECT COUNT(*) FROM outcomes")[0][0] == 3


def test_a_key_set_between_writes_is_redacted(monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "sk-late-0123456789abcdef"
    monkeypatch.setenv("PYTEST_CURRENT_TEST", "a (call)")
    assert secret not in redaction.current().secrets
    monkeypatch.setenv("PYTEST_CURRENT_TEST", "b (call)")  # what changes every phase
    monkeypatch.setenv("LATE_API_KEY", secret)
    assert redaction.current().redact(f"echo {secret}") == "echo [redacted]"
    monkeypatch.delenv("LATE_API_KEY")
    assert secret not in redaction.current().secrets
