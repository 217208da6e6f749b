"""The terminal summary: one row per eval and model, the baseline diff, and the verdict.

Rendered from the results document (see :mod:`pytest_llmeval.gate.results`), so the pytest run
and ``python -m pytest_llmeval report`` print the same thing. Rows fit in 120 columns.
Verbosity: ``-qq`` prints the verdict only, ``-q`` the table and the verdict, the default
adds the baseline flips (20 each way), repeats and run tallies; ``-v`` lists every flip.
"""

from __future__ import annotations

import shutil
import sys
from typing import TYPE_CHECKING, Protocol, TextIO

from pytest_llmeval.text import model_label

if TYPE_CHECKING:
    from pytest_llmeval.gate.results import BaselineSection, EvalEntry, ResultsDocument

__all__ = ["StreamWriter", "SummaryWriter", "format_rate_ci", "summary_lines", "verdict_lines", "write_summary"]

Line = tuple[str, dict[str, bool]]

#: The widest line the summary writes.
MAX_WIDTH = 120
_HEADERS = ("cases", "pass", "fail", "err", "rate", "95% CI", "min", "verdict", "tokens", "cost", "p50/p95 s", "cached")
_FLIPS_SHOWN = 20


def _tokens(n: int) -> str:
    if n < 1000:
        return str(n)
    if n < 1_000_000:
        return f"{n / 1000:.1f}k"
    return f"{n / 1_000_000:.1f}M"


def _cost(usd: float) -> str:
    return f"${usd:.4f}" if usd < 100 else f"${usd:,.0f}"


def _pct(x: float) -> str:
    return f"{x:.0%}" if abs(x * 100 - round(x * 100)) < 1e-9 else f"{x:.1%}"


def format_rate_ci(ev: EvalEntry) -> str:
    """``80.0% (49.0-94.3)``: a pass rate with its 95% Wilson interval, in percent."""
    return f"{ev['pass_rate']:.1%} ({ev['ci_low'] * 100:.1f}-{ev['ci_high'] * 100:.1f})"


def _latency(ev: EvalEntry) -> str:
    p50, p95 = ev.get("latency_p50_s"), ev.get("latency_p95_s")
    if p50 is None or p95 is None:
        return "-"
    return f"{p50:.2f}/{p95:.2f}"


def _fit(text: str, width: int) -> str:
    """Left-aligned, cut at the front (the end of a node id is the informative part)."""
    return text.ljust(width) if len(text) <= width else "..." + text[-(width - 3) :]


def _table(evals: list[EvalEntry]) -> list[Line]:
    """One row per eval and model under a line naming the eval; columns sized to their
    content, the name column shrunk (cut at the front) to keep rows within MAX_WIDTH."""
    rows = [(model_label(ev.get("model")), _eval_cells(ev), ev) for ev in evals]
    widths = [max(len(h), *(len(cells[i]) for _, cells, _ in rows)) for i, h in enumerate(_HEADERS)]
    name_w = max(len("eval / model"), *(2 + len(name) for name, _, _ in rows))
    name_w = max(16, min(name_w, MAX_WIDTH - sum(widths) - len(widths)))

    def row(name: str, cells: list[str] | tuple[str, ...]) -> str:
        return " ".join([_fit(name, name_w), *(c.rjust(w) for c, w in zip(cells, widths, strict=True))]).rstrip()

    lines: list[Line] = [(row("eval / model", _HEADERS), {"bold": True})]
    current = None
    for name, cells, ev in rows:
        if ev["eval"] != current:
            current = ev["eval"]
            lines.append((_fit(current, MAX_WIDTH).rstrip(), {}))
        # Model rows are indented under their eval; a long name is cut, the indent kept.
        lines.append(
            (
                row("  " + _fit(name, name_w - 2), cells),
                {"green": True} if ev.get("verdict") == "pass" else {"red": True},
            )
        )
    return lines


def _eval_cells(ev: EvalEntry) -> list[str]:
    return [
        str(ev["cases"]),
        str(ev["passed"]),
        str(ev["failed"]),
        str(ev["errors"]),
        f"{ev['pass_rate']:.1%}",
        f"{ev['ci_low'] * 100:.1f}-{ev['ci_high'] * 100:.1f}",
        _pct(float(ev["threshold"])),
        str(ev.get("verdict", "")).upper(),
        _tokens(int(ev.get("input_tokens", 0)) + int(ev.get("output_tokens", 0))),
        _cost(float(ev.get("cost_usd", 0.0))),
        _latency(ev),
        f"{ev.get('cache_hits', 0)}/{ev.get('calls', 0)}",
    ]


