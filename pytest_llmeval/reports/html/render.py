"""A self-contained HTML report: per-eval pass-rate charts and a cases × models matrix.

One file, no network: the CSS, the script and the data are inline, charts are SVG drawn by
the script. Everything a model wrote is untrusted, so the only data in the page sits in one
``<script type="application/json">`` block in which ``<``, ``>``, ``&``, U+2028 and U+2029
are ``\\uXXXX`` escapes (``</script>`` in an output cannot close the block), and the script
puts data on the page only through ``textContent``, ``setAttribute`` and ``createElement``.
A strict Content-Security-Policy forbids every load.

Strings are stored once in a string table and referenced by index, so a prompt shared by
every model, a repeated explanation or a model name costs its bytes once; the matrix renders
one page of rows at a time, so 10,000 cases × 3 models open and filter at once.
"""

from __future__ import annotations

import json
import math
import os
import secrets
from collections import defaultdict
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

__all__ = ["case_label", "render_html", "write_html"]

# Outcome codes used in the page's cell arrays.
_OUTCOME_CODE = {"passed": 0, "failed": 1, "error": 2}
# Keys of a check or grade shown in their own fields; any other key is shown as extra JSON.
_RESULT_KEYS = (
    "name",
    "passed",
    "score",
    "expected",
    "actual",
    "explanation",
    "reasoning",
    "raw",
    "judge_model",
    "label",
)
# One model output can be megabytes; the report keeps the start and the end of it.
_MAX_TEXT_CHARS = 100_000
_Z95 = 1.959963984540054
# Column of the cases that ran without a model under test (a judge-only test).
_NO_MODEL = "(no model)"
# One encoder for every prompt: building one per call is most of the cost of a big report.
_PROMPT_JSON = json.JSONEncoder(ensure_ascii=False, default=str)


def write_html(
    results: Mapping[str, Any], path: str | os.PathLike[str], baseline: Mapping[str, Any] | None = None
) -> None:
    """Write the HTML report of ``results`` (the ``--llmeval-json`` dict) to ``path``.

    ``baseline`` is the results dict of an earlier, accepted run (or the ``"baseline"``
    comparison section of ``results``): cells are matched by node id and sample, the deltas
    per eval and model are shown, and cases that flipped are listed and sorted first. A
    ``"baseline"`` section inside ``results`` (p-values, regressions) is used as well.
    The file is written to a temporary name and renamed, so a reader never sees half a report.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    data = render_html(results, baseline).encode("utf-8", "backslashreplace")
    # Not mkstemp: its 0600 mode would survive the rename; a report gets the umask's mode.
    tmp = target.with_name(f".{target.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp")
    try:
        with open(tmp, "xb") as fh:
            fh.write(data)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def render_html(results: Mapping[str, Any], baseline: Mapping[str, Any] | None = None) -> str:
    """The report as one HTML string (see :func:`write_html`)."""
    payload = _Payload(results, baseline).build()
    before, after = _TEMPLATE.split("@@DATA@@")
    return before + _script_json(payload) + after


def case_label(nodeid: str, model: str | None, sample: int | None = None, *, strip_sample: bool = True) -> str:
    """The case part of a node id: its parameter id without the model and the sample.

    ``test_x.py::test_capital[openai:gpt-4o-mini-france]`` with model
    ``openai:gpt-4o-mini`` gives ``france``; a test with no other parameter gives ``""``.
    The model id may itself contain dashes, so it is removed as a whole ``-``-joined part.
    """
    _, bracket, rest = nodeid.partition("[")
    if not bracket:
        return ""
    params = rest[:-1] if rest.endswith("]") else rest
    if model:
        params = _strip_part(params, model)
    if strip_sample and sample is not None:
        params = _strip_part(params, f"sample{sample}")
    return params


def _strip_part(params: str, token: str) -> str:
    if params == token:
        return ""
    if params.startswith(token + "-"):
        return params[len(token) + 1 :]
    if params.endswith("-" + token):
        return params[: -len(token) - 1]
    at = params.find("-" + token + "-")
    if at >= 0:
        return params[:at] + params[at + len(token) + 1 :]
    return params


def _script_json(payload: Any) -> str:
    """JSON that is inert inside ``<script>``: the escaped characters only occur in strings."""
    text = json.dumps(payload, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return (
        text.replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("&", "\\u0026")
        .replace("\u2028", "\\u2028")
        .replace("\u2029", "\\u2029")
    )


def _num(value: Any, digits: int | None = None) -> float | None:
    """A finite float or ``None``: NaN has no JSON form and a missing value stays missing."""
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    if not math.isfinite(number):
        return None
    return round(number, digits) if digits is not None else number


def _int(value: Any) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


def _wilson(passed: int, n: int) -> tuple[float, float]:
    """The 95% Wilson score interval of a pass rate (sound at 0, 1 and small n)."""
    if n <= 0:
        return 0.0, 1.0
    p = passed / n
    z2 = _Z95 * _Z95
    denom = 1 + z2 / n
    centre = (p + z2 / (2 * n)) / denom
    half = _Z95 * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    rank = q * (len(ordered) - 1)
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def _is_comparison(data: Mapping[str, Any]) -> bool:
    """True for a ``"baseline"`` comparison section, False for a whole results dict."""
    if "cases" in data or data.get("schema") == "pytest-llmeval/results":
        return False
    evals = data.get("evals") or []
    return "alpha" in data or any(isinstance(e, Mapping) and "base_rate" in e for e in evals)


class _Strings:
    """The page's string table: every distinct text once, referenced by index (-1: none)."""

    def __init__(self) -> None:
        self.index: dict[str, int] = {}
        self.items: list[str] = []

    def add(self, value: Any) -> int:
        if value is None:
            return -1
        if not isinstance(value, str):
            value = json.dumps(value, ensure_ascii=False, indent=2, sort_keys=True, default=str)
        if len(value) > _MAX_TEXT_CHARS:
            half = _MAX_TEXT_CHARS // 2
            value = f"{value[:half]}\n… [{len(value):,} characters, shortened in this report] …\n{value[-half:]}"
        found = self.index.get(value)
        if found is None:
            found = self.index[value] = len(self.items)
            self.items.append(value)
        return found


