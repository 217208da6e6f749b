"""Reports: JUnit XML (validated), pytest's --junitxml properties, JSON, Markdown, the report
command, and identical results with and without pytest-xdist."""

from __future__ import annotations

import argparse
import ast
import io
import json
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
import xmlschema
from fakeapi import FakeAPI
from test_gate import OPENAI, TWO_MODELS, case_number, read_json, script, write_eval

from pytest_llmeval.cli.report import add_report_parser, run_report
from pytest_llmeval.gate.results import ResultsFileError, aggregate, build_results, load_results
from pytest_llmeval.reports.html.render import render_html
from pytest_llmeval.reports.json import write_json
from pytest_llmeval.reports.junit import render_junit, xml_safe
from pytest_llmeval.reports.markdown import md_cell, render_markdown
from pytest_llmeval.reports.terminal import StreamWriter, summary_lines, write_summary
from pytest_llmeval.reports.writer import ReportTarget, write_reports

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="module")
def junit_schema() -> xmlschema.XMLSchema:
    """Jenkins' junit-10.xsd shape: what strict xunit2 consumers accept."""
    return xmlschema.XMLSchema(str(DATA / "junit-10.xsd"))


@pytest.fixture(scope="module")
def junit_properties_schema() -> xmlschema.XMLSchema:
    """The same, plus <properties> inside <testcase> (pytest's xunit1 family)."""
    return xmlschema.XMLSchema(str(DATA / "junit-10-properties.xsd"))


def props(element: ET.Element) -> dict[str, str]:
    node = element.find("properties")
    return {} if node is None else {p.get("name", ""): p.get("value", "") for p in node.findall("property")}


# -- JUnit XML -----------------------------------------------------------------------------------
def test_junit_report_has_one_suite_per_model_and_validates(
    pytester: pytest.Pytester,
    fake_api: FakeAPI,
    junit_schema: xmlschema.XMLSchema,
    junit_properties_schema: xmlschema.XMLSchema,
) -> None:
    write_eval(pytester, n=5, marker="min_pass_rate=0.7")
    script(fake_api, lambda i, model: i < 4 if model.startswith("gpt") else i < 2)
    # Tolerated failures as <failure>s (the default writes them as passed: see test_junit.py).
    args = ("--llmeval-report", "reports/llmeval.xml", "--llmeval-report-tolerated=failure")
    result = pytester.runpytest(*TWO_MODELS, *args)
    assert result.ret == 1  # anthropic: 2/5 < 0.7
    path = pytester.path / "reports" / "llmeval.xml"
    root = ET.parse(path).getroot()
    assert root.tag == "testsuites" and root.get("tests") == "10" and root.get("failures") == "4"
    suites = {s.get("name"): s for s in root.findall("testsuite")}
    assert sorted(suites) == ["anthropic:claude-haiku-4-5", "openai:gpt-4o-mini"]
    openai = suites["openai:gpt-4o-mini"]
    assert (openai.get("tests"), openai.get("failures"), openai.get("errors")) == ("5", "1", "0")
    sp = props(openai)
    prefix = "llmeval.eval.test_ev.py::test_answer"
    assert float(sp[f"{prefix}.pass_rate"]) == 0.8 and float(sp[f"{prefix}.threshold"]) == 0.7
    assert float(sp[f"{prefix}.ci_low"]) == pytest.approx(0.376, abs=1e-3)
    assert float(sp[f"{prefix}.ci_high"]) == pytest.approx(0.964, abs=1e-3)
    assert sp[f"{prefix}.verdict"] == "pass"
    assert props(suites["anthropic:claude-haiku-4-5"])[f"{prefix}.verdict"] == "fail"
    cases = {c.get("name"): c for c in openai.findall("testcase")}
    assert len(cases) == 5
    failed = cases["test_answer[openai:gpt-4o-mini-4]"]
    assert failed.get("classname") == "test_ev"
    cp = props(failed)
    assert cp["llmeval.outcome"] == "failed" and cp["llmeval.passed"] == "false" and cp["llmeval.score"] == "0"
    assert cp["llmeval.check.0.exact"] == "fail score=0"
    assert "expected" in cp["llmeval.check.0.explanation"] or cp["llmeval.check.0.explanation"]
    assert int(cp["llmeval.input_tokens"]) > 0 and cp["llmeval.cached"] == "false"
    assert re.fullmatch(r"v\d+-[0-9a-f]{64}", cp["llmeval.key"])
    failure = failed.find("failure")
    assert failure is not None and "yes" in failure.get("message", "") and "no" in failure.get("message", "")
    assert failed.findtext("system-out") == "no"
    assert props(cases["test_answer[openai:gpt-4o-mini-0]"])["llmeval.passed"] == "true"
    junit_properties_schema.validate(str(path))
    # Apart from the per-case <properties>, the report is plain junit-10.
    for testcase in root.iter("testcase"):
        testcase.remove(testcase.find("properties"))  # type: ignore[arg-type]
    junit_schema.validate(ET.tostring(root, encoding="unicode"))


