"""A gate and numbers that cannot be fooled (issue 14): baselines that match nothing, model
labels, reruns, timeouts, partial runs, numeric options, latency, fixture calls, unused
checks and committed recordings, each driven end to end with pytester."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

import pytest
from fakeapi import FakeAPI
from test_gate import OPENAI, case_number, read_json, script, write_eval


def record_baseline(pytester: pytest.Pytester, fake_api: FakeAPI, passing: Any, *args: str) -> None:
    script(fake_api, passing)
    first = pytester.runpytest(*OPENAI, "--llmeval-cache", "off", "--llmeval-json", "base.json", *args)
    assert first.ret == 0, first.stdout.str()
    fake_api.clear()


# -- baselines ---------------------------------------------------------------------------------
def test_a_baseline_that_matches_no_case_fails_the_run(pytester: pytest.Pytester, fake_api: FakeAPI) -> None:
    write_eval(pytester, n=10, marker="min_pass_rate=0.5")
    record_baseline(pytester, fake_api, range(9))
    # Renamed tests: nothing of the baseline can be compared, which is no "no regression".
    (pytester.path / "test_ev.py").rename(pytester.path / "test_renamed.py")
    script(fake_api, range(6))
    result = pytester.runpytest(*OPENAI, "--llmeval-cache", "off", "--llmeval-baseline", "base.json")
    assert result.ret == 1
    result.stdout.fnmatch_lines(
        [
            "  test_renamed.py::test_answer ?openai:gpt-4o-mini?: new, not compared (not in the baseline)",
            "  in the baseline but not run: test_ev.py::test_answer ?openai:gpt-4o-mini?",
            "llmeval: FAILED because:",
            "  --llmeval-baseline base.json: no case of this run matches any of the baseline's 10 case(s)*"
            "--llmeval-baseline=PATH*",
        ]
    )
    result.stdout.no_fnmatch_line("*no regression against the baseline*")


def test_a_baseline_of_another_eval_is_no_evidence_either(pytester: pytest.Pytester, fake_api: FakeAPI) -> None:
    write_eval(pytester, n=4, marker="min_pass_rate=0.5", name="test_one")
    record_baseline(pytester, fake_api, range(4))
    (pytester.path / "test_one.py").unlink()
    write_eval(pytester, n=4, marker="min_pass_rate=0.5", name="test_two")
    script(fake_api, range(4))
    result = pytester.runpytest(*OPENAI, "--llmeval-baseline", "base.json", "--llmeval-json", "out.json")
    assert result.ret == 1
    base = read_json(pytester)["baseline"]
    assert base["matched_cases"] == 0 and "no case of this run matches" in base["problem"]
    assert base["evals"][0]["status"] == "new"


def test_new_evals_are_not_compared_and_a_partial_match_says_how_many(
    pytester: pytest.Pytester, fake_api: FakeAPI
) -> None:
    write_eval(pytester, n=4, marker="min_pass_rate=0.5")
    record_baseline(pytester, fake_api, range(4))
    write_eval(pytester, n=10, marker="min_pass_rate=0.5")
    write_eval(pytester, n=2, marker="min_pass_rate=0.5", name="test_new")
    script(fake_api, range(10))
    result = pytester.runpytest(
        *OPENAI, "--llmeval-cache", "off", "--llmeval-baseline", "base.json", "--llmeval-json", "out.json"
    )
    assert result.ret == 0, result.stdout.str()
    result.stdout.fnmatch_lines(
        [
            "  test_ev.py::test_answer ?openai:gpt-4o-mini?: 100.0% -> 100.0% on 4 matched case(s), p=1: *",
            "    partial match: compared 4 of 10 cases",
            "  test_new.py::test_answer ?openai:gpt-4o-mini?: new, not compared (not in the baseline)",
        ]
    )
    entries = {e["eval"]: e for e in read_json(pytester)["baseline"]["evals"]}
    assert (entries["test_ev.py::test_answer"]["n_pairs"], entries["test_ev.py::test_answer"]["cases"]) == (4, 10)
    assert entries["test_new.py::test_answer"]["status"] == "new"


def test_a_baseline_outside_the_project_in_the_space_form_still_matches(
    pytester: pytest.Pytester, fake_api: FakeAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--llmeval-baseline /ci/run1.json`` (two words) makes pytest take the path for a
    test path when it picks the rootdir, so every node id gets a directory prefix."""
    project = pytester.mkdir("project")
    artifacts = pytester.mkdir("artifacts")
    (project / "pytest.ini").write_text("[pytest]\n")
    (project / "test_ev.py").write_text(
        "import pytest\nfrom pytest_llmeval import exact\n\n"
        "@pytest.mark.llmeval(min_pass_rate=0.5)\n@pytest.mark.parametrize('i', range(20))\n"
        "def test_answer(llm, i):\n    assert exact(llm(f'case {i}'), 'yes')\n"
    )
    monkeypatch.chdir(project)
    baseline = artifacts / "run1.json"
    script(fake_api, range(19))
    first = pytester.runpytest(*OPENAI, "--llmeval-cache=off", f"--llmeval-json={baseline}")
    assert first.ret == 0, first.stdout.str()
    fake_api.clear()
    script(fake_api, range(8, 20))  # 95% -> 60%: a real drop
    result = pytester.runpytest(
        *OPENAI, "--llmeval-cache=off", "--llmeval-baseline", str(baseline), f"--llmeval-json={artifacts}/out.json"
    )
    out = json.loads((artifacts / "out.json").read_text())
    assert out["rootdir"] != str(project)  # the pitfall did happen: another rootdir
    assert out["cases"][0]["nodeid"].endswith("project/test_ev.py::test_answer[openai:gpt-4o-mini-0]")
    assert result.ret == 1
    result.stdout.fnmatch_lines(
        [
            "*95.0% -> 60.0% on 20 matched case(s), p=0.0195: REGRESSED",
            "*matched after taking '*project/' off this run's node ids (the runs had different rootdirs)",
        ]
    )
    assert out["baseline"]["matched_cases"] == 20