class _Payload:
    """Turns the results dict into the compact, columnar structure the page script reads."""

    def __init__(self, results: Mapping[str, Any], baseline: Mapping[str, Any] | None) -> None:
        self.results = results
        self.strings = _Strings()
        self.cases: list[Mapping[str, Any]] = [c for c in results.get("cases") or () if isinstance(c, Mapping)]
        section = results.get("baseline")
        self.comparison: Mapping[str, Any] | None = section if isinstance(section, Mapping) else None
        self.old_results: Mapping[str, Any] | None = None
        if baseline is not None:
            if _is_comparison(baseline):
                self.comparison = baseline
            else:
                self.old_results = baseline

    # -- structure ------------------------------------------------------------------------
    def build(self) -> dict[str, Any]:
        models = self._models()
        model_index = {m: i for i, m in enumerate(models)}
        eval_names = self._eval_names()
        eval_index = {e: i for i, e in enumerate(eval_names)}
        repeated = {c.get("eval") for c in self.cases if _int(c.get("sample")) > 0}
        base_outcomes, flipped_fail, flipped_pass = self._baseline_outcomes()
        has_baseline = self.old_results is not None or self.comparison is not None

        # Rows: one per (eval, case); a cell is one (row, model, sample) case.
        row_keys: dict[tuple[int, str], int] = {}
        row_eval: list[int] = []
        row_label: list[str] = []
        cell_rows: list[int] = []
        groups: dict[tuple[str, str], list[Mapping[str, Any]]] = defaultdict(list)
        for case in self.cases:
            eval_name = _eval_of(case)
            groups[(eval_name, str(case.get("model") or _NO_MODEL))].append(case)
            label = case_label(
                str(case.get("nodeid", "")),
                case.get("model"),
                _int(case.get("sample")),
                strip_sample=eval_name in repeated,
            )
            key = (eval_index[eval_name], label)
            row = row_keys.get(key)
            if row is None:
                row = row_keys[key] = len(row_eval)
                row_eval.append(key[0])
                row_label.append(label)
            cell_rows.append(row)

        cells: dict[str, list[Any]] = {
            k: [] for k in ("row", "model", "sample", "outcome", "score", "base", "nodeid", "detail")
        }
        row_flip = [0] * len(row_eval)  # 2: a cell flipped to fail, 1: only to pass
        for case, row in zip(self.cases, cell_rows, strict=True):
            nodeid = str(case.get("nodeid", ""))
            sample = _int(case.get("sample"))
            outcome = _OUTCOME_CODE.get(str(case.get("outcome")), 2)
            base = base_outcomes.get((nodeid, sample), -1)
            if base < 0 and nodeid in flipped_fail:
                base = 0
            elif base < 0 and nodeid in flipped_pass:
                base = 1
            if base >= 0 and (base == 0) != (outcome == 0):
                row_flip[row] = max(row_flip[row], 2 if base == 0 else 1)
            cells["row"].append(row)
            cells["model"].append(model_index.get(str(case.get("model") or _NO_MODEL), 0))
            cells["sample"].append(sample)
            cells["outcome"].append(outcome)
            cells["score"].append(_num(case.get("score"), 4))
            cells["base"].append(base)
            cells["nodeid"].append(self.strings.add(nodeid))
            cells["detail"].append(self._detail(case))

        # Flipped rows first (to fail, then to pass); otherwise the run's own order.
        old_rates = self._old_rates()
        order = sorted(range(len(row_eval)), key=lambda r: -row_flip[r]) if has_baseline else list(range(len(row_eval)))
        new_pos = {old: new for new, old in enumerate(order)}
        cells["row"] = [new_pos[r] for r in cells["row"]]

        return {
            "v": 1,
            "meta": self._meta(),
            "models": models,
            "evals": [self._eval_entry(name, models, groups, old_rates) for name in eval_names],
            "rows": {
                "eval": [row_eval[r] for r in order],
                "label": [self.strings.add(row_label[r]) for r in order],
            },
            "cells": cells,
            "baseline": self._baseline_meta() if has_baseline else None,
            "strings": self.strings.items,
        }

    def _models(self) -> list[str]:
        seen: dict[str, None] = {}
        for entry in self.results.get("evals") or ():
            if isinstance(entry, Mapping):
                seen.setdefault(str(entry.get("model") or _NO_MODEL), None)
        for case in self.cases:
            seen.setdefault(str(case.get("model") or _NO_MODEL), None)
        return list(seen)

    def _eval_names(self) -> list[str]:
        seen: dict[str, None] = {}
        for entry in self.results.get("evals") or ():
            if isinstance(entry, Mapping) and entry.get("eval"):
                seen.setdefault(str(entry["eval"]), None)
        for case in self.cases:
            seen.setdefault(_eval_of(case), None)
        return list(seen)

    def _meta(self) -> dict[str, Any]:
        r = self.results
        reasons = [str(x) for x in r.get("reasons") or ()]
        passed = r.get("passed")
        return {
            "run_id": str(r.get("run_id") or ""),
            "created_at": str(r.get("created_at") or ""),
            "pytest_args": [str(a) for a in r.get("pytest_args") or ()],
            "passed": passed if isinstance(passed, bool) else None,
            "reasons": reasons,
        }

    def _baseline_meta(self) -> dict[str, Any]:
        comparison = self.comparison or {}
        old = self.old_results or {}
        return {
            "path": str(comparison.get("path") or ""),
            "alpha": _num(comparison.get("alpha")),
            "run_id": str(old.get("run_id") or ""),
            "created_at": str(old.get("created_at") or ""),
        }

    # -- baseline -------------------------------------------------------------------------
    def _baseline_outcomes(self) -> tuple[dict[tuple[str, int], int], set[str], set[str]]:
        outcomes: dict[tuple[str, int], int] = {}
        if self.old_results is not None:
            for case in self.old_results.get("cases") or ():
                if isinstance(case, Mapping):
                    key = (str(case.get("nodeid", "")), _int(case.get("sample")))
                    outcomes[key] = _OUTCOME_CODE.get(str(case.get("outcome")), 2)
        to_fail: set[str] = set()
        to_pass: set[str] = set()
        for entry in (self.comparison or {}).get("evals") or ():
            if isinstance(entry, Mapping):
                to_fail.update(str(n) for n in entry.get("flipped_to_fail") or ())
                to_pass.update(str(n) for n in entry.get("flipped_to_pass") or ())
        return outcomes, to_fail, to_pass

    def _old_rates(self) -> dict[tuple[str, str], float]:
        """Pass rates of the old run by (eval, model), from its evals or else its cases."""
        rates: dict[tuple[str, str], float] = {}
        if self.old_results is None:
            return rates
        for entry in self.old_results.get("evals") or ():
            rate = _num(entry.get("pass_rate")) if isinstance(entry, Mapping) else None
            if rate is not None:
                rates[(str(entry.get("eval")), str(entry.get("model") or _NO_MODEL))] = rate
        tallies: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
        for case in self.old_results.get("cases") or ():
            if isinstance(case, Mapping):
                tally = tallies[(str(case.get("eval")), str(case.get("model") or _NO_MODEL))]
                tally[0] += case.get("outcome") == "passed"
                tally[1] += 1
        for key, (passed, n) in tallies.items():
            rates.setdefault(key, passed / n)
        return rates

    # -- evals ----------------------------------------------------------------------------
    def _eval_entry(
        self,
        name: str,
        models: list[str],
        groups: dict[tuple[str, str], list[Mapping[str, Any]]],
        old_rates: dict[tuple[str, str], float],
    ) -> dict[str, Any]:
        given = {
            str(e.get("model") or _NO_MODEL): e
            for e in self.results.get("evals") or ()
            if isinstance(e, Mapping) and str(e.get("eval")) == name
        }
        by_model = {model: groups[(name, model)] for model in models if (name, model) in groups}
        compared = {
            str(e.get("model") or _NO_MODEL): e
            for e in (self.comparison or {}).get("evals") or ()
            if isinstance(e, Mapping) and str(e.get("eval")) == name
        }
        stats: list[dict[str, Any] | None] = []
        threshold: float | None = None
        for model in models:
            if model not in given and model not in by_model:
                stats.append(None)
                continue
            entry = self._stats(given.get(model, {}), by_model.get(model, []))
            cmp = compared.get(model, {})
            base_rate = _num(cmp.get("base_rate"))
            if base_rate is None:
                base_rate = old_rates.get((name, model))
            entry.update(
                base_rate=base_rate,
                p_value=_num(cmp.get("p_value")),
                n_pairs=_int(cmp.get("n_pairs")) if cmp.get("n_pairs") is not None else None,
                regressed=bool(cmp.get("regressed")) if "regressed" in cmp else None,
            )
            if threshold is None:
                threshold = entry["threshold"]
            stats.append(entry)
        return {"name": name, "threshold": threshold, "stats": stats}

    def _stats(self, given: Mapping[str, Any], cases: list[Mapping[str, Any]]) -> dict[str, Any]:
        """One eval × model: the results' own figures, else computed from its cases."""
        n = len(cases)
        passed = sum(c.get("outcome") == "passed" for c in cases)
        failed = sum(c.get("outcome") == "failed" for c in cases)
        errors = n - passed - failed
        lo, hi = _wilson(passed, n)
        calls = [call for c in cases for call in c.get("calls") or () if isinstance(call, Mapping)]
        latencies = [
            v for call in calls if call.get("role", "llm") != "judge" if (v := _num(call.get("latency_s"))) is not None
        ]
        thresholds = [t for c in cases if (t := _num(c.get("threshold"))) is not None]
        threshold = _num(given.get("threshold"))
        if threshold is None:
            threshold = thresholds[0] if thresholds else None
        rate = _num(given.get("pass_rate"))
        if rate is None:
            rate = passed / n if n else 0.0
        verdict = given.get("verdict")
        if verdict not in ("pass", "fail", "error"):
            verdict = "error" if errors else ("pass" if threshold is None or rate >= threshold else "fail")

        def pick(key: str, computed: Any) -> Any:
            value = given.get(key)
            return computed if value is None else value

        def tally(key: str) -> int:
            return sum(_int(call.get(key)) for call in calls)

        return {
            "cases": _int(pick("cases", n)),
            "passed": _int(pick("passed", passed)),
            "failed": _int(pick("failed", failed)),
            "errors": _int(pick("errors", errors)),
            "rate": rate,
            "lo": _num(pick("ci_low", lo)),
            "hi": _num(pick("ci_high", hi)),
            "threshold": threshold,
            "verdict": verdict,
            "input_tokens": _int(pick("input_tokens", tally("input_tokens"))),
            "output_tokens": _int(pick("output_tokens", tally("output_tokens"))),
            "cached_input_tokens": _int(pick("cached_input_tokens", tally("cached_input_tokens"))),
            "cost_usd": _num(pick("cost_usd", sum(_num(call.get("cost_usd")) or 0.0 for call in calls)), 6),
            "latency_p50_s": _num(pick("latency_p50_s", _percentile(latencies, 0.5)), 4),
            "latency_p95_s": _num(pick("latency_p95_s", _percentile(latencies, 0.95)), 4),
            "cache_hits": _int(pick("cache_hits", sum(bool(call.get("cached")) for call in calls))),
            "calls": _int(pick("calls", len(calls))),
            "repeat": _int(given.get("repeat")) or None,
            "pass_at_k": _k_table(given.get("pass_at_k")),
            "pass_hat_k": _k_table(given.get("pass_hat_k")),
            "reason": str(given.get("verdict_reason") or ""),
        }

    # -- one case's detail ----------------------------------------------------------------
    def _detail(self, case: Mapping[str, Any]) -> list[Any]:
        """``[prompt, output, error, results, calls, threshold, tags, output_chars, duration_s]``,
        strings as indices.

        The prompt is stored as one JSON text, so the same messages sent to every model
        are stored once.
        """
        add = self.strings.add
        prompt = case.get("prompt")
        results = []
        for result in case.get("results") or ():
            if not isinstance(result, Mapping):
                continue
            extra = {k: v for k, v in result.items() if k not in _RESULT_KEYS and v not in (None, {}, [], "")}
            passed = result.get("passed")
            results.append(
                [
                    add(str(result.get("name", "check"))),
                    1 if passed else 0,
                    _num(result.get("score"), 4),
                    add(result.get("expected")),
                    add(result.get("actual")),
                    add(result.get("explanation")),
                    add(result.get("reasoning")),
                    add(result.get("judge_model")),
                    add(result.get("label")),
                    add(result.get("raw")),
                    add(extra) if extra else -1,
                ]
            )
        calls = []
        for call in case.get("calls") or ():
            if not isinstance(call, Mapping):
                continue
            calls.append(
                [
                    add(str(call.get("role") or "llm")),
                    add(str(call.get("model") or "")),
                    1 if call.get("cached") else 0,
                    _num(call.get("latency_s"), 4),
                    _int(call.get("input_tokens")),
                    _int(call.get("output_tokens")),
                    _int(call.get("cached_input_tokens")),
                    _num(call.get("cost_usd"), 8),
                ]
            )
        tags = [add(str(t)) for t in case.get("tags") or ()]
        return [
            add(_PROMPT_JSON.encode(prompt)) if prompt is not None else -1,
            add(case.get("output")),
            add(case.get("error")),
            results,
            calls,
            _num(case.get("threshold")),
            tags,
            _int(case.get("output_chars")) or None,
            _num(case.get("duration_s"), 3),
        ]


