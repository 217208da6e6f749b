"""``--llmeval-markdown PATH``: the summary and the baseline diff as GitHub-flavoured Markdown.

Written for ``$GITHUB_STEP_SUMMARY`` or a pull-request comment: a verdict line, the reasons,
one table row per eval and model, then the baseline comparison with the flipped cases in
collapsible lists. Lists are capped so the text stays far below GitHub's 1 MiB limit.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_llmeval.text import model_label

if TYPE_CHECKING:
    from pytest_llmeval.gate.results import BaselineSection, EvalEntry, ResultsDocument

__all__ = ["render_markdown", "write_markdown", "md_cell"]

#: Flipped cases listed per direction and eval before "... and N more".
FLIPS_LISTED = 50
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")


def md_cell(value: Any) -> str:
    """Text safe inside a Markdown table cell: no pipes, newlines or control characters."""
    text = _CONTROL.sub("\ufffd", str(value))
    text = text.replace("\\", "\\\\").replace("|", "\\|").replace("\r", " ").replace("\n", " ")
    return text.replace("<", "&lt;").replace(">", "&gt;")


def _code(value: Any) -> str:
    """Inline code for a node id; backticks inside widen the fence."""
    text = _CONTROL.sub("\ufffd", str(value)).replace("\n", " ").replace("|", "\\|")
    fence = "``" if "`" in text else "`"
    return f"{fence} {text} {fence}" if fence == "``" else f"`{text}`"


def _tokens(n: int) -> str:
    return f"{n:,}"


def _rate(x: float | None) -> str:
    return "–" if x is None else f"{x:.1%}"


def render_markdown(results: ResultsDocument) -> str:
    """The Markdown text of ``results`` (a results document, see :mod:`pytest_llmeval.gate.results`)."""
    out: list[str] = []
    passed = bool(results.get("passed"))
    out.append(f"## {'✅' if passed else '❌'} pytest-llmeval: {'passed' if passed else 'failed'}")
    out.append("")
    for reason in results.get("reasons") or []:
        out.append(f"- {md_cell(reason)}")
    out.append("")
    evals = results.get("evals") or []
    if evals:
        out.append(
            "| Eval | Model | Cases | Passed | Failed | Errors | Pass rate (95% CI) | Min | Verdict "
            "| Tokens | Cost | Latency p50 / p95 | Cached |"
        )
        out.append("|---|---|--:|--:|--:|--:|--:|--:|:-:|--:|--:|--:|--:|")
        for ev in evals:
            verdict = str(ev.get("verdict", ""))
            icon = {"pass": "✅ pass", "fail": "❌ fail", "error": "💥 error"}.get(verdict, verdict)
            p50, p95 = ev.get("latency_p50_s"), ev.get("latency_p95_s")
            latency = "–" if p50 is None or p95 is None else f"{p50:.2f} s / {p95:.2f} s"
            cells = [
                _code(ev["eval"]),
                md_cell(model_label(ev.get("model"))),
                str(ev["cases"]),
                str(ev["passed"]),
                str(ev["failed"]),
                str(ev["errors"]),
                f"{ev['pass_rate']:.1%} ({ev['ci_low']:.1%}–{ev['ci_high']:.1%})",
                f"{float(ev['threshold']):.0%}" if float(ev["threshold"]) * 100 % 1 == 0 else f"{ev['threshold']:.1%}",
                icon,
                _tokens(int(ev.get("input_tokens", 0)) + int(ev.get("output_tokens", 0))),
                f"${float(ev.get('cost_usd', 0.0)):.4f}",
                latency,
                f"{ev.get('cache_hits', 0)}/{ev.get('calls', 0)}",
            ]
            out.append("| " + " | ".join(cells) + " |")
        out.append("")
    out += _repeats(evals)
    out += _baseline(results.get("baseline"))
    tallies = results.get("tallies") or {}
    meta = [f"run `{md_cell(results.get('run_id', ''))}`", md_cell(results.get("created_at", ""))]
    if tallies:
        meta.append(
            f"{tallies.get('calls', 0)} model call(s), {tallies.get('hits', 0)} from cache, "
            f"{tallies.get('retries', 0)} retries, {tallies.get('errors', 0)} errors"
        )
    out.append("<sub>" + " · ".join(meta) + "</sub>")
    return "\n".join(out).rstrip() + "\n"


def _repeats(evals: list[EvalEntry]) -> list[str]:
    rows = [ev for ev in evals if int(ev.get("repeat") or 1) > 1]
    if not rows:
        return []
    ks = sorted({int(k) for ev in rows for k in (ev.get("pass_at_k") or {})})
    out = ["### Repeated samples", ""]
    out.append("| Eval | Model | Samples per case | " + " | ".join(f"pass@{k} | pass^{k}" for k in ks) + " |")
    out.append("|---|---|--:|" + "--:|--:|" * len(ks))
    for ev in rows:
        at, hat = ev.get("pass_at_k") or {}, ev.get("pass_hat_k") or {}
        cells = [_code(ev["eval"]), md_cell(model_label(ev.get("model"))), str(ev["repeat"])]
        for k in ks:
            cells += [_rate(at.get(str(k))), _rate(hat.get(str(k)))]
        out.append("| " + " | ".join(cells) + " |")
    out.append("")
    return out


def _baseline(baseline: BaselineSection | None) -> list[str]:
    if not baseline:
        return []
    out = [
        f"### Against the baseline `{md_cell(baseline['path'])}`",
        "",
        f"Paired comparison of the same cases (node id, model, sample); a drop counts when the one-sided "
        f"exact McNemar test on the flipped cases gives p ≤ {baseline['alpha']:g}.",
        "",
        "| Eval | Model | Baseline | Now | Matched | → fail | → pass | p | Regressed |",
        "|---|---|--:|--:|--:|--:|--:|--:|:-:|",
    ]
    entries = baseline.get("evals") or []
    for b in entries:
        cells = [
            _code(b["eval"]),
            md_cell(model_label(b.get("model"))),
            _rate(b.get("base_rate")),
            _rate(b.get("rate")),
            str(b["n_pairs"]),
            str(len(b["flipped_to_fail"])),
            str(len(b["flipped_to_pass"])),
            f"{b['p_value']:.3g}",
            "❌ yes" if b["regressed"] else "no",
        ]
        out.append("| " + " | ".join(cells) + " |")
    out.append("")
    for b in entries:
        for title, ids in (("flipped to fail", b["flipped_to_fail"]), ("flipped to pass", b["flipped_to_pass"])):
            if not ids:
                continue
            label = f"{md_cell(b['eval'])} [{md_cell(model_label(b.get('model')))}]"
            out.append(f"<details><summary>{label}: {len(ids)} {title}</summary>")
            out.append("")
            for nodeid in ids[:FLIPS_LISTED]:
                out.append(f"- {_code(nodeid)}")
            if len(ids) > FLIPS_LISTED:
                out.append(f"- … and {len(ids) - FLIPS_LISTED} more")
            out.append("")
            out.append("</details>")
            out.append("")
    return out


def write_markdown(results: ResultsDocument, path: str | os.PathLike[str]) -> None:
    """Write the Markdown report of ``results`` to ``path`` (parents created)."""
    target = Path(path)
    text = render_markdown(results)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text, encoding="utf-8")
