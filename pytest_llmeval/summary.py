"""The terminal summary: one row per eval and model."""

from __future__ import annotations

from collections import defaultdict
from typing import Any


def write_summary(tr: Any, cases: list[dict[str, Any]], stats: Any) -> None:
    groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for case in cases:
        groups[(case["eval"], case["model"] or "-")].append(case)
    tr.write_sep("=", "llmeval summary")
    header = f"{'eval':<48} {'model':<28} {'cases':>5} {'pass':>5} {'fail':>5} {'err':>4} {'rate':>6}"
    tr.write_line(header)
    for (eval_id, model), rows in sorted(groups.items()):
        passed = sum(r["outcome"] == "passed" for r in rows)
        failed = sum(r["outcome"] == "failed" for r in rows)
        errors = sum(r["outcome"] == "error" for r in rows)
        rate = passed / len(rows) if rows else 0.0
        tr.write_line(
            f"{eval_id[-48:]:<48} {model[-28:]:<28} {len(rows):>5} {passed:>5} {failed:>5} {errors:>4} {rate:>6.1%}"
        )
    tr.write_line(
        f"model calls: {stats.calls} ({stats.hits} from cache), retries: {stats.retries}, errors: {stats.errors}"
    )
