"""The store's schema: an append-only list of migrations, recorded in the database itself."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import sqlite3

__all__ = ["MIGRATIONS", "migrate", "pending"]

# Append-only: each entry runs once per database, in order, and is recorded in `migrations`.
# Never edit an entry that has shipped: a database that already applied it would not see
# the change. Add a new one instead.
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
    (
        # `cache prune --older-than` and the "latest run" of export-finetune sort by these.
        "002_time_indexes",
        """
        CREATE INDEX IF NOT EXISTS calls_ts ON calls(ts);
        CREATE INDEX IF NOT EXISTS runs_started ON runs(started_at);
        """,
    ),
    (
        # Batch mode (--llmeval-batch): batches submitted to a provider's batch API and the
        # requests (cache keys) in each, so a later run, another process or another machine
        # sharing the store collects a finished batch instead of calling or submitting again.
        # A batch whose id starts with "claim-" is being submitted: its keys are taken.
        "003_batches",
        """
        CREATE TABLE batches (
            id TEXT PRIMARY KEY,
            provider TEXT NOT NULL,
            endpoint TEXT NOT NULL,
            model TEXT NOT NULL,
            status TEXT NOT NULL,
            requests INTEGER NOT NULL DEFAULT 0,
            done INTEGER NOT NULL DEFAULT 0,
            failed INTEGER NOT NULL DEFAULT 0,
            run_id TEXT,
            submitted_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            detail TEXT
        );
        CREATE INDEX batches_status ON batches(status);
        CREATE TABLE batch_requests (
            batch_id TEXT NOT NULL,
            key TEXT NOT NULL,
            custom_id TEXT NOT NULL,
            request TEXT NOT NULL,
            test_id TEXT,
            state TEXT NOT NULL DEFAULT 'pending',
            error TEXT,
            PRIMARY KEY (batch_id, key)
        );
        CREATE INDEX batch_requests_key ON batch_requests(key);
        ALTER TABLE calls ADD COLUMN batch_id TEXT;
        """,
    ),
]


def pending(conn: sqlite3.Connection) -> list[str]:
    """Names of the migrations ``conn``'s database has not applied yet, in order.

    Raises ``sqlite3.OperationalError`` when the database has no ``migrations`` table.
    """
    done = {row[0] for row in conn.execute("SELECT name FROM migrations")}
    return [name for name, _ in MIGRATIONS if name not in done]


def migrate(conn: sqlite3.Connection, *, applied_at: str) -> None:
    """Bring ``conn``'s database up to date (autocommit connection); a no-op when it is.

    All pending migrations run in one transaction: a run killed halfway leaves the schema
    as it was, and the next open tries again.
    """
    conn.execute("CREATE TABLE IF NOT EXISTS migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)")
    if not pending(conn):
        return
    # IMMEDIATE: two xdist workers opening a new file must not both migrate it; the second
    # one re-reads what the first recorded once it gets the lock.
    conn.execute("BEGIN IMMEDIATE")
    try:
        todo = set(pending(conn))
        for name, script in MIGRATIONS:
            if name not in todo:
                continue
            for statement in script.split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute("INSERT INTO migrations VALUES (?, ?)", (name, applied_at))
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
