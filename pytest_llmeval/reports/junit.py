"""``--llmeval-report PATH``: JUnit XML with one ``<testsuite>`` per model.

Layout (the Jenkins ``junit-10.xsd`` structure, plus ``<properties>`` inside
``<testcase>`` as pytest's ``xunit1`` family, Jenkins, GitLab and Azure DevOps read it)::

    <testsuites name="pytest-llmeval" tests failures errors time>
      <testsuite name="MODEL" tests failures errors skipped time timestamp hostname>
        <properties>  llmeval.eval.EVAL.pass_rate / .ci_low / .ci_high / .threshold / ...
        <testcase classname name time>
          <properties>  llmeval.outcome, llmeval.score, llmeval.check.N.NAME, ...
          <failure message type>  or  <error message type>
          <system-out>  the model's output (shortened)

A failed case of an eval that meets its threshold is *tolerated*: the gate passes, so by
default (``tolerated="passed"``, ``--llmeval-report-tolerated=passed``) its testcase has no
``<failure>`` (Jenkins would mark the build UNSTABLE, pytest-html would show red on a passing
run); the properties ``llmeval.tolerated=true`` and ``llmeval.outcome=failed`` and a line in
``<system-err>`` (strict mode: the first line of ``<system-out>``) say it failed and why. ``tolerated="failure"`` writes a ``<failure>``
as for any failed case. Machinery errors (provider, judge, cache miss, budget, timeout) are
always ``<error>``, never ``<failure>``.

Strict mode (``strict=True``, ``--llmeval-report-strict``) is valid against Jenkins'
``junit-10.xsd``: a testcase then has no ``<properties>``, its data is written as
``name=value`` lines at the top of its ``<system-out>``; suite property names are unique
across the whole file (``llmeval.eval.EVAL@MODEL.pass_rate``; the run's own properties only
in the first suite), since some parsers (xunitparser) merge every suite's properties into
one mapping and reject a repeated name.

Whatever the model wrote, the file is well-formed XML 1.0: characters XML cannot carry
(NUL, escape codes, lone surrogates) are written as visible ``\\xNN`` / ``\\uNNNN``
escapes, and long texts are cut to a fixed size.
"""

from __future__ import annotations

import os
import re
import socket
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_llmeval.reports.memo import content_key
from pytest_llmeval.text import NO_MODEL, excerpt

if TYPE_CHECKING:
    from pytest_llmeval.gate.results import CaseEntry, EvalEntry, ResultsDocument

__all__ = ["write_junit", "render_junit", "xml_safe"]

#: Caps, in characters, so a megabyte-long output makes a kilobyte-sized report.
OUTPUT_CAP = 4_000
MESSAGE_CAP = 500
PROPERTY_CAP = 300
TEXT_CAP = 8_000

# Everything outside XML 1.0's Char production: C0 controls but tab/LF/CR, surrogates,
# U+FFFE/U+FFFF. DEL and C1 controls are legal XML but garble terminals: escaped too.
_ILLEGAL_CHARS = "\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff"
_ILLEGAL = re.compile(f"[{_ILLEGAL_CHARS}]")


