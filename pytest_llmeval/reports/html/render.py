"""A self-contained HTML report: per-eval pass-rate charts and a cases × models matrix.

One file, no network: the CSS, the script and the data are inline, charts are SVG drawn by
the script. The page is ``report.html`` with ``report.css`` and ``report.js`` (package data,
real files that tools can lint) put inside it, and the data island filled in. Everything a model wrote is untrusted, so the only data in the page sits in one
``<script type="application/json">`` block in which ``<``, ``>``, ``&``, U+2028 and U+2029
are ``\\uXXXX`` escapes (``</script>`` in an output cannot close the block), and the script
puts data on the page only through ``textContent``, ``setAttribute`` and ``createElement``.
A strict Content-Security-Policy forbids every load.

The figures are the results document's own (its ``evals`` entries and ``baseline`` section,
made by :mod:`pytest_llmeval.gate.results`): the report computes no statistic, so it can
never disagree with the terminal, JUnit or Markdown report. Strings are stored once in a string table and referenced by index, so a prompt shared by
every model, a repeated explanation or a model name costs its bytes once; the matrix renders
one page of rows at a time, so 10,000 cases × 3 models open and filter at once.
"""

from __future__ import annotations

import functools
import json
import math
import operator
import os
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_llmeval.reports.memo import content_key
from pytest_llmeval.text import NO_MODEL, excerpt

if TYPE_CHECKING:
    from pytest_llmeval.gate.results import ResultsDocument

__all__ = ["case_label", "page_template", "render_html", "write_html"]

# Outcome codes used in the page's cell arrays.
_OUTCOME_CODE = {"passed": 0, "failed": 1, "error": 2}
# Keys of a check or grade shown in their own fields; any other key is shown as extra JSON.
_RESULT_KEYS = frozenset(
    {
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
    }
)
# One model output can be megabytes; the report keeps the start and the end of it.
_MAX_TEXT_CHARS = 100_000
# One encoder for every prompt: building one per call is most of the cost of a big report.
_PROMPT_JSON = json.JSONEncoder(ensure_ascii=False, default=str)


