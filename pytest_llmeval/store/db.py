"""The Store: connection handling, repair, the cache table and the call log (see the package doc).

The schema is in :mod:`~pytest_llmeval.store.migrations`, the one redaction step every
write goes through in :mod:`~pytest_llmeval.store.redaction`.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import sqlite3
import threading
import time
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from pytest_llmeval.models import CacheMode, canonical_json, key_of
from pytest_llmeval.store import redaction
from pytest_llmeval.store.migrations import migrate, pending

__all__ = ["Store", "StoreWarning", "StoreError", "now_iso", "to_iso_utc"]


#: Call-log rows written together in one transaction (see :meth:`Store.log_call`) ...
LOG_BATCH_ROWS = 200
#: ... or after the oldest pending row has waited this long (seconds).
LOG_BATCH_S = 1.0


class StoreWarning(UserWarning):
    """The cache could not be read or written; the run goes on without it."""


class StoreError(Exception):
    """The store cannot be used (raised only when repair is off, as for the command line)."""


# SQLite result codes that mean "this file is not a (healthy) database": safe to move aside.
_SQLITE_CORRUPT = 11
_SQLITE_NOTADB = 26
_CORRUPT_WORDS = ("not a database", "malformed", "corrupt", "file is encrypted")


def now_iso() -> str:
    """The current UTC time as stored in the log: ISO 8601 with milliseconds."""
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="milliseconds")


def to_iso_utc(text: str) -> str:
    """Parse an ISO date or date-time (naive = UTC) into the log's sortable form.

    Raises ``ValueError`` with the accepted forms when ``text`` is not one.
    """
    try:
        moment = _dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"not an ISO date: {text!r} (use YYYY-MM-DD or YYYY-MM-DDTHH:MM[:SS][+HH:MM])") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=_dt.timezone.utc)
    return moment.astimezone(_dt.timezone.utc).isoformat(timespec="milliseconds")


def _is_corruption(exc: sqlite3.Error) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    if isinstance(code, int) and code & 0xFF in (_SQLITE_CORRUPT, _SQLITE_NOTADB):
        return True
    text = str(exc).lower()
    return any(word in text for word in _CORRUPT_WORDS)


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """An exclusive lock between processes (POSIX); a no-op where ``fcntl`` is missing."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: repairs are rare enough to go unlocked
        yield
        return
    try:
        handle = open(path, "a+b")  # noqa: SIM115 - held for the duration of the lock
    except OSError:
        yield
        return
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        yield
    finally:
        handle.close()  # closing releases the lock


def open_snapshot(path: Path, *, busy_timeout_s: float = 60.0) -> sqlite3.Connection:
    """An in-memory copy of the store at ``path`` with what its -wal file holds applied.

    For a store that cannot be written (nor its folder, so SQLite cannot make the -shm file
    a WAL read needs): the database and its -wal are copied to a temporary folder, opened
    there (SQLite then replays the -wal into the copy) and read into memory. The original
    files are only read.
    """
    import shutil
    import tempfile

    with tempfile.TemporaryDirectory(prefix="llmeval-snapshot-") as tmp:
        copy = Path(tmp) / path.name
        for suffix in ("", "-wal"):
            source = Path(str(path) + suffix)
            if source.is_file():
                shutil.copyfile(source, str(copy) + suffix)
        disk = sqlite3.connect(copy, timeout=busy_timeout_s, isolation_level=None)
        try:
            memory = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
            disk.backup(memory)
        finally:
            disk.close()
    return memory


