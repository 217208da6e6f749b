"""One SQLite file that is both the response cache and the log of every model call.

Standard library ``sqlite3`` in WAL mode with a busy timeout, so many pytest-xdist workers
can share one file; every write is one short transaction, so a killed run leaves either the
whole entry or nothing. A store that cannot be read is moved aside with a warning and a
fresh one is made: losing a cache costs money, never a crash.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import sqlite3
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .models import canonical_json

__all__ = ["Store", "StoreWarning", "MIGRATIONS"]


class StoreWarning(UserWarning):
    """The cache could not be read or written; the run goes on without it."""


# Append-only: each entry runs once per database, in order, and is recorded in `migrations`.
MIGRATIONS: list[tuple[str, str]] = [
    (
        "001_initial",
        """
        CREATE TABLE responses (
            key TEXT PRIMARY KEY,
            provider TEXT NOT NULL,
            model TEXT NOT NULL,
            request TEXT NOT NULL,
            response TEXT NOT NULL,
            created_at TEXT NOT NULL
        );
        CREATE INDEX responses_model ON responses(provider, model);
        CREATE TABLE runs (
            id TEXT PRIMARY KEY,
            started_at TEXT NOT NULL,
            finished_at TEXT,
            cache_mode TEXT,
            args TEXT
        );
        CREATE TABLE calls (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            run_id TEXT,
            ts TEXT NOT NULL,
            test_id TEXT,
            model TEXT NOT NULL,
            role TEXT NOT NULL,
            key TEXT NOT NULL,
            request TEXT NOT NULL,
            response TEXT,
            input_tokens INTEGER NOT NULL DEFAULT 0,
            output_tokens INTEGER NOT NULL DEFAULT 0,
            cached_input_tokens INTEGER NOT NULL DEFAULT 0,
            latency_s REAL NOT NULL DEFAULT 0,
            cost_usd REAL NOT NULL DEFAULT 0,
            tags TEXT,
            cached INTEGER NOT NULL DEFAULT 0,
            error TEXT
        );
        CREATE INDEX calls_test ON calls(test_id, model);
        CREATE INDEX calls_run ON calls(run_id);
        CREATE INDEX calls_key ON calls(key);
        CREATE TABLE outcomes (
            run_id TEXT NOT NULL,
            test_id TEXT NOT NULL,
            model TEXT,
            sample INTEGER NOT NULL DEFAULT 0,
            outcome TEXT NOT NULL,
            score REAL,
            PRIMARY KEY (run_id, test_id)
        );
        """,
    ),
]


def now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="milliseconds")


class Store:
    """The cache and call log at ``path`` (created with its folder when missing)."""

    def __init__(self, path: str | os.PathLike[str], *, busy_timeout_s: float = 60.0) -> None:
        self.path = Path(path)
        self._lock = threading.RLock()
        self._busy_timeout_s = busy_timeout_s
        self._conn = self._open()

    # -- opening -------------------------------------------------------------------------
    def _open(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            return self._connect_and_migrate()
        except sqlite3.DatabaseError as exc:
            # Not a database, or damaged beyond use: keep the file for inspection, start over.
            aside = self.path.with_name(f"{self.path.name}.corrupt-{int(time.time())}")
            warnings.warn(
                f"llmeval cache {self.path} is unreadable ({exc}); moved it to {aside.name} and started an empty one",
                StoreWarning,
                stacklevel=3,
            )
            for suffix in ("", "-wal", "-shm"):
                src = Path(str(self.path) + suffix)
                if src.exists():
                    os.replace(src, Path(str(aside) + suffix))
            return self._connect_and_migrate()

    def _connect_and_migrate(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=self._busy_timeout_s, isolation_level=None, check_same_thread=False)
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout_s * 1000)}")
            conn.execute("PRAGMA journal_mode = WAL")
            # NORMAL in WAL mode: a commit survives a killed process; only power loss may
            # drop the last commits, never corrupt the file.
            conn.execute("PRAGMA synchronous = NORMAL")
            self._migrate(conn)
        except BaseException:
            conn.close()
            raise
        return conn

    @staticmethod
    def _migrate(conn: sqlite3.Connection) -> None:
        conn.execute("CREATE TABLE IF NOT EXISTS migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)")
        done = {row[0] for row in conn.execute("SELECT name FROM migrations")}
        if all(name in done for name, _ in MIGRATIONS):
            return
        # IMMEDIATE: two xdist workers opening a new file must not both migrate it.
        conn.execute("BEGIN IMMEDIATE")
        try:
            done = {row[0] for row in conn.execute("SELECT name FROM migrations")}
            for name, script in MIGRATIONS:
                if name in done:
                    continue
                for statement in script.split(";"):
                    if statement.strip():
                        conn.execute(statement)
                conn.execute("INSERT INTO migrations VALUES (?, ?)", (name, now_iso()))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def close(self) -> None:
        with self._lock:
            try:
                self._conn.close()
            except sqlite3.Error:
                pass

    # -- cache ---------------------------------------------------------------------------
    def get(self, key: str) -> dict[str, Any] | None:
        """The stored response for ``key``; ``None`` on a miss or an unreadable entry."""
        try:
            with self._lock:
                row = self._conn.execute("SELECT response FROM responses WHERE key = ?", (key,)).fetchone()
            return json.loads(row[0]) if row else None
        except (sqlite3.Error, ValueError) as exc:
            warnings.warn(f"llmeval cache read failed ({exc}); treating it as a miss", StoreWarning, stacklevel=2)
            return None

    def put(self, key: str, request: dict[str, Any], response: dict[str, Any]) -> None:
        """Store (or overwrite) one response; a failure is a warning, never a test error."""
        try:
            with self._lock:
                self._conn.execute(
                    "INSERT OR REPLACE INTO responses (key, provider, model, request, response, created_at) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    (
                        key,
                        request.get("provider", ""),
                        request.get("model", ""),
                        canonical_json(request),
                        canonical_json(response),
                        now_iso(),
                    ),
                )
        except sqlite3.Error as exc:
            warnings.warn(f"llmeval cache write failed ({exc}); the answer was not stored", StoreWarning, stacklevel=2)

    def candidates(self, provider: str, model: str, limit: int = 500) -> Iterator[dict[str, Any]]:
        """Stored requests for one model, newest first (to explain a replay miss)."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT request FROM responses WHERE provider = ? AND model = ? ORDER BY created_at DESC LIMIT ?",
                (provider, model, limit),
            ).fetchall()
        for (text,) in rows:
            try:
                yield json.loads(text)
            except ValueError:
                continue

    # -- log -----------------------------------------------------------------------------
    def start_run(self, run_id: str, *, cache_mode: str, args: list[str]) -> None:
        self._write(
            "INSERT OR IGNORE INTO runs (id, started_at, cache_mode, args) VALUES (?, ?, ?, ?)",
            (run_id, now_iso(), cache_mode, json.dumps(args)),
        )

    def finish_run(self, run_id: str) -> None:
        self._write("UPDATE runs SET finished_at = ? WHERE id = ?", (now_iso(), run_id))

    def log_call(self, row: dict[str, Any]) -> None:
        """Append one call to the log. Keys of ``row`` are the ``calls`` columns."""
        columns = ", ".join(row)
        marks = ", ".join("?" for _ in row)
        self._write(f"INSERT INTO calls ({columns}) VALUES ({marks})", tuple(row.values()))

    def record_outcome(
        self, run_id: str, test_id: str, model: str | None, sample: int, outcome: str, score: float | None
    ) -> None:
        self._write(
            "INSERT OR REPLACE INTO outcomes (run_id, test_id, model, sample, outcome, score) VALUES (?, ?, ?, ?, ?, ?)",
            (run_id, test_id, model, sample, outcome, score),
        )

    def _write(self, sql: str, args: tuple[Any, ...]) -> None:
        try:
            with self._lock:
                self._conn.execute(sql, args)
        except sqlite3.Error as exc:
            warnings.warn(f"llmeval call log write failed ({exc})", StoreWarning, stacklevel=3)

    def execute(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """Run SQL and return all rows (for the command line and tests)."""
        with self._lock:
            return self._conn.execute(sql, args).fetchall()
