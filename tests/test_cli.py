"""``python -m pytest_llmeval``: run in a subprocess as a user would, and in-process through
``cli.main(argv)`` for the details."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from fakeapi import FakeAPI

from pytest_llmeval.cli import commands as cli
from pytest_llmeval.models import ModelSpec, Request, key_of
from pytest_llmeval.store import Store


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest_llmeval", *args], cwd=cwd, capture_output=True, text=True, timeout=120
    )


def make_request(prompt: str, model: str = "openai:gpt-4o-mini", **params: Any) -> Request:
    return Request(
        ModelSpec.parse(model), [{"role": "user", "content": prompt}], params, endpoint="http://127.0.0.1:1/v1"
    )


def fill(path: Path) -> list[Request]:
    """A store with three answers from two models and one run."""
    requests = [
        make_request("Capital of France?"),
        make_request("Capital of Perú?", temperature=0.5),
        make_request("Capital of Japan?", "anthropic:claude-haiku-4-5"),
    ]
    with Store(path) as store:
        store.start_run("run1", cache_mode="use", args=[])
        for i, req in enumerate(requests):
            response = {"text": f"answer {i}", "usage": {"input_tokens": 4, "output_tokens": 2}}
            store.put(req.key, req.key_payload(), response)
            for cached in (0, 1):
                store.log_call(
                    {
                        "run_id": "run1",
                        "ts": "2025-06-01T00:00:00.000+00:00",
                        "test_id": f"t.py::test_{i}",
                        "model": str(req.model),
                        "role": "llm",
                        "key": req.key,
                        "request": json.dumps(req.key_payload()),
                        "response": json.dumps(response),
                        "cached": cached,
                    }
                )
    return requests


# -- basics ---------------------------------------------------------------------------------
def test_a_missing_store_is_a_clear_error(tmp_path: Path) -> None:
    for argv in (["cache", "stats"], ["cache", "export", "out.jsonl"], ["export-finetune", "ft.jsonl"]):
        proc = run_cli(*argv, cwd=tmp_path)
        assert proc.returncode == 2, proc.stderr
        assert "error: no llmeval store at .llmeval/cache.db" in proc.stderr
        assert "pass --path DB" in proc.stderr and str(tmp_path) in proc.stderr
        assert proc.stdout == ""
    assert not (tmp_path / ".llmeval").exists()
    assert not (tmp_path / "out.jsonl").exists()


def test_stats_in_a_subprocess_with_the_default_path(tmp_path: Path) -> None:
    fill(tmp_path / ".llmeval" / "cache.db")
    proc = run_cli("cache", "stats", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "entries: 3" in out
    assert "openai:gpt-4o-mini" in out and "anthropic:claude-haiku-4-5" in out
    assert "runs: 1" in out
    assert "calls: 6, cache hits: 3 (hit rate 50.0%)" in out


def test_stats_json_and_path_before_or_after_the_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "elsewhere.db"
    fill(db)
    assert cli.main(["--path", str(db), "cache", "stats", "--json"]) == 0
    before = json.loads(capsys.readouterr().out)
    assert cli.main(["cache", "stats", "--json", "--path", str(db)]) == 0
    after = json.loads(capsys.readouterr().out)
    assert before == after
    assert before["entries"] == 3 and before["calls"] == 6 and before["hit_rate"] == 0.5
    assert before["entries_per_model"] == {"anthropic:claude-haiku-4-5": 1, "openai:gpt-4o-mini": 2}


def test_a_damaged_store_is_an_error_and_left_alone(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "cache.db"
    db.write_bytes(b"not sqlite" * 500)
    assert cli.main(["--path", str(db), "cache", "stats"]) == 1
    assert "cache.db cannot be used: file is not a database" in capsys.readouterr().err
    assert db.read_bytes() == b"not sqlite" * 500


def test_usage_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "cache.db"
    fill(db)
    assert cli.main(["--path", str(db), "cache", "prune"]) == 2
    assert "give --keep-runs N or --older-than DATE" in capsys.readouterr().err
    assert cli.main(["--path", str(db), "cache", "prune", "--older-than", "yesterday"]) == 2
    assert "not an ISO date: 'yesterday'" in capsys.readouterr().err
    assert cli.main(["--path", str(db), "cache", "prune", "--keep-runs", "0"]) == 2
    assert cli.main(["cache"]) == 2
    assert cli.main(["nonsense"]) == 2
    assert "invalid choice: 'nonsense'" in capsys.readouterr().err
    assert cli.main(["--help"]) == 0
    assert "export-finetune" in capsys.readouterr().out


def test_prune_keep_runs_from_the_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "cache.db"
    fill(db)
    with Store(db) as store:
        store.start_run("run2", cache_mode="use", args=[])
        store.execute("UPDATE runs SET started_at = '2099-01-01' WHERE id = 'run2'")
        used = make_request("Capital of France?")
        store.log_call({"run_id": "run2", "ts": "t", "model": "openai:gpt-4o-mini", "role": "llm",
                        "key": used.key, "request": "{}"})  # fmt: skip
    assert cli.main(["--path", str(db), "cache", "prune", "--keep-runs", "1"]) == 0
    assert "pruned 2 cached answers" in capsys.readouterr().out
    with Store(db) as store:
        assert store.execute("SELECT key FROM responses") == [(used.key,)]


def test_prune_older_than_from_the_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "cache.db"
    fill(db)
    with Store(db) as store:
        store.execute("UPDATE runs SET started_at = '2025-06-01T00:00:00.000+00:00'")
        store.execute("UPDATE responses SET created_at = '2025-06-01T00:00:00.000+00:00'")
    assert cli.main(["--path", str(db), "cache", "prune", "--older-than", "2025-06-02"]) == 0
    assert "pruned 3 cached answers, 6 logged calls, 1 runs" in capsys.readouterr().out
    assert cli.main(["--path", str(db), "cache", "stats", "--json"]) == 0
    figures = json.loads(capsys.readouterr().out)
    assert (figures["entries"], figures["calls"], figures["runs"]) == (0, 0, 0)


# -- export and import -----------------------------------------------------------------------
def test_export_import_round_trip_is_byte_identical(tmp_path: Path) -> None:
    db = tmp_path / ".llmeval" / "cache.db"
    requests = fill(db)
    first = run_cli("cache", "export", "cache.jsonl", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert "exported 3 cached answers to cache.jsonl" in first.stdout
    exported = (tmp_path / "cache.jsonl").read_bytes()
    lines = exported.decode("utf-8").splitlines()
    assert len(lines) == 3 and exported.endswith(b"\n") and b"\r" not in exported
    assert [json.loads(line)["key"] for line in lines] == sorted(r.key for r in requests)
    assert "Perú" in exported.decode("utf-8")
    for line in lines:
        entry = json.loads(line)
        assert key_of(entry["request"]) == entry["key"]

    imported = run_cli("--path", "copy.db", "cache", "import", "cache.jsonl", cwd=tmp_path)
    assert imported.returncode == 0, imported.stderr
    assert "3 added, 0 replaced, 0 unchanged" in imported.stdout
    again = run_cli("--path", "copy.db", "cache", "export", "again.jsonl", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert (tmp_path / "again.jsonl").read_bytes() == exported
    # Importing twice changes nothing; a second export of the original is the same bytes too.
    assert "0 added, 0 replaced, 3 unchanged" in run_cli("--path", "copy.db", "cache", "import", "cache.jsonl",
                                                         cwd=tmp_path).stdout  # fmt: skip
    assert cli.main(["--path", str(db), "cache", "export", str(tmp_path / "third.jsonl")]) == 0
    assert (tmp_path / "third.jsonl").read_bytes() == exported


def test_an_imported_cache_replays_in_a_pytest_run(pytester: pytest.Pytester, fake_api: FakeAPI) -> None:
    pytester.makepyfile("def test_it(llm):\n    assert llm('What is 2+2?') == '4'\n")
    fake_api.reply("4")
    model = ["--llmeval-model", "openai:gpt-4o-mini"]
    pytester.runpytest(*model).assert_outcomes(passed=1)
    assert cli.main(["--path", str(pytester.path / ".llmeval/cache.db"), "cache", "export",
                     str(pytester.path / "committed.jsonl")]) == 0  # fmt: skip
    (pytester.path / ".llmeval" / "cache.db").unlink()  # pytester runs in its own directory
    assert cli.main(["cache", "import", "committed.jsonl"]) == 0
    pytester.runpytest(*model, "--llmeval-cache=replay").assert_outcomes(passed=1)
    assert fake_api.count() == 1


def test_import_rejects_a_hand_edited_line_by_number(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "cache.db"
    fill(db)
    dump = tmp_path / "dump.jsonl"
    assert cli.main(["--path", str(db), "cache", "export", str(dump)]) == 0
    lines = dump.read_text(encoding="utf-8").splitlines()
    entry = json.loads(lines[1])
    entry["request"]["params"] = {"temperature": 0.9}  # edited without recomputing the key
    lines[1] = json.dumps(entry)
    lines.append("garbage")
    dump.write_text("\n".join(lines) + "\n", encoding="utf-8")
    capsys.readouterr()
    target = tmp_path / "target.db"
    assert cli.main(["--path", str(target), "cache", "import", str(dump)]) == 1
    err = capsys.readouterr().err
    assert f"{dump}:2: key " in err and "does not match its request" in err
    assert f"{dump}:4: not JSON" in err
    assert "2 bad line(s)" in err and "nothing imported" in err
    assert sqlite3.connect(target).execute("SELECT COUNT(*) FROM responses").fetchall() == [(0,)]
    assert cli.main(["--path", str(target), "cache", "import", str(dump), "--skip-bad"]) == 1
    assert "2 added" in capsys.readouterr().out


def test_export_to_stdout(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "cache.db"
    fill(db)
    assert cli.main(["--path", str(db), "cache", "export", "-"]) == 0
    captured = capsys.readouterr()
    assert len(captured.out.splitlines()) == 3 and "exported 3" in captured.err


# -- export-finetune -------------------------------------------------------------------------
FINETUNE_TEST = """
import pytest

