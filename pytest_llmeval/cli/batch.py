"""``python -m pytest_llmeval batch list|cancel``: the provider batches kept in the store.

``batch list`` shows the pending batches and the most recent others (model, status, counts,
age); ``batch cancel [ID]`` asks the provider to cancel one batch, or every pending one. A
cancelled batch stays in the store as pending until the next pytest run collects it: that run
keeps what the batch answered before the cancel and submits the rest again.

Wired into :mod:`pytest_llmeval.cli.commands`, which hands over its store opener and error
class (this module must not import it back). The SDKs are imported only by ``cancel``.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
from collections.abc import Callable
from functools import partial
from typing import Any

__all__ = ["add_batch_parser"]


def add_batch_parser(
    commands: Any, parent: argparse.ArgumentParser, *, open_store: Callable[..., Any], error: type[Exception]
) -> None:
    """Add ``batch list`` and ``batch cancel`` to the ``commands`` subparsers."""
    batch = commands.add_parser("batch", help="provider batches of --llmeval-batch runs", parents=[parent])
    actions = batch.add_subparsers(dest="batch_command", metavar="ACTION", required=True)
    listing = actions.add_parser(
        "list", help="pending and recent batches: model, status, counts, age", parents=[parent]
    )
    listing.add_argument("--limit", type=int, default=20, metavar="N", help="recent batches shown (default: 20)")
    listing.add_argument("--json", action="store_true", help="print the batches as JSON")
    listing.set_defaults(func=partial(cmd_batch_list, open_store=open_store))
    cancel = actions.add_parser(
        "cancel",
        help="cancel a pending batch, or every pending batch",
        parents=[parent],
        description="Ask the provider to cancel batch ID, or every pending batch in the store. The next pytest run "
        "collects what a cancelled batch answered and submits the rest again.",
    )
    cancel.add_argument("id", nargs="?", metavar="ID", help="the batch id (default: every pending batch)")
    cancel.set_defaults(func=partial(cmd_batch_cancel, open_store=open_store, error=error))


def _age(stamp: str | None, now: _dt.datetime) -> str:
    if not stamp:
        return "-"
    try:
        seconds = (now - _dt.datetime.fromisoformat(stamp)).total_seconds()
    except ValueError:
        return "-"
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    if seconds < 172800:
        return f"{seconds / 3600:.0f}h"
    return f"{seconds / 86400:.0f}d"


def cmd_batch_list(args: argparse.Namespace, *, open_store: Callable[..., Any]) -> int:
    """``batch list``."""
    with open_store(args) as store:
        pending = store.batches(pending=True, limit=10_000)
        recent = [b for b in store.batches(limit=args.limit) if b["id"] not in {p["id"] for p in pending}]
    rows = [b for b in pending + recent if not str(b["id"]).startswith("claim-")]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print("no batches in the store (run pytest with --llmeval-batch to make some)")
        return 0
    now = _dt.datetime.now(_dt.timezone.utc)
    table = [("id", "model", "status", "requests", "done", "failed", "age")]
    for b in rows:
        status = "pending" if b["status"] == "submitted" else b["status"]
        table.append(
            (b["id"], f"{b['provider']}:{b['model']}", status, str(b["requests"]), str(b["done"]), str(b["failed"]),
             _age(b["submitted_at"], now))
        )  # fmt: skip
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    for row in table:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    print(f"{len(pending)} pending, {len(rows) - len(pending)} finished")
    return 0


def cmd_batch_cancel(args: argparse.Namespace, *, open_store: Callable[..., Any], error: type[Exception]) -> int:
    """``batch cancel [ID]``."""
    from pytest_llmeval.calls.batch import open_batch_api_for
    from pytest_llmeval.errors import LLMEvalError
    from pytest_llmeval.providers._common import translate_sdk_error

    with open_store(args) as store:
        pending = [b for b in store.batches(pending=True, limit=10_000) if not str(b["id"]).startswith("claim-")]
        if args.id is not None:
            chosen = [b for b in pending if b["id"] == args.id]
            if not chosen:
                known = [b["id"] for b in store.batches(limit=10_000)]
                why = "it has already been collected" if args.id in known else "the store does not know it"
                raise error(f"batch {args.id} is not pending ({why}); see: batch list")
        else:
            chosen = pending
        if not chosen:
            print("no pending batches")
            return 0
        failures = 0
        for b in chosen:
            model = f"{b['provider']}:{b['model']}"
            try:
                api = open_batch_api_for(b["provider"], b["model"], b["endpoint"])
                if api is None:
                    raise LLMEvalError(f"{model}: no batch API known for provider {b['provider']!r}")
                status = api.cancel(b["id"], timeout=60.0)
            except LLMEvalError as exc:
                failures += 1
                print(f"{b['id']} ({model}): not cancelled: {exc}")
                continue
            except Exception as exc:  # noqa: BLE001 - any SDK failure is reported per batch
                failures += 1
                print(
                    f"{b['id']} ({model}): not cancelled: {translate_sdk_error(exc, model=model, endpoint=b['endpoint'])}"
                )
                continue
            # Still pending in the store: the next run collects what it answered before the cancel.
            store.update_batch(b["id"], status="submitted", done=b["done"], failed=b["failed"], detail=status)
            print(f"{b['id']} ({model}): {status}; the next run collects its answers and submits the rest again")
    return 1 if failures else 0