def _eval_of(case: Mapping[str, Any]) -> str:
    """The eval a case belongs to: its ``eval`` field, else its node id without parameters."""
    return str(case.get("eval") or str(case.get("nodeid", "")).split("[", 1)[0])


def _k_table(value: Any) -> list[list[Any]] | None:
    if not isinstance(value, Mapping) or not value:
        return None
    rows = [[str(k), _num(v)] for k, v in value.items()]
    return sorted(rows, key=lambda kv: _int(kv[0]) if str(kv[0]).isdigit() else 0)


def cases_to_results(
    cases: Iterable[Mapping[str, Any]], *, run_id: str = "", pytest_args: Iterable[str] = ()
) -> dict[str, Any]:
    """A minimal results dict from the plugin's per-case dicts, for when no full one exists.

    The report computes pass rates, intervals and verdicts from the cases itself.
    """
    from datetime import datetime, timezone

    return {
        "schema": "pytest-llmeval/results",
        "version": 1,
        "run_id": run_id,
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "pytest_args": list(pytest_args),
        "passed": None,
        "reasons": [],
        "evals": [],
        "cases": [dict(c) for c in cases],
        "baseline": None,
    }


_STYLE = r"""
:root { --pass:#1f8a4c; --fail:#c62828; --error:#b26a00; --none:#c9ced6; --ink:#1d2430; --muted:#5c6675;
  --line:#e3e7ee; --bg:#f6f8fb; --card:#fff; --accent:#2f5fd0; }
* { box-sizing: border-box; }
body { margin:0; font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;
  color:var(--ink); background:var(--bg); }
header.top { padding:18px 28px 14px; background:var(--card); border-bottom:1px solid var(--line); }
h1 { font-size:20px; margin:0 0 4px; display:flex; align-items:center; gap:10px; }
h2 { font-size:16px; margin:0 0 10px; }
h3 { font-size:14px; margin:0 0 6px; word-break:break-all; }
.sub { color:var(--muted); font-size:12.5px; }
.badge { display:inline-block; padding:1px 8px; border-radius:10px; font-size:12px; font-weight:600; color:#fff; }
.badge.pass, .badge.passed { background:var(--pass); } .badge.fail, .badge.failed { background:var(--fail); }
.badge.error { background:var(--error); } .badge.unknown { background:var(--muted); }
main { padding:18px 28px 40px; }
section.card { background:var(--card); border:1px solid var(--line); border-radius:8px; padding:14px 16px; margin-bottom:16px; }
.evals { display:grid; grid-template-columns:repeat(auto-fill,minmax(460px,1fr)); gap:16px; margin-bottom:16px; }
.scroll { overflow-x:auto; }
.stats td:first-child { white-space:nowrap; }
@media (min-width:1400px) { body.detail-open main, body.detail-open header.top { margin-right:min(660px,92vw); } }
.evals section.card { margin:0; }
table { border-collapse:collapse; width:100%; }
th, td { text-align:left; padding:4px 8px; border-bottom:1px solid var(--line); vertical-align:top; }
th { font-size:12px; color:var(--muted); font-weight:600; white-space:nowrap; }
td.num, th.num { text-align:right; font-variant-numeric:tabular-nums; white-space:nowrap; }
.stats td, .stats th { font-size:12.5px; padding:3px 6px; }
svg.chart { display:block; max-width:100%; height:auto; margin-bottom:8px; }
svg.chart text { font-size:11.5px; fill:var(--ink); font-family:inherit; }
svg.chart .axis { stroke:var(--line); } svg.chart .tick { fill:var(--muted); font-size:10px; }
svg.chart .track { fill:#eef1f5; }
svg.chart .bar.pass { fill:var(--pass); } svg.chart .bar.fail { fill:var(--fail); } svg.chart .bar.error { fill:var(--error); }
svg.chart .whisker { stroke:var(--ink); stroke-width:1.4; }
svg.chart .threshold { stroke:#333; stroke-width:1.5; stroke-dasharray:4 3; }
svg.chart .base-mark { fill:#fff; stroke:var(--ink); stroke-width:1.3; }
.delta.down { color:var(--fail); font-weight:600; } .delta.up { color:var(--pass); font-weight:600; }
.flips { list-style:none; margin:8px 0 0; padding:0; max-height:220px; overflow:auto; }
.flips li { padding:2px 0; }
.linkish { background:none; border:none; padding:0; color:var(--accent); cursor:pointer; font:inherit; text-align:left; }
.linkish:hover { text-decoration:underline; }
.toolbar { display:flex; flex-wrap:wrap; gap:14px; align-items:center; margin-bottom:10px; }
.toolbar label { display:flex; gap:5px; align-items:center; font-size:13px; }
.toolbar input[type=search] { width:260px; padding:4px 8px; border:1px solid #c4cad4; border-radius:5px; font:inherit; }
.toolbar select { padding:3px 6px; font:inherit; }
.pager { display:flex; gap:8px; align-items:center; font-size:12.5px; color:var(--muted); margin-top:8px; }
.pager button { font:inherit; padding:2px 10px; }
#matrix td { vertical-align:middle; }
#matrix td.case { word-break:break-all; max-width:420px; }
#matrix td.evalname { color:var(--muted); font-size:12px; white-space:nowrap; }
#matrix td.m { white-space:nowrap; }
button.cell { width:22px; height:22px; border-radius:4px; border:2px solid transparent; margin:0 2px 0 0; cursor:pointer;
  padding:0; vertical-align:middle; color:#fff; font-size:11px; line-height:18px; }
button.cell.o0 { background:var(--pass); } button.cell.o1 { background:var(--fail); } button.cell.o2 { background:var(--error); }
button.cell.flip { border-color:#111; box-shadow:0 0 0 1px #fff inset; }
button.cell.sel { outline:3px solid var(--accent); outline-offset:1px; }
.nocell { color:var(--none); }
.legend { display:flex; gap:14px; font-size:12px; color:var(--muted); align-items:center; }
.legend i { display:inline-block; width:12px; height:12px; border-radius:3px; vertical-align:-2px; margin-right:4px; }
aside#detail { position:fixed; top:0; right:0; bottom:0; width:min(660px,92vw); background:var(--card);
  border-left:1px solid var(--line); box-shadow:-6px 0 24px rgba(20,30,50,.12); overflow:auto; padding:16px 20px 40px; z-index:5; }
aside#detail[hidden] { display:none; }
aside#detail .close { position:sticky; top:0; float:right; font-size:18px; background:#fff; border:1px solid var(--line);
  border-radius:6px; cursor:pointer; width:30px; height:30px; }
.kv { display:grid; grid-template-columns:120px 1fr; gap:2px 10px; font-size:12.5px; margin:8px 0; }
.kv dt { color:var(--muted); } .kv dd { margin:0; word-break:break-word; }
pre { white-space:pre-wrap; word-break:break-word; background:#f3f5f9; border:1px solid var(--line); border-radius:6px;
  padding:8px 10px; margin:4px 0 10px; font:12.5px/1.45 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace; max-height:360px; overflow:auto; }
.msg-role { font-size:11px; text-transform:uppercase; letter-spacing:.04em; color:var(--muted); }
.check { border:1px solid var(--line); border-radius:6px; padding:8px 10px; margin-bottom:8px; }
.check .head { display:flex; gap:8px; align-items:center; font-weight:600; }
details summary { cursor:pointer; color:var(--muted); font-size:12.5px; }
.empty { color:var(--muted); font-style:italic; }
"""