# -- model labels --------------------------------------------------------------------------------
def test_a_label_stands_for_the_model_in_ids_reports_and_matching(pytester: pytest.Pytester, fake_api: FakeAPI) -> None:
    write_eval(pytester, n=6, marker="min_pass_rate=0.5")
    port = fake_api.url.rsplit(":", 1)[1]
    script(fake_api, range(6))
    first = pytester.runpytest(
        "-v", "--llmeval-model", f"smol=openai:gpt-4o-mini@http://127.0.0.1:{port}/v1", "--llmeval-json", "base.json"
    )
    assert first.ret == 0, first.stdout.str()
    first.stdout.fnmatch_lines(["*test_answer?smol-0? PASSED*"])
    base = read_json(pytester, "base.json")
    assert {e["model"] for e in base["evals"]} == {"smol"}
    assert base["cases"][0]["model_spec"] == f"openai:gpt-4o-mini@http://127.0.0.1:{port}/v1"
    # The same server under another URL: another cache key (so a fresh call) but the
    # same label, so the comparison holds.
    fake_api.clear()
    script(fake_api, range(2))
    result = pytester.runpytest(
        "--llmeval-model",
        f"smol=openai:gpt-4o-mini@http://localhost:{port}/v1",
        "--llmeval-baseline",
        "base.json",
        "--llmeval-json",
        "out.json",
    )
    assert fake_api.count() == 6
    entry = read_json(pytester)["baseline"]["evals"][0]
    assert (entry["model"], entry["n_pairs"], len(entry["flipped_to_fail"])) == ("smol", 6, 4)
    result.stdout.fnmatch_lines(["*100.0% -> 33.3% on 6 matched case(s), p=0.0625: no significant drop"])


def test_unlabelled_models_behind_a_moved_url_are_matched_by_name(pytester: pytest.Pytester, fake_api: FakeAPI) -> None:
    write_eval(pytester, n=4, marker="min_pass_rate=0.5")
    port = fake_api.url.rsplit(":", 1)[1]
    script(fake_api, range(4))
    model = f"openai:gpt-4o-mini@http://127.0.0.1:{port}/v1"
    assert pytester.runpytest("--llmeval-model", model, "--llmeval-json", "base.json").ret == 0
    moved = f"openai:gpt-4o-mini@http://localhost:{port}/v1"
    result = pytester.runpytest("--llmeval-model", moved, "--llmeval-baseline", "base.json", "--llmeval-json", "o.json")
    assert result.ret == 0
    assert read_json(pytester, "o.json")["baseline"]["matched_cases"] == 4