def summary_lines(results: ResultsDocument, verbosity: int = 0) -> list[Line]:
    """The summary as ``(text, markup)`` lines; markup is terminal colour flags."""
    lines: list[Line] = []
    evals = results.get("evals") or []
    if verbosity >= -1 and evals:
        lines += _table(evals)
    if verbosity >= 0:
        lines += _repeat_lines(evals, verbosity)
        lines += _partial_run_lines(evals)
        lines += _flaky_lines(results, verbosity)
        lines += _baseline_lines(results.get("baseline"), verbosity)
        tallies = results.get("tallies") or {}
        if tallies:
            lines.append(
                (
                    f"model calls: {tallies.get('calls', 0)} ({tallies.get('hits', 0)} from cache), "
                    f"retries: {tallies.get('retries', 0)}, errors: {tallies.get('errors', 0)}",
                    {},
                )
            )
    lines += verdict_lines(results)
    return lines


def _repeat_lines(evals: list[EvalEntry], verbosity: int) -> list[Line]:
    lines: list[Line] = []
    for ev in evals:
        if int(ev.get("repeat") or 1) <= 1:
            continue
        at_k = "  ".join(f"pass@{k} {v:.1%}" for k, v in (ev.get("pass_at_k") or {}).items())
        hat_k = "  ".join(f"pass^{k} {v:.1%}" for k, v in (ev.get("pass_hat_k") or {}).items())
        lines.append((f"{ev['eval']} [{model_label(ev.get('model'))}], {ev['repeat']} samples per case:", {}))
        lines.append((f"  {at_k}", {}))
        lines.append((f"  {hat_k}", {}))
        rates = ev.get("case_rates") or []
        shown = rates if verbosity >= 1 else [r for r in rates if 0 < r["passed"] < r["samples"]][:10]
        if shown:
            lines.append(("  per-case pass fraction" + ("" if verbosity >= 1 else " (flaky cases)") + ":", {}))
            for r in shown:
                lines.append((f"    {r['passed']}/{r['samples']}  {r['case']}", {}))
    return lines


def _baseline_lines(baseline: BaselineSection | None, verbosity: int) -> list[Line]:
    if not baseline:
        return []
    lines: list[Line] = [
        (f"baseline: {baseline['path']} (alpha {baseline['alpha']:g}, one-sided McNemar)", {"bold": True})
    ]
    limit = None if verbosity >= 1 else _FLIPS_SHOWN
    for b in baseline.get("evals") or []:
        label = f"{b['eval']} [{model_label(b.get('model'))}]"
        if b.get("status") == "new":
            lines.append((f"  {label}: new, not compared (not in the baseline)", {"yellow": True}))
            continue
        if not b["n_pairs"]:
            lines.append((f"  {label}: no matching case in the baseline", {"yellow": True}))
            continue
        state = "REGRESSED" if b["regressed"] else "no significant drop"
        lines.append(
            (
                f"  {label}: {b['base_rate']:.1%} -> {b['rate']:.1%} on {b['n_pairs']} matched case(s), "
                f"p={b['p_value']:.3g}: {state}",
                {"red": True} if b["regressed"] else {},
            )
        )
        for title, ids in (("flipped to fail", b["flipped_to_fail"]), ("flipped to pass", b["flipped_to_pass"])):
            if not ids:
                continue
            lines.append((f"    {title} ({len(ids)}):", {}))
            for nodeid in ids[:limit]:
                lines.append((f"      {nodeid}", {}))
            if limit is not None and len(ids) > limit:
                lines.append((f"      ... and {len(ids) - limit} more (-v lists all)", {}))
        if b.get("cases") and b["n_pairs"] < b["cases"]:
            lines.append((f"    partial match: compared {b['n_pairs']} of {b['cases']} cases", {"yellow": True}))
        extra = []
        if b.get("new_cases"):
            extra.append(f"{b['new_cases']} case(s) not in the baseline")
        if b.get("missing_cases"):
            extra.append(f"{b['missing_cases']} baseline case(s) not run")
        if extra:
            lines.append(("    " + "; ".join(extra), {}))
    return lines + _baseline_footer(baseline)