HOSTILE = {
    0: "nul\x00byte and bell\x07 and backspace\x08",
    1: "\x1b[31mred\x1b[0m escape codes \x1b]0;title\x07",
    2: "form feed\x0c, vertical tab\x0b, \u2028line separator and \r\n\r newlines",
    3: "cdata end ]]> and <tag attr='x'>&amp; & \"quotes\"",
    4: "big " + "x" * 1_000_000 + " end",
    5: "\ufffe\uffff noncharacters and \x7f\x85 controls; emoji 🎉 and 中文",
}


def test_hostile_model_outputs_make_valid_small_reports(
    pytester: pytest.Pytester, fake_api: FakeAPI, junit_properties_schema: xmlschema.XMLSchema
) -> None:
    write_eval(pytester, n=len(HOSTILE), marker="min_pass_rate=0.0")
    fake_api.reply(lambda body: HOSTILE[case_number(body)])
    result = pytester.runpytest(
        *OPENAI,
        "--llmeval-report",
        "r.xml",
        "--llmeval-json",
        "r.json",
        "--llmeval-markdown",
        "r.md",
        "--junitxml",
        "pytest.xml",
    )
    result.assert_outcomes(failed=len(HOSTILE))
    assert result.ret == 0  # min_pass_rate=0.0: failed cases, no errors
    raw = (pytester.path / "r.xml").read_bytes()
    assert len(raw) < 100_000, len(raw)  # the megabyte output is cut
    # Strict parsers: expat through ElementTree, and schema validation.
    root = ET.fromstring(raw)
    junit_properties_schema.validate(str(pytester.path / "r.xml"))
    text = raw.decode("utf-8")
    assert "\\x00" in text and "\\x1b[31m" in text and "\\x0c" in text and "\\x0b" in text
    assert "]]&gt;" in text and "\\ufffe" in text and "🎉" in text and "中文" in text
    assert "characters left out" in text
    outputs = {tc.get("name"): tc.findtext("system-out") or "" for tc in root.iter("testcase")}
    assert outputs["test_answer[openai:gpt-4o-mini-3]"] == "cdata end ]]> and <tag attr='x'>&amp; & \"quotes\""
    # The JSON keeps outputs exactly (escaped), shortened past 20,000 characters.
    data = load_results(pytester.path / "r.json")
    by_case = {c["nodeid"].rsplit("-", 1)[1].rstrip("]"): c for c in data["cases"]}
    assert by_case["1"]["output"] == HOSTILE[1]
    assert by_case["0"]["output"] == HOSTILE[0]
    assert by_case["4"]["output_chars"] == len(HOSTILE[4]) and len(by_case["4"]["output"]) < 21_000
    assert (pytester.path / "r.json").stat().st_size < 200_000
    (pytester.path / "r.md").read_text(encoding="utf-8")
    ET.parse(pytester.path / "pytest.xml")  # pytest's own report stays valid with our properties


def test_a_lone_surrogate_from_the_model_reaches_the_reports_escaped(
    pytester: pytest.Pytester, fake_api: FakeAPI, junit_properties_schema: xmlschema.XMLSchema
) -> None:
    write_eval(pytester, n=1, marker="min_pass_rate=0.0")
    fake_api.reply("lone surrogate \ud800 and \udfff in text")
    result = pytester.runpytest(*OPENAI, "--llmeval-report", "r.xml", "--llmeval-json", "r.json")
    result.assert_outcomes(failed=1)
    text = (pytester.path / "r.xml").read_text(encoding="utf-8")
    junit_properties_schema.validate(str(pytester.path / "r.xml"))
    assert "lone surrogate \\ud800 and \\udfff in text" in text
    assert load_results(pytester.path / "r.json")["cases"][0]["output"] == "lone surrogate \ud800 and \udfff in text"


def test_xml_safe_escapes_what_xml_cannot_hold() -> None:
    assert xml_safe("a\x00b\x1bc\ud800d\ufffe") == "a\\x00b\\x1bc\\ud800d\\ufffe"
    assert xml_safe("tab\tnewline\ncr\r") == "tab\tnewline\ncr\r"
    cut = xml_safe("a" * 50 + "b" * 50, cap=20)
    assert cut.startswith("a" * 10) and cut.endswith("b" * 10) and "80 characters left out" in cut