@pytest.mark.parametrize(
    "models, message",
    [
        (["a=openai:x", "a=anthropic:y"], "*two models under test share the name 'a'*distinct labels*"),
        (["bad label=openai:x"], "*invalid model label 'bad label'*"),
    ],
)
def test_label_mistakes_are_usage_errors(
    pytester: pytest.Pytester, fake_api: FakeAPI, models: list[str], message: str
) -> None:
    write_eval(pytester, n=1)
    args = [a for m in models for a in ("--llmeval-model", m)]
    result = pytester.runpytest(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])
    assert fake_api.count() == 0


def test_labels_in_the_marker_and_the_ini(pytester: pytest.Pytester, fake_api: FakeAPI) -> None:
    pytester.makeini("[pytest]\nllmeval_models = fast=openai:gpt-4o-mini\n")
    pytester.makepyfile(
        test_m="""
        import pytest

        def test_ini(llm):
            assert llm("case 1") == "yes"

        @pytest.mark.llmeval(models=["claude=anthropic:claude-haiku-4-5"])
        def test_marker(llm):
            assert llm.model == "anthropic:claude-haiku-4-5"
            assert llm("case 2") == "yes"
        """
    )
    script(fake_api, range(3))
    result = pytester.runpytest("-v")
    assert result.ret == 0
    result.stdout.fnmatch_lines(["*test_ini?fast? PASSED*", "*test_marker?claude? PASSED*"])


# -- reruns ----------------------------------------------------------------------------------------
RERUN_EVAL = """
from pathlib import Path

import pytest
from pytest_llmeval import exact

@pytest.mark.llmeval(min_pass_rate=1.0)
@pytest.mark.parametrize("i", range(3))
def test_answer(llm, i):
    answer = llm(f"case {i}")
    attempts = Path(f"attempts-{i}")
    n = int(attempts.read_text()) + 1 if attempts.exists() else 1
    attempts.write_text(str(n))
    # Case 0 is solid; cases 1 and 2 fail their first attempt and pass a rerun.
    assert exact(answer, "yes") if i == 0 or n > 1 else exact(answer, "never")
"""


def test_reruns_never_turn_a_failed_case_into_a_pass(pytester: pytest.Pytester, fake_api: FakeAPI) -> None:
    pytest.importorskip("pytest_rerunfailures")
    pytester.makepyfile(test_ev=RERUN_EVAL)
    script(fake_api, range(3))
    result = pytester.runpytest(*OPENAI, "--reruns", "2", "--llmeval-json", "out.json", "--llmeval-concurrency", "0")
    result.assert_outcomes(passed=3)  # pytest itself says all passed, eventually
    result.stdout.fnmatch_lines(["*= 3 passed, 2 rerun in *"])
    assert result.ret == 1  # but the first attempts were 1 of 3
    result.stdout.fnmatch_lines(
        [
            "flaky: 2 case(s) changed outcome on a rerun; the first attempt counts for the gate:",
            "  test_ev.py::test_answer?openai:gpt-4o-mini-1?: failed -> passed",
            "*",
            "llmeval: FAILED because:",
            "  test_ev.py::test_answer ?openai:gpt-4o-mini?: pass rate 33.3% (1/3) is below min_pass_rate 100.0%",
        ]
    )
    data = read_json(pytester)
    assert (data["evals"][0]["passed"], data["evals"][0]["failed"], data["evals"][0]["flaky"]) == (1, 2, 2)
    flaky = {c["nodeid"]: (c["outcome"], c["reruns"], c["flaky"]) for c in data["cases"]}
    assert flaky["test_ev.py::test_answer[openai:gpt-4o-mini-1]"] == ("failed", ["passed"], True)
    assert flaky["test_ev.py::test_answer[openai:gpt-4o-mini-0]"] == ("passed", [], False)


# -- timeouts --------------------------------------------------------------------------------------
TIMEOUT_EVAL = """
import pytest
from pytest_llmeval import exact

@pytest.mark.llmeval(min_pass_rate=0.0)
@pytest.mark.parametrize("i", range(2))
def test_answer(llm, i):
    first = llm(f"case {i} fast")
    second = llm(f"case {i} slow")
    assert exact(first, "yes") and exact(second, "yes")
"""