def write_html(
    results: ResultsDocument | Mapping[str, Any],
    path: str | os.PathLike[str],
    baseline: ResultsDocument | Mapping[str, Any] | None = None,
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


def render_html(
    results: ResultsDocument | Mapping[str, Any], baseline: ResultsDocument | Mapping[str, Any] | None = None
) -> str:
    """The report as one HTML string (see :func:`write_html`)."""
    payload = _Payload(results, baseline).build()
    before, after = page_template()
    # The data goes in last and is never searched for markers: no output can inject one.
    return before + _script_json(payload) + after


@functools.lru_cache(maxsize=1)
def page_template() -> tuple[str, str]:
    """The page around its data island, ``(before, after)``: ``report.html`` with
    ``report.css`` and ``report.js`` inlined (read once from the package)."""
    from importlib.resources import files

    here = files(__package__ or "pytest_llmeval.reports.html")
    page = here.joinpath("report.html").read_text(encoding="utf-8")
    style = here.joinpath("report.css").read_text(encoding="utf-8")
    script = here.joinpath("report.js").read_text(encoding="utf-8")
    # Inlined text ends its element at the first closing tag: neither file may hold one,
    # and neither may hold a marker that the next substitution would take for its own.
    for name, text, closing in (("report.css", style, "</style"), ("report.js", script, "</script")):
        if closing in text.lower() or "@@" in text:
            raise ValueError(f"{name} must not contain {closing!r} or '@@'")
    if [page.count(m) for m in ("@@STYLE@@", "@@SCRIPT@@", "@@DATA@@")] != [1, 1, 1]:
        raise ValueError("report.html must hold each of @@STYLE@@, @@SCRIPT@@ and @@DATA@@ once")
    page = page.replace("@@STYLE@@", style).replace("@@SCRIPT@@", script)
    before, after = page.split("@@DATA@@")
    return before, after


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
    # The payload is made here, of fresh lists and dicts: it cannot hold a cycle, and the
    # encoder's check for one costs a dict entry per container (hundreds of thousands).
    text = json.dumps(payload, ensure_ascii=False, separators=(",", ":"), allow_nan=False, check_circular=False)
    return (
        text.replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("&", "\\u0026")
        .replace("\u2028", "\\u2028")
        .replace("\u2029", "\\u2029")
    )


def _num(value: Any, digits: int | None = None) -> float | None:
    """A finite float or ``None``: NaN has no JSON form and a missing value stays missing."""
    if type(value) is float:  # the usual case first: this runs for every figure of every case
        if value != value or value in _INFINITIES:
            return None
        return round(value, digits) if digits is not None else value
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    if not math.isfinite(number):
        return None
    return round(number, digits) if digits is not None else number


_INFINITIES = (math.inf, -math.inf)


def _int(value: Any) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


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
        if type(value) is str:
            # Keyed by the text as given too (not only as shortened): a repeated text is
            # one dict hit, which is what most of a big report's strings are.
            found = self.index.get(value)
            if found is not None:
                return found
            if len(value) <= _MAX_TEXT_CHARS:  # a new text, kept whole: one entry
                found = self.index[value] = len(self.items)
                self.items.append(value)
                return found
            text = value
        else:
            text = json.dumps(value, ensure_ascii=False, indent=2, sort_keys=True, default=str)
        shown = text if len(text) <= _MAX_TEXT_CHARS else excerpt(text, _MAX_TEXT_CHARS)
        found = self.index.get(shown)
        if found is None:
            found = self.index[shown] = len(self.items)
            self.items.append(shown)
        if text is value:
            self.index[value] = found
        return found


class _Payload:
    """Turns the results dict into the compact, columnar structure the page script reads."""

    def __init__(self, results: Mapping[str, Any], baseline: Mapping[str, Any] | None) -> None:
        # Mappings, not the TypedDicts: an older or hand-made document renders what it has.
        self.results = results
        self.strings = _Strings()
        self.call_rows: dict[tuple[Any, ...], list[Any]] = {}
        self.result_rows: dict[tuple[Any, ...], list[Any]] = {}
        self.prompt_index: dict[tuple[tuple[str, str], ...], int] = {}
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
        base_outcomes, flipped_fail, flipped_pass, base_views = self._baseline_outcomes()
        has_baseline = self.old_results is not None or self.comparison is not None

        # Rows: one per (eval, case); a cell is one (row, model, sample) case.
        row_keys: dict[tuple[int, str], int] = {}
        row_eval: list[int] = []
        row_label: list[str] = []
        row_flip: list[int] = []  # 2: a cell flipped to fail, 1: only to pass
        cells: dict[str, list[Any]] = {
            k: [] for k in ("row", "model", "sample", "outcome", "score", "base", "nodeid", "detail")
        }
        # One list per column, appended to through its bound method: this runs per case.
        cell_row, cell_model, cell_sample, cell_outcome, cell_score, cell_base, cell_nodeid, cell_detail = (
            column.append for column in cells.values()
        )
        add, detail = self.strings.add, self._detail
        any_base = bool(base_outcomes or flipped_fail or flipped_pass)
        # What the baseline had for each flipped cell: [cell, output, error, output_chars].
        flips: list[list[Any]] = []
        for cell, case in enumerate(self.cases):
            nodeid = str(case.get("nodeid", ""))
            sample = case.get("sample")
            sample = sample if type(sample) is int else _int(sample)
            eval_name = _eval_of(case)
            label = case_label(nodeid, case.get("model"), sample, strip_sample=eval_name in repeated)
            key = (eval_index[eval_name], label)
            row = row_keys.get(key)
            if row is None:
                row = row_keys[key] = len(row_eval)
                row_eval.append(key[0])
                row_label.append(label)
                row_flip.append(0)
            outcome = _OUTCOME_CODE.get(str(case.get("outcome")), 2)
            base = -1
            if any_base:
                base = base_outcomes.get((nodeid, sample), -1)
                if base < 0 and nodeid in flipped_fail:
                    base = 0
                elif base < 0 and nodeid in flipped_pass:
                    # Failed or errored: the comparison kept which, when it kept the case.
                    kept = base_views.get(nodeid)
                    base = _OUTCOME_CODE.get(str(kept.get("outcome")), 1) if kept is not None else 1
                    base = base or 1
                if base >= 0 and (base == 0) != (outcome == 0):
                    row_flip[row] = max(row_flip[row], 2 if base == 0 else 1)
                    view = base_views.get(nodeid) or base_views.get((nodeid, sample))
                    if view is not None:
                        flips.append(
                            [
                                cell,
                                add(view.get("output") if isinstance(view.get("output"), str) else None),
                                add(None if view.get("error") is None else str(view.get("error"))),
                                _int(view.get("output_chars")) or None,
                            ]
                        )
            cell_row(row)
            cell_model(model_index.get(str(case.get("model") or NO_MODEL), 0))
            cell_sample(sample)
            cell_outcome(outcome)
            cell_score(_num(case.get("score"), 4))
            cell_base(base)
            cell_nodeid(add(nodeid))
            cell_detail(detail(case))

        # Flipped rows first (to fail, then to pass); otherwise the run's own order.
        old_rates = self._old_rates()
        order = sorted(range(len(row_eval)), key=lambda r: -row_flip[r]) if has_baseline else list(range(len(row_eval)))
        if has_baseline:
            new_pos = {old: new for new, old in enumerate(order)}
            cells["row"] = [new_pos[r] for r in cells["row"]]

        return {
            "v": 1,
            "meta": self._meta(),
            "models": models,
            "evals": [self._eval_entry(name, models, old_rates) for name in eval_names],
            "rows": {
                "eval": [row_eval[r] for r in order],
                "label": [self.strings.add(row_label[r]) for r in order],
            },
            "cells": cells,
            "baseline": {**self._baseline_meta(), "flips": flips} if has_baseline else None,
            "strings": self.strings.items,
        }

    def _models(self) -> list[str]:
        seen: dict[str, None] = {}
        for entry in self.results.get("evals") or ():
            if isinstance(entry, Mapping):
                seen.setdefault(str(entry.get("model") or NO_MODEL), None)
        for case in self.cases:
            seen.setdefault(str(case.get("model") or NO_MODEL), None)
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
    def _baseline_outcomes(
        self,
    ) -> tuple[dict[tuple[str, int], int], set[str], set[str], dict[Any, Mapping[str, Any]]]:
        """``(outcomes, flipped to fail, flipped to pass, views)``: the old run's outcome by
        (node id, sample), the comparison's flipped node ids, and what the baseline had for a
        case (outcome, output, error), by node id from the comparison section (which matched
        the cases), else by (node id, sample) from the old results."""
        outcomes: dict[tuple[str, int], int] = {}
        views: dict[Any, Mapping[str, Any]] = {}
        if self.old_results is not None:
            for case in self.old_results.get("cases") or ():
                if isinstance(case, Mapping):
                    key = (str(case.get("nodeid", "")), _int(case.get("sample")))
                    outcomes[key] = _OUTCOME_CODE.get(str(case.get("outcome")), 2)
                    views[key] = case
        to_fail: set[str] = set()
        to_pass: set[str] = set()
        for entry in (self.comparison or {}).get("evals") or ():
            if isinstance(entry, Mapping):
                to_fail.update(str(n) for n in entry.get("flipped_to_fail") or ())
                to_pass.update(str(n) for n in entry.get("flipped_to_pass") or ())
                kept = entry.get("flipped_baseline")
                if isinstance(kept, Mapping):
                    views.update((str(n), v) for n, v in kept.items() if isinstance(v, Mapping))
        return outcomes, to_fail, to_pass, views

    def _old_rates(self) -> dict[tuple[str, str], float]:
        """Pass rates of the old run by (eval, model), read from its ``evals`` entries: the
        fallback when this run's ``baseline`` section has no rate for an eval."""
        rates: dict[tuple[str, str], float] = {}
        for entry in (self.old_results or {}).get("evals") or ():
            rate = _num(entry.get("pass_rate")) if isinstance(entry, Mapping) else None
            if rate is not None:
                rates[(str(entry.get("eval")), str(entry.get("model") or NO_MODEL))] = rate
        return rates

    # -- evals ----------------------------------------------------------------------------
    def _eval_entry(self, name: str, models: list[str], old_rates: dict[tuple[str, str], float]) -> dict[str, Any]:
        """One eval: per model, its entry of the document's ``evals`` (``None``: no entry)."""
        given = {
            str(e.get("model") or NO_MODEL): e
            for e in self.results.get("evals") or ()
            if isinstance(e, Mapping) and str(e.get("eval")) == name
        }
        compared = {
            str(e.get("model") or NO_MODEL): e
            for e in (self.comparison or {}).get("evals") or ()
            if isinstance(e, Mapping) and str(e.get("eval")) == name
        }
        stats: list[dict[str, Any] | None] = []
        threshold: float | None = None
        for model in models:
            if model not in given:
                stats.append(None)
                continue
            entry = _stats(given[model])
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
        result_rows = self.result_rows
        for result in case.get("results") or ():
            if not isinstance(result, Mapping):
                continue
            # The same check result recurs in most cases: its row is made once, and its
            # strings are then in the table already (the table's order is unchanged).
            key = content_key(result)
            row = result_rows.get(key) if key is not None else None
            if row is None:
                row = self._result_row(result)
                if key is not None:
                    result_rows[key] = row
            results.append(row)
        calls = []
        for call in case.get("calls") or ():
            if not isinstance(call, Mapping):
                continue
            try:
                fields = _call_fields(call)  # one C call when the call has every field
            except KeyError:
                fields = tuple([call.get(name) for name in _CALL_FIELDS])
            # Calls of a big run repeat (same model, tokens, cost): each distinct one is
            # converted once, and the page's JSON holds the same list for every repeat.
            try:
                row = self.call_rows.get(fields)
            except TypeError:  # an unhashable value in a hand-made document
                row = None
            if row is None:
                role, model, cached, latency, tin, tout, tcached, cost = fields
                row = [
                    add(str(role or "llm")),
                    add(str(model or "")),
                    1 if cached else 0,
                    _num(latency, 4),
                    _int(tin),
                    _int(tout),
                    _int(tcached),
                    _num(cost, 8),
                ]
                try:
                    self.call_rows[fields] = row
                except TypeError:
                    pass
            calls.append(row)
        tags = [add(str(t)) for t in case.get("tags") or ()]
        return [
            self._prompt(prompt) if prompt is not None else -1,
            add(case.get("output")),
            add(case.get("error")),
            results,
            calls,
            _num(case.get("threshold")),
            tags,
            _int(case.get("output_chars")) or None,
            _num(case.get("duration_s"), 3),
        ]

    def _result_row(self, result: Mapping[str, Any]) -> list[Any]:
        """One check or grade of a case, strings as indices."""
        add = self.strings.add
        extra = {k: v for k, v in result.items() if k not in _RESULT_KEYS and v not in (None, {}, [], "")}
        return [
            add(str(result.get("name", "check"))),
            1 if result.get("passed") else 0,
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

    def _prompt(self, prompt: Any) -> int:
        """The string index of ``prompt`` as one JSON text. The usual prompt (a list of
        role/content messages, the same for every model) is looked up by its texts, so its
        JSON is made once rather than once per model."""
        key = _prompt_key(prompt) if isinstance(prompt, list) else None
        if key is not None:
            found = self.prompt_index.get(key)
            if found is None:
                found = self.prompt_index[key] = self.strings.add(_PROMPT_JSON.encode(prompt))
            return found
        return self.strings.add(_PROMPT_JSON.encode(prompt))


def _prompt_key(prompt: list[Any]) -> tuple[tuple[str, str], ...] | None:
    """The (role, content) texts of a prompt whose every message is exactly those two
    strings, else ``None``."""
    key = []
    try:
        for message in prompt:
            if len(message) != 2:
                return None
            role, content = message["role"], message["content"]
            if type(role) is not str or type(content) is not str:
                return None
            key.append((role, content))
    except (KeyError, TypeError):
        return None
    return tuple(key)


_CALL_FIELDS = (
    "role",
    "model",
    "cached",
    "latency_s",
    "input_tokens",
    "output_tokens",
    "cached_input_tokens",
    "cost_usd",
)
_call_fields = operator.itemgetter(*_CALL_FIELDS)


def _stats(given: Mapping[str, Any]) -> dict[str, Any]:
    """One eval × model as the page reads it: the document's figures, renamed and made
    JSON-safe; a figure the entry lacks stays missing (the page shows "–")."""
    verdict = given.get("verdict")
    return {
        "cases": _int(given.get("cases")),
        "passed": _int(given.get("passed")),
        "failed": _int(given.get("failed")),
        "errors": _int(given.get("errors")),
        "rate": _num(given.get("pass_rate")) or 0.0,
        "lo": _num(given.get("ci_low")),
        "hi": _num(given.get("ci_high")),
        "threshold": _num(given.get("threshold")),
        # A bar's colour and badge: an entry without a verdict is shown as unknown, never guessed.
        "verdict": verdict if verdict in ("pass", "fail", "error") else "unknown",
        "input_tokens": _int(given.get("input_tokens")),
        "output_tokens": _int(given.get("output_tokens")),
        "cached_input_tokens": _int(given.get("cached_input_tokens")),
        "cost_usd": _num(given.get("cost_usd"), 6),
        "latency_p50_s": _num(given.get("latency_p50_s"), 4),
        "latency_p95_s": _num(given.get("latency_p95_s"), 4),
        "cache_hits": _int(given.get("cache_hits")),
        "calls": _int(given.get("calls")),
        "repeat": _int(given.get("repeat")) or None,
        "pass_at_k": _k_table(given.get("pass_at_k")),
        "pass_hat_k": _k_table(given.get("pass_hat_k")),
        "reason": str(given.get("verdict_reason") or ""),
    }


def _eval_of(case: Mapping[str, Any]) -> str:
    """The eval a case belongs to: its ``eval`` field, else its node id without parameters."""
    return str(case.get("eval") or str(case.get("nodeid", "")).split("[", 1)[0])


def _k_table(value: Any) -> list[list[Any]] | None:
    if not isinstance(value, Mapping) or not value:
        return None
    rows = [[str(k), _num(v)] for k, v in value.items()]
    return sorted(rows, key=lambda kv: _int(kv[0]) if str(kv[0]).isdigit() else 0)