class Store:
    """The cache and call log at ``path`` (created with its folder when missing).

    ``repair=False`` (the command line) raises :class:`StoreError` instead of moving a
    damaged file aside or falling back to memory. After opening, ``readonly`` and
    ``in_memory`` tell what the store could do, and ``problem`` why.
    """

    def __init__(self, path: str | os.PathLike[str], *, busy_timeout_s: float = 60.0, repair: bool = True) -> None:
        self.path = Path(path)
        self.readonly = False
        self.in_memory = False
        self.problem: str | None = None
        self._lock = threading.RLock()
        self._busy_timeout_s = busy_timeout_s
        self._repair = repair
        # Call-log rows not yet written (see log_call): {columns: [values, ...]}.
        self._pending_calls: dict[tuple[str, ...], list[tuple[Any, ...]]] = {}
        self._pending_count = 0
        self._pending_since = 0.0
        self._conn = self._open()
        # A second connection for cache lookups (WAL lets it read while the first commits):
        # the planning pass looks answers up while worker threads store theirs, and one
        # connection under one lock made every lookup wait for those commits.
        self._reader: sqlite3.Connection | None = None
        self._read_lock = threading.Lock()

    # -- opening -------------------------------------------------------------------------
    def _open(self) -> sqlite3.Connection:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if self.path.exists() and not (os.access(self.path, os.W_OK) and os.access(self.path.parent, os.W_OK)):
                # SQLite would open it read-only without a word and fail on every write.
                raise OSError(f"no write permission on {self.path} or its folder")
            # One process at a time opens (and so creates and migrates) the store: processes
            # that start together (xdist workers) otherwise get "database is locked" at once,
            # without SQLite's busy wait, while another switches a new file to WAL.
            with _file_lock(self._lock_path):
                return self._connect_and_migrate()
        except (sqlite3.Error, OSError) as exc:
            if not self._repair:
                raise StoreError(f"llmeval cache {self.path} cannot be used: {exc}") from None
            first = exc
        if isinstance(first, sqlite3.Error) and _is_corruption(first):
            try:
                return self._replace_damaged(first)
            except (sqlite3.Error, OSError) as exc:
                first = exc
        try:
            conn = self._connect_readonly()
        except (sqlite3.Error, OSError):
            pass
        else:
            self.readonly = True
            self._warn_open(f"is read-only ({first}); stored answers are replayed but new ones are not stored", 4)
            return conn
        self.in_memory = True
        self._warn_open(f"cannot be opened ({first}); this run uses an empty in-memory cache that is not kept", 4)
        return self._connect_and_migrate(":memory:")

    @property
    def _lock_path(self) -> Path:
        """The file whose lock makes opening and repairing the store one process at a time."""
        return self.path.with_name(self.path.name + ".lock")

    def _warn_open(self, what: str, stacklevel: int) -> None:
        self.problem = f"llmeval cache {self.path} {what}"
        warnings.warn(self.problem, StoreWarning, stacklevel=stacklevel)

    def _replace_damaged(self, exc: sqlite3.Error) -> sqlite3.Connection:
        # Under xdist every worker finds the same damaged file: the first to get the lock
        # moves it aside, the others find a healthy store when they get it.
        with _file_lock(self._lock_path):
            try:
                return self._connect_and_migrate()
            except sqlite3.Error as again:
                if not _is_corruption(again):
                    raise
            stamp = time.strftime("%Y%m%dT%H%M%S")
            aside = self.path.with_name(f"{self.path.name}.corrupt-{stamp}-{os.getpid()}")
            # The damaged file's -wal and -shm first, the file itself last: a worker that does
            # not wait for this lock may create a fresh store at the path the moment the old
            # file is gone, and its new -wal (holding its first writes) must stay where it is.
            for suffix in ("-wal", "-shm", ""):
                src = Path(str(self.path) + suffix)
                if src.exists():
                    os.replace(src, Path(str(aside) + suffix))
            conn = self._connect_and_migrate()
        self._warn_open(f"is not a usable database ({exc}); moved it to {aside.name} and started an empty one", 5)
        return conn

    def _connect_and_migrate(self, target: str | None = None) -> sqlite3.Connection:
        conn = sqlite3.connect(
            target or self.path, timeout=self._busy_timeout_s, isolation_level=None, check_same_thread=False
        )
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout_s * 1000)}")
            if target is None:
                conn.execute("PRAGMA journal_mode = WAL")
                # NORMAL in WAL mode: a commit survives a killed process; only power loss may
                # drop the last commits, never corrupt the file.
                conn.execute("PRAGMA synchronous = NORMAL")
            migrate(conn, applied_at=now_iso())
        except BaseException:
            conn.close()
            raise
        return conn

    def _connect_readonly(self) -> sqlite3.Connection:
        if not self.path.is_file():
            raise OSError(f"{self.path} does not exist")
        base = self.path.resolve().as_uri()
        try:
            conn = self._connect_uri(base + "?mode=ro")
        except sqlite3.Error:
            wal = Path(str(self.path) + "-wal")
            if wal.is_file() and wal.stat().st_size > 0:
                # Answers of a run that was killed sit in the -wal file; an immutable open
                # would ignore it and see an empty (or older) store.
                conn = open_snapshot(self.path, busy_timeout_s=self._busy_timeout_s)
            else:
                # A WAL file closed cleanly has no -shm, and a read-only folder cannot get one:
                # only an immutable open can read it (nobody can write there anyway).
                conn = self._connect_uri(base + "?immutable=1")
        try:
            missing = pending(conn)
            if missing:
                # An older schema cannot be upgraded without writing: unusable read-only.
                raise sqlite3.OperationalError(f"schema needs migrations {', '.join(missing)}")
        except BaseException:
            conn.close()
            raise
        return conn

    def _connect_uri(self, uri: str) -> sqlite3.Connection:
        conn = sqlite3.connect(
            uri, uri=True, timeout=self._busy_timeout_s, isolation_level=None, check_same_thread=False
        )
        try:
            conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()  # opening is lazy: read once
        except BaseException:
            conn.close()
            raise
        return conn

    def close(self) -> None:
        """Write the pending call-log rows and close the connection (the last one out
        checkpoints the WAL into the file)."""
        with self._lock:
            self.flush()
            try:
                self._conn.close()
            except sqlite3.Error:
                pass
        with self._read_lock:
            if self._reader is not None:
                with contextlib.suppress(sqlite3.Error):
                    self._reader.close()
                self._reader = None

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- secrets -------------------------------------------------------------------------
    @staticmethod
    def _redactor() -> redaction.Redactor:
        # Asked on every write, not kept from opening: a key set (or a model URL seen)
        # after the store opened is redacted too.
        return redaction.current()

    def _scrub(self, text: str | None) -> str | None:
        return None if text is None else self._redactor().redact(text)

    # -- cache ---------------------------------------------------------------------------
    def get(self, key: str) -> dict[str, Any] | None:
        """The stored response for ``key``; ``None`` on a miss or an unreadable entry."""
        entry = self.get_entry(key)
        return entry[0] if entry is not None else None

    def get_entry(self, key: str) -> tuple[dict[str, Any], str] | None:
        """The stored response for ``key`` and its stored JSON text (what the call log of a
        cache hit keeps, without encoding it again); ``None`` on a miss or an unreadable entry."""
        try:
            if self.readonly or self.in_memory:
                with self._lock:
                    row = self._conn.execute("SELECT response FROM responses WHERE key = ?", (key,)).fetchone()
            else:
                with self._read_lock:
                    if self._reader is None:
                        self._reader = sqlite3.connect(
                            self.path, timeout=self._busy_timeout_s, isolation_level=None, check_same_thread=False
                        )
                        self._reader.execute("PRAGMA query_only = ON")
                    row = self._reader.execute("SELECT response FROM responses WHERE key = ?", (key,)).fetchone()
            return (json.loads(row[0]), row[0]) if row else None
        except (sqlite3.Error, ValueError) as exc:
            warnings.warn(f"llmeval cache read failed ({exc}); treating it as a miss", StoreWarning, stacklevel=2)
            return None

    def put(
        self, key: str, request: dict[str, Any], response: dict[str, Any], *, request_json: str | None = None
    ) -> None:
        """Store (or overwrite) one response; a failure is a warning, never a test error.

        ``request_json`` is ``canonical_json(request)`` when the caller has it already.
        """
        if self.readonly:
            return  # said once when the store was opened
        try:
            with self._lock:
                self._conn.execute(
                    "INSERT OR REPLACE INTO responses (key, provider, model, request, response, created_at) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    (
                        key,
                        str(request.get("provider", "")),
                        str(request.get("model", "")),
                        self._scrub(request_json if request_json is not None else canonical_json(request)),
                        self._scrub(canonical_json(response)),
                        now_iso(),
                    ),
                )
        except sqlite3.Error as exc:
            warnings.warn(
                f"llmeval cache write to {self.path} failed ({exc}); the answer was not stored",
                StoreWarning,
                stacklevel=2,
            )

    def candidates(self, provider: str, model: str, limit: int = 500) -> Iterator[dict[str, Any]]:
        """Stored requests for one model, newest first (to explain a replay miss)."""
        try:
            with self._lock:
                rows = self._conn.execute(
                    "SELECT request FROM responses WHERE provider = ? AND model = ? ORDER BY created_at DESC LIMIT ?",
                    (provider, model, limit),
                ).fetchall()
        except sqlite3.Error:
            return  # an explanation is a courtesy: the miss itself is reported anyway
        for (text,) in rows:
            try:
                yield json.loads(text)
            except ValueError:
                continue

    # -- log -----------------------------------------------------------------------------
    def start_run(self, run_id: str, *, cache_mode: CacheMode, args: list[str]) -> None:
        """Record the start of a run (xdist workers share the controller's run id)."""
        self._write(
            "INSERT OR IGNORE INTO runs (id, started_at, cache_mode, args) VALUES (?, ?, ?, ?)",
            (run_id, now_iso(), cache_mode, self._scrub(json.dumps(args))),
        )

    def finish_run(self, run_id: str) -> None:
        """Record the end of a run (after writing the pending call-log rows)."""
        with self._lock:
            self.flush()
            self._write("UPDATE runs SET finished_at = ? WHERE id = ?", (now_iso(), run_id))

    def log_call(self, row: dict[str, Any]) -> None:
        """Append one call to the log. Keys of ``row`` are the ``calls`` columns.

        Rows are written together, in one transaction, once :data:`LOG_BATCH_ROWS` are
        pending or the oldest has waited :data:`LOG_BATCH_S` seconds, and always before
        the log is read through this store and when it closes: a transaction per row was
        most of the store's time in a cached run. A killed process loses the rows still
        pending (at most that many, or that many seconds' worth), never the answers (those
        are stored at once by :meth:`put`), and never leaves a partial row.
        """
        if self.readonly:
            return
        values = self._redactor().redact_values(row.values())
        with self._lock:
            if not self._pending_count:
                self._pending_since = time.monotonic()
            self._pending_calls.setdefault(tuple(row), []).append(values)
            self._pending_count += 1
            if self._pending_count >= LOG_BATCH_ROWS or time.monotonic() - self._pending_since >= LOG_BATCH_S:
                self.flush()

    def flush(self) -> None:
        """Write the pending call-log rows now, in one transaction; a failure is a warning."""
        with self._lock:
            pending, self._pending_calls, self._pending_count = self._pending_calls, {}, 0
            if not pending or self.readonly:
                return
            try:
                with self._transaction():
                    for columns, rows in pending.items():
                        names = ", ".join(columns)
                        marks = ", ".join("?" for _ in columns)
                        self._conn.executemany(f"INSERT INTO calls ({names}) VALUES ({marks})", rows)
            except sqlite3.Error as exc:
                warnings.warn(f"llmeval call log write to {self.path} failed ({exc})", StoreWarning, stacklevel=3)

    def record_outcome(
        self, run_id: str, test_id: str, model: str | None, sample: int, outcome: str, score: float | None
    ) -> None:
        """Record how one case ended in a run (``passed``, ``failed`` or ``error``)."""
        self.record_outcomes(run_id, [(test_id, model, sample, outcome, score)])

    def record_outcomes(self, run_id: str, outcomes: Iterable[tuple[str, str | None, int, str, float | None]]) -> None:
        """Record how the cases of a run ended, ``(test_id, model, sample, outcome, score)``
        each, in one transaction: all of them or (a killed run) none."""
        rows = [(run_id, *outcome) for outcome in outcomes]
        if self.readonly or not rows:
            return
        try:
            with self._lock:
                with self._transaction():
                    self._conn.executemany(
                        "INSERT OR REPLACE INTO outcomes (run_id, test_id, model, sample, outcome, score) "
                        "VALUES (?, ?, ?, ?, ?, ?)",
                        rows,
                    )
        except sqlite3.Error as exc:
            warnings.warn(f"llmeval call log write to {self.path} failed ({exc})", StoreWarning, stacklevel=2)

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        """One write transaction under the store's lock: all of its statements, or (an error,
        a killed run) none of them."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise

    def _write(self, sql: str, args: tuple[Any, ...]) -> None:
        if self.readonly:
            return
        try:
            with self._lock:
                self._conn.execute(sql, args)
        except sqlite3.Error as exc:
            warnings.warn(f"llmeval call log write to {self.path} failed ({exc})", StoreWarning, stacklevel=3)

    # -- batches (--llmeval-batch; see pytest_llmeval.calls.batch) --------------------------
    def claim_batch(
        self,
        *,
        provider: str,
        endpoint: str,
        model: str,
        entries: list[tuple[str, str, dict[str, Any], str | None]],
        run_id: str,
        stale_after_s: float = 600.0,
        reuse_answers: bool = True,
    ) -> tuple[str | None, dict[str, str]]:
        """Take the requests no batch holds or has answered, for a batch about to be submitted.

        ``entries`` are ``(key, custom_id, request payload, test_id)``. Returns the claim's id
        (``None`` when every key was taken) and ``{key: batch id}`` for the keys a submitted
        batch, another process's claim younger than ``stale_after_s``, or a batch whose stored
        answer is there already holds (:meth:`batch_answered` tells which). ``reuse_answers``
        ``False`` (``--llmeval-cache=refresh``) counts only answers of batches of ``run_id``.
        One transaction: two processes sharing the store never both claim a key.
        """
        claim_id = "claim-" + os.urandom(8).hex()
        now = now_iso()
        cutoff = (_dt.datetime.now(_dt.timezone.utc) - _dt.timedelta(seconds=stale_after_s)).isoformat(
            timespec="milliseconds"
        )
        taken: dict[str, str] = {}
        if self.readonly:
            return claim_id, taken  # nothing can be kept: submit without coordination
        try:
            with self._lock:
                with self._transaction():
                    mine = []
                    for key, custom_id, request, test_id in entries:
                        # Answered (by another xdist worker, between its planning and this claim)
                        # first, else held by a batch still running or being submitted.
                        row = self._conn.execute(
                            "SELECT b.id FROM batch_requests r JOIN batches b ON b.id = r.batch_id "
                            "WHERE r.key = ? AND ((r.state = 'done' AND (? OR b.run_id = ?) "
                            "AND EXISTS (SELECT 1 FROM responses WHERE responses.key = r.key)) "
                            "OR (r.state = 'pending' AND (b.status = 'submitted' "
                            "OR (b.status = 'submitting' AND b.updated_at >= ?)))) "
                            "ORDER BY r.state = 'done' DESC, b.submitted_at DESC LIMIT 1",
                            (key, int(reuse_answers), run_id, cutoff),
                        ).fetchone()
                        if row is not None:
                            taken[key] = row[0]
                        else:
                            mine.append((claim_id, key, custom_id, self._scrub(canonical_json(request)), test_id))
                    if mine:
                        self._conn.execute(
                            "INSERT INTO batches (id, provider, endpoint, model, status, requests, run_id, "
                            "submitted_at, updated_at) VALUES (?, ?, ?, ?, 'submitting', ?, ?, ?, ?)",
                            (claim_id, provider, self._scrub(endpoint), model, len(mine), run_id, now, now),
                        )
                        self._conn.executemany(
                            "INSERT OR REPLACE INTO batch_requests (batch_id, key, custom_id, request, test_id) "
                            "VALUES (?, ?, ?, ?, ?)",
                            mine,
                        )
        except sqlite3.Error as exc:
            warnings.warn(f"llmeval store {self.path}: batch bookkeeping failed ({exc})", StoreWarning, stacklevel=2)
            return claim_id, {}
        return (claim_id if len(taken) < len(entries) else None), taken

    def batch_answered(self, batch_id: str, key: str) -> bool:
        """Whether batch ``batch_id`` answered ``key`` and the answer is stored."""
        try:
            with self._lock:
                row = self._conn.execute(
                    "SELECT 1 FROM batch_requests r JOIN responses ON responses.key = r.key "
                    "WHERE r.batch_id = ? AND r.key = ? AND r.state = 'done'",
                    (batch_id, key),
                ).fetchone()
        except sqlite3.Error:
            return False
        return row is not None

    def batch_submitted(self, claim_id: str, batch_id: str, keys: list[str], *, status: str = "submitted") -> None:
        """The provider accepted ``keys`` of claim ``claim_id`` as batch ``batch_id``."""
        now = now_iso()
        self._write(
            "INSERT OR REPLACE INTO batches (id, provider, endpoint, model, status, requests, run_id, submitted_at, "
            "updated_at) SELECT ?, provider, endpoint, model, ?, ?, run_id, ?, ? FROM batches WHERE id = ?",
            (batch_id, status, len(keys), now, now, claim_id),
        )
        for key in keys:
            self._write(
                "UPDATE batch_requests SET batch_id = ? WHERE batch_id = ? AND key = ?", (batch_id, claim_id, key)
            )

    def release_claim(self, claim_id: str) -> None:
        """Drop what is left of a claim (its requests were submitted, or submitting failed)."""
        self._write("DELETE FROM batch_requests WHERE batch_id = ?", (claim_id,))
        self._write("DELETE FROM batches WHERE id = ?", (claim_id,))

    def update_batch(self, batch_id: str, *, status: str, done: int, failed: int, detail: str | None = None) -> None:
        """Record a batch's latest state (``submitted`` while it runs; ``ended``, ``expired``,
        ``cancelled`` or ``failed`` once its answers are collected)."""
        self._write(
            "UPDATE batches SET status = ?, done = ?, failed = ?, detail = COALESCE(?, detail), updated_at = ? "
            "WHERE id = ?",
            (status, done, failed, detail, now_iso(), batch_id),
        )

    def finish_batch_requests(self, batch_id: str, states: dict[str, tuple[str, str | None]]) -> None:
        """Record how each request of a collected batch ended: ``{key: (state, error)}``, state
        ``done``, ``error`` or ``missing`` (expired or cancelled: a later run submits it again)."""
        if self.readonly or not states:
            return
        try:
            with self._lock:
                self._conn.executemany(
                    "UPDATE batch_requests SET state = ?, error = ? WHERE batch_id = ? AND key = ?",
                    [(state, self._scrub(error), batch_id, key) for key, (state, error) in states.items()],
                )
        except sqlite3.Error as exc:
            warnings.warn(f"llmeval store {self.path}: batch bookkeeping failed ({exc})", StoreWarning, stacklevel=2)

    def batch_entries(self, batch_id: str) -> list[dict[str, Any]]:
        """The requests of one batch: ``key``, ``custom_id``, ``request`` (payload), ``test_id``, ``state``."""
        try:
            with self._lock:
                rows = self._conn.execute(
                    "SELECT key, custom_id, request, test_id, state FROM batch_requests WHERE batch_id = ?",
                    (batch_id,),
                ).fetchall()
        except sqlite3.Error:
            return []
        out = []
        for key, custom_id, request, test_id, state in rows:
            try:
                payload = json.loads(request)
            except ValueError:
                payload = {}
            out.append({"key": key, "custom_id": custom_id, "request": payload, "test_id": test_id, "state": state})
        return out

    def batches(self, *, pending: bool = False, limit: int = 50) -> list[dict[str, Any]]:
        """Batches, newest first: all of them, or only those still running (``pending``)."""
        where = "WHERE status IN ('submitted', 'submitting')" if pending else ""
        rows = self.execute(
            "SELECT id, provider, endpoint, model, status, requests, done, failed, run_id, submitted_at, updated_at "
            f"FROM batches {where} ORDER BY submitted_at DESC LIMIT ?",
            (limit,),
        )
        names = ("id", "provider", "endpoint", "model", "status", "requests", "done", "failed", "run_id",
                 "submitted_at", "updated_at")  # fmt: skip
        return [dict(zip(names, row, strict=True)) for row in rows]

    def execute(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """Run SQL and return all rows (for the command line and tests)."""
        with self._lock:
            self.flush()
            return self._conn.execute(sql, args).fetchall()

    # -- maintenance (the command line) ----------------------------------------------------
    def stats(self) -> dict[str, Any]:
        """Entries, size, per-model counts, runs, calls and the hit rate of the log."""
        size = sum(
            Path(str(self.path) + suffix).stat().st_size
            for suffix in ("", "-wal")
            if Path(str(self.path) + suffix).exists()
        )
        (entries,) = self.execute("SELECT COUNT(*) FROM responses")[0]
        per_model = {
            f"{provider}:{model}": count
            for provider, model, count in self.execute(
                "SELECT provider, model, COUNT(*) FROM responses GROUP BY provider, model ORDER BY provider, model"
            )
        }
        (runs,) = self.execute("SELECT COUNT(*) FROM runs")[0]
        calls, hits = self.execute("SELECT COUNT(*), COALESCE(SUM(cached), 0) FROM calls")[0]
        calls_per_model = {
            model: {"calls": n, "hits": h, "cost_usd": round(cost, 6)}
            for model, n, h, cost in self.execute(
                "SELECT model, COUNT(*), COALESCE(SUM(cached), 0), COALESCE(SUM(cost_usd), 0) "
                "FROM calls GROUP BY model ORDER BY model"
            )
        }
        first, last = self.execute("SELECT MIN(started_at), MAX(started_at) FROM runs")[0]
        return {
            "path": str(self.path),
            "size_bytes": size,
            "entries": entries,
            "entries_per_model": per_model,
            "runs": runs,
            "first_run": first,
            "last_run": last,
            "calls": calls,
            "hits": hits,
            "hit_rate": (hits / calls) if calls else None,
            "calls_per_model": calls_per_model,
        }

    def prune(self, *, keep_runs: int | None = None, older_than: str | None = None) -> dict[str, int]:
        """Delete cached responses (and, with ``older_than``, log rows); returns counts.

        ``keep_runs``: drop responses that no call of the last N runs used.
        ``older_than`` (sortable UTC text, see :func:`to_iso_utc`): drop responses stored
        before it and not used since, and the calls, runs and outcomes logged before it.
        """
        counts = {"responses": 0, "calls": 0, "runs": 0, "outcomes": 0}
        with self._lock:
            self.flush()
            with self._transaction():
                if keep_runs is not None:
                    counts["responses"] += self._conn.execute(
                        "DELETE FROM responses WHERE key NOT IN (SELECT key FROM calls WHERE run_id IN "
                        "(SELECT id FROM runs ORDER BY started_at DESC LIMIT ?))",
                        (keep_runs,),
                    ).rowcount
                if older_than is not None:
                    counts["responses"] += self._conn.execute(
                        "DELETE FROM responses WHERE created_at < ? "
                        "AND key NOT IN (SELECT key FROM calls WHERE ts >= ?)",
                        (older_than, older_than),
                    ).rowcount
                    counts["calls"] = self._conn.execute("DELETE FROM calls WHERE ts < ?", (older_than,)).rowcount
                    counts["runs"] = self._conn.execute("DELETE FROM runs WHERE started_at < ?", (older_than,)).rowcount
                    counts["outcomes"] = self._conn.execute(
                        "DELETE FROM outcomes WHERE run_id NOT IN (SELECT id FROM runs)"
                    ).rowcount
            # Give the space back: without VACUUM the file never shrinks.
            self._conn.execute("VACUUM")
            self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return counts

    def export_lines(self) -> Iterator[str]:
        """One canonical JSON line per cached response, sorted by key: stable bytes for a diff."""
        with self._lock:
            rows = self._conn.execute("SELECT key, request, response FROM responses ORDER BY key").fetchall()
        for key, request, response in rows:
            yield canonical_json({"key": key, "request": json.loads(request), "response": json.loads(response)})

    def import_lines(self, lines: Iterable[str], *, skip_bad: bool = False) -> dict[str, Any]:
        """Load lines written by :meth:`export_lines`.

        Every line is checked first: valid JSON with ``key``, ``request`` and ``response``,
        and a key equal to the one recomputed from the request. Bad lines are reported as
        ``(line number, reason)``; unless ``skip_bad``, nothing is imported when any is bad.
        """
        good: list[tuple[str, dict[str, Any], dict[str, Any]]] = []
        bad: list[tuple[int, str]] = []
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
            except ValueError as exc:
                bad.append((number, f"not JSON ({exc})"))
                continue
            if not isinstance(entry, dict) or not {"key", "request", "response"} <= set(entry):
                bad.append((number, "expected an object with key, request and response"))
                continue
            key, request, response = entry["key"], entry["request"], entry["response"]
            if not isinstance(request, dict) or not isinstance(response, dict):
                bad.append((number, "request and response must be objects"))
                continue
            expected = key_of(request)
            if key != expected:
                bad.append((number, f"key {str(key)[:24]}... does not match its request (expected {expected[:24]}...)"))
                continue
            good.append((key, request, response))
        result: dict[str, Any] = {"added": 0, "replaced": 0, "unchanged": 0, "bad": bad, "imported": False}
        if bad and not skip_bad:
            return result
        stamp = now_iso()
        redactor = self._redactor()
        with self._lock:
            with self._transaction():
                for key, request, response in good:
                    # A file written elsewhere may carry a key: redacted like any write.
                    text = redactor.redact(canonical_json(response))
                    row = self._conn.execute("SELECT response FROM responses WHERE key = ?", (key,)).fetchone()
                    if row is not None and row[0] == text:
                        result["unchanged"] += 1
                        continue
                    result["replaced" if row is not None else "added"] += 1
                    self._conn.execute(
                        "INSERT OR REPLACE INTO responses (key, provider, model, request, response, created_at) "
                        "VALUES (?, ?, ?, ?, ?, ?)",
                        (
                            key,
                            str(request.get("provider", "")),
                            str(request.get("model", "")),
                            redactor.redact(canonical_json(request)),
                            text,
                            stamp,
                        ),
                    )
        result["imported"] = True
        return result

    def passing_conversations(self) -> Iterator[tuple[str, str, dict[str, Any], dict[str, Any]]]:
        """``(test_id, model, request, response)`` of every model-under-test call (never the
        judge's) made in the latest run that recorded the test, when the test passed there."""
        sql = """
            WITH latest AS (
                SELECT o.test_id, o.run_id, o.outcome,
                       ROW_NUMBER() OVER (
                           PARTITION BY o.test_id ORDER BY COALESCE(r.started_at, '') DESC, o.rowid DESC
                       ) AS rn
                FROM outcomes o LEFT JOIN runs r ON r.id = o.run_id
            )
            SELECT c.test_id, c.model, c.request, c.response
            FROM calls c JOIN latest l ON l.test_id = c.test_id AND l.run_id = c.run_id
            WHERE l.rn = 1 AND l.outcome = 'passed' AND c.role = 'llm'
              AND c.response IS NOT NULL AND c.error IS NULL
            ORDER BY c.test_id, c.id
        """
        with self._lock:
            self.flush()
            rows = self._conn.execute(sql).fetchall()
        for test_id, model, request, response in rows:
            try:
                yield test_id, model, json.loads(request), json.loads(response)
            except ValueError:
                continue