def test_a_model_call_cut_off_by_pytest_timeout_is_an_error_and_earlier_answers_are_kept(
    pytester: pytest.Pytester, fake_api: FakeAPI
) -> None:
    pytest.importorskip("pytest_timeout")
    pytester.makepyfile(test_ev=TIMEOUT_EVAL)
    script(fake_api, range(2))
    fake_api.fault("timeout", when="slow", count=2, hang=20)
    result = pytester.runpytest(
        *OPENAI,
        "--timeout",
        "1",
        "--timeout-method",
        "signal",
        "--llmeval-json",
        "out.json",
        "--llmeval-concurrency",
        "0",
    )
    assert result.ret == 1
    data = read_json(pytester)
    ev = data["evals"][0]
    # min_pass_rate=0 would pass any number of failed answers: only errors fail this run.
    assert (ev["errors"], ev["failed"], ev["verdict"]) == (2, 0, "error")
    assert all("pytest-timeout" in c["error"] and "never a failed answer" in c["error"] for c in data["cases"])
    result.stdout.fnmatch_lines(["*2 error(s) in 2 case(s); errors never count as passes*"])
    # The answers that did come are in the store: the next run asks only the slow ones again.
    fake_api.clear()
    script(fake_api, range(2))
    assert pytester.runpytest(*OPENAI, "--llmeval-concurrency", "0").ret == 0
    assert sorted(case_number(r.body) for r in fake_api.requests) == [0, 1]
    assert all("slow" in json.dumps(r.body) for r in fake_api.requests)


def test_a_call_cut_off_by_llmeval_timeout_is_an_error(pytester: pytest.Pytester, fake_api: FakeAPI) -> None:
    write_eval(pytester, n=2, marker="min_pass_rate=0.0")
    script(fake_api, range(2))
    fake_api.fault("timeout", when="case 1", count=5, hang=20)
    result = pytester.runpytest(
        *OPENAI, "--llmeval-timeout", "0.5", "--llmeval-retries", "0", "--llmeval-json", "o.json"
    )
    assert result.ret == 1
    outcomes = {c["nodeid"][-2]: c["outcome"] for c in read_json(pytester, "o.json")["cases"]}
    assert outcomes == {"0": "passed", "1": "error"}


# -- partial runs -----------------------------------------------------------------------------------
def test_a_partial_run_says_how_many_cases_it_judged(pytester: pytest.Pytester, fake_api: FakeAPI) -> None:
    write_eval(pytester, n=10, marker="min_pass_rate=1.0")
    script(fake_api, [3])
    result = pytester.runpytest(*OPENAI, "-k", "gpt-4o-mini-3", "--llmeval-json", "out.json")
    assert result.ret == 0
    result.stdout.fnmatch_lines(
        [
            "partial run: test_ev.py::test_answer ?openai:gpt-4o-mini?: 1 of 10 cases (the rest deselected or skipped)",
            "llmeval: PASSED because:",
            "*",
            "  partial run: 1 eval/model pair(s) judged on 1 of 10 cases*",
        ]
    )
    data = read_json(pytester)
    assert data["evals"][0]["collected_cases"] == 10
    assert data["collected"] == [
        {"eval": "test_ev.py::test_answer", "model": "openai:gpt-4o-mini", "collected": 10, "run": 1}
    ]
    # A full run says nothing of the kind.
    script(fake_api, range(10))
    full = pytester.runpytest(*OPENAI)
    full.stdout.no_fnmatch_line("*partial run*")


def test_partial_run_counts_come_back_from_xdist_workers(pytester: pytest.Pytester, fake_api: FakeAPI) -> None:
    pytest.importorskip("xdist")
    write_eval(pytester, n=6, marker="min_pass_rate=1.0")
    script(fake_api, range(6))
    result = pytester.runpytest_subprocess(
        *OPENAI, "-n", "2", "-k", "not gpt-4o-mini-5", "--llmeval-json", "out.json", "-p", "no:cacheprovider"
    )
    assert result.ret == 0, result.stdout.str()
    assert read_json(pytester)["evals"][0]["collected_cases"] == 6
    result.stdout.fnmatch_lines(["partial run: test_ev.py::test_answer ?openai:gpt-4o-mini?: 5 of 6 cases*"])


