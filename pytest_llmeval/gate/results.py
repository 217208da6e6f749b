"""Aggregated results of a run: the one results document every report renders.

Written by :func:`pytest_llmeval.reports.json.write_json` (``--llmeval-json``) and read back
here by :func:`load_results` (the gate reads baselines).

The JSON results file (``schema`` / ``version`` identify it; fields may be added in later
versions, never renamed)::

    {
      "schema": "pytest-llmeval/results",
      "version": 1,
      "run_id": str,                  # also the run id in the SQLite call log
      "created_at": str,              # ISO 8601, UTC
      "pytest_args": [str],
      "passed": bool,                 # the gate's verdict (the exit status is 0 iff true)
      "reasons": [str],               # why it passed or failed, one line each
      "non_eval_failures": [str],     # node ids of failed tests that are not eval cases
      "run_problems": [str],          # optional: problems of the run outside the evals
      "rootdir": str,                 # optional: pytest's rootdir, which node ids are relative to
      "collected": [{"eval", "model", "collected", "run"}],  # optional: eval items collected
                                      # (deselected ones too) and run, per eval and model
      "tallies": {"calls", "hits", "retries", "errors"},   # run-level, all xdist workers
      "evals": [{                     # one per eval (test function) and model, sorted
        "eval": str,                  # the test function's node id, e.g. "test_x.py::test_capital"
        "model": str | null,          # the model's label, else "PROVIDER:MODEL[@URL]"; null for a judge-only test
        "threshold": float,           # min_pass_rate, after --llmeval-min-pass-rate
        "cases": int, "passed": int, "failed": int, "errors": int,   # samples count as cases
        "pass_rate": float, "ci_low": float, "ci_high": float,       # Wilson 95% interval
        "verdict": "pass" | "fail" | "error",
        "verdict_reason": str,        # one line
        "regressed": bool,            # the baseline gate tripped for this eval and model
        "input_tokens": int, "output_tokens": int, "cached_input_tokens": int,
        "cost_usd": float,            # judge calls included
        "latency_p50_s": float | null, "latency_p95_s": float | null,  # model-under-test calls
        "cache_hits": int, "calls": int,
        "tags": [str],
        "repeat": int,                # samples per case (the smallest, when uneven)
        "distinct_cases": int,
        "pass_at_k": {"1": float, ...}, "pass_hat_k": {"1": float, ...},   # k = 1..repeat
        "case_rates": [{"case": str, "samples": int, "passed": int, "pass_fraction": float}],
        "flaky": int,                 # cases whose reruns (pytest-rerunfailures) changed the outcome
        "collected_cases": int | null # eval items collected, deselected ones included (partial runs)
      }],
      "cases": [{                     # one per case, model and sample, sorted
        "eval", "nodeid", "model", "sample", "outcome": "passed" | "failed" | "error",
        "model_spec": str | null,     # "PROVIDER:MODEL[@URL]" (model is the label, when there is one)
        "reruns": [outcome],          # later attempts (pytest-rerunfailures); the first decides
        "flaky": bool,                # a rerun's outcome differs from the first attempt's
        "score", "threshold", "tags",
        "results": [check and grade dicts],
        "calls": [{"key", "model", "cached", "latency_s", "input_tokens", "output_tokens",
                   "cached_input_tokens", "cost_usd", "role"}],
        "output": str | null,         # shortened beyond OUTPUT_CAP characters
        "output_chars": int,          # full length of the output
        "prompt", "error", "duration_s",
        "key": str | null,            # cache key of the first model-under-test call
        "case": str,                  # node id without the sample part
        "passed": bool
      }],
      "baseline": null | {
        "path": str, "alpha": float,
        "evals": [{"eval", "model", "base_rate", "rate", "n_pairs",
                   "flipped_to_fail": [nodeid], "flipped_to_pass": [nodeid],
                   "p_value": float, "regressed": bool,
                   "new_cases": int, "missing_cases": int,
                   "status": "compared" | "new" | "unmatched", "cases": int,
                   # what the baseline had for each flipped case, by this run's node id
                   "flipped_baseline": {nodeid: {"outcome", "output", "output_chars", "error"}}}],
        "matched_cases": int, "cases": int, "baseline_cases": int,
        "not_run": [str],             # "eval [model]" of the baseline absent from this run
        "prefix_removed": {"from": "run" | "baseline", "prefix": str},  # optional
        "problem": str                # optional: no case matched; the run fails
      }
    }

Rates in ``baseline.evals`` are over the matched pairs only (cases matched by node id,
model and sample), which is what the paired test compares. The model is matched by its
label, else by ``PROVIDER:MODEL`` without the URL; node ids are matched after taking off
a directory prefix that one run's rootdir put in front of all of them.

:class:`ResultsDocument`, :class:`EvalEntry`, :class:`CaseEntry`, :class:`CallEntry`,
:class:`BaselineSection` and :class:`BaselineEntry` spell this schema as TypedDicts; the
reports (:mod:`pytest_llmeval.reports`) render a :class:`ResultsDocument` and nothing else.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal, TypedDict, TypeVar, cast

from pytest_llmeval.errors import LLMEvalError
from pytest_llmeval.gate.stats import pass_at_k, pass_hat_k, percentile, wilson_interval
from pytest_llmeval.text import excerpt, model_label

__all__ = [
    "SCHEMA",
    "VERSION",
    "OUTPUT_CAP",
    "BaselineCase",
    "BaselineEntry",
    "BaselineSection",
    "CallEntry",
    "CaseEntry",
    "EvalEntry",
    "EvalResult",
    "ResultsDocument",
    "ResultsFileError",
    "Tallies",
    "aggregate",
    "baseline_case",
    "build_results",
    "case_for_json",
    "case_id",
    "load_results",
    "regression_line",
    "set_verdict",
    "sort_cases",
]

SCHEMA = "pytest-llmeval/results"
VERSION = 1
#: Characters of a model output kept in the JSON results (head and tail).
OUTPUT_CAP = 20_000
#: Tolerance when comparing a pass rate to its threshold: 7/10 must meet 0.7.
_EPS = 1e-9


# -- the schema as types -------------------------------------------------------------------
# Python 3.10 has no NotRequired: the required keys sit in a private base class and the
# optional ones in a total=False subclass, which is how a TypedDict mixes both there.
Outcome = Literal["passed", "failed", "error"]
Verdict = Literal["pass", "fail", "error"]


class CallEntry(TypedDict, total=False):
    """One model call of a case (the model under test's, or the judge's: ``role``)."""

    key: str
    model: str
    cached: bool
    latency_s: float
    input_tokens: int
    output_tokens: int
    cached_input_tokens: int
    cost_usd: float
    role: str


class _CaseRequired(TypedDict):
    eval: str
    nodeid: str
    model: str | None
    sample: int
    outcome: Outcome


class CaseEntry(_CaseRequired, total=False):
    """One case, model and sample of the results document (``cases``)."""

    score: float
    threshold: float
    tags: list[str]
    results: list[dict[str, Any]]
    calls: list[CallEntry]
    output: str | None
    output_chars: int
    prompt: Any
    error: str | None
    duration_s: float
    model_spec: str | None
    reruns: list[str]
    flaky: bool
    key: str | None
    case: str
    passed: bool


class _EvalRequired(TypedDict):
    eval: str
    model: str | None
    threshold: float
    cases: int
    passed: int
    failed: int
    errors: int
    pass_rate: float


class EvalEntry(_EvalRequired, total=False):
    """One eval and model of the results document (``evals``): what the gate decided on."""

    ci_low: float
    ci_high: float
    verdict: Verdict
    verdict_reason: str
    regressed: bool
    input_tokens: int
    output_tokens: int
    cached_input_tokens: int
    cost_usd: float
    latency_p50_s: float | None
    latency_p95_s: float | None
    cache_hits: int
    calls: int
    tags: list[str]
    repeat: int
    distinct_cases: int
    pass_at_k: dict[str, float]
    pass_hat_k: dict[str, float]
    case_rates: list[dict[str, Any]]
    flaky: int
    collected_cases: int | None


class BaselineCase(TypedDict, total=False):
    """What the baseline had for one flipped case: the HTML report shows it beside this run's.
    ``output`` is shortened like every output of the document (:data:`OUTPUT_CAP`)."""

    outcome: Outcome
    output: str | None
    output_chars: int
    error: str | None


class BaselineEntry(TypedDict, total=False):
    """One eval and model compared with the baseline (``baseline.evals``); rates over the
    matched pairs, ``None`` when no case matched. ``status``: ``compared``, ``new`` (the
    eval and model are not in the baseline) or ``unmatched`` (they are, none of the cases)."""

    eval: str
    model: str | None
    status: Literal["compared", "new", "unmatched"]
    cases: int
    base_rate: float | None
    rate: float | None
    n_pairs: int
    flipped_to_fail: list[str]
    flipped_to_pass: list[str]
    p_value: float
    regressed: bool
    new_cases: int
    missing_cases: int
    flipped_baseline: dict[str, BaselineCase]


class _BaselineRequired(TypedDict):
    path: str
    alpha: float
    evals: list[BaselineEntry]


class BaselineSection(_BaselineRequired, total=False):
    """The ``baseline`` section: which file was compared, at which level, with what result.

    ``matched_cases`` of this run's ``cases`` had a partner among the ``baseline_cases``;
    ``not_run`` names the baseline's evals and models absent from this run;
    ``prefix_removed`` the rootdir difference taken off one side's node ids; ``problem``
    why the comparison failed the run (no case matched).
    """

    matched_cases: int
    cases: int
    baseline_cases: int
    not_run: list[str]
    prefix_removed: dict[str, str]
    problem: str


class Tallies(TypedDict, total=False):
    """Run-level counts of the caller, summed over every xdist worker."""

    calls: int
    hits: int
    retries: int
    errors: int


class _ResultsRequired(TypedDict):
    schema: str
    version: int
    run_id: str
    created_at: str
    pytest_args: list[str]
    passed: bool
    reasons: list[str]
    evals: list[EvalEntry]
    cases: list[CaseEntry]
    baseline: BaselineSection | None


class ResultsDocument(_ResultsRequired, total=False):
    """The results document (``--llmeval-json``) that the gate writes and every report renders."""

    non_eval_failures: list[str]
    tallies: Tallies
    run_problems: list[str]
    rootdir: str
    collected: list[dict[str, Any]]


class ResultsFileError(LLMEvalError):
    """A results file that cannot be read, or is not a pytest-llmeval results file."""


@dataclass
class EvalResult:
    """One eval (test function) for one model: what the gate decides on.

    Passed to the ``pytest_llmeval_eval_finished`` hook; :meth:`to_dict` gives its entry
    in the JSON results.
    """

    eval: str
    model: str | None
    threshold: float
    cases: int
    passed: int
    failed: int
    errors: int
    pass_rate: float
    ci_low: float
    ci_high: float
    verdict: str
    verdict_reason: str
    input_tokens: int
    output_tokens: int
    cached_input_tokens: int
    cost_usd: float
    latency_p50_s: float | None
    latency_p95_s: float | None
    cache_hits: int
    calls: int
    tags: list[str]
    repeat: int
    distinct_cases: int
    pass_at_k: dict[str, float]
    pass_hat_k: dict[str, float]
    case_rates: list[dict[str, Any]] = field(default_factory=list)
    #: Cases whose reruns (pytest-rerunfailures) had another outcome than the first attempt.
    flaky: int = 0
    #: Eval items collected for this eval and model, deselected ones included; ``None`` when unknown.
    collected_cases: int | None = None
    regressed: bool = False
    #: This eval's entry of the baseline comparison, when a baseline was given.
    baseline: BaselineEntry | None = None

    @property
    def met_threshold(self) -> bool:
        """Whether the pass rate reaches the threshold (errors aside)."""
        return self.passed + _EPS >= self.threshold * self.cases

    def to_dict(self) -> EvalEntry:
        """The JSON form (the baseline entry lives in the top-level ``baseline`` section)."""
        # Not dataclasses.asdict: its recursive deep copy is slow on a long case_rates list,
        # and one level of copying is all a reader that changes the entry needs.
        data: dict[str, Any] = {}
        for f in _EVAL_FIELDS:
            value = getattr(self, f)
            if isinstance(value, list):
                value = [dict(v) if isinstance(v, dict) else v for v in value]
            elif isinstance(value, dict):
                value = dict(value)
            data[f] = value
        return cast(EvalEntry, data)


#: The fields of an :class:`EvalResult` that its JSON entry keeps, in order.
_EVAL_FIELDS = tuple(f.name for f in fields(EvalResult) if f.name != "baseline")


# -- cases ---------------------------------------------------------------------------------
def case_id(nodeid: str, sample: int) -> str:
    """The node id without its ``sampleN`` parameter: one id for all samples of a case."""
    token = f"sample{sample}"
    # Most node ids have no sample part: one substring test spares them the split.
    if token not in nodeid or not nodeid.endswith("]") or "[" not in nodeid:
        return nodeid
    head, params = nodeid[:-1].split("[", 1)
    parts = params.split("-")
    for i in range(len(parts) - 1, -1, -1):
        if parts[i] == token:
            del parts[i]
            break
    else:
        return nodeid
    return f"{head}[{'-'.join(parts)}]" if parts else head


#: A case as the plugin hands it over, or as a results file keeps it (:class:`CaseEntry`).
_Case = TypeVar("_Case", bound=Mapping[str, Any])


def _sort_key(case: Mapping[str, Any]) -> tuple[str, str, str, int]:
    return (case["eval"], case.get("model") or "", case["nodeid"], int(case.get("sample") or 0))


class SortedCases(tuple):  # type: ignore[type-arg]
    """What :func:`sort_cases` returns: immutable, so sorting it again can return it as it is
    (the end of a run passes the same cases to the gate, :func:`aggregate` and
    :func:`build_results`, which each sorted 30,000 cases anew)."""

    __slots__ = ()


def sort_cases(cases: Iterable[_Case]) -> Sequence[_Case]:
    """Cases in a fixed order, whatever order workers finished in; a case reported twice
    (a rerun plugin) keeps its last report."""
    if isinstance(cases, SortedCases):
        return cases
    # The key inline, not through _sort_key: one pass over every case.
    latest: dict[tuple[str, str, str, int], _Case] = {
        (c["eval"], c.get("model") or "", c["nodeid"], int(c.get("sample") or 0)): c for c in cases
    }
    return SortedCases(latest[k] for k in sorted(latest))


def _first_llm_key(case: Mapping[str, Any]) -> str | None:
    calls = case.get("calls") or []
    for call in calls:
        if call.get("role", "llm") == "llm":
            return call.get("key")
    return calls[0].get("key") if calls else None


def _cap_strings(value: Any, cap: int) -> Any:
    """``value`` with every string longer than ``cap`` shortened; ``value`` itself (no
    copy) when no string is that long, which is almost always."""
    if isinstance(value, str):
        return value if len(value) <= cap else excerpt(value, cap)
    if isinstance(value, list):
        items = [v if type(v) is str and len(v) <= cap else _cap_strings(v, cap) for v in value]
        return value if all(a is b for a, b in zip(items, value, strict=True)) else items
    if isinstance(value, dict):
        changed = {
            k: capped
            for k, v in value.items()
            if not (type(v) is str and len(v) <= cap) and (capped := _cap_strings(v, cap)) is not v
        }
        return {**value, **changed} if changed else value
    return value


def case_for_json(case: Mapping[str, Any]) -> CaseEntry:
    """A case as the JSON results keep it: plugin data plus ``key``, ``case``, ``passed``;
    outputs and prompts shortened beyond :data:`OUTPUT_CAP` characters.

    Containers that need no shortening are shared with ``case``, not copied: the document
    is written once and never changed in place.
    """
    out = dict(case)
    output = case.get("output")
    if isinstance(output, str):
        out["output"] = output if len(output) <= OUTPUT_CAP else excerpt(output, OUTPUT_CAP)
        out["output_chars"] = len(output)
    else:
        out["output"] = output
        out["output_chars"] = 0
    out["prompt"] = _cap_strings(case.get("prompt"), OUTPUT_CAP)
    out["key"] = _first_llm_key(case)
    out["case"] = case_id(case["nodeid"], int(case.get("sample") or 0))
    out["passed"] = case.get("outcome") == "passed"
    return cast(CaseEntry, out)


def baseline_case(case: Mapping[str, Any]) -> BaselineCase:
    """The part of a baseline's case that the flipped-cases view shows next to this run's:
    its outcome, error and output (shortened beyond :data:`OUTPUT_CAP` characters, which a
    baseline file has already done)."""
    output = case.get("output")
    if isinstance(output, str):
        chars = max(len(output), int(case.get("output_chars") or 0))
        output = output if len(output) <= OUTPUT_CAP else excerpt(output, OUTPUT_CAP)
    else:
        output, chars = None, 0
    error = case.get("error")
    return {
        "outcome": case.get("outcome", "error"),
        "output": output,
        "output_chars": chars,
        "error": None if error is None else excerpt(str(error), OUTPUT_CAP),
    }


# -- evals ---------------------------------------------------------------------------------
def aggregate(cases: Iterable[Mapping[str, Any]]) -> list[EvalResult]:
    """One :class:`EvalResult` per eval and model, sorted by eval then model."""
    groups: dict[tuple[str, str | None], list[Mapping[str, Any]]] = defaultdict(list)
    for case in sort_cases(cases):
        groups[(case["eval"], case.get("model"))].append(case)
    return [
        _aggregate_one(e, m, rows) for (e, m), rows in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1] or ""))
    ]


def _aggregate_one(eval_id: str, model: str | None, rows: list[Mapping[str, Any]]) -> EvalResult:
    # One pass over the rows and their calls: a big eval has tens of thousands of them.
    n = len(rows)
    passed = errors = 0
    threshold = -math.inf
    input_tokens = output_tokens = cached_input_tokens = cache_hits = n_calls = 0
    cost = 0.0
    llm_latencies: list[float] = []
    tags: set[str] = set()
    per_case: dict[str, list[bool]] = defaultdict(list)
    for r in rows:
        outcome = r["outcome"]
        ok = outcome == "passed"
        passed += ok
        errors += outcome == "error"
        # All cases of one eval share the marker; take the strictest should they ever differ.
        row_threshold = float(r.get("threshold", 1.0))
        if row_threshold > threshold:
            threshold = row_threshold
        for c in r.get("calls") or ():
            n_calls += 1
            input_tokens += int(c.get("input_tokens") or 0)
            output_tokens += int(c.get("output_tokens") or 0)
            cached_input_tokens += int(c.get("cached_input_tokens") or 0)
            cost += float(c.get("cost_usd") or 0.0)
            cache_hits += bool(c.get("cached"))
            if c.get("role", "llm") == "llm":
                llm_latencies.append(float(c.get("latency_s") or 0.0))
        row_tags = r.get("tags")
        if row_tags:
            tags.update(row_tags)
        per_case[case_id(r["nodeid"], int(r.get("sample") or 0))].append(ok)
    failed = n - passed - errors
    low, high = wilson_interval(passed, n)

    repeat = min(len(v) for v in per_case.values())
    at_k: dict[str, float] = {}
    hat_k: dict[str, float] = {}
    for k in range(1, repeat + 1):
        at_k[str(k)] = _mean(pass_at_k(len(v), sum(v), k) for v in per_case.values())
        hat_k[str(k)] = _mean(pass_hat_k(len(v), sum(v), k) for v in per_case.values())
    case_rates = []
    if max(len(v) for v in per_case.values()) > 1:
        case_rates = [
            {"case": cid, "samples": len(v), "passed": sum(v), "pass_fraction": sum(v) / len(v)}
            for cid, v in sorted(per_case.items())
        ]

    result = EvalResult(
        eval=eval_id,
        model=model,
        threshold=threshold,
        cases=n,
        passed=passed,
        failed=failed,
        errors=errors,
        pass_rate=passed / n,
        ci_low=low,
        ci_high=high,
        verdict="pass",
        verdict_reason="",
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cached_input_tokens=cached_input_tokens,
        cost_usd=cost,
        latency_p50_s=percentile(llm_latencies, 50),
        latency_p95_s=percentile(llm_latencies, 95),
        cache_hits=cache_hits,
        calls=n_calls,
        tags=sorted(tags),
        repeat=repeat,
        distinct_cases=len(per_case),
        pass_at_k=at_k,
        pass_hat_k=hat_k,
        case_rates=case_rates,
        flaky=sum(bool(r.get("flaky")) for r in rows),
    )
    set_verdict(result)
    return result


def _mean(values: Iterable[float]) -> float:
    items = list(values)
    return sum(items) / len(items) if items else 0.0


def set_verdict(result: EvalResult) -> None:
    """Decide ``verdict`` and ``verdict_reason`` from the counts, threshold and regression.

    Errors come first: an error is never a pass and fails the eval whatever the rate.
    """
    label = _label(result)
    rate = f"{result.pass_rate:.1%} ({result.passed}/{result.cases})"
    if result.errors:
        result.verdict = "error"
        result.verdict_reason = (
            f"{label}: {result.errors} error(s) in {result.cases} case(s); errors never count as passes "
            "and fail the run"
        )
    elif not result.met_threshold:
        result.verdict = "fail"
        result.verdict_reason = f"{label}: pass rate {rate} is below min_pass_rate {result.threshold:.1%}"
    elif result.regressed and result.baseline is not None:
        result.verdict = "fail"
        result.verdict_reason = regression_line(result)
    else:
        result.verdict = "pass"
        result.verdict_reason = f"{label}: pass rate {rate} meets min_pass_rate {result.threshold:.1%}"


def _label(result: EvalResult) -> str:
    return f"{result.eval} [{model_label(result.model)}]"


def regression_line(result: EvalResult) -> str:
    """One line saying how ``result`` regressed against the baseline: the verdict reason of
    a regressed eval, and the gate's reason when another verdict hides the regression."""
    b: BaselineEntry = result.baseline or {}
    return (
        f"{_label(result)}: regressed against the baseline: "
        f"{b.get('base_rate') or 0:.1%} -> {b.get('rate') or 0:.1%} on {b.get('n_pairs', 0)} matched case(s), "
        f"{len(b.get('flipped_to_fail', []))} flipped to fail and {len(b.get('flipped_to_pass', []))} to pass "
        f"(McNemar p={b.get('p_value', 1.0):.3g})"
    )