def synthetic_results(**overrides: Any) -> dict[str, Any]:
    """A results document from hand-made case dicts, without running pytest."""
    cases = []
    for i in range(4):
        cases.append(
            {
                "eval": "t.py::test_a|b",
                "nodeid": f"t.py::test_a|b[<m>-{i}]",
                "model": "openai:<m>",
                "sample": 0,
                "outcome": "passed" if i < 3 else "failed",
                "score": 1.0 if i < 3 else 0.25,
                "threshold": 0.5,
                "tags": ["x"],
                "results": [
                    {
                        "name": "rubric",
                        "passed": i < 3,
                        "score": 0.25,
                        "label": "B",
                        "reasoning": "judge says \x00 ]]> " + "r" * 5000,
                    }
                ],
                "calls": [
                    {
                        "key": f"v1-{i:064d}",
                        "model": "openai:<m>",
                        "cached": True,
                        "latency_s": 0.5,
                        "input_tokens": 10,
                        "output_tokens": 5,
                        "cached_input_tokens": 0,
                        "cost_usd": 0.001,
                        "role": "llm",
                    }
                ],
                "output": "out \ud800 \x00 ]]>",
                "prompt": [{"role": "user", "content": "p"}],
                "error": None,
                "duration_s": 0.1,
            }
        )
    evals = aggregate(cases)
    kw: dict[str, Any] = dict(
        cases=cases, evals=evals, passed=True, reasons=["ok"], run_id="r1", created_at="2025-01-01T00:00:00+00:00"
    )
    kw.update(overrides)
    return build_results(pytest_args=[], **kw)


def test_junit_grade_properties_are_shortened_and_safe(junit_properties_schema: xmlschema.XMLSchema) -> None:
    raw = render_junit(synthetic_results(), hostname="h")
    junit_properties_schema.validate(raw.decode("utf-8"))
    case = next(ET.fromstring(raw).iter("testcase"))
    cp = props(case)
    assert cp["llmeval.check.0.rubric"] == "pass score=0.25 label=B"
    assert cp["llmeval.check.0.reasoning"].startswith("judge says \\x00 ]]> rrr")
    assert len(cp["llmeval.check.0.reasoning"]) < 400
    assert cp["llmeval.cached"] == "true" and cp["llmeval.cost_usd"] == "0.001"
    assert case.findtext("system-out") == "out \\ud800 \\x00 ]]>"


def test_json_keeps_lone_surrogates_and_reads_back(tmp_path: Path) -> None:
    write_json(synthetic_results(), tmp_path / "r.json")
    assert load_results(tmp_path / "r.json")["cases"][0]["output"] == "out \ud800 \x00 ]]>"


# -- pytest's own --junitxml ------------------------------------------------------------------------
def test_pytest_junitxml_gets_llmeval_properties_unless_switched_off(
    pytester: pytest.Pytester, fake_api: FakeAPI, junit_schema: xmlschema.XMLSchema
) -> None:
    write_eval(pytester, n=2, marker="min_pass_rate=0.5")
    pytester.makepyfile(test_plain="def test_plain():\n    pass\n")
    script(fake_api, [0])
    assert pytester.runpytest(*OPENAI, "--junitxml", "with.xml").ret == 0
    cases = {c.get("name"): props(c) for c in ET.parse(pytester.path / "with.xml").iter("testcase")}
    assert cases["test_answer[openai:gpt-4o-mini-0]"] == {
        "llmeval.model": "openai:gpt-4o-mini",
        "llmeval.outcome": "passed",
        "llmeval.passed": "true",
        "llmeval.score": "1",
    }
    assert cases["test_answer[openai:gpt-4o-mini-1]"]["llmeval.passed"] == "false"
    assert cases["test_plain"] == {}
    # Strict xunit2 consumers: the switch removes them and the file is valid junit-10.
    args = [*OPENAI, "-o", "junit_family=xunit2"]
    assert pytester.runpytest(*args, "--junitxml", "strict.xml", "--llmeval-no-junit-properties").ret == 0
    assert all(not props(c) for c in ET.parse(pytester.path / "strict.xml").iter("testcase"))
    junit_schema.validate(str(pytester.path / "strict.xml"))
    # ... and without the switch, the same xunit2 file is not: the switch is what makes it valid.
    assert pytester.runpytest(*args, "--junitxml", "loose.xml").ret == 0
    assert not junit_schema.is_valid(str(pytester.path / "loose.xml"))