def _escape_char(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def xml_safe(value: Any, cap: int | None = None) -> str:
    """``value`` as text an XML 1.0 document can hold, cut to ``cap`` characters."""
    text = value if isinstance(value, str) else str(value)
    if cap is not None:
        text = excerpt(text, cap, sep=" ")  # one line: attribute values keep no newline
    return _ILLEGAL.sub(_escape_char, text)


def _num(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def _split_nodeid(nodeid: str) -> tuple[str, str]:
    """``(classname, name)`` the way pytest's own junitxml spells them."""
    names = nodeid.split("::")
    path = names[0]
    if path.endswith(".py"):
        path = path[:-3]
    names[0] = path.replace("/", ".")
    if len(names) == 1:
        return "", names[0]
    return ".".join(names[:-1]), names[-1]


def _call_sums(case: CaseEntry) -> tuple[int, int, float, float, bool]:
    """Input and output tokens, cost and latency (the ``llm`` calls') of a case's calls, and
    whether every call came from the cache: one pass (this runs for every case of the run);
    sums start from 0.0, which formats as the integer 0 did."""
    calls = case.get("calls") or []
    input_tokens = output_tokens = 0
    cost = latency = 0.0
    cached = bool(calls)
    for c in calls:
        input_tokens += int(c.get("input_tokens") or 0)
        output_tokens += int(c.get("output_tokens") or 0)
        cost += float(c.get("cost_usd") or 0.0)
        if c.get("role", "llm") == "llm":
            latency += float(c.get("latency_s") or 0.0)
        if not c.get("cached"):
            cached = False
    return input_tokens, output_tokens, cost, latency, cached


def _case_properties(case: CaseEntry) -> list[tuple[str, str]]:
    calls = case.get("calls") or []
    input_tokens, output_tokens, cost, latency, cached = _call_sums(case)
    passed = case["outcome"] == "passed"
    props: list[tuple[str, str]] = [
        ("llmeval.eval", case["eval"]),
        ("llmeval.model", case.get("model") or ""),
        ("llmeval.sample", _num(case.get("sample") or 0)),
        ("llmeval.outcome", case["outcome"]),
        ("llmeval.passed", "true" if passed else "false"),
        ("llmeval.score", f"{float(case.get('score') or 0.0):.6g}"),
        ("llmeval.threshold", f"{float(case.get('threshold') or 0.0):.6g}"),
        ("llmeval.input_tokens", str(input_tokens)),
        ("llmeval.output_tokens", str(output_tokens)),
        ("llmeval.cost_usd", f"{cost:.6g}"),
        ("llmeval.latency_s", f"{latency:.6g}"),
        ("llmeval.calls", str(len(calls))),
        ("llmeval.cached", "true" if cached else "false"),
    ]
    if key := case.get("key"):
        props.append(("llmeval.key", key))
    props += _check_properties(case.get("results") or [])
    return props


def _check_properties(results: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """``llmeval.check.N.NAME`` (and its reasoning or explanation) of each check of a case."""
    props: list[tuple[str, str]] = []
    for i, result in enumerate(results):
        name = str(result.get("name") or "check")
        verdict = "pass" if result.get("passed") else "fail"
        score = result.get("score")
        value = f"{verdict} score={_num(float(score))}" if isinstance(score, (int, float)) else verdict
        if result.get("label"):
            value += f" label={result['label']}"
        props.append((f"llmeval.check.{i}.{name}", value))
        reasoning = result.get("reasoning") or (None if result.get("passed") else result.get("explanation"))
        if reasoning:
            label = "reasoning" if result.get("reasoning") else "explanation"
            props.append((f"llmeval.check.{i}.{label}", xml_safe(reasoning, PROPERTY_CAP)))
    return props


def _failure_text(case: CaseEntry) -> tuple[str, str]:
    """``(message, text)`` of a failed or errored case: the error, else the failing checks."""
    if case.get("error"):
        return str(case["error"]), str(case["error"])
    lines = []
    for result in case.get("results") or []:
        if result.get("passed"):
            continue
        name = result.get("name") or "check"
        why = result.get("explanation") or result.get("reasoning") or ""
        line = f"{name}: {why}".rstrip(": ")
        if "expected" in result or "actual" in result:
            line += f" (expected {result.get('expected')!r}, actual {result.get('actual')!r})"
        lines.append(line)
    if not lines:
        return "the test failed (no failing check was recorded)", "the test failed"
    return lines[0], "\n".join(lines)


def _tolerated_ids(results: ResultsDocument) -> set[tuple[str, str]]:
    """(eval, model) of the evals that meet their threshold: their failed cases are tolerated."""
    return {
        (ev["eval"], ev.get("model") or NO_MODEL) for ev in results.get("evals") or [] if ev.get("verdict") == "pass"
    }


class _Escaped(dict[Any, str]):
    """Memo of ``escape(value)``: a run repeats the same eval names, models, verdicts and
    numbers in every case, so most look-ups are a dict hit with no Python call."""

    def __init__(self, escape: Callable[[Any], str]) -> None:
        super().__init__()
        self.escape = escape

    def __missing__(self, value: Any) -> str:
        escaped = self[value] = self.escape(value)
        return escaped


def _attr(value: str) -> str:
    """An attribute value as ElementTree escapes it (``value`` is already :func:`xml_safe`)."""
    if _ATTR_SPECIAL.search(value) is None:
        return value
    return (
        value.replace("&", "&amp;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace('"', "&quot;")
        .replace("\r", "&#13;")
        .replace("\n", "&#10;")
        .replace("\t", "&#09;")
    )


def _text(value: str) -> str:
    """Character data as ElementTree escapes it (``value`` is already :func:`xml_safe`)."""
    if _TEXT_SPECIAL.search(value) is None:
        return value
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


_ATTR_SPECIAL = re.compile('[&<>"\r\n\t]')
_TEXT_SPECIAL = re.compile("[&<>]")
# What either escaping step would change, in one class: most texts have none, and then one
# search is all they cost.
_ATTR_ANY = re.compile(f'[&<>"\r\n\t{_ILLEGAL_CHARS}]')
_TEXT_ANY = re.compile(f"[&<>{_ILLEGAL_CHARS}]")


def _safe_attr(value: str, cap: int | None = None) -> str:
    """``_attr(xml_safe(value, cap))`` for a string, in one search when nothing needs escaping."""
    if cap is not None and len(value) > cap:
        value = excerpt(value, cap, sep=" ")
    if _ATTR_ANY.search(value) is None:
        return value
    return _attr(xml_safe(value))


def _safe_text(value: str, cap: int | None = None) -> str:
    """``_text(xml_safe(value, cap))`` for a string, in one search when nothing needs escaping."""
    if cap is not None and len(value) > cap:
        value = excerpt(value, cap, sep=" ")
    if _TEXT_ANY.search(value) is None:
        return value
    return _text(xml_safe(value))


def _element(indent: str, tag: str, attrs: str, text: str) -> str:
    """One leaf element: ``<tag attrs />`` when it has no text, as ElementTree writes it."""
    if not text:
        return f"{indent}<{tag}{attrs} />"
    return f"{indent}<{tag}{attrs}>{text}</{tag}>"


def render_junit(
    results: ResultsDocument, *, hostname: str | None = None, strict: bool = False, tolerated: str = "passed"
) -> bytes:
    """The report as UTF-8 bytes, one ``<testsuite>`` per model (see the module doc for
    ``strict`` and ``tolerated``: ``"passed"`` or ``"failure"``)."""
    if tolerated not in ("passed", "failure"):
        raise ValueError(f"tolerated must be 'passed' or 'failure', got {tolerated!r}")
    passing_evals = _tolerated_ids(results)
    # Written as text, in the layout ElementTree's indent() and tostring() gave (an element
    # tree of every property of 30,000 cases took seconds).
    write_case = _CaseWriter(strict=strict, tolerate=tolerated == "passed", passing_evals=passing_evals)
    is_tolerated = write_case.is_tolerated
    attr = write_case.attr

    evals_by_model: dict[str, list[EvalEntry]] = defaultdict(list)
    for ev in results.get("evals") or []:
        evals_by_model[ev.get("model") or NO_MODEL].append(ev)
    cases_by_model: dict[str, list[CaseEntry]] = defaultdict(list)
    for case in results.get("cases") or []:
        cases_by_model[case.get("model") or NO_MODEL].append(case)
    section = results.get("baseline")
    baseline = {(b["eval"], b.get("model") or NO_MODEL): b for b in (section["evals"] if section else [])}
    host = hostname if hostname is not None else socket.gethostname()
    stamp = str(results.get("created_at") or "")[:19]

    out: list[str] = []
    totals = {"tests": 0, "failures": 0, "errors": 0, "time": 0.0}
    first_suite = True
    for model in sorted(set(evals_by_model) | set(cases_by_model)):
        cases = cases_by_model.get(model, [])
        failures = sum(c["outcome"] == "failed" and not (tolerated == "passed" and is_tolerated(c)) for c in cases)
        errors = sum(c["outcome"] == "error" for c in cases)
        time_s = sum(float(c.get("duration_s") or 0.0) for c in cases)
        out.append(
            f' <testsuite name="{attr[model]}" tests="{len(cases)}" failures="{failures}" errors="{errors}"'
            f' skipped="0" time="{time_s:.3f}" timestamp="{_attr(stamp)}" hostname="{attr[host]}">'
        )
        suite_props: list[tuple[str, str]] = []
        if not strict:
            suite_props.append(("llmeval.model", xml_safe(model)))
        if not strict or first_suite:
            suite_props.append(("llmeval.run_id", xml_safe(results.get("run_id") or "")))
            suite_props.append(("llmeval.passed", _num(bool(results.get("passed")))))
        for ev in evals_by_model.get(model, []):
            prefix = f"llmeval.eval.{xml_safe(ev['eval'])}"
            if strict:
                prefix += f"@{xml_safe(model)}"
            items: list[tuple[str, Any]] = [
                ("pass_rate", ev["pass_rate"]),
                ("ci_low", ev.get("ci_low", 0.0)),
                ("ci_high", ev.get("ci_high", 1.0)),
                ("threshold", ev["threshold"]),
                ("verdict", ev.get("verdict", "")),
                ("cases", ev["cases"]),
                ("passed", ev["passed"]),
                ("failed", ev["failed"]),
                ("errors", ev["errors"]),
            ]
            if int(ev.get("repeat") or 1) > 1:
                items += [(f"pass_at_{k}", v) for k, v in (ev.get("pass_at_k") or {}).items()]
                items += [(f"pass_hat_{k}", v) for k, v in (ev.get("pass_hat_k") or {}).items()]
            b = baseline.get((ev["eval"], model))
            if b is not None:
                items += [
                    ("baseline_rate", "" if b.get("base_rate") is None else b["base_rate"]),
                    ("baseline_p_value", b["p_value"]),
                    ("regressed", bool(b["regressed"])),
                    ("flipped_to_fail", len(b["flipped_to_fail"])),
                    ("flipped_to_pass", len(b["flipped_to_pass"])),
                ]
            suite_props += [(f"{prefix}.{name}", _num(value)) for name, value in items]
        if suite_props:
            out.append("  <properties>")
            out += [f'   <property name="{_attr(n)}" value="{_attr(v)}" />' for n, v in suite_props]
            out.append("  </properties>")
        else:
            out.append("  <properties />")
        first_suite = False

        out += [write_case(case) for case in cases]
        out.append(" </testsuite>")
        totals["tests"] += len(cases)
        totals["failures"] += failures
        totals["errors"] += errors
        totals["time"] += time_s
    root = (
        f'<testsuites name="pytest-llmeval" tests="{totals["tests"]}" failures="{totals["failures"]}"'
        f' errors="{totals["errors"]}" time="{totals["time"]:.3f}"'
    )
    if out:
        text = "\n".join([root + ">", *out, "</testsuites>"])
    else:
        text = root + " />"
    # Every string went through xml_safe, so nothing is left that UTF-8 cannot encode; the
    # error handler is ElementTree's, for a value that reached the file some other way.
    return (_DECLARATION + text).encode("utf-8", "xmlcharrefreplace")


class _CaseWriter:
    """The ``<testcase>`` element of each case, as one string.

    Values repeat across cases (eval names, models, check results): each is escaped once,
    through a memo; the texts of one case alone (its name, key and output) go through one
    search that finds nothing to escape in most of them.
    """

    def __init__(self, *, strict: bool, tolerate: bool, passing_evals: set[tuple[str, str]]) -> None:
        self.strict = strict
        self.tolerate = tolerate
        self.passing_evals = passing_evals
        self.attr = attr = _Escaped(lambda v: _attr(xml_safe(v)))
        self.prop_value = value = _Escaped(lambda v: _attr(xml_safe(v, PROPERTY_CAP)))
        self.prop_line = _Escaped(lambda p: f'    <property name="{attr[p[0]]}" value="{value[p[1]]}" />')
        self.line_value = _Escaped(lambda v: _text(xml_safe(v, PROPERTY_CAP)))
        self.line_name = _Escaped(lambda v: _text(xml_safe(v)))
        # The node id up to its last "::" -> the testcase's classname, escaped.
        self.classnames: dict[str, str] = {}
        # (eval, model, sample, outcome, score, threshold) -> the first property lines, and
        # (tokens in, out, cost, latency, calls, cached) -> the lines of those figures. The
        # sums cannot be -0.0, and a falsy score or threshold is written as 0: keys that
        # compare equal write the same lines.
        self.heads: dict[tuple[Any, ...], str] = {}
        self.figures: dict[tuple[Any, ...], str] = {}
        self.checks: dict[tuple[Any, ...], list[str]] = {}

    def is_tolerated(self, case: CaseEntry) -> bool:
        return case["outcome"] == "failed" and (case["eval"], case.get("model") or NO_MODEL) in self.passing_evals

    def __call__(self, case: CaseEntry) -> str:
        nodeid = case["nodeid"]
        prefix, sep, name = nodeid.rpartition("::")
        classname = self.classnames.get(prefix) if sep else None
        if classname is None:
            raw_classname, name = _split_nodeid(nodeid)
            classname = self.attr[raw_classname]
            if sep:
                self.classnames[prefix] = classname
        parts = [
            f'  <testcase classname="{classname}" name="{_safe_attr(name)}"'
            f' time="{float(case.get("duration_s") or 0.0):.3f}">'
        ]
        outcome = case["outcome"]
        tolerated_case = self.is_tolerated(case)
        strict = self.strict
        if strict:
            case_props = _case_properties(case)
            if tolerated_case:
                case_props.append(("llmeval.tolerated", "true"))
        else:
            parts.append(self._properties(case, tolerated_case))
        out_lines: list[str] = []
        if outcome == "error" or (outcome == "failed" and not (tolerated_case and self.tolerate)):
            message, text = _failure_text(case)
            tag = "failure" if outcome == "failed" else "error"
            kind = "llmeval.failed" if tag == "failure" else "llmeval.error"
            attrs = f' message="{_safe_attr(message, MESSAGE_CAP)}" type="{kind}"'
            parts.append(_element("   ", tag, attrs, _safe_text(text, TEXT_CAP)))
        note = None
        if tolerated_case and self.tolerate and outcome == "failed":
            message, _ = _failure_text(case)
            note = (
                "llmeval: this case FAILED; tolerated because its eval meets min_pass_rate "
                f"{float(case.get('threshold') or 0.0):.1%}: {xml_safe(message, MESSAGE_CAP)}"
            )
            if strict:
                out_lines.append(_text(note))  # strict readers may show only <system-out>
        if strict:
            line_name, line_value = self.line_name, self.line_value
            out_lines += [f"{line_name[n]}={line_value[v]}" for n, v in case_props]
        output = case.get("output")
        if isinstance(output, str) and output:
            if out_lines:
                out_lines.append("")  # the data, a blank line, then the model's output
            out_lines.append(_safe_text(output, OUTPUT_CAP))
        if out_lines:
            parts.append(_element("   ", "system-out", "", "\n".join(out_lines)))
        if note is not None and not strict:
            # <system-out> stays the model's output alone; the note goes beside it.
            parts.append(_element("   ", "system-err", "", _text(note)))
        if len(parts) == 1:
            return parts[0][:-1] + " />"
        parts.append("  </testcase>")
        return "\n".join(parts)

    def _properties(self, case: CaseEntry, tolerated_case: bool) -> str:
        """The ``<properties>`` of a case: :func:`_case_properties` as XML, written at once."""
        calls = case.get("calls") or []
        input_tokens, output_tokens, cost, latency, cached = _call_sums(case)
        outcome = case["outcome"]
        head_key = (
            case["eval"],
            case.get("model"),
            case.get("sample"),
            outcome,
            case.get("score"),
            case.get("threshold"),
        )
        # A bool sample writes "true", an int one the number: only ints share a line.
        head = self.heads.get(head_key) if type(head_key[2]) is int else None
        if head is None:
            head = self._head(case)
            if type(head_key[2]) is int:
                self.heads[head_key] = head
        sums = (input_tokens, output_tokens, cost, latency, len(calls), cached)
        figures = self.figures.get(sums)
        if figures is None:
            # Numbers and true/false need no escaping.
            figures = self.figures[sums] = (
                f'    <property name="llmeval.input_tokens" value="{input_tokens}" />\n'
                f'    <property name="llmeval.output_tokens" value="{output_tokens}" />\n'
                f'    <property name="llmeval.cost_usd" value="{cost:.6g}" />\n'
                f'    <property name="llmeval.latency_s" value="{latency:.6g}" />\n'
                f'    <property name="llmeval.calls" value="{len(calls)}" />\n'
                f'    <property name="llmeval.cached" value="{"true" if cached else "false"}" />'
            )
        lines = [head, figures]
        if key := case.get("key"):
            key_value = _safe_attr(key, PROPERTY_CAP) if type(key) is str else self.prop_value[key]
            lines.append(f'    <property name="llmeval.key" value="{key_value}" />')
        results = case.get("results")
        if results:
            # The checks' lines by their content: most cases repeat a few distinct results.
            content = tuple([content_key(r) for r in results])
            checks = self.checks.get(content) if None not in content else None
            if checks is None:
                checks = [self.prop_line[p] for p in _check_properties(results)]
                if None not in content:
                    self.checks[content] = checks
            lines += checks
        if tolerated_case:
            lines.append('    <property name="llmeval.tolerated" value="true" />')
        lines.append("   </properties>")
        return "\n".join(lines)

    def _head(self, case: CaseEntry) -> str:
        """The opening of a case's ``<properties>``: what most cases of an eval share."""
        value = self.prop_value
        outcome = case["outcome"]
        return (
            "   <properties>\n"
            f'    <property name="llmeval.eval" value="{value[case["eval"]]}" />\n'
            f'    <property name="llmeval.model" value="{value[case.get("model") or ""]}" />\n'
            f'    <property name="llmeval.sample" value="{value[_num(case.get("sample") or 0)]}" />\n'
            f'    <property name="llmeval.outcome" value="{value[outcome]}" />\n'
            f'    <property name="llmeval.passed" value="{"true" if outcome == "passed" else "false"}" />\n'
            f'    <property name="llmeval.score" value="{float(case.get("score") or 0.0):.6g}" />\n'
            f'    <property name="llmeval.threshold" value="{float(case.get("threshold") or 0.0):.6g}" />'
        )


_DECLARATION = "<?xml version='1.0' encoding='utf-8'?>\n"


def write_junit(
    results: ResultsDocument, path: str | os.PathLike[str], *, strict: bool = False, tolerated: str = "passed"
) -> None:
    """Write the JUnit XML report of ``results`` to ``path`` (parents created)."""
    target = Path(path)
    data = render_junit(results, strict=strict, tolerated=tolerated)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)