def _baseline_footer(baseline: BaselineSection) -> list[Line]:
    lines: list[Line] = []
    moved = baseline.get("prefix_removed")
    if moved:
        side = "this run's" if moved.get("from") == "run" else "the baseline's"
        lines.append(
            (
                f"  matched after taking {moved.get('prefix')!r} off {side} node ids (the runs had different rootdirs)",
                {"yellow": True},
            )
        )
    not_run = baseline.get("not_run") or []
    if not_run:
        shown = ", ".join(not_run[:5]) + (f" and {len(not_run) - 5} more" if len(not_run) > 5 else "")
        lines.append((f"  in the baseline but not run: {shown}", {}))
    if baseline.get("problem"):
        lines.append((f"  NOT COMPARED: {baseline.get('problem')}", {"red": True}))
    return lines


def _partial_run_lines(evals: list[EvalEntry]) -> list[Line]:
    """``12 of 40 cases`` for each eval that ran only part of its collected cases."""
    lines: list[Line] = []
    for ev in evals:
        collected = ev.get("collected_cases")
        if collected is not None and ev["cases"] < collected:
            lines.append(
                (
                    f"partial run: {ev['eval']} [{model_label(ev.get('model'))}]: {ev['cases']} of {collected} cases "
                    "(the rest deselected or skipped)",
                    {"yellow": True},
                )
            )
    return lines


def _flaky_lines(results: ResultsDocument, verbosity: int) -> list[Line]:
    """Cases whose reruns (pytest-rerunfailures) disagreed with the first attempt, which decided."""
    flaky = [c for c in results.get("cases") or [] if c.get("flaky")]
    if not flaky:
        return []
    lines: list[Line] = [
        (
            f"flaky: {len(flaky)} case(s) changed outcome on a rerun; the first attempt counts for the gate:",
            {"yellow": True},
        )
    ]
    limit = None if verbosity >= 1 else _FLIPS_SHOWN
    for case in flaky[:limit]:
        attempts = " -> ".join([case["outcome"], *case.get("reruns", [])])
        lines.append((f"  {case['nodeid']}: {attempts}", {}))
    if limit is not None and len(flaky) > limit:
        lines.append((f"  ... and {len(flaky) - limit} more (-v lists all)", {}))
    return lines


def verdict_lines(results: ResultsDocument) -> list[Line]:
    """Why the run passed or failed: one line each."""
    reasons = results.get("reasons") or []
    if results.get("passed"):
        lines: list[Line] = [("llmeval: PASSED because:", {"green": True, "bold": True})]
        return lines + [(f"  {reason}", {"green": True}) for reason in reasons]
    lines = [("llmeval: FAILED because:", {"red": True, "bold": True})]
    return lines + [(f"  {reason}", {"red": True}) for reason in reasons]


class SummaryWriter(Protocol):
    """Where the summary goes: pytest's terminal reporter is one, :class:`StreamWriter` another."""

    def write_line(self, line: str, **markup: bool) -> None:
        """Write one line; ``markup`` holds colour flags (``green=True``, ``bold=True``)."""

    def write_sep(self, sep: str, title: str | None = None, **markup: bool) -> None:
        """Write a separator line made of ``sep`` around ``title``."""


class StreamWriter:
    """A :class:`SummaryWriter` on a text stream, without colours (the ``report`` command)."""

    def __init__(self, stream: TextIO | None = None, width: int | None = None) -> None:
        self.stream = stream if stream is not None else sys.stdout
        self.width = width if width is not None else min(shutil.get_terminal_size((MAX_WIDTH, 24)).columns, MAX_WIDTH)

    def write_line(self, line: str, **markup: bool) -> None:
        """Write ``line``; colour flags are dropped (the output is often a file or a CI log)."""
        print(line, file=self.stream)

    def write_sep(self, sep: str, title: str | None = None, **markup: bool) -> None:
        """``===== title =====`` across the width."""
        print((f" {title} " if title else "").center(self.width, sep), file=self.stream)


def write_summary(writer: SummaryWriter, results: ResultsDocument, verbosity: int = 0) -> None:
    """Write the summary of ``results`` at ``verbosity`` (pytest's: ``-q`` is -1) to ``writer``."""
    lines = summary_lines(results, verbosity)
    if verbosity >= -1:
        writer.write_sep("=", "llmeval summary")
    for text, markup in lines:
        writer.write_line(text, **markup)