_SCRIPT = r"""
(function () {
  "use strict";
  const D = JSON.parse(document.getElementById("llmeval-data").textContent);
  const S = D.strings, C = D.cells, R = D.rows, MODELS = D.models, EVALS = D.evals;
  const OUT = ["passed", "failed", "error"];
  const SVGNS = "http://www.w3.org/2000/svg";
  const NROWS = R.eval.length, NCELLS = C.row.length;

  // -- helpers: data only ever reaches the page as text nodes or attribute values --------
  function str(i) { return (i === null || i === undefined || i < 0) ? null : S[i]; }
  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  function put(parent) { for (let i = 1; i < arguments.length; i++) { const c = arguments[i];
    if (c !== null && c !== undefined) parent.appendChild(typeof c === "string" ? document.createTextNode(c) : c); } return parent; }
  function child(parent, c) { parent.appendChild(c); return c; }
  function svg(tag, attrs, text) {
    const e = document.createElementNS(SVGNS, tag);
    for (const k in attrs) e.setAttribute(k, String(attrs[k]));
    if (text !== undefined) e.textContent = String(text);
    return e;
  }
  function pct(x, d) { return (x === null || x === undefined) ? "–" : (x * 100).toFixed(d === undefined ? 1 : d) + "%"; }
  function num(x) { return (x === null || x === undefined) ? "–" : Number(x).toLocaleString("en-US"); }
  function usd(x) { return (x === null || x === undefined) ? "–" : "$" + (x < 0.01 && x > 0 ? x.toPrecision(2) : x.toFixed(4)); }
  function secs(x) { return (x === null || x === undefined) ? "–" : (x < 1 ? (x * 1000).toFixed(0) + " ms" : x.toFixed(2) + " s"); }
  function shortEval(name) { const i = name.lastIndexOf("::"); return i >= 0 ? name.slice(i + 2) : name; }
  function badge(kind, text) { return el("span", "badge " + kind, text); }
  function flipOf(ci) { const b = C.base[ci], o = C.outcome[ci];
    if (b < 0 || (b === 0) === (o === 0)) return 0; return b === 0 ? 2 : 1; }  // 2: to fail, 1: to pass

  // -- per-row index --------------------------------------------------------------------
  const rowCells = new Array(NROWS);
  for (let r = 0; r < NROWS; r++) rowCells[r] = [];
  for (let ci = 0; ci < NCELLS; ci++) rowCells[C.row[ci]].push(ci);
  for (let r = 0; r < NROWS; r++) rowCells[r].sort((a, b) => C.model[a] - C.model[b] || C.sample[a] - C.sample[b]);
  let haystacks = null;  // built on the first search only
  function haystack(r) {
    if (haystacks === null) haystacks = new Array(NROWS);
    let h = haystacks[r];
    if (h === undefined) {
      const parts = [EVALS[R.eval[r]].name, str(R.label[r]) || ""];
      for (const ci of rowCells[r]) { const d = C.detail[ci];
        parts.push(str(C.nodeid[ci]) || "", str(d[1]) || "", str(d[2]) || ""); }
      h = haystacks[r] = parts.join("\n").toLowerCase();
    }
    return h;
  }

  // -- header ---------------------------------------------------------------------------
  function renderHeader() {
    const m = D.meta, head = document.getElementById("summary");
    const h1 = el("h1", null, "LLM eval report");
    if (m.passed === true) put(h1, badge("pass", "run passed"));
    else if (m.passed === false) put(h1, badge("fail", "run failed"));
    put(head, h1);
    let total = 0, passed = 0, cost = 0, tin = 0, tout = 0;
    for (let ci = 0; ci < NCELLS; ci++) { total++; if (C.outcome[ci] === 0) passed++; }
    for (const ev of EVALS) for (const s of ev.stats) if (s) { cost += s.cost_usd || 0; tin += s.input_tokens; tout += s.output_tokens; }
    const bits = [];
    if (m.run_id) bits.push("run " + m.run_id);
    if (m.created_at) bits.push(m.created_at);
    bits.push(EVALS.length + " eval" + (EVALS.length === 1 ? "" : "s") + ", " + MODELS.length + " model" + (MODELS.length === 1 ? "" : "s"));
    bits.push(num(total) + " cases, " + num(passed) + " passed (" + pct(total ? passed / total : null) + ")");
    bits.push(num(tin) + " input / " + num(tout) + " output tokens, " + usd(cost));
    put(head, el("div", "sub", bits.join(" · ")));
    if (m.pytest_args && m.pytest_args.length) put(head, el("div", "sub", "pytest " + m.pytest_args.join(" ")));
    if (m.reasons && m.reasons.length) {
      const ul = el("ul", "sub");
      for (const reason of m.reasons) put(ul, el("li", null, reason));
      put(head, ul);
    }
  }

  // -- charts ---------------------------------------------------------------------------
  function chart(ev) {
    const idx = [];
    ev.stats.forEach((s, i) => { if (s) idx.push(i); });
    const left = 190, plotW = 260, right = 120, top = 22, rowH = 28;
    const W = left + plotW + right, H = top + idx.length * rowH + 20;
    const root = svg("svg", { "class": "chart", viewBox: "0 0 " + W + " " + H, width: W, height: H, role: "img" });
    root.setAttribute("data-eval", ev.name);
    put(root, svg("title", {}, "Pass rate per model with 95% interval: " + ev.name));
    const x = (v) => left + Math.max(0, Math.min(1, v)) * plotW;
    for (const t of [0, 0.25, 0.5, 0.75, 1]) {
      put(root, svg("line", { "class": "axis", x1: x(t), x2: x(t), y1: top - 4, y2: H - 16 }));
      put(root, svg("text", { "class": "tick", x: x(t), y: H - 4, "text-anchor": "middle" }, (t * 100) + "%"));
    }
    idx.forEach((mi, k) => {
      const s = ev.stats[mi], y = top + k * rowH, mid = y + 10;
      let name = MODELS[mi]; if (name.length > 30) name = "…" + name.slice(-29);
      const label = svg("text", { x: left - 8, y: mid + 4, "text-anchor": "end" }, name);
      put(label, svg("title", {}, MODELS[mi]));
      put(root, label);
      put(root, svg("rect", { "class": "track", x: x(0), y: y + 2, width: plotW, height: 16, rx: 2 }));
      const bar = svg("rect", { "class": "bar " + s.verdict, x: x(0), y: y + 2, width: Math.max(0, x(s.rate) - x(0)), height: 16, rx: 2 });
      bar.setAttribute("data-model", MODELS[mi]);
      put(bar, svg("title", {}, MODELS[mi] + ": " + pct(s.rate) + " (" + s.passed + "/" + s.cases + "), 95% interval " +
        pct(s.lo, 0) + "–" + pct(s.hi, 0) + ", verdict " + s.verdict));
      put(root, bar);
      if (s.lo !== null && s.hi !== null) {
        put(root, svg("line", { "class": "whisker", x1: x(s.lo), x2: x(s.hi), y1: mid, y2: mid }));
        put(root, svg("line", { "class": "whisker", x1: x(s.lo), x2: x(s.lo), y1: mid - 5, y2: mid + 5 }));
        put(root, svg("line", { "class": "whisker", x1: x(s.hi), x2: x(s.hi), y1: mid - 5, y2: mid + 5 }));
      }
      if (s.base_rate !== null && s.base_rate !== undefined) {
        const bx = x(s.base_rate);
        const mark = svg("path", { "class": "base-mark", d: "M" + bx + " " + (mid - 6) + " l5 6 l-5 6 l-5 -6 z" });
        put(mark, svg("title", {}, "baseline " + pct(s.base_rate)));
        put(root, mark);
      }
      const txt = pct(s.rate) + " [" + (s.lo === null ? "–" : (s.lo * 100).toFixed(0)) + "–" + pct(s.hi, 0) + "]";
      put(root, svg("text", { x: left + plotW + 8, y: mid + 4 }, txt));
    });
    if (ev.threshold !== null && ev.threshold !== undefined) {
      const tx = x(ev.threshold);
      put(root, svg("line", { "class": "threshold", x1: tx, x2: tx, y1: top - 6, y2: H - 16 }));
      put(root, svg("text", { x: tx, y: top - 10, "text-anchor": ev.threshold > 0.8 ? "end" : "middle" }, "threshold " + pct(ev.threshold, 0)));
    }
    return root;
  }

  function statsTable(ev) {
    const t = el("table", "stats");
    const hr = el("tr");
    const cols = ["model", "pass / fail / err", "rate", "tokens in / out", "cost", "latency p50 / p95", "cached"];
    const hasK = ev.stats.some((s) => s && s.pass_at_k && s.pass_at_k.length > 1);
    if (hasK) cols.push("pass@k");
    cols.forEach((c, i) => put(hr, el("th", i ? "num" : null, c)));
    put(t, put(el("thead"), hr));
    const tb = child(t, el("tbody"));
    ev.stats.forEach((s, mi) => {
      if (!s) return;
      const tr = child(tb, el("tr"));
      const verdict = badge(s.verdict, s.verdict);
      if (s.reason) verdict.setAttribute("title", s.reason);
      const name = put(el("td"), verdict, " ", MODELS[mi]);
      put(tr, name, el("td", "num", num(s.passed) + " / " + num(s.failed) + " / " + num(s.errors)), el("td", "num", pct(s.rate)),
        el("td", "num", num(s.input_tokens) + " / " + num(s.output_tokens)), el("td", "num", usd(s.cost_usd)),
        el("td", "num", secs(s.latency_p50_s) + " / " + secs(s.latency_p95_s)), el("td", "num", num(s.cache_hits) + "/" + num(s.calls)));
      if (hasK) put(tr, el("td", "num", (s.pass_at_k || []).map((kv) => "@" + kv[0] + " " + pct(kv[1], 0)).join(", ")));
    });
    return t;
  }

  function renderEvals() {
    const box = document.getElementById("evals");
    for (const ev of EVALS) {
      const card = child(box, el("section", "card eval"));
      put(card, el("h3", null, ev.name));
      put(card, el("div", "sub", "threshold " + pct(ev.threshold, 0)));
      put(card, chart(ev), put(el("div", "scroll"), statsTable(ev)));
    }
  }

  // -- baseline -------------------------------------------------------------------------
  function renderBaseline() {
    const B = D.baseline, box = document.getElementById("baseline");
    if (!B) { box.hidden = true; return; }
    put(box, el("h2", null, "Against the baseline"));
    const src = [B.path, B.run_id ? "run " + B.run_id : "", B.created_at, B.alpha !== null ? "alpha " + B.alpha : ""].filter(Boolean);
    if (src.length) put(box, el("div", "sub", src.join(" · ")));
    const flips = new Map();
    for (let ci = 0; ci < NCELLS; ci++) { const f = flipOf(ci); if (f) { const k = R.eval[C.row[ci]] + "/" + C.model[ci];
      const v = flips.get(k) || [0, 0]; v[f === 2 ? 0 : 1]++; flips.set(k, v); } }
    const t = el("table", "stats deltas");
    const hr = el("tr");
    for (const c of ["eval", "model", "baseline", "now", "delta", "p-value", "flipped to fail", "flipped to pass", ""]) put(hr, el("th", c === "eval" || c === "model" ? null : "num", c));
    put(t, put(el("thead"), hr));
    const tb = child(t, el("tbody"));
    EVALS.forEach((ev, ei) => ev.stats.forEach((s, mi) => {
      if (!s) return;
      const f = flips.get(ei + "/" + mi) || [0, 0];
      const d = (s.base_rate === null || s.base_rate === undefined) ? null : s.rate - s.base_rate;
      const dcell = el("td", "num delta" + (d === null ? "" : d < 0 ? " down" : d > 0 ? " up" : ""),
        d === null ? "–" : (d > 0 ? "+" : "") + (d * 100).toFixed(1) + " pp");
      put(tb, put(el("tr"), el("td", null, shortEval(ev.name)), el("td", null, MODELS[mi]), el("td", "num", pct(s.base_rate)),
        el("td", "num", pct(s.rate)), dcell, el("td", "num", s.p_value === null ? "–" : s.p_value.toPrecision(2)),
        el("td", "num", num(f[0])), el("td", "num", num(f[1])),
        put(el("td"), s.regressed ? badge("fail", "regressed") : null)));
    }));
    put(box, put(el("div", "scroll"), t));
    const list = [];
    for (let ci = 0; ci < NCELLS; ci++) if (flipOf(ci)) list.push(ci);
    list.sort((a, b) => flipOf(b) - flipOf(a) || C.row[a] - C.row[b]);
    put(box, el("h3", null, "Flipped cases (" + list.length + ")"));
    if (!list.length) { put(box, el("div", "empty", "No case changed outcome.")); return; }
    const ul = child(box, el("ul", "flips"));
    for (const ci of list.slice(0, 200)) {
      const f = flipOf(ci);
      const b = el("button", "linkish flip-link");
      b.setAttribute("data-cell", ci);
      b.textContent = (f === 2 ? "▼ " : "▲ ") + shortEval(EVALS[R.eval[C.row[ci]]].name) + " · " + (str(R.label[C.row[ci]]) || "(no case id)") +
        " — " + MODELS[C.model[ci]] + ": " + OUT[C.base[ci]] + " → " + OUT[C.outcome[ci]];
      b.addEventListener("click", () => showDetail(ci));
      put(ul, put(el("li"), b));
    }
    if (list.length > 200) put(box, el("div", "sub", "…and " + (list.length - 200) + " more: use “flipped only” below."));
  }

  // -- matrix ---------------------------------------------------------------------------
  const state = { failures: false, flipped: false, model: -1, evalIdx: -1, q: "", page: 0, size: 100 };
  let visible = [];
  let selected = -1;

  function rowVisibleCells(r) {
    return state.model < 0 ? rowCells[r] : rowCells[r].filter((ci) => C.model[ci] === state.model);
  }
  function applyFilters() {
    const q = state.q.trim().toLowerCase();
    const out = [];
    for (let r = 0; r < NROWS; r++) {
      if (state.evalIdx >= 0 && R.eval[r] !== state.evalIdx) continue;
      const cells = rowVisibleCells(r);
      if (!cells.length) continue;
      if (state.failures && !cells.some((ci) => C.outcome[ci] !== 0)) continue;
      if (state.flipped && !cells.some((ci) => flipOf(ci) !== 0)) continue;
      if (q && haystack(r).indexOf(q) < 0) continue;
      out.push(r);
    }
    visible = out;
    state.page = 0;
    renderPage();
  }

  function cellButton(ci) {
    const o = C.outcome[ci], f = flipOf(ci);
    const b = el("button", "cell o" + o + (f ? " flip" : "") + (ci === selected ? " sel" : ""), f === 2 ? "▼" : f === 1 ? "▲" : "");
    let tip = OUT[o] + " · score " + (C.score[ci] === null ? "–" : C.score[ci]);
    if (C.sample[ci] || rowCells[C.row[ci]].some((x) => C.sample[x] > 0)) tip += " · sample " + C.sample[ci];
    if (C.base[ci] >= 0) tip += " · baseline " + OUT[C.base[ci]];
    tip += "\n" + MODELS[C.model[ci]];
    b.setAttribute("title", tip);
    b.setAttribute("aria-label", tip);
    b.setAttribute("data-cell", ci);
    b.setAttribute("data-outcome", OUT[o]);
    return b;
  }

  function renderPage() {
    const cols = state.model < 0 ? MODELS.map((_, i) => i) : [state.model];
    const table = document.getElementById("matrix");
    const thead = el("thead"), hr = child(thead, el("tr"));
    put(hr, el("th", null, "eval"), el("th", null, "case"));
    for (const mi of cols) put(hr, el("th", null, MODELS[mi]));
    const tbody = el("tbody");
    const pages = Math.max(1, Math.ceil(visible.length / state.size));
    state.page = Math.min(state.page, pages - 1);
    const start = state.page * state.size, end = Math.min(visible.length, start + state.size);
    for (let i = start; i < end; i++) {
      const r = visible[i], tr = child(tbody, el("tr"));
      tr.setAttribute("data-row", r);
      put(tr, el("td", "evalname", shortEval(EVALS[R.eval[r]].name)), el("td", "case", str(R.label[r]) || "(no case id)"));
      const cells = rowCells[r];
      for (const mi of cols) {
        const td = child(tr, el("td", "m"));
        let any = false;
        for (const ci of cells) if (C.model[ci] === mi) { put(td, cellButton(ci)); any = true; }
        if (!any) put(td, el("span", "nocell", "–"));
      }
    }
    table.replaceChildren(thead, tbody);
    const total = NROWS;
    document.getElementById("row-count").textContent = visible.length === 0 ? "No case matches these filters." :
      "Cases " + num(start + 1) + "–" + num(end) + " of " + num(visible.length) + (visible.length !== total ? " (filtered from " + num(total) + ")" : "");
    document.getElementById("page-info").textContent = "page " + (state.page + 1) + " / " + pages;
    document.getElementById("prev").disabled = state.page === 0;
    document.getElementById("next").disabled = state.page >= pages - 1;
  }

  function renderControls() {
    const msel = document.getElementById("filter-model");
    MODELS.forEach((m, i) => { const o = el("option", null, m); o.value = String(i); put(msel, o); });
    const esel = document.getElementById("filter-eval");
    EVALS.forEach((ev, i) => { const o = el("option", null, shortEval(ev.name)); o.value = String(i); o.title = ev.name; put(esel, o); });
    if (!D.baseline) document.getElementById("flipped-wrap").hidden = true;
    document.getElementById("filter-failures").addEventListener("change", (e) => { state.failures = e.target.checked; applyFilters(); });
    document.getElementById("filter-flipped").addEventListener("change", (e) => { state.flipped = e.target.checked; applyFilters(); });
    msel.addEventListener("change", (e) => { state.model = Number(e.target.value); applyFilters(); });
    esel.addEventListener("change", (e) => { state.evalIdx = Number(e.target.value); applyFilters(); });
    let timer = 0;
    document.getElementById("filter-search").addEventListener("input", (e) => {
      clearTimeout(timer); const v = e.target.value;
      timer = setTimeout(() => { state.q = v; applyFilters(); }, 120);
    });
    document.getElementById("page-size").addEventListener("change", (e) => { state.size = Number(e.target.value); state.page = 0; renderPage(); });
    document.getElementById("prev").addEventListener("click", () => { state.page--; renderPage(); });
    document.getElementById("next").addEventListener("click", () => { state.page++; renderPage(); });
    document.getElementById("matrix").addEventListener("click", (e) => {
      const b = e.target.closest("button.cell"); if (b) showDetail(Number(b.getAttribute("data-cell")));
    });
    document.getElementById("close-detail").addEventListener("click", hideDetail);
    document.addEventListener("keydown", (e) => { if (e.key === "Escape") hideDetail(); });
  }

  // -- one case -------------------------------------------------------------------------
  function section(parent, title) { put(parent, el("h3", null, title)); }
  function textBlock(parent, text, emptyText) { put(parent, text === null ? el("div", "empty", emptyText) : el("pre", null, text)); }
  function kv(pairs) {
    const dl = el("dl", "kv");
    for (const [k, v] of pairs) if (v !== null && v !== undefined && v !== "") put(dl, el("dt", null, k), typeof v === "object" ? put(el("dd"), v) : el("dd", null, v));
    return dl;
  }
  function renderPrompt(parent, idx) {
    const raw = str(idx);
    if (raw === null) { put(parent, el("div", "empty", "No prompt recorded.")); return; }
    let msgs; try { msgs = JSON.parse(raw); } catch (err) { msgs = raw; }
    if (!Array.isArray(msgs)) { textBlock(parent, typeof msgs === "string" ? msgs : JSON.stringify(msgs, null, 2)); return; }
    for (const m of msgs) {
      const role = m && typeof m === "object" && m.role !== undefined ? String(m.role) : "message";
      let content = m && typeof m === "object" && "content" in m ? m.content : m;
      if (Array.isArray(content) && content.every((p) => p && p.type === "text" && typeof p.text === "string")) content = content.map((p) => p.text).join("\n");
      put(parent, el("div", "msg-role", role));
      textBlock(parent, typeof content === "string" ? content : JSON.stringify(content, null, 2));
    }
  }

  function showDetail(ci) {
    selected = ci;
    const d = C.detail[ci], r = C.row[ci], o = C.outcome[ci], f = flipOf(ci);
    const panel = document.getElementById("detail"), body = document.getElementById("detail-body");
    body.replaceChildren();
    const title = put(el("h2"), badge(OUT[o], OUT[o]), " ", str(R.label[r]) || shortEval(EVALS[R.eval[r]].name));
    put(body, title);
    const tags = d[6].map(str).join(", ");
    put(body, kv([["model", MODELS[C.model[ci]]], ["eval", EVALS[R.eval[r]].name], ["test id", str(C.nodeid[ci])],
      ["sample", String(C.sample[ci])], ["score", C.score[ci] === null ? "–" : String(C.score[ci])],
      ["threshold", d[5] === null ? null : pct(d[5], 0)], ["tags", tags], ["duration", d[8] === null ? null : secs(d[8])],
      ["baseline", C.base[ci] >= 0 ? OUT[C.base[ci]] + (f ? " → " + OUT[o] + " (flipped)" : " (unchanged)") : null]]));
    if (d[2] >= 0) { section(body, "Error"); textBlock(body, str(d[2])); }
    section(body, "Prompt"); renderPrompt(body, d[0]);
    section(body, "Output"); textBlock(body, str(d[1]), "No output recorded.");
    if (d[7] && str(d[1]) !== null && d[7] > str(d[1]).length) put(body, el("div", "sub", "Shortened in the results file: the full output has " + num(d[7]) + " characters."));
    section(body, "Checks (" + d[3].length + ")");
    if (!d[3].length) put(body, el("div", "empty", "No check or grade recorded."));
    for (const res of d[3]) {
      const box = child(body, el("div", "check"));
      put(box, put(el("div", "head"), badge(res[1] ? "pass" : "fail", res[1] ? "PASS" : "FAIL"), el("span", null, str(res[0])),
        el("span", "sub", res[2] === null ? "" : "score " + res[2])));
      put(box, kv([["expected", str(res[3]) === null ? null : el("pre", null, str(res[3]))],
        ["actual", str(res[4]) === null ? null : el("pre", null, str(res[4]))],
        ["explanation", str(res[5])], ["judge", str(res[7])], ["label", str(res[8])],
        ["reasoning", str(res[6]) === null ? null : el("pre", null, str(res[6]))]]));
      if (res[9] >= 0) { const det = child(box, el("details")); put(det, el("summary", null, "raw judge reply")); textBlock(det, str(res[9])); }
      if (res[10] >= 0) { const det = child(box, el("details")); put(det, el("summary", null, "more")); textBlock(det, str(res[10])); }
    }
    section(body, "Model calls (" + d[4].length + ")");
    if (!d[4].length) put(body, el("div", "empty", "No model call recorded."));
    else {
      const t = child(body, el("table", "stats calls"));
      const hr = el("tr");
      for (const c of ["role", "model", "cached", "latency", "input", "output", "cached input", "cost"]) put(hr, el("th", c === "role" || c === "model" ? null : "num", c));
      put(t, put(el("thead"), hr));
      const tb = child(t, el("tbody"));
      for (const c of d[4]) put(tb, put(el("tr"), el("td", null, str(c[0])), el("td", null, str(c[1])), el("td", "num", c[2] ? "yes" : "no"),
        el("td", "num", secs(c[3])), el("td", "num", num(c[4])), el("td", "num", num(c[5])), el("td", "num", num(c[6])), el("td", "num", usd(c[7]))));
    }
    panel.hidden = false;
    document.body.classList.add("detail-open");
    panel.scrollTop = 0;
    for (const b of document.querySelectorAll("button.cell.sel")) b.classList.remove("sel");
    const mine = document.querySelector('button.cell[data-cell="' + ci + '"]');
    if (mine) mine.classList.add("sel");
  }
  function hideDetail() { document.getElementById("detail").hidden = true; selected = -1;
    document.body.classList.remove("detail-open");
    for (const b of document.querySelectorAll("button.cell.sel")) b.classList.remove("sel"); }

  renderHeader();
  renderBaseline();
  renderEvals();
  renderControls();
  applyFilters();
  document.documentElement.setAttribute("data-ready", "1");
})();
"""

