"""The HTML report, driven in a real headless Chromium (Debian's ``chromium`` + Playwright).

The browser tests skip when Chromium or Playwright is missing locally, and fail instead when
``LLMEVAL_REQUIRE_BROWSER=1`` (set by ``.ci/run``), so CI can never pass by skipping them.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from importlib.resources import as_file, files
from pathlib import Path
from typing import Any

import pytest
from fakeapi import FakeAPI

from pytest_llmeval.gate.gate import compare_baseline, decide
from pytest_llmeval.gate.results import aggregate, build_results
from pytest_llmeval.reports.html.render import case_label, page_template, render_html, write_html

ROOT = Path(__file__).resolve().parent.parent
DATA_BLOCK = re.compile(r'<script type="application/json" id="llmeval-data">(.*?)</script>', re.S)
HOSTILE = [
    "<img src=x onerror=alert(1)>",
    "</script><script>alert(2)</script>",
    "<svg onload=alert(3)><script>window.__pwned=3</script>",
    '"><img src=x onerror="window.__pwned=4">',
    "<!--<script>alert(5)//--></script>",
    "line\u2028separator\u2029and <b>bold</b> &amp; &lt;",
]


def _docs_module(name: str) -> Any:
    spec = importlib.util.spec_from_file_location(name, ROOT / "docs" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


SHOT = _docs_module("make_screenshot")


# -- helpers -------------------------------------------------------------------------------
def make_case(
    eval_id: str,
    case: str,
    model: str,
    outcome: str,
    *,
    output: str = "answer",
    prompt: str | None = None,
    sample: int | None = None,
    explanation: str = "compared",
) -> dict[str, Any]:
    params = f"{model}-{case}" + (f"-sample{sample}" if sample is not None else "")
    passed = outcome == "passed"
    return {
        "eval": eval_id,
        "nodeid": f"{eval_id}[{params}]",
        "model": model,
        "sample": sample or 0,
        "outcome": outcome,
        "score": 1.0 if passed else 0.0,
        "threshold": 0.5,
        "tags": [],
        "results": [
            {
                "name": "exact",
                "passed": passed,
                "score": 1.0 if passed else 0.0,
                "expected": "expected-" + case,
                "actual": output,
                "explanation": explanation,
            }
        ],
        "calls": [
            {
                "key": "k",
                "model": model,
                "cached": False,
                "latency_s": 0.25,
                "input_tokens": 12,
                "output_tokens": 3,
                "cached_input_tokens": 0,
                "cost_usd": 0.0001,
                "role": "llm",
            }
        ],
        "output": output,
        "prompt": [{"role": "user", "content": prompt or f"question about {case}"}],
        "error": "ProviderError: boom" if outcome == "error" else None,
    }


def document(cases: list[dict[str, Any]], *, old: Any = None, **meta: Any) -> Any:
    """The results document of ``cases`` as the end of a run makes it: the one aggregator,
    and against ``old`` (a results document) the baseline comparison."""
    evals = aggregate(cases)
    section = compare_baseline(evals, cases, old, alpha=0.05, path="old.json") if old is not None else None
    passed, reasons = decide(evals)
    fields: dict[str, Any] = {
        "passed": passed,
        "reasons": reasons,
        "run_id": "r1",
        "created_at": "2025-01-01T00:00:00+00:00",
        "pytest_args": [],
    }
    fields.update(meta)
    return build_results(cases=cases, evals=evals, baseline=section, **fields)


def extract_data(html: str) -> dict[str, Any]:
    match = DATA_BLOCK.search(html)
    assert match, "the report has no data block"
    data: dict[str, Any] = json.loads(match.group(1))
    return data


def visible_rows(page: Any) -> int:
    return int(page.locator("#matrix tbody tr").count())


# -- without a browser ---------------------------------------------------------------------
@pytest.mark.parametrize(
    ("nodeid", "model", "sample", "expected"),
    [
        ("t.py::test_capital[openai:gpt-4o-mini-france]", "openai:gpt-4o-mini", 0, "france"),
        ("t.py::test_capital[france-openai:gpt-4o-mini]", "openai:gpt-4o-mini", 0, "france"),
        ("t.py::test_x[anthropic:claude-haiku-4-5-a-b-sample2]", "anthropic:claude-haiku-4-5", 2, "a-b"),
        ("t.py::test_x[openai:m@http://127.0.0.1:8000/v1]", "openai:m@http://127.0.0.1:8000/v1", 0, ""),
        ("t.py::test_plain", None, 0, ""),
        ("t.py::test_x[case-1]", None, 0, "case-1"),
    ],
)
def test_case_label_strips_model_and_sample(nodeid: str, model: str | None, sample: int, expected: str) -> None:
    assert case_label(nodeid, model, sample) == expected


def test_rows_are_cases_and_cells_are_models() -> None:
    m1, m2 = "openai:gpt-4o-mini", "anthropic:claude-haiku-4-5"
    cases = [
        make_case("t.py::test_a", c, m, "passed" if (c, m) != ("two", m2) else "failed")
        for m in (m1, m2)
        for c in ("one", "two", "three")
    ]
    data = extract_data(render_html({"cases": cases}))
    strings = data["strings"]
    assert data["models"] == [m1, m2]
    assert [strings[i] for i in data["rows"]["label"]] == ["one", "two", "three"]
    assert len(data["cells"]["row"]) == 6
    # From the document's evals (the one aggregator's): pass rate, Wilson interval, verdict.
    data = extract_data(render_html(document(cases)))
    by_model = dict(zip(data["models"], data["evals"][0]["stats"], strict=True))
    stats = [by_model[m1], by_model[m2]]
    assert stats[0]["rate"] == 1.0 and stats[0]["verdict"] == "pass"
    assert stats[1]["rate"] == pytest.approx(2 / 3) and 0.2 < stats[1]["lo"] < 2 / 3 < stats[1]["hi"] < 1


def test_the_figures_are_the_documents_own() -> None:
    cases = [make_case("t.py::test_a", c, "openai:m", "passed" if c != "c" else "failed") for c in "abc"]
    results = document(cases)
    (entry,) = results["evals"]
    # Figures no computation from these cases would give: the report must show them as they are.
    entry.update(pass_rate=0.4242, ci_low=0.1111, ci_high=0.9999, verdict="error", cost_usd=12.5, latency_p95_s=7.0)
    entry.update(verdict_reason="the gate's own words", cases=99, passed=42)
    (stats,) = extract_data(render_html(results))["evals"][0]["stats"]
    assert (stats["rate"], stats["lo"], stats["hi"], stats["verdict"]) == (0.4242, 0.1111, 0.9999, "error")
    assert (stats["cost_usd"], stats["latency_p95_s"], stats["cases"], stats["passed"]) == (12.5, 7.0, 99, 42)
    assert stats["reason"] == "the gate's own words"
    # No entry, no figures: the cases are drawn, no pass rate or verdict is made up for them.
    data = extract_data(render_html({**results, "evals": []}))
    assert data["evals"][0]["stats"] == [None] and len(data["cells"]["row"]) == 3


def test_samples_of_a_case_share_a_row_and_judge_only_tests_get_a_column() -> None:
    cases = [
        make_case("t.py::test_r", c, "openai:m", "passed" if k else "failed", sample=k)
        for c in ("one", "two")
        for k in range(3)
    ]
    judged = make_case("t.py::test_j", "x", "openai:m", "passed")
    judged.update(nodeid="t.py::test_j[x]", model=None)
    data = extract_data(render_html({"cases": [*cases, judged]}))
    labels = [data["strings"][i] for i in data["rows"]["label"]]
    assert labels == ["one", "two", "x"]
    assert data["models"] == ["openai:m", "(no model)"]
    assert data["cells"]["row"] == [0, 0, 0, 1, 1, 1, 2]
    assert data["cells"]["sample"][:3] == [0, 1, 2]


def test_data_block_is_inert_and_round_trips() -> None:
    cases = [make_case("t.py::test_a", f"c{i}", "openai:m", "failed", output=text) for i, text in enumerate(HOSTILE)]
    cases[0]["results"][0]["reasoning"] = "</SCRIPT ><script>alert(6)</script>"
    html = render_html(document(cases, reasons=["</script><script>alert(7)</script>"]))
    block = DATA_BLOCK.search(html)
    assert block is not None
    body = block.group(1)
    for raw in ("<", ">", "&", "\u2028", "\u2029"):
        assert raw not in body, f"unescaped {raw!r} in the data block"
    # Exactly the two script elements of the template: nothing in the data opened another.
    assert len(re.findall(r"<script", html, re.I)) == 2
    data = json.loads(body)
    assert set(HOSTILE) <= set(data["strings"])
    assert data["meta"]["reasons"] == ["</script><script>alert(7)</script>"]
    head = html[: html.index("</head>")]
    assert "default-src 'none'" in head and head.index("Content-Security-Policy") < head.index("<style>")


def test_strings_are_stored_once() -> None:
    prompt = "Please answer: what is the capital of the country we discussed before, in one word?"
    explanation = "normalised case, whitespace and trailing punctuation before comparing"
    models = ["openai:a", "openai:b", "anthropic:c"]
    cases = [make_case("t.py::test_a", "c1", m, "passed", prompt=prompt, explanation=explanation) for m in models]
    html = render_html(document(cases))
    assert html.count(prompt) == 1  # the prompt of three models, stored once
    assert html.count(explanation) == 1


def test_write_html_creates_the_directory_and_replaces_atomically(tmp_path: Path) -> None:
    target = tmp_path / "deep" / "dir" / "report.html"
    write_html(document([make_case("t.py::test_a", "c", "openai:m", "passed")]), target)
    first = target.read_text(encoding="utf-8")
    write_html(document([make_case("t.py::test_a", "d", "openai:m", "failed")]), target)
    assert target.read_text(encoding="utf-8") != first
    assert [p.name for p in target.parent.iterdir()] == ["report.html"]  # no temporary file left


def test_baseline_flips_are_sorted_first() -> None:
    m = "openai:m"
    old = document([make_case("t.py::test_a", c, m, "passed") for c in ("a", "b", "c")])
    new_cases = [make_case("t.py::test_a", c, m, "failed" if c == "c" else "passed") for c in ("a", "b", "c")]
    new = document(new_cases)
    data = extract_data(render_html(new, old))
    labels = [data["strings"][i] for i in data["rows"]["label"]]
    assert labels[0] == "c"
    assert data["evals"][0]["stats"][0]["base_rate"] == 1.0
    # The run's own comparison (as the gate makes it) gives the rate, the p-value and the flips.
    compared = document(new_cases, old=old)
    data = extract_data(render_html(compared))
    assert [data["strings"][i] for i in data["rows"]["label"]][0] == "c"
    stats = data["evals"][0]["stats"][0]
    assert stats["base_rate"] == 1.0 and stats["p_value"] == compared["baseline"]["evals"][0]["p_value"]
    # The same from a comparison section alone (no old results at hand).
    section = {"path": "old.json", "alpha": 0.05, "evals": [{"eval": "t.py::test_a", "model": m, "base_rate": 1.0,
               "rate": 2 / 3, "n_pairs": 3, "flipped_to_fail": [new["cases"][2]["nodeid"]], "flipped_to_pass": [],
               "p_value": 0.5, "regressed": False}]}  # fmt: skip
    data = extract_data(render_html({**new, "baseline": section}))
    assert [data["strings"][i] for i in data["rows"]["label"]][0] == "c"
    assert data["cells"]["base"][data["cells"]["row"].index(0)] == 0
    assert data["evals"][0]["stats"][0]["p_value"] == 0.5


ASSETS = ("report.html", "report.css", "report.js")


def test_the_page_is_its_package_files_with_the_data_inlined() -> None:
    here = files("pytest_llmeval.reports.html")
    page, style, script = (here.joinpath(name).read_text(encoding="utf-8") for name in ASSETS)
    before, after = page_template()
    assert style in before and script in after and "@@" not in before + after
    html = render_html(document([make_case("t.py::test_a", "c", "openai:m", "passed")]))
    assert html.startswith(page[: page.index("@@STYLE@@")])
    assert html.count("<style>") == 1 and html.count("<script") == 2
    # Shipped: every file of the page matches a package-data pattern of pyproject.toml.
    tomllib = pytest.importorskip("tomllib", reason="tomllib is Python 3.11+")
    package_data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    for name in ASSETS:
        # A pattern of a package holding the file, relative to that package's directory.
        path = Path("pytest_llmeval/reports/html", name)
        assert any(
            path.is_relative_to(package.replace(".", "/"))
            and path.relative_to(package.replace(".", "/")).match(pattern)
            for package, patterns in package_data.items()
            for pattern in patterns
        ), (name, package_data)


def test_the_page_script_passes_node_check(tmp_path: Path) -> None:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not on PATH: the page script is checked where it is")
    with as_file(files("pytest_llmeval.reports.html").joinpath("report.js")) as path:
        proc = subprocess.run([node, "--check", str(path)], capture_output=True, text=True)
        script = path.read_text(encoding="utf-8")
    assert proc.returncode == 0, proc.stderr
    # The check can fail: the same script with its last bracket missing does not pass it.
    broken = tmp_path / "broken.js"
    broken.write_text(script.rstrip().removesuffix(";").removesuffix(")"), encoding="utf-8")
    assert subprocess.run([node, "--check", str(broken)], capture_output=True).returncode != 0


def test_docs_report_is_what_the_script_makes() -> None:
    made = _docs_module("make_report").render_report()
    assert (ROOT / "docs" / "report.html").read_bytes() == made, (
        "docs/report.html is stale: run python docs/make_report.py"
    )
    # The script is deterministic: the same bytes every time, so the comparison means something.
    assert _docs_module("make_report").render_report() == made


# -- the browser ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    required = os.environ.get("LLMEVAL_REQUIRE_BROWSER") == "1"
    problem = None
    if not Path(SHOT.CHROMIUM).exists():
        problem = f"{SHOT.CHROMIUM} is missing: apt-get install chromium"
    elif importlib.util.find_spec("playwright") is None:
        problem = "playwright is not installed: pip install -e '.[dev]' (never `playwright install`)"
    if problem:
        if required:
            pytest.fail(f"LLMEVAL_REQUIRE_BROWSER=1 but {problem}")
        pytest.skip(problem)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        instance = SHOT.launch(p)
        try:
            yield instance
        finally:
            instance.close()


class Page:
    """A page that records dialogs and script errors; a test asserts on both."""

    def __init__(self, browser: Any) -> None:
        self.page = browser.new_page(viewport={"width": 1400, "height": 900})
        self.dialogs: list[str] = []
        self.errors: list[str] = []
        self.page.on("dialog", self._on_dialog)
        self.page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        self.page.on("console", lambda msg: self.errors.append(msg.text) if msg.type == "error" else None)

    def _on_dialog(self, dialog: Any) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def open(self, path: Path) -> float:
        """Load the report; returns the milliseconds until its script finished rendering."""
        start = time.perf_counter()
        self.page.goto(path.resolve().as_uri())
        self.page.wait_for_selector("html[data-ready='1']", timeout=120_000)
        return (time.perf_counter() - start) * 1000


@pytest.fixture
def page(browser: Any) -> Iterator[Page]:
    wrapped = Page(browser)
    yield wrapped
    wrapped.page.close()
    assert not wrapped.errors, f"the report logged script errors: {wrapped.errors}"


@pytest.fixture
def sample_report(tmp_path: Path) -> Path:
    results, baseline = SHOT.sample_run()
    path = tmp_path / "report.html"
    write_html(results, path, baseline)
    return path


def test_charts_have_a_bar_per_model_with_interval_and_threshold(page: Page, sample_report: Path) -> None:
    page.open(sample_report)
    charts = page.page.locator("svg.chart")
    assert charts.count() == 2
    for i in range(2):
        chart = charts.nth(i)
        bars = chart.locator("rect.bar")
        assert sorted(bars.nth(j).get_attribute("data-model") for j in range(bars.count())) == sorted(SHOT.MODELS)
        assert chart.locator("line.threshold").count() == 1
        assert chart.locator("line.whisker").count() == 6  # a line and two caps per model
    # Bar lengths follow the pass rates: 4/6 and 5/6 in the capitals eval.
    capitals = page.page.locator("svg.chart[data-eval$='test_capital']")
    widths = {
        capitals.locator("rect.bar").nth(j).get_attribute("data-model"): float(
            capitals.locator("rect.bar").nth(j).get_attribute("width") or 0
        )
        for j in range(2)
    }
    assert widths["anthropic:claude-haiku-4-5"] / widths["openai:gpt-4o-mini"] == pytest.approx(4 / 5)
    assert "fail" in (
        capitals.locator("rect.bar[data-model='anthropic:claude-haiku-4-5']").get_attribute("class") or ""
    )


def test_filters_change_the_visible_rows(page: Page, sample_report: Path) -> None:
    page.open(sample_report)
    p = page.page
    assert visible_rows(p) == 10  # 6 capitals + 4 support questions
    p.check("#filter-failures")
    assert visible_rows(p) == 4  # peru, australia, kenya, refund-window
    p.select_option("#filter-model", label="openai:gpt-4o-mini")
    assert visible_rows(p) == 2  # peru and refund-window failed for this model
    assert p.locator("#matrix thead th").all_inner_texts() == ["eval", "case", "openai:gpt-4o-mini"]
    p.uncheck("#filter-failures")
    p.check("#filter-flipped")
    assert visible_rows(p) == 1
    assert p.locator("#matrix tbody td.case").inner_text() == "refund-window"
    p.uncheck("#filter-flipped")
    p.select_option("#filter-model", value="-1")
    p.fill("#filter-search", "mombasa")  # searches outputs too
    p.wait_for_function("() => document.querySelectorAll('#matrix tbody tr').length === 1")
    assert p.locator("#matrix tbody td.case").inner_text() == "kenya"
    p.fill("#filter-search", "no such text anywhere")
    p.wait_for_function("() => document.querySelectorAll('#matrix tbody tr').length === 0")
    assert "No case matches" in p.inner_text("#row-count")


def test_clicking_a_cell_shows_the_case(page: Page, sample_report: Path) -> None:
    page.open(sample_report)
    p = page.page
    assert p.locator("#detail").is_hidden()
    p.click("button.cell.flip")
    detail = p.locator("#detail")
    assert detail.is_visible()
    text = detail.inner_text()
    for expected in (
        "refund-window",
        "openai:gpt-4o-mini",
        "passed → failed (flipped)",
        "You are a support agent for Acme Shoes",  # the system message
        "Can I still return shoes I bought 40 days ago?",  # the prompt
        "any time within 60 days",  # the output
        "Returns are accepted within 30 days",  # the expected value (the judge's criteria)
        "rubric score 0.2",  # the explanation
        "The reply invents a 60-day window",  # the judge's reasoning
        "openai:gpt-4o",  # the judge model, in the check and in the calls
        "900 ms",  # latency
        "180",  # input tokens
        "$0.000052",  # cost
    ):
        assert expected in text, f"{expected!r} missing from the detail panel"
    assert detail.locator("table.calls tbody tr").count() == 2
    p.keyboard.press("Escape")
    assert detail.is_hidden()


def test_hostile_outputs_show_as_text_and_run_nothing(page: Page, tmp_path: Path) -> None:
    evil = HOSTILE[0]
    cases = [
        make_case("t.py::test_evil", f"c{i}", "openai:m", "failed", output=text, prompt=text, explanation=text)
        for i, text in enumerate(HOSTILE)
    ]
    cases.append(make_case("t.py::test_evil", "<img src=x onerror=alert(8)>", evil, "error", output=evil))
    cases[0]["results"][0].update(reasoning=HOSTILE[1], raw=HOSTILE[2], judge_model=HOSTILE[3], label=HOSTILE[0])
    cases[1]["error"] = HOSTILE[1]
    results = document(cases, reasons=HOSTILE, pytest_args=HOSTILE, run_id=HOSTILE[1])
    path = tmp_path / "evil.html"
    write_html(results, path)
    p = page.page
    page.open(path)
    # The listener works: a real alert is seen (and dismissed).
    p.evaluate("() => alert('control')")
    assert page.dialogs == ["control"]
    cells = p.locator("button.cell")
    assert cells.count() == len(cases)
    for i in range(cells.count()):
        cells.nth(i).click()
        shown = p.inner_text("#detail")
        assert any(text.split("\u2028")[0] in shown for text in HOSTILE)
    p.fill("#filter-search", "onerror")
    p.wait_for_function("() => document.querySelectorAll('#matrix tbody tr').length >= 1")
    p.wait_for_timeout(300)  # a broken image's onerror would have fired by now
    assert page.dialogs == ["control"], f"hostile output ran a dialog: {page.dialogs}"
    assert p.evaluate("() => window.__pwned") is None
    assert p.evaluate("() => document.querySelectorAll('img, iframe, [onerror], [onload]').length") == 0
    assert p.evaluate("() => document.scripts.length") == 2
    # The document sorts its cases: find the cell of the first one made above.
    first = [c["nodeid"] for c in results["cases"]].index(cases[0]["nodeid"])
    p.click(f"button.cell[data-cell='{first}']")
    assert evil in p.inner_text("#detail pre")  # shown as the text it is


def test_ten_thousand_cases_by_three_models_load_and_filter(page: Page, tmp_path: Path) -> None:
    models = ["openai:gpt-4o-mini", "anthropic:claude-haiku-4-5", "openai:llama3@http://127.0.0.1:11434/v1"]
    n_cases = 10_000
    cases = []
    for i in range(n_cases):
        for j, model in enumerate(models):
            outcome = "error" if (i * 7 + j) % 101 == 0 else "failed" if (i * 13 + j * 5) % 10 == 0 else "passed"
            cases.append(
                make_case(
                    f"tests/test_big.py::test_eval_{i % 4}",
                    f"case{i:05d}",
                    model,
                    outcome,
                    output=f"Answer {i} from model {j}: the capital is City{i * 3 + j}.",
                    prompt=f"Question {i}: what is the capital of country number {i}? Answer with one word.",
                    explanation=f"'City{i * 3 + j}' differs from 'expected-case{i:05d}'"
                    if outcome != "passed"
                    else "equal after normalising case, whitespace and trailing punctuation",
                )
            )
    old_cases = copy.deepcopy(cases[: len(cases) // 2])
    for case in old_cases[::97]:
        case["outcome"] = "failed" if case["outcome"] == "passed" else "passed"
    old, results = document(old_cases), document(cases)
    path = tmp_path / "big.html"
    start = time.perf_counter()
    write_html(results, path, old)
    write_ms = (time.perf_counter() - start) * 1000
    size = path.stat().st_size
    distinct_text = {
        s for c in cases for s in (c["nodeid"], c["output"], c["prompt"][0]["content"], c["results"][0]["explanation"])
    }
    text_bytes = sum(len(s.encode()) for s in distinct_text)

    load_ms = page.open(path)
    p = page.page
    assert visible_rows(p) == 100  # one page of rows, not 10,000
    filter_ms = p.evaluate(
        """() => new Promise((done) => { const t = performance.now();
             document.getElementById('filter-failures').click();
             requestAnimationFrame(() => setTimeout(() => done(performance.now() - t))); })"""
    )
    failing = p.inner_text("#row-count")
    assert "filtered from 10,000" in failing
    start = time.perf_counter()
    p.fill("#filter-search", "case04242")
    p.wait_for_function("() => document.querySelectorAll('#matrix tbody tr').length <= 1")
    search_ms = (time.perf_counter() - start) * 1000
    p.uncheck("#filter-failures")
    p.wait_for_function("() => document.querySelectorAll('#matrix tbody tr').length === 1")
    p.click("#matrix button.cell >> nth=0")
    assert "Question 4242" in p.inner_text("#detail")
    print(
        f"\n10,000 cases x 3 models: write {write_ms:.0f} ms, file {size / 1e6:.1f} MB "
        f"({size / len(cases):.0f} bytes per case-model, {size / n_cases:.0f} per case; distinct text "
        f"{text_bytes / 1e6:.1f} MB), load+render {load_ms:.0f} ms, failures filter {filter_ms:.0f} ms, "
        f"search (incl. 120 ms debounce) {search_ms:.0f} ms"
    )
    # The figures are printed, not asserted: speed is measured by benchmarks/, not by a test.
    # Proportionate: the distinct text once, plus a small fixed structure per cell.
    assert size < text_bytes + 250 * len(cases), (size, text_bytes)


def test_screenshot_for_the_readme(browser: Any, tmp_path: Path) -> None:
    png = tmp_path / "report.png"
    SHOT.make_screenshot(png, tmp_path / "report.html", browser)
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    print(f"\nscreenshot: {len(data) / 1024:.0f} KB")
    assert 20_000 < len(data) < 300_000


def test_plugin_writes_the_html_report(pytester: pytest.Pytester, fake_api: FakeAPI, page: Page) -> None:
    pytester.makepyfile(
        """
        import pytest
        from pytest_llmeval import exact

        @pytest.mark.llmeval(min_pass_rate=0.5)
        @pytest.mark.parametrize("city", ["Paris", "Lima"])
        def test_city(llm, city):
            assert exact(llm(f"Name {city}"), city)
        """
    )
    fake_api.reply("Paris", when="Paris")
    fake_api.reply("<img src=x onerror=alert(1)>", when="Lima")
    result = pytester.runpytest(
        "--llmeval-model", "openai:gpt-4o-mini", "--llmeval-model", "openai:gpt-4o",
        "--llmeval-html", "out/report.html",
    )  # fmt: skip
    result.assert_outcomes(passed=2, failed=2)
    path = pytester.path / "out" / "report.html"
    data = extract_data(path.read_text(encoding="utf-8"))
    assert sorted(data["models"]) == ["openai:gpt-4o", "openai:gpt-4o-mini"]
    assert sorted(data["strings"][i] for i in data["rows"]["label"]) == ["Lima", "Paris"]
    page.open(path)
    assert visible_rows(page.page) == 2
    page.page.click("#matrix button.cell[data-outcome='failed'] >> nth=0")
    assert "<img src=x onerror=alert(1)>" in page.page.inner_text("#detail")
    assert "Name Lima" in page.page.inner_text("#detail")
    assert page.dialogs == []


# -- the flipped-cases view: the baseline's output beside this run's -------------------------
def flipped_pair() -> tuple[Any, Any]:
    """(old, new) results: every case flips (pass -> fail for c0..c5, fail -> pass for c6),
    and both sides answered with hostile text, different on each side."""
    m = "openai:m"
    old_cases = [make_case("t.py::test_flip", f"c{i}", m, "passed", output="OLD " + t) for i, t in enumerate(HOSTILE)]
    old_cases.append(make_case("t.py::test_flip", "c6", m, "error", output=HOSTILE[0]))
    old_cases[-1]["error"] = "ProviderError: " + HOSTILE[1]
    new_cases = [make_case("t.py::test_flip", f"c{i}", m, "failed", output="NEW " + t) for i, t in enumerate(HOSTILE)]
    new_cases.append(make_case("t.py::test_flip", "c6", m, "passed", output="NEW fixed"))
    old = document(old_cases)
    return old, document(new_cases, old=old)


def test_the_comparison_keeps_the_baselines_output_of_each_flipped_case() -> None:
    old, new = flipped_pair()
    (entry,) = new["baseline"]["evals"]
    kept = entry["flipped_baseline"]
    assert sorted(kept) == sorted(entry["flipped_to_fail"] + entry["flipped_to_pass"]) and len(kept) == 7
    first = next(n for n in kept if n.endswith("-c0]"))
    assert kept[first] == {"outcome": "passed", "output": "OLD " + HOSTILE[0], "output_chars": 4 + len(HOSTILE[0]),
                           "error": None}  # fmt: skip
    errored = kept[next(n for n in kept if n.endswith("-c6]"))]
    assert errored["outcome"] == "error" and errored["error"] == "ProviderError: " + HOSTILE[1]
    # Shortened like every output of the document, and only for cases that flipped.
    long_old = document([make_case("t.py::test_l", "a", "openai:m", "passed", output="x" * 50_000),
                         make_case("t.py::test_l", "b", "openai:m", "passed")])  # fmt: skip
    long_new = document([make_case("t.py::test_l", "a", "openai:m", "failed"),
                         make_case("t.py::test_l", "b", "openai:m", "passed")], old=long_old)  # fmt: skip
    (view,) = long_new["baseline"]["evals"][0]["flipped_baseline"].values()
    assert view["output_chars"] == 50_000 and len(view["output"]) < 21_000 and "characters left out" in view["output"]
    # The page's data: one entry per flipped cell, from the section alone or from the old run.
    for html in (render_html(new), render_html({**new, "baseline": None}, old)):
        data = extract_data(html)
        flips = {data["strings"][data["cells"]["nodeid"][f[0]]]: f for f in data["baseline"]["flips"]}
        assert len(flips) == 7
        assert data["strings"][flips[first][1]] == "OLD " + HOSTILE[0]
    assert "flips" in extract_data(render_html(new))["baseline"]
    assert extract_data(render_html(old))["baseline"] is None


def test_the_flipped_view_shows_both_outputs_side_by_side_as_text(page: Page, tmp_path: Path) -> None:
    old, new = flipped_pair()
    path = tmp_path / "flips.html"
    write_html(new, path, old)
    p = page.page
    page.open(path)
    items = p.locator("ul.flips li")
    assert items.count() == 7
    for i in range(items.count()):
        item = items.nth(i)
        base, now = item.locator(".compare .side.base"), item.locator(".compare .side.now")
        label = item.locator("button").inner_text()
        case = int(label.split(" · c", 1)[1].split(" ", 1)[0])
        if case < len(HOSTILE):
            assert base.locator("pre").inner_text() == "OLD " + HOSTILE[case]
            assert now.locator("pre").inner_text() == "NEW " + HOSTILE[case]
            assert "baseline: passed" in base.inner_text().lower() and "this run: failed" in now.inner_text().lower()
        else:
            assert (
                "ProviderError: " + HOSTILE[1] in base.inner_text() and "baseline: error" in base.inner_text().lower()
            )
            assert now.locator("pre").inner_text() == "NEW fixed"
        # Side by side: the baseline on the left, this run on the right, on one line.
        b, n = base.bounding_box(), now.bounding_box()
        assert b is not None and n is not None and b["x"] + b["width"] <= n["x"] and abs(b["y"] - n["y"]) < 2
    # The detail panel of a flipped cell holds the same comparison.
    items.nth(0).locator("button").click()
    compare = p.locator("#detail .compare")
    assert compare.count() == 1 and "OLD " in compare.inner_text() and "NEW " in compare.inner_text()
    p.wait_for_timeout(300)  # a broken image's onerror would have fired by now
    assert page.dialogs == [] and p.evaluate("() => window.__pwned") is None
    assert p.evaluate("() => document.querySelectorAll('img, iframe, svg script, [onerror], [onload]').length") == 0
    assert p.evaluate("() => document.scripts.length") == 2


def test_a_run_against_its_baseline_shows_the_old_answer_in_the_html_report(
    pytester: pytest.Pytester, fake_api: FakeAPI, page: Page
) -> None:
    pytester.makepyfile(
        """
        import pytest
        from pytest_llmeval import exact

        @pytest.mark.llmeval(min_pass_rate=0.0)
        @pytest.mark.parametrize("city", ["Paris", "Lima"])
        def test_city(llm, city):
            assert exact(llm(f"Name {city}"), city)
        """
    )
    fake_api.reply("Paris", when="Paris")
    fake_api.reply("Lima", when="Lima")
    model = ("--llmeval-model", "openai:gpt-4o-mini", "--llmeval-cache", "off")
    pytester.runpytest(*model, "--llmeval-json", "old.json").assert_outcomes(passed=2)
    fake_api.reply("</script><img src=x onerror=alert(1)>", when="Lima")
    result = pytester.runpytest(*model, "--llmeval-baseline=old.json", "--llmeval-json", "new.json",
                                "--llmeval-html", "new.html")  # fmt: skip
    result.assert_outcomes(passed=1, failed=1)
    (entry,) = json.loads((pytester.path / "new.json").read_text())["baseline"]["evals"]
    assert [v["output"] for v in entry["flipped_baseline"].values()] == ["Lima"]
    page.open(pytester.path / "new.html")
    flip = page.page.locator("ul.flips li")
    assert flip.count() == 1
    assert flip.locator(".side.base pre").inner_text() == "Lima"
    assert flip.locator(".side.now pre").inner_text() == "</script><img src=x onerror=alert(1)>"
    assert page.dialogs == []
