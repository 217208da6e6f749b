"""The gate: whether the run passes, and the exit status that says so.

The run fails iff, for some eval and model, the pass rate is below the threshold, the
baseline test finds a drop beyond chance, or a case errored; or something outside the
evals went wrong (a non-eval test failed, pytest stopped early, a report could not be
written). A failed case inside an eval that meets its threshold stays a failed test in
pytest's own output but does not fail the run: :class:`RunGate` turns pytest's exit
status 1 into 0 then. Any other exit status (usage error, interrupt, internal error,
nothing collected) is left alone.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Literal

import pytest

from pytest_llmeval.gate.results import (
    BaselineEntry,
    BaselineSection,
    EvalResult,
    ResultsDocument,
    ResultsFileError,
    aggregate,
    baseline_case,
    build_results,
    load_results,
    regression_line,
    set_verdict,
    sort_cases,
)
from pytest_llmeval.gate.stats import mcnemar_exact
from pytest_llmeval.store.redaction import redact_data
from pytest_llmeval.text import model_label

if TYPE_CHECKING:
    from pytest_llmeval.settings import Settings

__all__ = ["RunGate", "compare_baseline", "decide", "model_key", "regression_line"]

_TALLY_NAMES = ("calls", "hits", "retries", "errors")


# -- the baseline comparison ---------------------------------------------------------------
# Cases are matched on a form of their node id that survives what changes between two runs
# of the same evals without changing the evals: the model's URL (a label, or for an
# unlabelled model its provider and name, stand for it) and the directory prefix that
# pytest's rootdir puts in front of every node id.
_URL = re.compile(r"@https?://.*$")


def model_key(case: Mapping[str, Any]) -> str:
    """What a case's model is matched by: its label, else ``PROVIDER:MODEL`` without ``@URL``."""
    model = case.get("model") or ""
    spec = case.get("model_spec")
    if spec is not None and spec != model:
        return model  # labelled: the label is the model's stable name
    return _URL.sub("", model)


def _match_id(case: Mapping[str, Any], key: str) -> str:
    """The node id with the model's text in its parameters replaced by ``key``."""
    nodeid = case["nodeid"]
    model = case.get("model")
    head, bracket, params = nodeid.partition("[")
    if model and bracket and model != key:
        params = params.replace(model, key)
    return head + bracket + params


def _split_path(nodeid: str) -> tuple[list[str], str]:
    path, sep, rest = nodeid.partition("::")
    return path.split("/"), sep + rest


def _alignment(run_ids: set[str], base_ids: set[str]) -> tuple[str, str]:
    """``(side, prefix)``: the directory prefix to strip from the node ids of ``side``
    ("run" or "baseline") so that the most cases match; ``("", "")`` when none is needed.

    Another rootdir puts one prefix in front of every node id of a run (``pytest
    --llmeval-baseline /ci/run1.json`` makes pytest pick ``/`` or a parent folder), so the
    prefix that most ids share with the other side's ids is the rootdir difference.
    """
    exact = len(run_ids & base_ids)
    votes: Counter[tuple[str, str]] = Counter()
    for side, ids, other in (("run", run_ids, base_ids), ("baseline", base_ids, run_ids)):
        for nodeid in ids:
            parts, rest = _split_path(nodeid)
            for k in range(1, len(parts)):
                if "/".join(parts[k:]) + rest in other:
                    votes[(side, "/".join(parts[:k]) + "/")] += 1
    if votes:
        (side, prefix), count = max(votes.items(), key=lambda kv: (kv[1], -len(kv[0][1])))
        if count > exact:
            return side, prefix
    return "", ""


def _strip(nodeid: str, prefix: str) -> str:
    return nodeid[len(prefix) :] if prefix and nodeid.startswith(prefix) else nodeid


def _keyed(
    cases: Iterable[Mapping[str, Any]], prefix: str
) -> dict[tuple[str, str, int], tuple[str, Mapping[str, Any]]]:
    """Cases by (match id, model key, sample) -> (eval match id, case)."""
    out: dict[tuple[str, str, int], tuple[str, Mapping[str, Any]]] = {}
    for case in cases:
        key = model_key(case)
        nodeid = _strip(_match_id(case, key), prefix)
        out[(nodeid, key, int(case.get("sample") or 0))] = (_strip(case["eval"], prefix), case)
    return out