# -- JSON -----------------------------------------------------------------------------------------
TOP_KEYS = {
    "schema",
    "version",
    "run_id",
    "created_at",
    "pytest_args",
    "passed",
    "reasons",
    "evals",
    "cases",
    "baseline",
}
EVAL_KEYS = {
    "eval", "model", "threshold", "cases", "passed", "failed", "errors", "pass_rate", "ci_low", "ci_high",
    "verdict", "input_tokens", "output_tokens", "cached_input_tokens", "cost_usd", "latency_p50_s",
    "latency_p95_s", "cache_hits", "calls", "tags", "repeat", "pass_at_k", "pass_hat_k",
}  # fmt: skip
CASE_KEYS = {
    "eval", "nodeid", "model", "sample", "outcome", "score", "threshold", "tags", "results", "calls", "output",
    "prompt", "error", "key",
}  # fmt: skip
BASELINE_EVAL_KEYS = {
    "eval", "model", "base_rate", "rate", "n_pairs", "flipped_to_fail", "flipped_to_pass", "p_value", "regressed",
}  # fmt: skip


def test_json_results_follow_the_agreed_schema(pytester: pytest.Pytester, fake_api: FakeAPI) -> None:
    write_eval(pytester, n=3, marker="min_pass_rate=0.5, tags=['geo']")
    script(fake_api, [0, 1])
    assert pytester.runpytest(*OPENAI, "--llmeval-json", "base.json").ret == 0
    result = pytester.runpytest(
        *OPENAI, "--llmeval-json", "out.json", "--llmeval-baseline", "base.json", "--llmeval-html", "out.html"
    )
    assert result.ret == 0
    assert (pytester.path / "out.html").read_text(encoding="utf-8").lstrip().lower().startswith("<!doctype html")
    data = read_json(pytester)
    assert TOP_KEYS <= set(data) and data["schema"] == "pytest-llmeval/results" and data["version"] == 1
    assert data["passed"] is True and data["reasons"] and re.fullmatch(r"[0-9a-f]{32}", data["run_id"])
    assert "--llmeval-json" in data["pytest_args"]
    (ev,) = data["evals"]
    assert EVAL_KEYS <= set(ev)
    assert ev["tags"] == ["geo"] and ev["verdict"] == "pass" and ev["pass_at_k"] == {"1": pytest.approx(2 / 3)}
    assert ev["calls"] == 3 and ev["cache_hits"] == 3  # the second run replays the first
    for case in data["cases"]:
        assert CASE_KEYS <= set(case)
        assert case["key"] == case["calls"][0]["key"]
    assert [c["nodeid"] for c in data["cases"]] == sorted(c["nodeid"] for c in data["cases"])
    assert set(data["baseline"]) >= {"path", "alpha", "evals"} and data["baseline"]["alpha"] == 0.05
    assert BASELINE_EVAL_KEYS <= set(data["baseline"]["evals"][0])
    assert data["baseline"]["path"].endswith("base.json")


@pytest.mark.parametrize(
    "content, message",
    [
        (None, "no such results file"),
        ("[1, 2", "not a JSON file"),
        ('{"schema": "junit", "version": 1}', "not a pytest-llmeval results file (expected schema"),
        ('{"schema": "pytest-llmeval/results", "version": 99, "evals": [], "cases": []}', "version 99 is newer"),
        ('{"schema": "pytest-llmeval/results", "version": 1, "evals": [{}], "cases": []}', "evals[0] lacks field(s)"),
        ('{"schema": "pytest-llmeval/results", "version": 1, "cases": []}', "field 'evals' missing"),
    ],
)
def test_load_results_names_the_file_and_the_problem(tmp_path: Path, content: str | None, message: str) -> None:
    path = tmp_path / "results.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(ResultsFileError) as info:
        load_results(path)
    assert str(path) in str(info.value) and message in str(info.value)


# -- Markdown ------------------------------------------------------------------------------------
def test_markdown_escapes_table_cells() -> None:
    assert md_cell("a|b\nc<script>") == "a\\|b c&lt;script&gt;"
    text = render_markdown(synthetic_results())
    assert "## ✅ pytest-llmeval: passed" in text
    row = next(line for line in text.splitlines() if line.startswith("| `t.py"))
    assert row.count(" | ") == 12  # 13 cells: no pipe from the eval name leaked into the table
    assert "openai:&lt;m&gt;" in row and "75.0% (30.1%–95.4%)" in row


# -- one document, one writer --------------------------------------------------------------------
REPORTS = Path(__file__).resolve().parent.parent / "pytest_llmeval" / "reports"
# What a report may not import: it renders the results document and nothing else.
FORBIDDEN = ("pytest", "_pytest", "pytest_llmeval.gate", "pytest_llmeval.calls", "pytest_llmeval.store",
             "pytest_llmeval.session", "pytest_llmeval.plugin", "pytest_llmeval.planning")  # fmt: skip


