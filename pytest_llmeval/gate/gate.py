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

from collections import defaultdict
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

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

if TYPE_CHECKING:
    from pytest_llmeval.settings import Settings

__all__ = ["RunGate", "compare_baseline", "decide", "regression_line"]

_TALLY_NAMES = ("calls", "hits", "retries", "errors")


# -- the baseline comparison ---------------------------------------------------------------
def _case_key(case: Mapping[str, Any]) -> tuple[str, str | None, int]:
    return (case["nodeid"], case.get("model"), int(case.get("sample") or 0))


def compare_baseline(
    evals: list[EvalResult],
    cases: Iterable[Mapping[str, Any]],
    baseline: ResultsDocument | Mapping[str, Any],
    *,
    alpha: float,
    path: str,
) -> BaselineSection:
    """Compare this run's cases with a baseline results file, per eval and model.

    Cases are matched by (node id, model, sample). A regression is a one-sided exact
    McNemar test on the flipped cases with ``p_value <= alpha``. Sets ``regressed``,
    ``baseline`` and the verdict on each of ``evals``; returns the ``baseline`` section of
    the results document, which keeps the baseline's outcome, output and error of each
    flipped case (``flipped_baseline``) for the HTML report to show beside this run's.
    """
    base_outcome: dict[tuple[str, str | None, int], bool] = {}
    base_case: dict[tuple[str, str | None, int], Mapping[str, Any]] = {}  # for the flipped-cases view
    base_by_eval: dict[tuple[str, str | None], set[tuple[str, str | None, int]]] = defaultdict(set)
    for case in baseline.get("cases") or []:
        key = _case_key(case)
        base_outcome[key] = case.get("outcome") == "passed"
        base_case[key] = case
        base_by_eval[(case["eval"], case.get("model"))].add(key)
    groups: dict[tuple[str, str | None], list[Mapping[str, Any]]] = defaultdict(list)
    for case in sort_cases(cases):
        groups[(case["eval"], case.get("model"))].append(case)

    entries: list[BaselineEntry] = []
    for result in evals:
        rows = groups.get((result.eval, result.model), [])
        keys = {_case_key(r) for r in rows}
        to_fail: list[str] = []
        to_pass: list[str] = []
        flipped: dict[str, Mapping[str, Any]] = {}
        base_passed = now_passed = n_pairs = 0
        for row in rows:
            key = _case_key(row)
            if key not in base_outcome:
                continue
            n_pairs += 1
            before, now = base_outcome[key], row["outcome"] == "passed"
            base_passed += before
            now_passed += now
            if before and not now:
                to_fail.append(row["nodeid"])
            elif now and not before:
                to_pass.append(row["nodeid"])
            if before != now:
                flipped[row["nodeid"]] = base_case[key]
        p_value = mcnemar_exact(len(to_fail), len(to_pass), alternative="drop")
        entry: BaselineEntry = {
            "eval": result.eval,
            "model": result.model,
            "base_rate": base_passed / n_pairs if n_pairs else None,
            "rate": now_passed / n_pairs if n_pairs else None,
            "n_pairs": n_pairs,
            "flipped_to_fail": sorted(to_fail),
            "flipped_to_pass": sorted(to_pass),
            "p_value": p_value,
            "regressed": bool(to_fail) and p_value <= alpha,
            "new_cases": len(rows) - n_pairs,
            "missing_cases": len(base_by_eval.get((result.eval, result.model), set()) - keys),
            "flipped_baseline": {nodeid: baseline_case(flipped[nodeid]) for nodeid in sorted(flipped)},
        }
        result.baseline = entry
        result.regressed = bool(entry["regressed"])
        set_verdict(result)
        entries.append(entry)
    return {"path": path, "alpha": alpha, "evals": entries}


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
        if report.failed and getattr(report, "llmeval", None) is None and report.nodeid not in self.non_eval_failures:
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

    def finish(self, session: pytest.Session, cases: list[dict[str, Any]], own_tallies: Any, run_id: str) -> None:
        """Aggregate, compare, decide, call the hook, write the reports, set the exit status."""
        if self.is_worker:
            return
        settings = self.settings
        wants_reports = any((settings.json_path, settings.report_path, settings.markdown_path, settings.html_path))
        if not cases and not wants_reports:
            return
        cases = sort_cases(cases)
        self.evals = aggregate(cases)
        baseline_section = None
        if self.baseline is not None and settings.baseline_path is not None:
            # The path as the user wrote it: readable in the summary, portable in the JSON.
            shown = self.config.getoption("llmeval_baseline", None) or str(settings.baseline_path)
            baseline_section = compare_baseline(self.evals, cases, self.baseline, alpha=settings.alpha, path=str(shown))
        problems = self._run_problems(session)
        passed, reasons = decide(self.evals, problems)
        self.results = build_results(
            cases=cases,
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
