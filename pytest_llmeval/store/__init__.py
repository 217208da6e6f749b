"""One SQLite file that is both the response cache and the log of every model call.

Standard library ``sqlite3`` in WAL mode with a busy timeout, so many pytest-xdist workers
can share one file; every write is one short transaction, so a killed run leaves either the
whole entry or nothing. A store that cannot be used never stops a run:

- a file that is not a database, or a damaged one, is moved aside (``NAME.corrupt-...``)
  with a warning and a fresh store is made in its place;
- a file that can be read but not written is used read-only, with one warning;
- a file that cannot be opened at all gives a warning and an in-memory store for this run;
- a failed write is a warning, never a test error.

Plain SQL answers questions about past runs, e.g. what a model said for a test::

    SELECT ts, response FROM calls
    WHERE model = 'openai:gpt-4o-mini' AND test_id LIKE '%test_capital%' ORDER BY ts DESC;
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pytest_llmeval.store.db import Store, StoreError, StoreWarning, now_iso, to_iso_utc

__all__ = ["Store", "StoreError", "StoreWarning", "now_iso", "to_iso_utc"]


def __getattr__(name: str) -> Any:
    # Lazy: the plugin imports store.redaction at start-up, and sqlite3 is paid only by
    # runs that open the store.
    if name in __all__:
        from pytest_llmeval.store import db

        return getattr(db, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