@pytest.mark.parametrize("country", ["France", "Japan", "Peru"])
def test_capital(llm, judge, country):
    answer = llm(f"Capital of {country}? One word.", system="You are a geography tutor.")
    assert judge(answer, "Names the capital city")

def test_two_turns(llm):
    reply = llm.chat([
        {"role": "user", "content": [{"type": "text", "text": "Remember 7.", "cache_control": {"type": "ephemeral"}}]},
        {"role": "assistant", "content": "OK."},
        {"role": "user", "content": "What number?"},
    ])
    assert reply.text == "7"

def test_plain_fail(llm):
    assert llm("Say yes.") == "no"
"""


def judge_says(verdict: str) -> Any:
    return lambda body: json.dumps({"reasoning": "checked", "verdict": verdict})


def test_export_finetune_writes_only_passing_conversations(
    pytester: pytest.Pytester, fake_api: FakeAPI, capsys: pytest.CaptureFixture[str]
) -> None:
    pytester.makepyfile(FINETUNE_TEST)
    fake_api.reply("Paris", when="France")
    fake_api.reply("Tokyo", when="Japan")
    fake_api.reply("Cusco", when="Peru")
    fake_api.reply("7", when="What number")
    fake_api.reply("yes", when="Say yes")
    fake_api.reply(judge_says("PASS"), when="Paris")
    fake_api.reply(judge_says("PASS"), when="Tokyo")
    fake_api.reply(judge_says("FAIL"), when="Cusco")
    args = ["--llmeval-model", "openai:gpt-4o-mini", "--llmeval-model", "anthropic:claude-haiku-4-5",
            "--llmeval-judge", "openai:gpt-4o", "--llmeval-repeat", "2"]  # fmt: skip
    pytester.runpytest(*args).assert_outcomes(passed=12, failed=8)
    capsys.readouterr()
    db = str(pytester.path / ".llmeval" / "cache.db")
    out = pytester.path / "ft.jsonl"
    assert cli.main(["--path", db, "export-finetune", str(out)]) == 0
    assert "wrote 3 conversations from 12 passing cases" in capsys.readouterr().out
    examples = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert all(list(e) == ["messages"] for e in examples)
    answers = sorted(e["messages"][-1]["content"] for e in examples)
    # Paris, Tokyo and 7, once each: both models and both samples gave the same conversation.
    # Cusco (judged FAIL), "yes" (failed) and the judge's own calls are not there.
    assert answers == ["7", "Paris", "Tokyo"]
    for e in examples:
        assert e["messages"][-1]["role"] == "assistant"
        assert all(isinstance(m["content"], str) for m in e["messages"])
        assert "verdict" not in json.dumps(e).lower()
    paris = next(e for e in examples if e["messages"][-1]["content"] == "Paris")
    assert paris["messages"] == [
        {"role": "system", "content": "You are a geography tutor."},
        {"role": "user", "content": "Capital of France? One word."},
        {"role": "assistant", "content": "Paris"},
    ]
    turns = next(e for e in examples if e["messages"][-1]["content"] == "7")
    assert [m["content"] for m in turns["messages"]] == ["Remember 7.", "OK.", "What number?", "7"]

    # Filters.
    assert cli.main(["--path", db, "export-finetune", str(out), "--model", "anthropic:claude-haiku-4-5"]) == 0
    assert len(out.read_text().splitlines()) == 3
    assert cli.main(["--path", db, "export-finetune", str(out), "--test", "test_two_turns"]) == 0
    assert len(out.read_text().splitlines()) == 1
    assert (
        cli.main(["--path", db, "export-finetune", str(out), "--test", "*capital*Japan*", "--model", "openai:*"]) == 0
    )
    assert [json.loads(x)["messages"][-1]["content"] for x in out.read_text().splitlines()] == ["Tokyo"]

    # The latest run decides: Tokyo is now judged FAIL, so Tokyo drops out.
    fake_api.clear()
    fake_api.reply("Tokyo", when="Japan")
    fake_api.reply(judge_says("FAIL"), when="Tokyo")
    pytester.runpytest(*args, "--llmeval-cache=refresh", "-k", "Japan").assert_outcomes(failed=4)
    capsys.readouterr()  # the in-process run's own output
    assert cli.main(["--path", db, "export-finetune", "-"]) == 0
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert "wrote 2 conversations" in captured.err, captured
    assert sorted(json.loads(x)["messages"][-1]["content"] for x in lines) == ["7", "Paris"]


def test_export_finetune_on_an_empty_log_says_why(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "cache.db"
    fill(db)  # calls, but no recorded outcomes
    assert cli.main(["--path", str(db), "export-finetune", str(tmp_path / "ft.jsonl")]) == 0
    out = capsys.readouterr().out
    assert "wrote 0 conversations" in out and "hint: only cases that passed" in out
    assert (tmp_path / "ft.jsonl").read_text() == ""


def test_finetune_example_with_tools() -> None:
    tool = {"name": "lookup", "description": "Find.", "parameters": {"type": "object", "properties": {}}}
    request = make_request("Find Lyon.", tools=[tool]).key_payload()
    response = {
        "text": "",
        "tool_calls": [{"name": "lookup", "arguments": {"q": "Lyon"}, "raw_arguments": '{"q":"Lyon"}'}],
    }
    example = cli.finetune_example(request, response)
    assert example is not None
    assert example["messages"][-1] == {
        "role": "assistant",
        "tool_calls": [
            {"id": "call_0", "type": "function", "function": {"name": "lookup", "arguments": '{"q":"Lyon"}'}}
        ],
    }
    assert example["tools"][0]["function"]["name"] == "lookup"
    assert cli.finetune_example(request, {"text": ""}) is None


# -- report ----------------------------------------------------------------------------------
def test_report_is_wired_to_report_cli(tmp_path: Path) -> None:
    proc = run_cli("report", "--help", cwd=tmp_path)
    try:
        import pytest_llmeval.cli.report  # noqa: F401
    except ImportError:
        assert proc.returncode == 2
        assert "the report command is not available" in proc.stderr
        return
    assert proc.returncode == 0, proc.stderr
    assert "RESULTS.json" in proc.stdout and "--baseline" in proc.stdout
    missing = run_cli("report", "missing.json", cwd=tmp_path)
    assert missing.returncode == 2 and "missing.json" in missing.stderr
    # The other commands never import it.
    code = "import sys; from pytest_llmeval import cli; cli.main(['cache', 'stats']); print('pytest_llmeval.cli.report' in sys.modules)"
    check = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert check.stdout.strip().endswith("False")
