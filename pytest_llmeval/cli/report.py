"""``python -m pytest_llmeval report RESULTS.json [--baseline OLD.json] [--markdown PATH] [--html PATH]``.

Prints the terminal summary of a results file written by ``--llmeval-json``; with
``--baseline`` it recomputes the gate against that older results file (so a CI job can
gate a run recorded elsewhere). Exit status: 0 when the (re)computed gate passes, 1 when
it fails, 2 when a file cannot be read or written.
"""

from __future__ import annotations

import argparse
import copy
import sys
from typing import Any, TextIO

from pytest_llmeval.gate.results import ResultsDocument, ResultsFileError, aggregate, load_results

__all__ = ["add_report_parser", "run_report", "rebaseline"]


def add_report_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``report`` command to an ``argparse`` subparsers object; returns its parser."""
    parser = subparsers.add_parser(
        "report",
        help="Summarise a results file (--llmeval-json), optionally gated against a baseline.",
        description=__doc__.split("\n\n", 1)[1] if __doc__ else None,
    )
    parser.add_argument("results", metavar="RESULTS.json", help="Results file written by --llmeval-json.")
    parser.add_argument("--baseline", metavar="OLD.json", default=None, help="Results file of an accepted run.")
    parser.add_argument(
        "--alpha",
        type=float,
        default=None,
        metavar="ALPHA",
        help="Significance level of the baseline test. Default: the run's, else 0.05.",
    )
    parser.add_argument("--markdown", metavar="PATH", default=None, help="Write the summary as Markdown.")
    parser.add_argument("--html", metavar="PATH", default=None, help="Write a self-contained HTML report.")
    parser.add_argument("--json", metavar="PATH", default=None, help="Write the (re-gated) results as JSON.")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="List every flipped case.")
    parser.add_argument("-q", "--quiet", action="count", default=0, help="Print less.")
    parser.set_defaults(handler=run_report)
    return parser


def rebaseline(
    results: ResultsDocument | dict[str, Any], baseline: ResultsDocument | dict[str, Any], *, alpha: float, path: str
) -> ResultsDocument:
    """A copy of ``results`` with evals, baseline section and verdict recomputed against ``baseline``.

    Problems of the original run that are not about evals (non-eval failures, an
    interrupted run) are kept as reasons.
    """
    from pytest_llmeval.gate.gate import compare_baseline, decide

    out: ResultsDocument = copy.deepcopy(results)  # type: ignore[assignment]
    evals = aggregate(out["cases"])
    out["baseline"] = compare_baseline(evals, out["cases"], baseline, alpha=alpha, path=path)
    passed, reasons = decide(evals, out.get("run_problems") or [])
    out["evals"] = [e.to_dict() for e in evals]
    out["passed"], out["reasons"] = passed, reasons
    return out


def run_report(args: argparse.Namespace, *, stdout: TextIO | None = None, stderr: TextIO | None = None) -> int:
    """Run the ``report`` command with parsed ``args``; returns the exit status."""
    from pytest_llmeval.reports.terminal import StreamWriter, write_summary
    from pytest_llmeval.reports.writer import ReportTarget, write_reports

    out = stdout or sys.stdout
    err = stderr or sys.stderr
    try:
        results = load_results(args.results)
        baseline = None
        if getattr(args, "baseline", None):
            baseline = load_results(args.baseline)
            alpha = args.alpha
            if alpha is None:
                section = results.get("baseline")  # the run's own level, else the default
                alpha = float(section["alpha"]) if section and section.get("alpha") else 0.05
            if not 0.0 < alpha < 1.0:
                print(f"report: --alpha must be between 0 and 1, got {alpha}", file=err)
                return 2
            results = rebaseline(results, baseline, alpha=alpha, path=str(args.baseline))
    except ResultsFileError as exc:
        print(f"report: {exc}", file=err)
        return 2

    verbosity = int(getattr(args, "verbose", 0) or 0) - int(getattr(args, "quiet", 0) or 0)
    write_summary(StreamWriter(out), results, verbosity)
    # The same writer as the end of a pytest run, so both write the same files.
    errors = write_reports(
        results,
        [
            ReportTarget("markdown", getattr(args, "markdown", None), "--markdown"),
            ReportTarget("json", getattr(args, "json", None), "--json"),
            ReportTarget("html", getattr(args, "html", None), "--html"),
        ],
        baseline,
    )
    for line in errors:
        print(f"report: {line}", file=err)
    if errors:
        return 2
    return 0 if results.get("passed") else 1


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry point (``python -m pytest_llmeval.cli.report``), for when the main
    CLI is not available."""
    parser = argparse.ArgumentParser(prog="pytest_llmeval")
    sub = parser.add_subparsers(dest="command", required=True)
    add_report_parser(sub)
    args = parser.parse_args(argv)
    return int(args.handler(args))


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