# -- numeric options ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "args, ini, message",
    [
        (["--llmeval-min-pass-rate", "nan"], "", "*--llmeval-min-pass-rate: must be a finite number, got nan*"),
        (["--llmeval-min-pass-rate", "inf"], "", "*--llmeval-min-pass-rate: must be a finite number*"),
        (["--llmeval-alpha", "nan"], "", "*--llmeval-alpha: must be a finite number, got nan*"),
        (["--llmeval-alpha", "0"], "", "*--llmeval-alpha: must be above 0.0 and at most 1.0, got 0.0*"),
        (["--llmeval-max-cost", "nan"], "", "*--llmeval-max-cost: must be a finite number, got nan*"),
        (["--llmeval-max-cost", "-1"], "", "*--llmeval-max-cost: must be at least 0.0, got -1.0*"),
        (["--llmeval-timeout", "inf"], "", "*--llmeval-timeout: must be a finite number, got inf*"),
        (["--llmeval-timeout", "0"], "", "*--llmeval-timeout: must be between 0.001 and 86400.0, got 0.0*"),
        (["--llmeval-retries", "-1"], "", "*--llmeval-retries: must be between 0 and 100, got -1*"),
        (["--llmeval-concurrency", "100000"], "", "*--llmeval-concurrency: must be between 0 and 1024, got 100000*"),
        (["--llmeval-repeat", "0"], "", "*--llmeval-repeat: must be between 1 and 10000, got 0*"),
        ([], "llmeval_max_cost = nan", "*ini option llmeval_max_cost: must be a finite number, got nan*"),
        ([], "llmeval_timeout = inf", "*ini option llmeval_timeout: must be a finite number, got inf*"),
        ([], "llmeval_concurrency = many", "*ini option llmeval_concurrency: expected a whole number, got 'many'*"),
        ([], "llmeval_retries = 2.5", "*ini option llmeval_retries: expected a whole number, got '2.5'*"),
        ([], "llmeval_alpha = nan", "*ini option llmeval_alpha: must be a finite number, got nan*"),
    ],
)
def test_every_numeric_option_is_validated(
    pytester: pytest.Pytester, fake_api: FakeAPI, args: list[str], ini: str, message: str
) -> None:
    write_eval(pytester, n=1)
    if ini:
        pytester.makeini(f"[pytest]\n{ini}\n")
    result = pytester.runpytest(*OPENAI, *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])
    assert fake_api.count() == 0


# -- honest figures ------------------------------------------------------------------------------------
def test_latency_is_the_requests_own_time_as_stored(pytester: pytest.Pytester, fake_api: FakeAPI) -> None:
    """The figure reported for a live call is the one the provider timed around the request
    (stored with the answer), not the caller's time around lookup, budget and client start."""
    write_eval(pytester, n=3, marker="min_pass_rate=1.0")
    script(fake_api, range(3))
    # Without the planning pass: each call is made by its test, client start and all.
    assert pytester.runpytest(*OPENAI, "--llmeval-json", "out.json", "--llmeval-concurrency", "0").ret == 0
    calls = [c for case in read_json(pytester)["cases"] for c in case["calls"]]
    with sqlite3.connect(pytester.path / ".llmeval" / "cache.db") as db:
        stored = {k: json.loads(r)["latency_s"] for k, r in db.execute("SELECT key, response FROM responses")}
        logged = {k: lat for k, lat in db.execute("SELECT key, latency_s FROM calls WHERE cached = 0")}
    assert len(calls) == 3
    for call in calls:
        assert call["latency_s"] == stored[call["key"]] == logged[call["key"]]