_TEMPLATE = (
    """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="pytest-llmeval">
<title>LLM eval report</title>
<style>"""
    + _STYLE
    + """</style>
</head>
<body>
<header class="top" id="summary"></header>
<main>
<section class="card" id="baseline"></section>
<div class="evals" id="evals"></div>
<section class="card">
<h2>Cases × models</h2>
<div class="toolbar">
<label><input type="checkbox" id="filter-failures"> failures only</label>
<label id="flipped-wrap"><input type="checkbox" id="filter-flipped"> flipped only</label>
<label>model <select id="filter-model"><option value="-1">all models</option></select></label>
<label>eval <select id="filter-eval"><option value="-1">all evals</option></select></label>
<label><input type="search" id="filter-search" placeholder="search case, test id, output, error"></label>
<span class="legend"><span><i style="background:var(--pass)"></i>passed</span><span><i style="background:var(--fail)"></i>failed</span><span><i style="background:var(--error)"></i>error</span><span>▼▲ flipped since baseline</span></span>
</div>
<table id="matrix"></table>
<div class="pager"><button id="prev" type="button">‹ prev</button><button id="next" type="button">next ›</button>
<span id="page-info"></span><span id="row-count"></span>
<label>rows per page <select id="page-size"><option>50</option><option selected>100</option><option>500</option></select></label></div>
</section>
<noscript>This report needs JavaScript to draw its charts and table.</noscript>
</main>
<aside id="detail" hidden><button class="close" id="close-detail" type="button" aria-label="close">×</button><div id="detail-body"></div></aside>
<script type="application/json" id="llmeval-data">@@DATA@@</script>
<script>"""
    + _SCRIPT
    + """</script>
</body>
</html>
"""
)