def compare_baseline(
    evals: list[EvalResult],
    cases: Iterable[Mapping[str, Any]],
    baseline: ResultsDocument | Mapping[str, Any],
    *,
    alpha: float,
    path: str,
) -> BaselineSection:
    """Compare this run's cases with a baseline results file, per eval and model.

    Cases are matched by node id, model and sample, where the model is its label (else its
    ``PROVIDER:MODEL`` without the URL) and a directory prefix that one run's rootdir put
    in front of every node id is taken off. A regression is a one-sided exact McNemar test
    on the flipped cases with ``p_value <= alpha``. Sets ``regressed``, ``baseline`` and
    the verdict on each of ``evals``; returns the ``baseline`` section of the results
    document, whose ``problem`` is set when no case matched at all (the gate then fails:
    a comparison with nothing is no evidence of "no regression"). Each entry keeps the
    baseline's outcome, output and error of each flipped case (``flipped_baseline``) for the
    HTML report to show beside this run's.
    """
    run_cases = sort_cases(cases)
    base_cases = list(baseline.get("cases") or [])
    run_ids = {_match_id(c, model_key(c)) for c in run_cases}
    base_ids = {_match_id(c, model_key(c)) for c in base_cases}
    side, prefix = _alignment(run_ids, base_ids)
    run_keyed = _keyed(run_cases, prefix if side == "run" else "")
    base_keyed = _keyed(base_cases, prefix if side == "baseline" else "")
    base_groups: dict[tuple[str, str], set[tuple[str, str, int]]] = defaultdict(set)
    for key, (eval_id, _case) in base_keyed.items():
        base_groups[(eval_id, key[1])].add(key)
    run_groups: dict[tuple[str | None, str | None], list[tuple[tuple[str, str, int], str]]] = defaultdict(list)
    for key, (eval_id, case) in run_keyed.items():
        run_groups[(case["eval"], case.get("model"))].append((key, eval_id))

    entries: list[BaselineEntry] = []
    seen_groups: set[tuple[str, str]] = set()
    for result in evals:
        rows = run_groups.get((result.eval, result.model), [])
        group_keys = {(eval_id, key[1]) for key, eval_id in rows}
        seen_groups |= group_keys
        in_baseline = set().union(*(base_groups.get(g, set()) for g in group_keys)) if group_keys else set()
        to_fail: list[str] = []
        to_pass: list[str] = []
        flipped: dict[str, Mapping[str, Any]] = {}
        base_passed = now_passed = n_pairs = 0
        for key, _eval_id in rows:
            if key not in base_keyed:
                continue
            n_pairs += 1
            before = base_keyed[key][1].get("outcome") == "passed"
            row = run_keyed[key][1]
            now = row.get("outcome") == "passed"
            base_passed += before
            now_passed += now
            if before and not now:
                to_fail.append(row["nodeid"])
            elif now and not before:
                to_pass.append(row["nodeid"])
            if before != now:
                flipped[row["nodeid"]] = base_keyed[key][1]
        p_value = mcnemar_exact(len(to_fail), len(to_pass), alternative="drop")
        status: Literal["compared", "new", "unmatched"] = (
            "compared" if n_pairs else ("new" if not in_baseline else "unmatched")
        )
        entry: BaselineEntry = {
            "eval": result.eval,
            "model": result.model,
            "status": status,
            "cases": len(rows),
            "base_rate": base_passed / n_pairs if n_pairs else None,
            "rate": now_passed / n_pairs if n_pairs else None,
            "n_pairs": n_pairs,
            "flipped_to_fail": sorted(to_fail),
            "flipped_to_pass": sorted(to_pass),
            "p_value": p_value,
            "regressed": bool(to_fail) and p_value <= alpha,
            "new_cases": len(rows) - n_pairs,
            "missing_cases": len(in_baseline - {key for key, _ in rows}),
            "flipped_baseline": {nodeid: baseline_case(flipped[nodeid]) for nodeid in sorted(flipped)},
        }
        result.baseline = entry
        result.regressed = bool(entry["regressed"])
        set_verdict(result)
        entries.append(entry)

    matched = sum(e["n_pairs"] for e in entries)
    section: BaselineSection = {
        "path": path,
        "alpha": alpha,
        "evals": entries,
        "matched_cases": matched,
        "cases": len(run_keyed),
        "baseline_cases": len(base_keyed),
        "not_run": sorted(f"{e} [{model_label(m)}]" for e, m in set(base_groups) - seen_groups),
    }
    if side:
        section["prefix_removed"] = {"from": side, "prefix": prefix}
    if not matched and run_keyed:
        section["problem"] = _no_match_problem(path, baseline, run_cases, base_cases)
    return section