def test_a_providers_own_latency_is_what_is_reported(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(
        """
        class Timed:
            endpoint = "timed"

            def __init__(self, spec):
                self.spec = spec

            def complete(self, request, *, timeout):
                # It timed the request alone (say, after starting a client or waiting for a lock).
                return {"text": "yes", "model": "t", "usage": {"input_tokens": 1, "output_tokens": 1,
                        "cached_input_tokens": 0}, "tool_calls": [], "finish_reason": "stop",
                        "refusal": None, "latency_s": 0.125}

        def pytest_llmeval_register_providers(register):
            register("timed", Timed)
        """
    )
    write_eval(pytester, n=2, marker="min_pass_rate=1.0")
    assert pytester.runpytest("--llmeval-model", "timed:m", "--llmeval-json", "out.json").ret == 0
    ev = read_json(pytester)["evals"][0]
    assert ev["latency_p50_s"] == ev["latency_p95_s"] == 0.125


def test_calls_made_in_fixtures_count_in_the_eval(pytester: pytest.Pytester, fake_api: FakeAPI) -> None:
    pytester.makepyfile(
        test_fx="""
        import pytest
        from pytest_llmeval import exact

        @pytest.fixture
        def primed(llm):
            llm("case 100 setup")
            yield
            llm("case 101 teardown")

        @pytest.mark.llmeval(min_pass_rate=1.0)
        @pytest.mark.parametrize("i", range(2))
        def test_answer(llm, primed, i):
            assert exact(llm(f"case {i}"), "yes")
        """
    )
    script(fake_api, lambda i, model: True)
    assert pytester.runpytest(*OPENAI, "--llmeval-json", "out.json", "--llmeval-concurrency", "0").ret == 0
    data = read_json(pytester)
    assert [len(c["calls"]) for c in data["cases"]] == [3, 3]
    ev = data["evals"][0]
    assert ev["calls"] == 6
    # Cases 100 and 101 are asked once each and replayed for the second case.
    assert ev["cache_hits"] == 2 and fake_api.count() == 4
    assert ev["input_tokens"] == sum(c["input_tokens"] for case in data["cases"] for c in case["calls"]) > 0


def test_a_failed_check_that_is_neither_asserted_nor_used_is_warned_about(
    pytester: pytest.Pytester, fake_api: FakeAPI
) -> None:
    pytester.makepyfile(
        test_w="""
        import pytest
        from pytest_llmeval import exact, includes

        @pytest.mark.llmeval(min_pass_rate=0.0)
        def test_forgot_assert(llm):
            out = llm("case 1")
            exact(out, "yes")

        @pytest.mark.llmeval(min_pass_rate=0.0)
        def test_used(llm):
            out = llm("case 2")
            result = exact(out, "yes")
            if not result.passed:
                pytest.xfail("known")

        @pytest.mark.llmeval(min_pass_rate=0.0)
        def test_passing_unasserted(llm):
            includes(llm("case 3"), "no")
        """
    )
    script(fake_api, [])  # every answer is "no"
    result = pytester.runpytest(*OPENAI, "-W", "always")
    out = result.stdout.str()
    result.stdout.fnmatch_lines(
        [
            "*UnusedCheckWarning: test_w.py::test_forgot_assert[[]openai:gpt-4o-mini[]]: exact() failed but its result "
            "was neither asserted nor used (expected 'yes', got 'no'); write `assert exact(...)`*"
        ]
    )
    warnings = out.split("warnings summary", 1)[1].split("llmeval summary", 1)[0]
    assert "test_forgot_assert" in warnings
    assert "test_used" not in warnings and "test_passing_unasserted" not in warnings


# -- committed recordings ------------------------------------------------------------------------------
def test_committed_recordings_replay_in_ci(pytester: pytest.Pytester, fake_api: FakeAPI) -> None:
    from pytest_llmeval.cli.commands import main

    write_eval(pytester, n=3, marker="min_pass_rate=1.0")
    pytester.makeini("[pytest]\nllmeval_recordings = recordings/answers.jsonl\n")
    script(fake_api, range(3))
    # No file yet: a recording run (mode use) is fine without it.
    assert pytester.runpytest(*OPENAI).ret == 0
    db = pytester.path / ".llmeval" / "cache.db"
    (pytester.path / "recordings").mkdir()
    recording = pytester.path / "recordings" / "answers.jsonl"
    assert main(["cache", "export", str(recording), "--path", str(db)]) == 0
    db.unlink()
    fake_api.clear()
    result = pytester.runpytest(*OPENAI, "--llmeval-cache=replay", "--llmeval-json", "out.json")
    assert result.ret == 0, result.stdout.str()
    assert fake_api.count() == 0
    assert all(c["cached"] for case in read_json(pytester)["cases"] for c in case["calls"])
    # A bad line is a usage error naming the file and the line, before any call.
    lines = recording.read_text().splitlines()
    recording.write_text("\n".join([lines[0], "{not json", *lines[1:]]) + "\n")
    bad = pytester.runpytest(*OPENAI, "--llmeval-cache=replay")
    assert bad.ret == pytest.ExitCode.USAGE_ERROR
    bad.stderr.fnmatch_lines(["*ini option llmeval_recordings: *answers.jsonl: line 2: not JSON*"])
    # Replay needs the file.
    recording.unlink()
    missing = pytester.runpytest(*OPENAI, "--llmeval-cache=replay")
    assert missing.ret == pytest.ExitCode.USAGE_ERROR
    missing.stderr.fnmatch_lines(["*llmeval_recordings: *answers.jsonl does not exist; record it with*cache export*"])
