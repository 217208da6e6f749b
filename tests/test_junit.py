"""The JUnit files agree with the gate where CI tools read them: tolerated failures, machinery
errors as ``<error>`` (in ``--llmeval-report`` and pytest's own ``--junitxml``), the strict
report against Jenkins' schema, and third-party JUnit parsers reading a multi-model report."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import xmlschema
from fakeapi import FakeAPI
from test_gate import TWO_MODELS, script, write_eval

DATA = Path(__file__).parent / "data"


def props(element: ET.Element) -> dict[str, str]:
    node = element.find("properties")
    return {} if node is None else {p.get("name", ""): p.get("value", "") for p in node.findall("property")}


def run_two_models(pytester: pytest.Pytester, fake_api: FakeAPI, *args: str) -> pytest.RunResult:
    """openai passes 4/5 (tolerated by min_pass_rate 0.7), anthropic 2/5 (the gate fails)."""
    write_eval(pytester, n=5, marker="min_pass_rate=0.7")
    script(fake_api, lambda i, model: i < 4 if model.startswith("gpt") else i < 2)
    return pytester.runpytest(*TWO_MODELS, "--llmeval-report", "llmeval.xml", *args)


def suites(pytester: pytest.Pytester, name: str = "llmeval.xml") -> dict[str, ET.Element]:
    root = ET.parse(pytester.path / name).getroot()
    return {s.get("name", ""): s for s in root.iter("testsuite")}


def test_a_tolerated_failure_is_a_passed_testcase_that_says_it_failed(
    pytester: pytest.Pytester, fake_api: FakeAPI
) -> None:
    result = run_two_models(pytester, fake_api)
    assert result.ret == 1
    openai = suites(pytester)["openai:gpt-4o-mini"]
    # The eval meets its threshold: no <failure> for Jenkins or pytest-html to turn red.
    assert openai.get("failures") == "0"
    case = {c.get("name"): c for c in openai.iter("testcase")}["test_answer[openai:gpt-4o-mini-4]"]
    assert case.find("failure") is None and case.find("error") is None
    cp = props(case)
    assert cp["llmeval.outcome"] == "failed" and cp["llmeval.tolerated"] == "true" and cp["llmeval.passed"] == "false"
    assert "FAILED; tolerated because its eval meets min_pass_rate 70.0%" in (case.findtext("system-err") or "")
    assert case.findtext("system-out") == "no"  # the model's output, unchanged
    # The failing eval's failures stay failures, and are not marked tolerated.
    anthropic = suites(pytester)["anthropic:claude-haiku-4-5"]
    assert anthropic.get("failures") == "3"
    assert all("llmeval.tolerated" not in props(c) for c in anthropic.iter("testcase"))
    root = ET.parse(pytester.path / "llmeval.xml").getroot()
    assert root.get("failures") == "3"


def test_tolerated_failures_can_be_written_as_failures(pytester: pytest.Pytester, fake_api: FakeAPI) -> None:
    run_two_models(pytester, fake_api, "--llmeval-report-tolerated=failure")
    openai = suites(pytester)["openai:gpt-4o-mini"]
    assert openai.get("failures") == "1"
    case = {c.get("name"): c for c in openai.iter("testcase")}["test_answer[openai:gpt-4o-mini-4]"]
    assert case.find("failure") is not None and props(case)["llmeval.tolerated"] == "true"
    assert case.find("system-err") is None


def test_an_unknown_tolerated_choice_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_x():\n    pass\n")
    result = pytester.runpytest("--llmeval-report-tolerated=ignore")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--llmeval-report-tolerated*invalid choice*passed*failure*"])


JUDGE_ERROR_FILE = """
import pytest

@pytest.mark.parametrize("answer", ["answer-A", "answer-B"])
def test_graded(judge, answer):
    assert judge(answer, "Names Paris")