def _no_match_problem(
    path: str,
    baseline: ResultsDocument | Mapping[str, Any],
    run_cases: Sequence[Mapping[str, Any]],
    base_cases: Sequence[Mapping[str, Any]],
) -> str:
    """Why a baseline that matches nothing fails the run, with what the user can check."""

    def names(cases: Sequence[Mapping[str, Any]]) -> str:
        evals = sorted({c["eval"] for c in cases})
        return ", ".join(evals[:3]) + (f" and {len(evals) - 3} more" if len(evals) > 3 else "") or "none"

    where = ""
    if baseline.get("rootdir"):
        where = f" (the baseline ran in rootdir {baseline.get('rootdir')})"
    return (
        f"--llmeval-baseline {path}: no case of this run matches any of the baseline's {len(base_cases)} case(s)"
        f"{where}, so nothing was compared; this run has {names(run_cases)}, the baseline {names(base_cases)}. "
        "A wrong file, another project or renamed tests? Write --llmeval-baseline=PATH (with '='): "
        "as two words pytest takes PATH for a test path when it picks the rootdir"
    )


def decide(evals: list[EvalResult], run_problems: Iterable[str] = ()) -> tuple[bool, list[str]]:
    """``(passed, reasons)``: one reason per failing eval and model, then the run's problems;
    when it passes, one line saying why."""
    reasons: list[str] = []
    for result in evals:
        if result.verdict != "pass":
            reasons.append(result.verdict_reason)
            if result.regressed and "regressed against the baseline" not in result.verdict_reason:
                reasons.append(regression_line(result))
    reasons.extend(run_problems)
    if reasons:
        return False, reasons
    tolerated = sum(r.failed for r in evals)
    line = f"all {len(evals)} eval/model pair(s) met their min_pass_rate with no errors"
    if any(r.baseline is not None for r in evals):
        line += " and no regression against the baseline"
    lines = [line]
    if tolerated:
        lines.append(f"{tolerated} failed case(s) inside passing evals do not fail the run")
    return True, lines


def _partial_lines(evals: list[EvalResult]) -> list[str]:
    """A passing verdict on a subset says so: ``-k``, ``-m``, ``--lf`` or ``--deselect``
    leave cases out, and a pass rate on 1 of 40 cases is not the eval's pass rate."""
    partial = [r for r in evals if r.collected_cases is not None and r.cases < r.collected_cases]
    if not partial:
        return []
    run = sum(r.cases for r in partial)
    total = sum(r.collected_cases or 0 for r in partial)
    return [
        f"partial run: {len(partial)} eval/model pair(s) judged on {run} of {total} cases "
        "(the rest deselected or skipped); the verdict covers only the cases that ran"
    ]


