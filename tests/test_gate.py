"""The gate end to end: pytester runs whose model answers are scripted per case on the fake server."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any

import pytest
from fakeapi import FakeAPI

OPENAI = ["--llmeval-model", "openai:gpt-4o-mini"]
TWO_MODELS = [*OPENAI, "--llmeval-model", "anthropic:claude-haiku-4-5"]


def write_eval(
    pytester: pytest.Pytester, n: int = 10, marker: str = "min_pass_rate=0.7", name: str = "test_ev"
) -> None:
    """An eval of ``n`` cases: case i asks "case i" and passes when the model says "yes"."""
    pytester.makepyfile(
        **{
            name: f"""
            import pytest
            from pytest_llmeval import exact

            @pytest.mark.llmeval({marker})
            @pytest.mark.parametrize("i", range({n}))
            def test_answer(llm, i):
                assert exact(llm(f"case {{i}}"), "yes")
            """
        }
    )


def case_number(body: dict[str, Any]) -> int:
    match = re.search(r"case (\d+)", json.dumps(body))
    assert match, body
    return int(match.group(1))


def script(fake_api: FakeAPI, passing: Collection[int] | Callable[[int, str], bool]) -> None:
    """Make case i pass when i is in ``passing`` (or ``passing(i, api_model)`` is true)."""

    def answer(body: dict[str, Any]) -> str:
        i = case_number(body)
        ok = passing(i, body["model"]) if callable(passing) else i in passing
        return "yes" if ok else "no"

    fake_api.reply(answer)


def read_json(pytester: pytest.Pytester, name: str = "out.json") -> dict[str, Any]:
    return json.loads((pytester.path / name).read_text())


@pytest.mark.parametrize("threshold, status", [(0.7, 0), (0.8, 0), (0.9, 1)])
def test_eight_of_ten_against_threshold(
    pytester: pytest.Pytester, fake_api: FakeAPI, threshold: float, status: int
) -> None:
    write_eval(pytester, marker=f"min_pass_rate={threshold}")
    script(fake_api, range(8))
    result = pytester.runpytest("-v", *OPENAI, "--llmeval-json", "out.json")
    # The failed cases stay visible as failed tests whatever the verdict.
    result.assert_outcomes(passed=8, failed=2)
    result.stdout.fnmatch_lines(["*test_answer?openai:gpt-4o-mini-9? FAILED*"])
    assert result.ret == status
    ev = read_json(pytester)["evals"][0]
    assert (ev["cases"], ev["passed"], ev["failed"], ev["errors"], ev["pass_rate"]) == (10, 8, 2, 0, 0.8)
    assert ev["threshold"] == threshold
    if status == 0:
        result.stdout.fnmatch_lines(
            [
                "llmeval: PASSED because:",
                "  all 1 eval/model pair(s) met their min_pass_rate with no errors",
                "  2 failed case(s) inside passing evals do not fail the run",
            ]
        )
        assert ev["verdict"] == "pass"
    else:
        result.stdout.fnmatch_lines(
            [
                "llmeval: FAILED because:",
                "  test_ev.py::test_answer ?openai:gpt-4o-mini?: pass rate 80.0% (8/10) is below min_pass_rate 90.0%",
            ]
        )
        assert ev["verdict"] == "fail"


def test_summary_row_per_eval_and_model(pytester: pytest.Pytester, fake_api: FakeAPI) -> None:
    write_eval(pytester, marker="min_pass_rate=0.7")
    pytester.makepyfile(
        test_other="""
        import pytest
        from pytest_llmeval import includes

        @pytest.mark.llmeval(min_pass_rate=1.0)
        @pytest.mark.parametrize("i", [100, 101])
        def test_other(llm, i):
            assert includes(llm(f"case {i}"), "yes")
        """
    )
    script(fake_api, lambda i, model: i < 7 or (i == 7 and model.startswith("gpt")) or i >= 100)
    result = pytester.runpytest(*TWO_MODELS)
    assert result.ret == 0  # anthropic's 7/10 on test_answer just meets 0.7
    table = result.stdout.str().split("llmeval summary", 1)[1].split("model calls:", 1)[0]
    result.stdout.fnmatch_lines(
        [
            "eval / model*cases*pass*fail*err*rate*95% CI*min*verdict*tokens*cost*p50/p95 s*cached",
            "test_ev.py::test_answer",
            "  anthropic:claude-haiku-4-5 *10 *7 *3 *0 *70.0% *39.7-89.2 *70% *PASS*0/10",
            "  openai:gpt-4o-mini *10 *8 *2 *0 *80.0% *49.0-94.3 *70% *PASS*0/10",
            "test_other.py::test_other",
            "  anthropic:claude-haiku-4-5 *2 *2 *0 *0 *100.0% *34.2-100.0 *100% *PASS*",
        ]
    )
    for line in table.splitlines():
        assert len(line) <= 120, line
    # One model call per case, all fresh: the run tallies add up.
    result.stdout.fnmatch_lines(["model calls: 24 (0 from cache), retries: 0, errors: 0"])
    assert fake_api.count() == 24


def test_cli_min_pass_rate_overrides_the_marker(pytester: pytest.Pytester, fake_api: FakeAPI) -> None:
    write_eval(pytester, marker="min_pass_rate=0.9")
    script(fake_api, range(8))
    assert pytester.runpytest(*OPENAI, "--llmeval-min-pass-rate", "0.75").ret == 0
    result = pytester.runpytest(*OPENAI, "--llmeval-min-pass-rate", "0.85")
    assert result.ret == 1
    result.stdout.fnmatch_lines(["*pass rate 80.0% (8/10) is below min_pass_rate 85.0%"])


def test_a_failing_non_eval_test_still_fails_the_run(pytester: pytest.Pytester, fake_api: FakeAPI) -> None:
    write_eval(pytester, marker="min_pass_rate=0.7")
    pytester.makepyfile(test_plain="def test_plain():\n    assert 1 == 2\n\ndef test_fine():\n    pass\n")
    script(fake_api, range(8))
    result = pytester.runpytest(*OPENAI)
    result.assert_outcomes(passed=9, failed=3)
    assert result.ret == 1
    result.stdout.fnmatch_lines(
        ["llmeval: FAILED because:", "  1 failure(s) outside eval cases: test_plain.py::test_plain"]
    )
    # Without the failing plain test the same eval passes the run.
    (pytester.path / "test_plain.py").write_text("def test_fine():\n    pass\n")
    assert pytester.runpytest(*OPENAI).ret == 0


def test_a_plain_test_suite_keeps_pytests_own_exit_status(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_a():\n    assert 0\n")
    result = pytester.runpytest()
    assert result.ret == 1
    result.stdout.no_fnmatch_line("*llmeval summary*")
    result.stdout.no_fnmatch_line("llmeval: *")


def test_errors_fail_the_run_whatever_the_threshold(pytester: pytest.Pytester, fake_api: FakeAPI) -> None:
    write_eval(pytester, marker="min_pass_rate=0.0")
    script(fake_api, range(10))
    fake_api.fault("400", when="case 3")
    result = pytester.runpytest(*OPENAI, "--llmeval-json", "out.json")
    result.assert_outcomes(passed=9, failed=1)
    assert result.ret == 1
    result.stdout.fnmatch_lines(
        ["  test_ev.py::test_answer ?openai:gpt-4o-mini?: 1 error(s) in 10 case(s); errors never count as passes*"]
    )
    data = read_json(pytester)
    ev = data["evals"][0]
    assert (ev["passed"], ev["failed"], ev["errors"], ev["verdict"]) == (9, 0, 1, "error")
    error_case = next(c for c in data["cases"] if c["outcome"] == "error")
    assert "HTTP 400" in error_case["error"] and error_case["passed"] is False


def test_a_run_stopped_early_is_never_a_success(pytester: pytest.Pytester, fake_api: FakeAPI) -> None:
    write_eval(pytester, marker="min_pass_rate=0.0")
    script(fake_api, range(1, 10))
    result = pytester.runpytest(*OPENAI, "-x", "-p", "no:randomly")
    result.assert_outcomes(failed=1)
    assert result.ret == 1
    result.stdout.fnmatch_lines(["*pytest stopped early (stopping after 1 failures): the evals are incomplete"])


@pytest.mark.parametrize(
    "content, message",
    [
        (None, "*--llmeval-baseline: *missing.json: no such results file*"),
        ("{not json", "*--llmeval-baseline: *missing.json: not a JSON file*"),
        ('{"schema": "other/thing", "version": 1}', "*missing.json: not a pytest-llmeval results file*--llmeval-json*"),
    ],
    ids=["missing", "not-json", "other-schema"],
)
def test_a_bad_baseline_is_a_usage_error_before_any_call(
    pytester: pytest.Pytester, fake_api: FakeAPI, content: str | None, message: str
) -> None:
    write_eval(pytester)
    if content is not None:
        (pytester.path / "missing.json").write_text(content)
    result = pytester.runpytest(*OPENAI, "--llmeval-baseline", "missing.json")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])
    assert fake_api.count() == 0


def test_eval_finished_hook_is_called_once_per_eval_and_model(pytester: pytest.Pytester, fake_api: FakeAPI) -> None:
    write_eval(pytester, n=3, marker="min_pass_rate=0.5")
    write_eval(pytester, n=2, marker="min_pass_rate=1.0", name="test_second")
    pytester.makeconftest(
        """
        import json

        def pytest_llmeval_eval_finished(result, config):
            with open("hooks.jsonl", "a") as f:
                f.write(json.dumps([result.eval, result.model, result.pass_rate, result.verdict]) + "\\n")
        """
    )
    script(fake_api, [0, 1])
    assert pytester.runpytest(*TWO_MODELS).ret == 0
    calls = [json.loads(line) for line in (pytester.path / "hooks.jsonl").read_text().splitlines()]
    assert sorted(map(tuple, calls)) == [
        ("test_ev.py::test_answer", "anthropic:claude-haiku-4-5", 2 / 3, "pass"),
        ("test_ev.py::test_answer", "openai:gpt-4o-mini", 2 / 3, "pass"),
        ("test_second.py::test_answer", "anthropic:claude-haiku-4-5", 1.0, "pass"),
        ("test_second.py::test_answer", "openai:gpt-4o-mini", 1.0, "pass"),
    ]


# -- the baseline gate -------------------------------------------------------------------------
def run_pair(
    pytester: pytest.Pytester,
    fake_api: FakeAPI,
    n: int,
    before: Collection[int],
    after: Collection[int],
    marker: str,
    *extra: str,
) -> pytest.RunResult:
    """Record a baseline with ``before`` passing, then run again with ``after`` against it."""
    write_eval(pytester, n=n, marker=marker)
    script(fake_api, before)
    first = pytester.runpytest(*OPENAI, "--llmeval-cache", "off", "--llmeval-json", "base.json")
    assert first.ret == 0, first.stdout.str()
    fake_api.clear()
    script(fake_api, after)
    return pytester.runpytest(
        *OPENAI, "--llmeval-cache", "off", "--llmeval-baseline", "base.json", "--llmeval-json", "out.json", *extra
    )


def test_baseline_without_change_passes(pytester: pytest.Pytester, fake_api: FakeAPI) -> None:
    result = run_pair(pytester, fake_api, 20, range(18), range(18), "min_pass_rate=0.8")
    assert result.ret == 0
    result.stdout.fnmatch_lines(
        [
            "baseline: base.json (alpha 0.05, one-sided McNemar)",
            "  test_ev.py::test_answer ?openai:gpt-4o-mini?: 90.0% -> 90.0% on 20 matched case(s), p=1: no significant*",
            "llmeval: PASSED because:",
            "  *and no regression against the baseline",
        ]
    )
    base = read_json(pytester)["baseline"]
    assert base["evals"][0]["flipped_to_fail"] == [] and base["evals"][0]["regressed"] is False


def test_baseline_real_drop_fails_and_lists_flips_both_ways(pytester: pytest.Pytester, fake_api: FakeAPI) -> None:
    # 19/20 before; now cases 0-7 fail and case 19 passes: 8 flips down, 1 up. 12/20 still
    # meets min_pass_rate=0.5, so only the baseline gate can fail this run.
    result = run_pair(
        pytester, fake_api, 20, range(19), range(8, 20), "min_pass_rate=0.5", "--llmeval-markdown", "out.md"
    )
    assert result.ret == 1
    result.stdout.fnmatch_lines(
        [
            "*95.0% -> 60.0% on 20 matched case(s), p=0.0195: REGRESSED",
            "    flipped to fail (8):",
            "      test_ev.py::test_answer?openai:gpt-4o-mini-0?",
            "*",
            "    flipped to pass (1):",
            "      test_ev.py::test_answer?openai:gpt-4o-mini-19?",
            "llmeval: FAILED because:",
            "  test_ev.py::test_answer ?openai:gpt-4o-mini?: regressed against the baseline: 95.0% -> 60.0% on 20*"
            "8 flipped to fail and 1 to pass (McNemar p=0.0195)",
        ]
    )
    entry = read_json(pytester)["baseline"]["evals"][0]
    assert entry["flipped_to_fail"] == sorted(f"test_ev.py::test_answer[openai:gpt-4o-mini-{i}]" for i in range(8))
    assert entry["flipped_to_pass"] == ["test_ev.py::test_answer[openai:gpt-4o-mini-19]"]
    assert entry["p_value"] == pytest.approx(10 / 512)  # P(X >= 8), X ~ Bin(9, 1/2)
    assert (entry["base_rate"], entry["rate"], entry["n_pairs"], entry["regressed"]) == (0.95, 0.6, 20, True)
    markdown = (pytester.path / "out.md").read_text()
    assert "## ❌ pytest-llmeval: failed" in markdown
    assert "test_ev.py::test_answer [openai:gpt-4o-mini]: 8 flipped to fail</summary>" in markdown
    assert "- `test_ev.py::test_answer[openai:gpt-4o-mini-19]`" in markdown


def test_baseline_one_case_dip_on_100_cases_passes(pytester: pytest.Pytester, fake_api: FakeAPI) -> None:
    result = run_pair(pytester, fake_api, 100, range(95), range(1, 95), "min_pass_rate=0.9")
    assert result.ret == 0
    result.stdout.fnmatch_lines(
        [
            "*95.0% -> 94.0% on 100 matched case(s), p=0.5: no significant drop",
            "    flipped to fail (1):",
            "      test_ev.py::test_answer?openai:gpt-4o-mini-0?",
            "llmeval: PASSED because:",
        ]
    )


def test_baseline_counts_new_and_missing_cases(pytester: pytest.Pytester, fake_api: FakeAPI) -> None:
    write_eval(pytester, n=4, marker="min_pass_rate=0.5")
    script(fake_api, range(4))
    assert pytester.runpytest(*OPENAI, "--llmeval-json", "base.json").ret == 0
    write_eval(pytester, n=6, marker="min_pass_rate=0.5")
    result = pytester.runpytest(*OPENAI, "--llmeval-baseline", "base.json", "-k", "not answer[openai:gpt-4o-mini-0]")
    assert result.ret == 0
    result.stdout.fnmatch_lines(["    2 case(s) not in the baseline; 1 baseline case(s) not run"])


# -- repeats -------------------------------------------------------------------------------------
def test_repeats_report_pass_fraction_pass_at_k_and_pass_hat_k(pytester: pytest.Pytester, fake_api: FakeAPI) -> None:
    write_eval(pytester, n=3, marker="min_pass_rate=0.4, repeat=3")
    seen: dict[int, int] = {}

    def answer(body: dict[str, Any]) -> str:
        # Case 0 always passes, case 1 passes on its first sample only, case 2 never.
        i = case_number(body)
        seen[i] = seen.get(i, 0) + 1
        return "yes" if i == 0 or (i == 1 and seen[i] == 1) else "no"

    fake_api.reply(answer)
    # One call at a time, in test order: "its first sample" is then sample 0 (the fake server
    # cannot see the sample number), which the --llmeval-repeat 2 rerun below relies on.
    result = pytester.runpytest(
        *OPENAI, "--llmeval-json", "out.json", "-p", "no:randomly", "--llmeval-concurrency", "0"
    )
    result.assert_outcomes(passed=4, failed=5)
    assert result.ret == 0  # 4/9 >= 0.4
    ev = read_json(pytester)["evals"][0]
    assert (ev["cases"], ev["distinct_cases"], ev["repeat"]) == (9, 3, 3)
    assert ev["pass_at_k"] == pytest.approx({"1": 4 / 9, "2": (1 + 2 / 3 + 0) / 3, "3": 2 / 3})
    assert ev["pass_hat_k"] == pytest.approx({"1": 4 / 9, "2": 1 / 3, "3": 1 / 3})
    fractions = {r["case"]: (r["passed"], r["samples"]) for r in ev["case_rates"]}
    assert fractions == {
        "test_ev.py::test_answer[openai:gpt-4o-mini-0]": (3, 3),
        "test_ev.py::test_answer[openai:gpt-4o-mini-1]": (1, 3),
        "test_ev.py::test_answer[openai:gpt-4o-mini-2]": (0, 3),
    }
    result.stdout.fnmatch_lines(
        [
            "test_ev.py::test_answer ?openai:gpt-4o-mini?, 3 samples per case:",
            "  pass@1 44.4%  pass@2 55.6%  pass@3 66.7%",
            "  pass^1 44.4%  pass^2 33.3%  pass^3 33.3%",
            "  per-case pass fraction (flaky cases):",
            "    1/3  test_ev.py::test_answer?openai:gpt-4o-mini-1?",
        ]
    )
    # Each sample is its own cache entry: a rerun replays all nine and changes nothing.
    assert fake_api.count() == 9
    again = pytester.runpytest(*OPENAI, "--llmeval-json", "again.json", "-p", "no:randomly")
    assert fake_api.count() == 9 and again.ret == 0
    assert read_json(pytester, "again.json")["evals"][0]["pass_at_k"] == ev["pass_at_k"]
    # --llmeval-repeat overrides the marker.
    assert pytester.runpytest(*OPENAI, "--llmeval-repeat", "2", "--llmeval-json", "two.json").ret == 0
    assert read_json(pytester, "two.json")["evals"][0]["repeat"] == 2


# -- verbosity -----------------------------------------------------------------------------------
def test_quiet_modes_shorten_the_summary(pytester: pytest.Pytester, fake_api: FakeAPI) -> None:
    write_eval(pytester, marker="min_pass_rate=0.9")
    script(fake_api, range(8))
    quiet = pytester.runpytest(*OPENAI, "-q")
    quiet.stdout.fnmatch_lines(["*llmeval summary*", "eval / model*", "llmeval: FAILED because:"])
    quiet.stdout.no_fnmatch_line("model calls:*")
    very_quiet = pytester.runpytest(*OPENAI, "-qq")
    very_quiet.stdout.no_fnmatch_line("*llmeval summary*")
    very_quiet.stdout.no_fnmatch_line("eval / model*")
    very_quiet.stdout.fnmatch_lines(["llmeval: FAILED because:", "  *is below min_pass_rate 90.0%"])
    assert quiet.ret == very_quiet.ret == 1


def test_long_names_stay_within_120_columns(pytester: pytest.Pytester, fake_api: FakeAPI) -> None:
    long_model = "openai:" + "m" * 70 + f"@{fake_api.openai_base_url}"
    pytester.makepyfile(
        **{
            "test_" + "x" * 90: """
            import pytest
            @pytest.mark.llmeval(min_pass_rate=0.5)
            @pytest.mark.parametrize("i", range(2))
            def test_with_a_rather_long_function_name_for_an_eval(llm, i):
                assert llm(f"case {i}")
            """
        }
    )
    result = pytester.runpytest("--llmeval-model", long_model)
    assert result.ret == 0
    summary = result.stdout.str().split("llmeval summary", 1)[1].split("short test summary", 1)[0]
    rows = [line for line in summary.splitlines() if line.strip()]
    assert any(line.startswith("  ...") and line.rstrip().endswith("0/2") for line in rows), rows
    assert all(len(line) <= 120 for line in rows), rows


def test_results_file_paths_are_relative_to_the_invocation_dir(pytester: pytest.Pytester, fake_api: FakeAPI) -> None:
    write_eval(pytester, n=2, marker="min_pass_rate=0.5")
    script(fake_api, range(2))
    assert pytester.runpytest(*OPENAI, "--llmeval-json", "sub/dir/out.json").ret == 0
    assert Path(pytester.path, "sub/dir/out.json").is_file()