def _runtime_imports(tree: ast.Module) -> list[str]:
    """Modules imported by ``tree``, leaving out ``if TYPE_CHECKING:`` blocks (types only)."""
    names: list[str] = []

    def visit(nodes: list[ast.stmt]) -> None:
        for node in nodes:
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                visit(node.orelse)
                continue
            if isinstance(node, ast.Import):
                names.extend(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module:
                names.append(node.module)
            for field in ("body", "orelse", "finalbody", "handlers"):
                visit([n for n in getattr(node, field, []) if isinstance(n, ast.stmt | ast.ExceptHandler)])  # type: ignore[misc]

    visit(tree.body)
    return names


def test_reports_import_neither_the_gate_nor_pytest() -> None:
    modules = sorted(REPORTS.rglob("*.py"))
    assert len(modules) >= 8  # terminal, junit, markdown, json, writer, html/render, ...
    offenders = {
        str(path.relative_to(REPORTS)): bad
        for path in modules
        if (bad := [m for m in _runtime_imports(ast.parse(path.read_text())) if m.split(".")[0] in ("pytest", "_pytest")
                    or any(m == f or m.startswith(f + ".") for f in FORBIDDEN)])
    }  # fmt: skip
    assert offenders == {}
    # The scan sees what it is meant to: an import in a function body counts.
    assert _runtime_imports(ast.parse("def f():\n    import pytest\n")) == ["pytest"]


def test_every_report_shows_the_documents_figures() -> None:
    results = synthetic_results()
    (ev,) = results["evals"]
    # Figures no report could compute from the cases (3 of 4 passed): each must show these.
    ev.update(pass_rate=0.4242, ci_low=0.1234, ci_high=0.8771, verdict="fail", cost_usd=9.8765)
    terminal = "\n".join(text for text, _ in summary_lines(results))
    assert "42.4%" in terminal and "12.3-87.7" in terminal and "FAIL" in terminal and "$9.8765" in terminal
    markdown = render_markdown(results)
    assert "42.4% (12.3%–87.7%)" in markdown and "❌ fail" in markdown and "$9.8765" in markdown
    suite = props(ET.fromstring(render_junit(results, hostname="h")).find("testsuite"))  # type: ignore[arg-type]
    assert suite["llmeval.eval.t.py::test_a|b.pass_rate"] == "0.4242"
    assert suite["llmeval.eval.t.py::test_a|b.verdict"] == "fail"
    html = render_html(results)
    data = json.loads(html.split('id="llmeval-data">', 1)[1].split("</script>", 1)[0])
    (stats,) = data["evals"][0]["stats"]
    assert (stats["rate"], stats["lo"], stats["hi"], stats["verdict"]) == (0.4242, 0.1234, 0.8771, "fail")


def test_write_reports_writes_each_report_and_names_the_ones_it_could_not(tmp_path: Path) -> None:
    results = synthetic_results()
    (tmp_path / "blocker").write_text("a file where a directory should be")
    targets = [
        ReportTarget("json", tmp_path / "out" / "r.json", "--llmeval-json"),
        ReportTarget("junit", tmp_path / "blocker" / "r.xml", "--llmeval-report"),
        ReportTarget("markdown", tmp_path / "out" / "r.md", "--llmeval-markdown"),
        ReportTarget("html", None, "--llmeval-html"),  # not asked for
        ReportTarget("html", tmp_path / "blocker" / "r.html", "--html"),
    ]
    errors = write_reports(results, targets)
    assert len(errors) == 2
    assert errors[0].startswith(f"--llmeval-report {tmp_path / 'blocker' / 'r.xml'}: could not write the report: ")
    assert errors[1].startswith(f"--html {tmp_path / 'blocker' / 'r.html'}: could not write the report: ")
    assert all("Error" in e for e in errors)  # the cause, by name
    # The others are written, each from the same document.
    assert load_results(tmp_path / "out" / "r.json") == json.loads(json.dumps(results))
    assert (tmp_path / "out" / "r.md").read_text(encoding="utf-8") == render_markdown(results)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["r.json", "r.md"]
    # A value JSON cannot hold is an error line too, never an exception.
    bad = synthetic_results()
    bad["evals"][0]["cost_usd"] = float("nan")
    (line,) = write_reports(bad, [ReportTarget("json", tmp_path / "nan.json", "--json")])
    assert "ValueError" in line and not (tmp_path / "nan.json").exists()


def test_a_report_that_cannot_be_written_fails_the_run(pytester: pytest.Pytester, fake_api: FakeAPI) -> None:
    write_eval(pytester, n=2, marker="min_pass_rate=0.5")
    script(fake_api, [0, 1])
    (pytester.path / "blocker").write_text("not a directory")
    result = pytester.runpytest(*OPENAI, "--llmeval-markdown", "blocker/r.md", "--llmeval-report", "r.xml")
    assert result.ret == 1
    result.stdout.fnmatch_lines(
        ["llmeval: FAILED because:", "*--llmeval-markdown *blocker?r.md: could not write the report: *"]
    )
    ET.parse(pytester.path / "r.xml")  # the other report is written


def test_terminal_summary_goes_to_the_writer_it_is_given() -> None:
    results = synthetic_results()
    out = io.StringIO()
    write_summary(StreamWriter(out, width=40), results, verbosity=0)
    lines = out.getvalue().splitlines()
    assert lines[0] == " llmeval summary ".center(40, "=")
    assert lines[1:] == [text for text, _ in summary_lines(results, 0)]
    out = io.StringIO()
    write_summary(StreamWriter(out), results, verbosity=-2)  # -qq: the verdict only, no header
    assert out.getvalue().splitlines() == ["llmeval: PASSED because:", "  ok"]


# -- the report command --------------------------------------------------------------------------
def report_args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command")
    add_report_parser(sub)
    return parser.parse_args(["report", *argv])


def test_report_command_prints_and_regates_against_a_baseline(pytester: pytest.Pytester, fake_api: FakeAPI) -> None:
    write_eval(pytester, n=10, marker="min_pass_rate=0.5")
    script(fake_api, range(10))
    assert pytester.runpytest(*OPENAI, "--llmeval-cache", "off", "--llmeval-json", "old.json").ret == 0
    fake_api.clear()
    script(fake_api, range(5, 10))
    assert pytester.runpytest(*OPENAI, "--llmeval-cache", "off", "--llmeval-json", "new.json").ret == 0
    old, new, md = (str(pytester.path / n) for n in ("old.json", "new.json", "new.md"))

    out = io.StringIO()
    assert run_report(report_args(new, "--markdown", md), stdout=out) == 0
    assert "  openai:gpt-4o-mini" in out.getvalue() and "llmeval: PASSED because:" in out.getvalue()
    assert "| `test_ev.py::test_answer` | openai:gpt-4o-mini | 10 | 5 | 5 | 0 |" in Path(md).read_text()

    out = io.StringIO()
    assert run_report(report_args(new, "--baseline", old, "--json", str(pytester.path / "re.json")), stdout=out) == 1
    assert "flipped to fail (5):" in out.getvalue() and "REGRESSED" in out.getvalue()
    regated = load_results(pytester.path / "re.json")
    assert regated["passed"] is False and regated["baseline"]["evals"][0]["p_value"] == pytest.approx(1 / 32)

    err = io.StringIO()
    assert run_report(report_args(str(pytester.path / "nope.json")), stdout=io.StringIO(), stderr=err) == 2
    assert "nope.json: no such results file" in err.getvalue()

    html = pytester.path / "r.html"
    assert run_report(report_args(new, "--html", str(html)), stdout=io.StringIO()) == 0
    assert html.read_text(encoding="utf-8").lstrip().lower().startswith("<!doctype html")

    # A report that cannot be written: exit status 2 and the reason; the others are written.
    (pytester.path / "blocker").write_text("not a directory")
    err = io.StringIO()
    argv = (new, "--html", str(pytester.path / "blocker" / "r.html"), "--markdown", str(pytester.path / "ok.md"))
    assert run_report(report_args(*argv), stdout=io.StringIO(), stderr=err) == 2
    assert f"report: --html {pytester.path / 'blocker' / 'r.html'}: could not write the report:" in err.getvalue()
    assert "| `test_ev.py::test_answer` |" in (pytester.path / "ok.md").read_text()

    # Through the package's command line.
    proc = subprocess.run(
        [sys.executable, "-m", "pytest_llmeval", "report", new, "--baseline", old, "-q"],
        capture_output=True,
        text=True,
        cwd=pytester.path,
    )
    assert proc.returncode == 1, proc.stderr
    assert "regressed against the baseline" in proc.stdout


# -- pytest-xdist --------------------------------------------------------------------------------
def _normalise_json(data: dict[str, Any]) -> dict[str, Any]:
    data = json.loads(json.dumps(data))
    for key in ("run_id", "created_at", "pytest_args"):
        data.pop(key)
    for ev in data["evals"]:
        ev.pop("latency_p50_s")
        ev.pop("latency_p95_s")
    for case in data["cases"]:
        case.pop("duration_s")
        for call in case["calls"]:
            call.pop("latency_s")
    data["baseline"].pop("path")
    return data


def _normalise_xml(raw: bytes) -> str:
    root = ET.fromstring(raw)
    for element in root.iter():
        for attr in ("time", "timestamp", "hostname"):
            element.attrib.pop(attr, None)
        for node in element.findall("properties"):
            for prop in list(node):
                if prop.get("name") in ("llmeval.run_id", "llmeval.latency_s"):
                    node.remove(prop)
    return ET.tostring(root, encoding="unicode")


def _summary_rows(stdout: str) -> list[str]:
    # The summary without the latency column (wall-clock) and column padding.
    text = stdout.split("llmeval summary", 1)[1].split("short test summary", 1)[0]
    rows = []
    for line in text.splitlines()[1:]:
        line = re.sub(r"\d+\.\d\d/\d+\.\d\d|p50/p95 s", "", line)
        rows.append(" ".join(line.split()))
    return rows


def test_xdist_gives_the_same_summary_reports_and_gate(pytester: pytest.Pytester, fake_api: FakeAPI) -> None:
    write_eval(pytester, n=6, marker="min_pass_rate=0.6")
    pytester.makepyfile(test_plain="def test_plain():\n    pass\n")
    script(fake_api, range(6))
    base = pytester.runpytest(*TWO_MODELS, "--llmeval-cache", "off", "--llmeval-json", "base.json")
    assert base.ret == 0
    fake_api.clear()
    script(fake_api, lambda i, model: i in (0, 1, 2, 4) or (i == 3 and model.startswith("gpt")))
    runs = {}
    for label, extra in (("serial", ["-p", "no:xdist"]), ("xdist", ["-n", "4", "-p", "no:benchmark"])):
        fake_api.fault("429", count=2, retry_after=0.01)  # two retries in each run, on whichever worker
        runs[label] = pytester.runpytest(
            *TWO_MODELS,
            *extra,
            "--llmeval-cache-path",
            f"{label}.db",
            "--llmeval-baseline",
            "base.json",
            "--llmeval-json",
            f"{label}.json",
            "--llmeval-report",
            f"{label}.xml",
            "--llmeval-markdown",
            f"{label}.md",
        )
    serial, xdist = runs["serial"], runs["xdist"]
    # Three failed cases, all inside evals that meet min_pass_rate, none a significant drop.
    assert serial.ret == xdist.ret == 0
    serial.assert_outcomes(passed=10, failed=3)
    xdist.assert_outcomes(passed=10, failed=3)
    assert "4 workers" in xdist.stdout.str()  # really distributed
    a, b = read_json(pytester, "serial.json"), read_json(pytester, "xdist.json")
    # Run-level tallies come back from the workers.
    assert a["tallies"] == b["tallies"] == {"calls": 12, "hits": 0, "retries": 2, "errors": 0}
    assert _normalise_json(a) == _normalise_json(b)
    assert _normalise_xml((pytester.path / "serial.xml").read_bytes()) == _normalise_xml(
        (pytester.path / "xdist.xml").read_bytes()
    )
    md = [(pytester.path / f"{n}.md").read_text() for n in ("serial", "xdist")]
    strip = re.compile(r"\d+\.\d\d s / \d+\.\d\d s|<sub>.*</sub>")
    assert strip.sub("", md[0]) == strip.sub("", md[1])
    assert _summary_rows(serial.stdout.str()) == _summary_rows(xdist.stdout.str())
    assert "  1 failure(s) outside eval cases" not in serial.stdout.str()


# -- fast writers, same content ----------------------------------------------------------------
def test_the_junit_text_is_what_elementtree_would_write(junit_properties_schema: xmlschema.XMLSchema) -> None:
    # The report is written as text for speed: parsed and written again by ElementTree it
    # must come out byte for byte the same (its escaping, empty elements, indentation).
    hostile = synthetic_results()
    for i, case in enumerate(hostile["cases"]):
        case["output"] = list(HOSTILE.values())[i] if i != 2 else 'tab\there <a href="x">&</a> ]]>'
        case["results"][0]["name"] = 'n"a<m>e&\t\n'
        case["error"] = "ProviderError: \x00 <boom> & ]]>" if i == 1 else None
        case["outcome"] = "error" if i == 1 else case["outcome"]
    for results in (synthetic_results(), hostile):
        for strict in (False, True):
            for tolerated in ("passed", "failure"):
                raw = render_junit(results, hostname='h<&">', strict=strict, tolerated=tolerated)
                root = ET.fromstring(raw)
                ET.indent(root, space=" ")
                assert ET.tostring(root, encoding="utf-8", xml_declaration=True) == raw, (strict, tolerated)
                if not strict:
                    junit_properties_schema.validate(raw.decode("utf-8"))
    assert b"\\x00" in render_junit(hostile, hostname="h") and b"characters left out" in render_junit(hostile)


def test_the_junit_properties_written_at_once_are_those_of_the_reference_list() -> None:
    # The report writes a case's <properties> as one string, sharing the lines of cases that
    # repeat them; _case_properties (the strict report's data) is the reference it must match.
    from pytest_llmeval.reports.junit import _case_properties, _CaseWriter

    cases = synthetic_results()["cases"]
    variants: list[dict[str, Any]] = []
    for i, value in enumerate([*HOSTILE.values(), "plain"]):
        for sample, score in ((1, -0.0), (True, 1), (1, 1.0), (0, "0.5"), (2, None)):
            case = {**cases[i % len(cases)], "sample": sample, "score": score, "model": None if i == 3 else value}
            case["key"] = value if i % 2 else None
            case["eval"] = value if i == 2 else case["eval"]
            case["results"] = [
                {"name": value, "passed": i % 2 == 0, "explanation": value, "score": score, "label": value},
                {"name": "judge", "passed": True, "reasoning": value, "score": True},
            ]
            case["calls"] = [
                {"input_tokens": 3, "output_tokens": i, "cost_usd": -0.0, "latency_s": 0.25, "cached": True},
                {"input_tokens": 1, "cost_usd": 1e-7, "latency_s": 9.0, "role": "judge", "cached": i % 2 == 0},
            ][: i % 3]
            variants.append(case)
    writer = _CaseWriter(strict=False, tolerate=True, passing_evals=set())
    for case in [*variants, *variants]:  # the second time through, from the shared lines
        for tolerated in (False, True):
            props = _case_properties(case)  # type: ignore[arg-type]
            if tolerated:
                props.append(("llmeval.tolerated", "true"))
            expected = "\n".join(["   <properties>", *(writer.prop_line[p] for p in props), "   </properties>"])
            assert writer._properties(case, tolerated) == expected, case  # type: ignore[arg-type]


def test_check_results_share_a_content_key_only_when_nothing_can_tell_them_apart() -> None:
    from pytest_llmeval.reports.memo import content_key

    base = {"name": "exact", "passed": True, "score": 1.0}
    assert content_key(base) == content_key(dict(base)) is not None
    distinct = [
        base,
        {**base, "passed": 1},
        {**base, "score": 1},
        {**base, "score": True},
        {"passed": True, "name": "exact", "score": 1.0},  # another key order
        {**base, "extra": None},
    ]
    keys = [content_key(r) for r in distinct]
    assert None not in keys and len(set(keys)) == len(keys)
    assert content_key({**base, "score": -0.0}) is None  # equal to 0.0, printed otherwise
    assert content_key({**base, "score": 0.0, "passed": False}) is not None
    assert content_key({**base, "expected": [1]}) is None and content_key({**base, "raw": (True,)}) is None
    assert content_key({1: "a"}) is None


def test_json_results_are_one_entry_per_line_and_read_back_whole(tmp_path: Path) -> None:
    results = synthetic_results()
    results["cases"][0]["output"] = "line\nbreak \u2028 sep \ud800 lone </script>"
    write_json(results, tmp_path / "r.json")
    text = (tmp_path / "r.json").read_text(encoding="ascii")  # ASCII: any surrogate is escaped
    assert load_results(tmp_path / "r.json") == json.loads(json.dumps(results))
    lines = text.splitlines()
    # Diffable: a case is one line of its own, so a changed case changes one line.
    case_lines = lines[lines.index('"cases": [') + 1 : lines.index('"cases": [') + 1 + len(results["cases"])]
    assert [json.loads(line.rstrip(",")) for line in case_lines] == json.loads(json.dumps(results["cases"]))
    with pytest.raises(ValueError):
        write_json({**results, "tallies": {"calls": float("nan")}}, tmp_path / "nan.json")
    assert not (tmp_path / "nan.json").exists()


def test_writing_reports_leaves_the_garbage_collector_as_it_was(tmp_path: Path) -> None:
    import gc

    results = synthetic_results()
    assert gc.isenabled()
    targets = [ReportTarget("html", tmp_path / "r.html", "--llmeval-html")]
    assert write_reports(results, targets) == [] and gc.isenabled()
    gc.disable()
    try:
        write_reports(results, targets)
        assert not gc.isenabled()
    finally:
        gc.enable()
