"""Batch mode (--llmeval-batch): planned calls through the OpenAI and Anthropic batch APIs.

Every test runs the real SDKs against tests/fakeapi.py, whose batch endpoints end a batch
``batch_delay`` seconds after it was created.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest
from fakeapi import FakeAPI, _last_user_text

from pytest_llmeval.calls.pricing import estimate_cost
from pytest_llmeval.cli.commands import main as cli_main
from pytest_llmeval.models import ModelSpec, Usage

MODELS = ["--llmeval-model", "openai:gpt-4o-mini", "--llmeval-model", "anthropic:claude-haiku-4-5"]
BATCH = [*MODELS, "--llmeval-batch", "-p", "no:randomly"]
VERDICT = json.dumps({"reasoning": "it echoes the question", "verdict": "pass"})

PLAIN = """
import pytest

@pytest.mark.parametrize("i", range({n}))
def test_case(llm, i):
    assert llm(f"question {{i}}") == f"echo: question {{i}}"
"""

JUDGED = """
import pytest

@pytest.mark.parametrize("i", range({n}))
def test_case(llm, judge, i):
    answer = llm(f"question {{i}}")
    assert answer == f"echo: question {{i}}"
    assert judge(answer, "echoes the question")
"""


def kinds(fake: FakeAPI) -> dict[str, int]:
    """The batch-endpoint requests received, by what they were for."""
    out = {"submit": 0, "poll": 0, "download": 0}
    for r in fake.batch_requests():
        path = r.path
        if path.endswith(("/content", "/results")):
            out["download"] += 1
        elif path in ("/v1/files", "/v1/batches", "/v1/messages/batches"):
            out["submit"] += 1
        elif path.endswith("/cancel"):
            out.setdefault("cancel", 0)
            out["cancel"] += 1
        else:
            out["poll"] += 1
    return out


def calls_log(pytester: pytest.Pytester) -> list[dict[str, Any]]:
    conn = sqlite3.connect(pytester.path / ".llmeval" / "cache.db")
    conn.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in conn.execute("SELECT * FROM calls ORDER BY id")]
    finally:
        conn.close()


def results(pytester: pytest.Pytester, name: str = "results.json") -> dict[str, Any]:
    return json.loads((pytester.path / name).read_text())


def test_a_judged_run_is_two_levels_of_batches_and_no_per_case_call(
    pytester: pytest.Pytester, fake_api: FakeAPI
) -> None:
    fake_api.batch_delay = 0.2
    fake_api.reply(VERDICT, when="echoes the question")
    pytester.makepyfile(JUDGED.format(n=4))
    result = pytester.runpytest(*BATCH, "--llmeval-judge", "openai:gpt-4o", "--llmeval-json", "results.json")
    result.assert_outcomes(passed=8)
    assert fake_api.count() == 0  # no per-case model call at all
    batches = fake_api.batches
    # The answers first (one batch per model), then the judge's grades as the next batch.
    assert [(b.provider, len(b.lines)) for b in batches[:2]] == [("openai", 4), ("anthropic", 4)]
    assert len(batches) == 3 and batches[2].provider == "openai" and len(batches[2].lines) == 4
    assert {line["body"]["model"] for line in batches[2].lines} == {"gpt-4o"}
    made = kinds(fake_api)
    # Requests made = what the batches need (OpenAI: upload + create; Anthropic: create) + polls
    # + one download per batch (Anthropic's results re-read the batch first: one more poll).
    assert made["submit"] == 2 + 1 + 2 and made["download"] == 3
    assert sum(made.values()) == len(fake_api.batch_requests())
    rows = calls_log(pytester)
    ids = {b.id for b in batches}
    assert rows and all(r["batch_id"] in ids for r in rows if not r["cached"])
    data = results(pytester)
    calls = [c for case in data["cases"] for c in case["calls"]]
    assert all(c["batch_id"] in ids for c in calls if not c["cached"])
    result.stdout.fnmatch_lines(["*llmeval batch: 3 batch(es) submitted (12 requests)*0 pending*"])
    assert "batch price" in result.stdout.str()


def test_batch_costs_half_of_the_same_calls_made_live(pytester: pytest.Pytester, fake_api: FakeAPI) -> None:
    usage = {"input_tokens": 1000, "output_tokens": 500, "cached_input_tokens": 200}
    fake_api.reply(lambda body: {"text": "echo: " + _last_user_text(body), "usage": usage})
    pytester.makepyfile(PLAIN.format(n=3))
    batch = pytester.runpytest(*BATCH, "--llmeval-json", "batch.json", "--llmeval-cache-path", "b.db")
    batch.assert_outcomes(passed=6)
    live = pytester.runpytest(
        *MODELS, "-p", "no:randomly", "--llmeval-json", "live.json", "--llmeval-cache-path", "l.db"
    )
    live.assert_outcomes(passed=6)

    def cost(name: str) -> float:
        return sum(float(c["cost_usd"]) for case in results(pytester, name)["cases"] for c in case["calls"])

    assert cost("live.json") > 0
    assert cost("batch.json") == pytest.approx(cost("live.json") / 2)


def test_pricing_knows_the_batch_discount_and_cached_prompt_tokens() -> None:
    spec = ModelSpec.parse("openai:gpt-4o-mini")
    usage = Usage(input_tokens=1_000_000, output_tokens=0, cached_input_tokens=1_000_000)
    assert estimate_cost(spec, usage) == pytest.approx(0.075)  # all cached: the cached-input price
    assert estimate_cost(spec, usage, batch=True) == pytest.approx(0.0375)
    anthropic = ModelSpec.parse("anthropic:claude-haiku-4-5")
    assert estimate_cost(anthropic, Usage(0, 1_000_000, 0), batch=True) == pytest.approx(2.5)


def test_a_run_that_stops_waiting_errors_and_the_next_run_collects(
    pytester: pytest.Pytester, fake_api: FakeAPI
) -> None:
    fake_api.batch_delay = 600
    pytester.makepyfile(PLAIN.format(n=3))
    first = pytester.runpytest(*BATCH, "--llmeval-batch-wait", "0", "--llmeval-json", "first.json")
    first.assert_outcomes(failed=6)  # errors of the machinery, shown as pytest failures
    assert first.ret != 0
    out = first.stdout.str()
    assert out.count("BatchPendingError: batch pending, rerun to collect") == 6
    first.stdout.fnmatch_lines(["*is still pending (0/3 done)*rerun to collect it*"])
    # Errors, never failed answers of the model.
    assert {c["outcome"] for c in results(pytester, "first.json")["cases"]} == {"error"}
    submitted = [b.id for b in fake_api.batches]
    assert len(submitted) == 2

    # Another process (the CLI) sees them pending.
    listing = pytester.run("python", "-m", "pytest_llmeval", "batch", "list")
    assert listing.ret == 0 and all(bid in listing.stdout.str() for bid in submitted)
    assert "2 pending" in listing.stdout.str()

    for batch in fake_api.batches:
        batch.delay = 0.0  # the provider has finished them in the meantime
    second = pytester.runpytest(*BATCH)
    second.assert_outcomes(passed=6)
    assert [b.id for b in fake_api.batches] == submitted  # collected, not submitted again
    assert fake_api.count() == 0
    third = pytester.runpytest(*BATCH)  # everything is in the cache now: no request at all
    third.assert_outcomes(passed=6)
    assert len(fake_api.batches) == 2


def test_cancel_from_the_command_line_then_the_next_run_resubmits(pytester: pytest.Pytester, fake_api: FakeAPI) -> None:
    fake_api.batch_delay = 600
    pytester.makepyfile(PLAIN.format(n=2))
    pytester.runpytest(*BATCH, "--llmeval-batch-wait", "0").assert_outcomes(failed=4)
    first = {b.id for b in fake_api.batches}
    db = str(pytester.path / ".llmeval" / "cache.db")
    assert cli_main(["batch", "cancel", "--path", db]) == 0
    assert {b.state for b in fake_api.batches} == {"cancelled"}
    assert kinds(fake_api)["cancel"] == 2
    assert cli_main(["batch", "cancel", "no-such-batch", "--path", db]) == 1
    fake_api.batch_delay = 0.0
    second = pytester.runpytest(*BATCH)
    second.assert_outcomes(passed=4)
    again = [b for b in fake_api.batches if b.id not in first]
    assert sorted(len(b.lines) for b in again) == [2, 2]  # everything was missing: all resubmitted
    second.stdout.fnmatch_lines(["*4 resubmitted after an expired or cancelled batch*"])


def test_an_error_inside_a_batch_is_that_case_s_error_and_nothing_is_stored(
    pytester: pytest.Pytester, fake_api: FakeAPI
) -> None:
    fake_api.batch_error("question 1", "Invalid 'messages[0].content': injected for the test.")
    pytester.makepyfile(PLAIN.format(n=3))
    result = pytester.runpytest(*BATCH, "--llmeval-json", "results.json")
    result.assert_outcomes(passed=4, failed=2)
    errors = [c for c in results(pytester)["cases"] if c["outcome"] == "error"]
    assert len(errors) == 2 and all("question-1" in c["nodeid"] or "-1]" in c["nodeid"] for c in errors)
    assert all("injected for the test" in c["error"] and "batch" in c["error"] for c in errors)
    conn = sqlite3.connect(pytester.path / ".llmeval" / "cache.db")
    try:
        stored = [json.loads(r[0])["messages"][0]["content"] for r in conn.execute("SELECT request FROM responses")]
    finally:
        conn.close()
    assert len(stored) == 4 and "question 1" not in stored
    # The next run asks again for the failed request only.
    fake_api.clear()
    pytester.runpytest(*BATCH).assert_outcomes(passed=6)
    assert sorted(len(b.lines) for b in fake_api.batches) == [1, 1]


def test_an_expired_batch_is_resubmitted_only_for_what_it_did_not_answer(
    pytester: pytest.Pytester, fake_api: FakeAPI
) -> None:
    fake_api.batch_delay = 600
    pytester.makepyfile(PLAIN.format(n=4))
    pytester.runpytest(*BATCH, "--llmeval-batch-wait", "0").assert_outcomes(failed=8)
    first = {b.id for b in fake_api.batches}
    # The provider answered question 0 of each batch, then the batches expired.
    assert fake_api.expire_batches(except_when="question 0") == 2
    fake_api.batch_delay = 0.0
    second = pytester.runpytest(*BATCH)
    second.assert_outcomes(passed=8)
    again = [b for b in fake_api.batches if b.id not in first]
    assert sorted(len(b.lines) for b in again) == [3, 3]
    texts = {line["body"]["messages"][-1]["content"] for b in again if b.provider == "openai" for line in b.lines}
    assert texts == {"question 1", "question 2", "question 3"}
    assert fake_api.count() == 0


def test_a_batch_that_expires_while_the_run_waits_makes_errors(pytester: pytest.Pytester, fake_api: FakeAPI) -> None:
    fake_api.batch_delay = 600
    stop = threading.Event()

    def expire_both() -> None:
        # Each of the two batches (one per model) is expired once it is out, however long
        # the run takes to submit it: no wall-clock guess about when that is.
        expired = 0
        while expired < 2 and not stop.wait(0.1):
            expired += fake_api.expire_batches()

    expirer = threading.Thread(target=expire_both, daemon=True)
    expirer.start()
    try:
        pytester.makepyfile(PLAIN.format(n=2))
        # The wait bound only keeps a broken run from hanging; the batches expire long before.
        result = pytester.runpytest(*BATCH, "--llmeval-batch-wait", "300", "--llmeval-json", "results.json")
    finally:
        stop.set()
        expirer.join(5)
    result.assert_outcomes(failed=4)
    errors = [c["error"] for c in results(pytester)["cases"]]
    assert all("expired" in e and "rerun to submit it again" in e for e in errors)
    assert fake_api.count() == 0


def test_models_without_a_batch_api_are_called_live_and_said_once(pytester: pytest.Pytester, fake_api: FakeAPI) -> None:
    local = f"openai:smol@{fake_api.openai_base_url}"
    pytester.makepyfile(PLAIN.format(n=3))
    result = pytester.runpytest("--llmeval-model", local, "--llmeval-model", "anthropic:claude-haiku-4-5",
                                "--llmeval-batch", "-p", "no:randomly")  # fmt: skip
    result.assert_outcomes(passed=6)
    assert fake_api.count("openai") == 3 and fake_api.count("anthropic") == 0
    assert [b.provider for b in fake_api.batches] == ["anthropic"]
    assert result.stdout.str().count("has no batch API: their calls were made live") == 1


def test_without_the_option_nothing_is_batched(pytester: pytest.Pytester, fake_api: FakeAPI) -> None:
    pytester.makeini("[pytest]\nllmeval_batch = false\n")
    pytester.makepyfile(PLAIN.format(n=2))
    pytester.runpytest(*MODELS).assert_outcomes(passed=4)
    assert fake_api.batches == [] and fake_api.count() == 4


def test_the_ini_option_turns_batch_mode_on_and_a_bad_wait_is_a_usage_error(
    pytester: pytest.Pytester, fake_api: FakeAPI
) -> None:
    pytester.makeini("[pytest]\nllmeval_batch = true\n")
    pytester.makepyfile(PLAIN.format(n=2))
    pytester.runpytest(*MODELS).assert_outcomes(passed=4)
    assert len(fake_api.batches) == 2 and fake_api.count() == 0
    bad = pytester.runpytest(*MODELS, "--llmeval-batch-wait", "-1")
    assert bad.ret == pytest.ExitCode.USAGE_ERROR
    bad.stderr.fnmatch_lines(["*--llmeval-batch-wait: must be between 0.0 and 86400.0*"])


def test_xdist_workers_submit_each_request_once(pytester: pytest.Pytester, fake_api: FakeAPI) -> None:
    pytest.importorskip("xdist")
    fake_api.batch_delay = 0.3
    fake_api.reply(VERDICT, when="echoes the question")
    pytester.makepyfile(JUDGED.format(n=6))
    result = pytester.runpytest_subprocess(*BATCH, "--llmeval-judge", "openai:gpt-4o", "-n", "2",
                                           "--llmeval-json", "results.json")  # fmt: skip
    result.assert_outcomes(passed=12)
    assert fake_api.count() == 0
    sent = [
        json.dumps(line.get("body") or line.get("params"), sort_keys=True) for b in fake_api.batches for line in b.lines
    ]
    assert len(sent) == len(set(sent)) == 6 + 6 + 6  # two models' answers, one judge's grades: each once
    data = results(pytester)
    assert len(data["cases"]) == 12


def test_the_store_lets_one_claimant_take_a_key(tmp_path: Path) -> None:
    from pytest_llmeval.store.db import Store

    with Store(tmp_path / "c.db") as a, Store(tmp_path / "c.db") as b:
        entries = [("v1-aa", "aa", {"m": 1}, "t1"), ("v1-bb", "bb", {"m": 2}, "t2")]
        claim, taken = a.claim_batch(provider="openai", endpoint="e", model="m", entries=entries, run_id="r")
        assert claim is not None and taken == {}
        again, held = b.claim_batch(provider="openai", endpoint="e", model="m", entries=entries, run_id="r2")
        assert again is None and held == {"v1-aa": claim, "v1-bb": claim}
        a.batch_submitted(claim, "batch_1", ["v1-aa", "v1-bb"])
        a.release_claim(claim)
        assert b.claim_batch(provider="openai", endpoint="e", model="m", entries=entries[:1], run_id="r2")[1] == {
            "v1-aa": "batch_1"
        }
        a.finish_batch_requests("batch_1", {"v1-aa": ("done", None), "v1-bb": ("missing", "expired")})
        a.update_batch("batch_1", status="expired", done=1, failed=0)
        claim2, taken2 = b.claim_batch(provider="openai", endpoint="e", model="m", entries=entries, run_id="r2")
        assert claim2 is not None and taken2 == {}  # an expired batch holds nothing any more
        assert sorted(x["status"] for x in a.batches()) == ["expired", "submitting"]
        assert [x["id"] for x in a.batches(pending=True)] == [claim2]


def test_the_progress_line_says_submitted_done_failed_and_elapsed() -> None:
    import io

    from pytest_llmeval.calls.batch import _ProgressLine

    now = [0.0]
    stream = io.StringIO()
    line = _ProgressLine(stream, lambda: now[0])
    now[0] = 12.0
    line.update(2, 300, 120, 1)
    assert stream.getvalue() == "\rllmeval batch: 2 batches, 300 submitted, 120 done, 1 failed, 12s"
    line.close()
    assert stream.getvalue().endswith("\r")
    _ProgressLine(None, lambda: 0.0).update(1, 1, 1, 0)  # no terminal: nothing to draw, no error


def test_an_application_s_own_sdk_calls_are_made_live(pytester: pytest.Pytester, fake_api: FakeAPI) -> None:
    # intercept=True forwards the app's request as it was sent: it has no place in a batch.
    pytester.makepyfile(
        myapp="""
        import openai

        client = openai.OpenAI()

        def classify(text):
            reply = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": text}])
            return reply.choices[0].message.content
        """
    )
    pytester.makepyfile(
        """
        import pytest
        from myapp import classify

        @pytest.mark.llmeval(intercept=True)
        @pytest.mark.parametrize("text", ["refund please", "app crashes"])
        def test_classify(text):
            assert classify(text) == f"echo: {text}"
        """
    )
    result = pytester.runpytest("--llmeval-batch", "-p", "no:randomly")
    result.assert_outcomes(passed=2)
    assert fake_api.count() == 2 and fake_api.batches == []
    result.stdout.fnmatch_lines(["*openai:gpt-4o-mini (intercepted SDK calls) has no batch API*made live*"])