# -- the pytest side -------------------------------------------------------------------------
class RunGate:
    """Collects what the gate needs during the run and applies it at the end.

    Lives inside :class:`pytest_llmeval.session.EvalSession`; on an xdist worker it only
    counts, the controller decides.
    """

    def __init__(self, config: pytest.Config, settings: Settings) -> None:
        self.config = config
        self.settings = settings
        self.is_worker = hasattr(config, "workerinput")
        self.non_eval_failures: list[str] = []
        self.worker_tallies: list[dict[str, int]] = []
        self.evals: list[EvalResult] = []
        self.results: ResultsDocument | None = None
        self.baseline: ResultsDocument | None = None
        if settings.baseline_path is not None and not self.is_worker:
            # Read now, so a bad baseline is a usage error before any model is called.
            try:
                self.baseline = load_results(settings.baseline_path)
            except ResultsFileError as exc:
                raise pytest.UsageError(f"--llmeval-baseline: {exc}") from None

    def note_report(self, report: pytest.TestReport) -> None:
        """Remember failures that are not eval outcomes: they fail the run as usual."""
        # Every report of an eval case carries llmeval_case (its data comes with the teardown
        # report): the case's own outcome, not a failure outside the evals.
        is_case = getattr(report, "llmeval_case", False) or getattr(report, "llmeval", None) is not None
        if report.failed and not is_case and report.nodeid not in self.non_eval_failures:
            self.non_eval_failures.append(report.nodeid)

    def add_worker_tallies(self, tallies: dict[str, Any]) -> None:
        """Run-level tallies handed back by an xdist worker."""
        self.worker_tallies.append({k: int(tallies.get(k, 0)) for k in _TALLY_NAMES})

    def tallies(self, own: Any) -> dict[str, int]:
        """This process's caller tallies plus every worker's."""
        total = {k: int(getattr(own, k, 0)) for k in _TALLY_NAMES}
        for worker in self.worker_tallies:
            for k in _TALLY_NAMES:
                total[k] += worker[k]
        return total

    def finish(
        self,
        session: pytest.Session,
        cases: list[dict[str, Any]],
        own_tallies: Any,
        run_id: str,
        collected: Mapping[tuple[str, str | None], int] | None = None,
    ) -> None:
        """Aggregate, compare, decide, call the hook, write the reports, set the exit status.

        ``collected`` counts the eval items collected per (eval, model), deselected ones
        included: where fewer ran, the summary says the run was partial.
        """
        if self.is_worker:
            return
        settings = self.settings
        if not cases and not settings.wants_reports:
            return
        run_cases = sort_cases(cases)
        self.evals = aggregate(run_cases)
        for result in self.evals:
            if collected is not None:
                result.collected_cases = collected.get((result.eval, result.model), result.cases)
        baseline_section = None
        problems = self._run_problems(session)
        if self.baseline is not None and settings.baseline_path is not None:
            # The path as the user wrote it: readable in the summary, portable in the JSON.
            shown = self.config.getoption("llmeval_baseline", None) or str(settings.baseline_path)
            baseline_section = compare_baseline(
                self.evals, run_cases, self.baseline, alpha=settings.alpha, path=str(shown)
            )
            if baseline_section.get("problem"):
                problems.append(baseline_section["problem"])
        passed, reasons = decide(self.evals, problems)
        if passed:
            reasons.extend(_partial_lines(self.evals))
        self.results = build_results(
            cases=run_cases,
            evals=self.evals,
            passed=passed,
            reasons=reasons,
            run_id=run_id,
            created_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
            pytest_args=redact_data(list(self.config.invocation_params.args)),  # a model URL may hold a key
            baseline=baseline_section,
            non_eval_failures=self.non_eval_failures,
            tallies=self.tallies(own_tallies),
        )
        self.results["run_problems"] = problems
        # Node ids are relative to it: a baseline from another rootdir is matched knowing so.
        self.results["rootdir"] = str(self.config.rootpath)
        if collected is not None:
            self.results["collected"] = [
                {"eval": r.eval, "model": r.model, "collected": r.collected_cases, "run": r.cases} for r in self.evals
            ]
        for result in self.evals:
            self.config.hook.pytest_llmeval_eval_finished(result=result, config=self.config)
        write_errors = self._write_reports(self.results)
        if write_errors:
            self.results["passed"] = False
            self.results["reasons"] = [*(reasons if not passed else []), *write_errors]
        if cases and session.exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED):
            session.exitstatus = pytest.ExitCode.OK if self.results["passed"] else pytest.ExitCode.TESTS_FAILED

    def _run_problems(self, session: pytest.Session) -> list[str]:
        problems: list[str] = []
        if self.non_eval_failures:
            shown = ", ".join(self.non_eval_failures[:5])
            more = f" and {len(self.non_eval_failures) - 5} more" if len(self.non_eval_failures) > 5 else ""
            problems.append(f"{len(self.non_eval_failures)} failure(s) outside eval cases: {shown}{more}")
        stopped = session.shouldfail or session.shouldstop
        if stopped:
            problems.append(f"pytest stopped early ({stopped}): the evals are incomplete")
        status = session.exitstatus
        if status not in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED):
            name = status.name if isinstance(status, pytest.ExitCode) else str(status)
            problems.append(f"pytest exit status {int(status)} ({name}): not a complete run")
        return problems

    def _write_reports(self, results: ResultsDocument) -> list[str]:
        """Write every requested report; a failure is a reason the run fails, not a crash."""
        from pytest_llmeval.reports.writer import ReportTarget, write_reports

        s = self.settings
        targets = [
            ReportTarget("json", s.json_path, "--llmeval-json"),
            ReportTarget(
                "junit", s.report_path, "--llmeval-report", {"strict": s.report_strict, "tolerated": s.report_tolerated}
            ),
            ReportTarget("markdown", s.markdown_path, "--llmeval-markdown"),
            ReportTarget("html", s.html_path, "--llmeval-html"),
        ]
        return write_reports(results, targets, self.baseline)

    def terminal_summary(self, terminalreporter: Any) -> None:
        """The summary table, the baseline flips and the verdict, at the end of the run."""
        if self.results is None or (not self.results["cases"] and not self.results["evals"]):
            return
        from pytest_llmeval.reports.terminal import write_summary

        # The report gets the writer and the verbosity, never the config: it stays a pure
        # function of the results document.
        write_summary(terminalreporter, self.results, int(self.config.get_verbosity()))