"""


def test_machinery_errors_are_errors_in_both_junit_files(pytester: pytest.Pytester, fake_api: FakeAPI) -> None:
    # A: a judge reply with no verdict (JudgeError); B: an honest FAIL (a wrong answer).
    fake_api.reply('{"reasoning": "r", "verdict": "FAIL"}')
    fake_api.reply("I cannot decide.", when="answer-A")
    pytester.makepyfile(JUDGE_ERROR_FILE)
    pytester.runpytest("--llmeval-judge", "openai:gpt-4o", "--llmeval-report", "llmeval.xml", "--junitxml", "own.xml")
    own = {c.get("name"): c for c in ET.parse(pytester.path / "own.xml").getroot().iter("testcase")}
    error = own["test_graded[answer-A]"].find("error")
    assert error is not None and own["test_graded[answer-A]"].find("failure") is None
    assert "JudgeError" in (error.text or "") + (error.get("message") or "")
    assert (
        own["test_graded[answer-B]"].find("failure") is not None and own["test_graded[answer-B]"].find("error") is None
    )
    own_suite = ET.parse(pytester.path / "own.xml").getroot().find("testsuite")
    assert own_suite is not None and (own_suite.get("errors"), own_suite.get("failures")) == ("1", "1")
    ours = {c.get("name"): c for c in ET.parse(pytester.path / "llmeval.xml").getroot().iter("testcase")}
    assert ours["test_graded[answer-A]"].find("error") is not None
    assert ours["test_graded[answer-A]"].find("failure") is None


def test_the_strict_report_is_valid_jenkins_junit_and_keeps_the_data(
    pytester: pytest.Pytester, fake_api: FakeAPI
) -> None:
    run_two_models(pytester, fake_api, "--llmeval-report-strict")
    path = pytester.path / "llmeval.xml"
    xmlschema.XMLSchema(str(DATA / "junit-10.xsd")).validate(str(path))
    openai = suites(pytester)["openai:gpt-4o-mini"]
    case = {c.get("name"): c for c in openai.iter("testcase")}["test_answer[openai:gpt-4o-mini-4]"]
    out = (case.findtext("system-out") or "").splitlines()
    assert out[0].startswith("llmeval: this case FAILED; tolerated")
    assert "llmeval.model=openai:gpt-4o-mini" in out and "llmeval.outcome=failed" in out
    assert "llmeval.check.0.exact=fail score=0" in out and out[-1] == "no"
    # Suite property names are unique across the file.
    names = [p.get("name") for p in ET.parse(path).getroot().iter("property")]
    assert len(names) == len(set(names))
    assert "llmeval.eval.test_ev.py::test_answer@openai:gpt-4o-mini.pass_rate" in names


@pytest.mark.parametrize("strict", [False, True], ids=["default", "strict"])
def test_third_party_parsers_read_a_multi_model_report(
    pytester: pytest.Pytester, fake_api: FakeAPI, strict: bool
) -> None:
    run_two_models(pytester, fake_api, *(["--llmeval-report-strict"] if strict else []))
    path = pytester.path / "llmeval.xml"
    junitparser = pytest.importorskip("junitparser", reason="junitparser reads JUnit like GitLab/Azure tooling")
    xml = junitparser.JUnitXml.fromfile(str(path))
    read = {suite.name: [(case.name, [type(r).__name__ for r in case.result]) for case in suite] for suite in xml}
    assert sorted(read) == ["anthropic:claude-haiku-4-5", "openai:gpt-4o-mini"]  # the model is kept
    assert sum(results == ["Failure"] for _, results in read["anthropic:claude-haiku-4-5"]) == 3
    assert all(results == [] for _, results in read["openai:gpt-4o-mini"])  # tolerated: passed
    if strict:
        # xunitparser merges every suite's properties into one dict and asserts no name repeats.
        xunitparser = pytest.importorskip("xunitparser", reason="xunitparser rejects repeated suite properties")
        suite, tr = xunitparser.parse(open(path, encoding="utf-8"))
        assert len(list(suite)) == 10 and len(tr.failures) == 3 and not tr.errors
        assert any(name.endswith("@openai:gpt-4o-mini.pass_rate") for name in suite.properties)


def test_junit2html_renders_the_report_with_its_models(pytester: pytest.Pytester, fake_api: FakeAPI) -> None:
    # The junit2html distribution installs the package junit2htmlreport.
    pytest.importorskip("junit2htmlreport", reason="junit2html (renders JUnit for CI artifacts) is not installed")
    from junit2htmlreport import parser as j2h_parser  # type: ignore[import-not-found]

    run_two_models(pytester, fake_api, "--llmeval-report-strict")
    report = j2h_parser.Junit(filename=str(pytester.path / "llmeval.xml"))
    html = report.html()
    assert "openai:gpt-4o-mini" in html and "anthropic:claude-haiku-4-5" in html