# -- the results document ------------------------------------------------------------------
def build_results(
    *,
    cases: Iterable[Mapping[str, Any]],
    evals: list[EvalResult],
    passed: bool,
    reasons: list[str],
    run_id: str,
    created_at: str,
    pytest_args: list[str],
    baseline: BaselineSection | None = None,
    non_eval_failures: list[str] | None = None,
    tallies: Tallies | dict[str, int] | None = None,
) -> ResultsDocument:
    """The JSON results document (see the module docstring)."""
    return {
        "schema": SCHEMA,
        "version": VERSION,
        "run_id": run_id,
        "created_at": created_at,
        "pytest_args": list(pytest_args),
        "passed": passed,
        "reasons": list(reasons),
        "non_eval_failures": sorted(non_eval_failures or []),
        "tallies": cast(Tallies, dict(tallies or {})),
        "evals": [e.to_dict() for e in evals],
        "cases": [case_for_json(c) for c in sort_cases(cases)],
        "baseline": baseline,
    }


_REQUIRED_EVAL = ("eval", "model", "threshold", "cases", "passed", "failed", "errors", "pass_rate")
_REQUIRED_CASE = ("eval", "nodeid", "model", "sample", "outcome")


def load_results(path: str | Path) -> ResultsDocument:
    """Read a results file written by ``--llmeval-json``.

    Raises :class:`ResultsFileError` naming the file when it is missing, not JSON, of
    another schema, of a newer version, or missing the fields the gate needs.
    """
    where = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ResultsFileError(f"{where}: no such results file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ResultsFileError(f"{where}: cannot read results file: {exc}") from None
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ResultsFileError(f"{where}: not a JSON file ({exc})") from None
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        found = data.get("schema") if isinstance(data, dict) else type(data).__name__
        raise ResultsFileError(
            f"{where}: not a pytest-llmeval results file (expected schema {SCHEMA!r}, found {found!r}); "
            "write one with --llmeval-json PATH"
        )
    version = data.get("version")
    if not isinstance(version, int) or version < 1:
        raise ResultsFileError(f"{where}: bad results version {version!r}")
    if version > VERSION:
        raise ResultsFileError(
            f"{where}: results version {version} is newer than this pytest-llmeval understands ({VERSION}); upgrade"
        )
    for name, required in (("evals", _REQUIRED_EVAL), ("cases", _REQUIRED_CASE)):
        items = data.get(name)
        if not isinstance(items, list):
            raise ResultsFileError(f"{where}: field {name!r} missing or not a list")
        for i, item in enumerate(items):
            missing = [f for f in required if not isinstance(item, dict) or f not in item]
            if missing:
                raise ResultsFileError(f"{where}: {name}[{i}] lacks field(s) {', '.join(missing)}")
    return cast(ResultsDocument, data)
