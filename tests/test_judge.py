"""The judge: graders on both providers, the structured and the text path, strict parsing,
caching, templates, configuration errors. pytester runs with the real SDKs against the fake
server; the parser and the Grade object are also tested directly."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

# Imported once here: pytester's in-process runs restore sys.modules afterwards, so an SDK
# first imported inside a run would be imported again by every run (seconds each).
import anthropic  # noqa: F401
import openai  # noqa: F401
import pytest
from fakeapi import FakeAPI

from pytest_llmeval import Grade, JudgeError
from pytest_llmeval.judge.graders import FACTUALITY_CHOICES, check_choices
from pytest_llmeval.judge.parsing import ReplyProblem, parse_reply
from pytest_llmeval.judge.prompt import build_messages_and_params
from pytest_llmeval.judge.templates import BUILTIN
from pytest_llmeval.models import Completion, ModelSpec, Request, ToolCall

MODES = ["openai", "anthropic", "text"]

# Writes the plugin's per-case data, so tests can see "error" vs "failed" and the grades.
CAPTURE_CONFTEST = """
import json

def pytest_runtest_logreport(report):
    data = getattr(report, "llmeval", None)
    if data is not None:
        data = {**data, "longrepr": report.longreprtext}
        with open("cases.jsonl", "a", encoding="utf-8") as f:
            f.write(json.dumps(data) + "\\n")
"""


def judge_spec(mode: str, api: FakeAPI) -> str:
    """The judge model for a mode; "text" is an OpenAI-compatible local server that
    ignores response_format (see judge_reply)."""
    return {
        "openai": "openai:gpt-4o",
        "anthropic": "anthropic:claude-haiku-4-5",
        "text": f"openai:plain-judge@{api.openai_base_url}",
    }[mode]


def judge_reply(label: str, reasoning: str = "Checked each criterion.") -> Callable[[dict[str, Any]], Any]:
    """A fake judge answering ``label`` the way the request asked: a forced tool call, a
    JSON object for a response_format, or (model "plain-judge", a server that ignores the
    format) text ending with a verdict line."""

    def answer(body: dict[str, Any]) -> Any:
        if body.get("tools"):
            name = body["tool_choice"]["name"]
            return {"tool": {"name": name, "input": {"reasoning": reasoning, "verdict": label}}}
        if body.get("response_format") and body["model"] != "plain-judge":
            return json.dumps({"reasoning": reasoning, "verdict": label})
        return f"{reasoning}\nVERDICT: {label}"

    return answer


def read_cases(pytester: pytest.Pytester) -> dict[str, dict[str, Any]]:
    path = pytester.path / "cases.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
    return {row["nodeid"].split("::", 1)[1]: row for row in rows}


def judge_bodies(api: FakeAPI) -> list[dict[str, Any]]:
    return [r.body for r in api.requests if r.path in ("/v1/chat/completions", "/v1/messages")]


# --------------------------------------------------------------------------- graders


GRADERS_FILE = """
import pytest
from pytest_llmeval import Grade
from pytest_llmeval.recording import current_record

MODE = {mode!r}

def check(g, name, label, score, passed):
    assert isinstance(g, Grade)
    assert (g.name, g.label, g.verdict, g.score, g.passed, bool(g)) == (name, label, label, score, passed, passed)
    assert g.reasoning == "Checked each criterion."
    assert g.method == {{"openai": "json", "anthropic": "tool", "text": "text"}}[MODE]
    assert g.judge_model == {judge!r}
    assert current_record().results[-1] is g  # recorded like a check

def test_rubric(judge):
    g = judge("Paris is the capital. case-rubric", "Names the capital of France", reference="Paris",
              input="What is the capital of France?")
    check(g, "rubric", "PASS", 1.0, True)
    assert g.criteria == "Names the capital of France" and g.reference == "Paris"

def test_closed_qa(judge):
    g = judge.closed_qa("It is Lyon. case-closedqa", "Names Paris", input="Capital of France?")
    check(g, "closed_qa", "N", 0.0, False)

def test_factuality(judge):
    g = judge.factuality("Paris, on the Seine. case-fact", "Paris", input="Capital of France?")
    check(g, "factuality", "B", 0.6, True)

def test_classify(judge):
    g = judge.classify("Could you kindly wait? case-classify", {{"polite": 1.0, "neutral": 0.5, "rude": 0.0}},
                       criteria="Tone towards the customer")
    check(g, "classify", "neutral", 0.5, True)
    assert g.choices == {{"polite": 1.0, "neutral": 0.5, "rude": 0.0}}
"""


@pytest.mark.parametrize("mode", MODES)
def test_each_grader_on_each_path(pytester: pytest.Pytester, fake_api: FakeAPI, mode: str) -> None:
    spec = judge_spec(mode, fake_api)
    fake_api.reply(judge_reply("PASS"), when="case-rubric")
    fake_api.reply(judge_reply("N"), when="case-closedqa")
    fake_api.reply(judge_reply("B"), when="case-fact")
    fake_api.reply(judge_reply("neutral"), when="case-classify")
    pytester.makepyfile(GRADERS_FILE.format(mode=mode, judge=spec))
    result = pytester.runpytest("--llmeval-judge", spec)
    result.assert_outcomes(passed=4)
    bodies = judge_bodies(fake_api)
    assert len(bodies) == 4
    labels = {"case-rubric": ["PASS", "FAIL"], "case-closedqa": ["Y", "N"], "case-fact": list("ABCDE")}
    for body in bodies:
        assert body["temperature"] == 0
        system = body["system"] if mode == "anthropic" else body["messages"][0]["content"]
        user = body["messages"][-1]["content"]
        user_text = user if isinstance(user, str) else user[0]["text"]
        for token, expected in labels.items():
            if token in user_text:
                schema = (body["tools"][0]["input_schema"] if mode == "anthropic" else
                          body["response_format"]["json_schema"]["schema"])  # fmt: skip
                assert schema["properties"]["verdict"]["enum"] == expected
        if mode == "anthropic":
            # Forced tool use, and the fixed instructions marked for prompt caching.
            assert body["tool_choice"] == {"type": "tool", "name": "submit_verdict"}
            assert body["tools"][0]["name"] == "submit_verdict"
            assert system[0]["cache_control"] == {"type": "ephemeral"} and "judge prompt v1" in system[0]["text"]
            assert "response_format" not in body
        else:
            # JSON schema, strict (a local server may ignore it: the text path then applies).
            assert body["response_format"]["type"] == "json_schema"
            assert body["response_format"]["json_schema"]["strict"] is True
            assert isinstance(system, str) and "judge prompt v1" in system and "cache_control" not in json.dumps(body)
            assert "tools" not in body


def test_factuality_scores_follow_the_a_to_e_scale(pytester: pytest.Pytester, fake_api: FakeAPI) -> None:
    for letter in "ABCDE":
        fake_api.reply(judge_reply(letter), when=f"fact-{letter}.")
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.parametrize("letter, score", [("A", 0.4), ("B", 0.6), ("C", 1.0), ("D", 0.0), ("E", 1.0)])
        def test_fact(judge, letter, score):
            g = judge.factuality(f"fact-{letter}.", "Paris")
            assert (g.label, g.score, g.passed) == (letter, score, letter != "D")
            # min_score tightens the pass mark: only B, C and E reach 0.6.
            strict = judge.factuality(f"fact-{letter}.", "Paris", min_score=0.6)
            assert strict.passed == (score >= 0.6)
        """
    )
    pytester.runpytest("--llmeval-judge", "anthropic:claude-haiku-4-5").assert_outcomes(passed=5)
    # The same prompt twice (with and without min_score) is one request: the verdict is cached.
    assert fake_api.count() == 5
    assert FACTUALITY_CHOICES == {"A": 0.4, "B": 0.6, "C": 1.0, "D": 0.0, "E": 1.0}


def test_judge_grades_each_model_under_test(pytester: pytest.Pytester, fake_api: FakeAPI) -> None:
    pytester.makeconftest(CAPTURE_CONFTEST)
    fake_api.reply("Paris", when="capital")
    fake_api.reply(judge_reply("PASS"), when="Paris")
    pytester.makepyfile(
        """
        def test_capital(llm, judge):
            answer = llm("What is the capital of France? One word.")
            assert judge(answer, "Names Paris and nothing else")
        """
    )
    args = ["--llmeval-model", "openai:gpt-4o-mini", "--llmeval-model", "anthropic:claude-haiku-4-5"]
    result = pytester.runpytest(*args, "--llmeval-judge", "openai:gpt-4o")
    result.assert_outcomes(passed=2)
    cases = read_cases(pytester)
    for case in cases.values():
        assert [c["role"] for c in case["calls"]] == ["llm", "judge"]
        (grade,) = case["results"]
        assert grade["name"] == "rubric" and grade["label"] == "PASS" and grade["judge_model"] == "openai:gpt-4o"
        assert case["output"] == "Paris" and case["score"] == 1.0
        json.dumps(grade)  # JSON-safe
    # One judge request: both models answered "Paris", so the judge prompt is the same.
    assert fake_api.count("openai") == 2 and fake_api.count("anthropic") == 1


def test_failed_grade_reads_well_in_the_failure(pytester: pytest.Pytester, fake_api: FakeAPI) -> None:
    fake_api.reply(judge_reply("FAIL", "The submission names Lyon, not Paris."))
    pytester.makepyfile(
        """
        def test_it(judge):
            assert judge("Lyon", "Names the capital of France")
        """
    )
    result = pytester.runpytest("--llmeval-judge", "openai:gpt-4o")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["*assert <Grade rubric FAILED verdict='FAIL' score=0 | criteria: 'Names the capital of France' | why:*Lyon*"]
    )


# --------------------------------------------------------------------------- malformed replies

MALFORMED_FILE = """
import pytest

# No assert: only an exception can fail these tests, so a silent verdict would pass them.
@pytest.mark.parametrize("case", {cases!r})
def test_reply(judge, case):
    judge(f"The answer is Paris. {{case}}.", "Names Paris")
"""

# case -> (reply for OpenAI / a text server, reply for Anthropic, expected message[, for Anthropic])
MALFORMED: dict[str, tuple[Any, ...]] = {
    "empty": ("", {"text": ""}, "*the reply is empty*"),
    "truncated-json": (
        {"text": '{"reasoning": "The submission names Par', "stop_reason": "length"},
        {"text": '{"reasoning": "The submission names Par', "stop_reason": "max_tokens"},
        "*looks like JSON but is not valid JSON (the reply was cut off: finish_reason=length)*",
        "*looks like JSON but is not valid JSON (the reply was cut off: finish_reason=max_tokens)*",
    ),
    "wrong-schema": (
        '{"score": 1, "verdict": "PASS"}',
        {"tool": {"name": "submit_verdict", "input": {"score": 1, "verdict": "PASS"}}},
        "*does not follow the verdict schema (reasoning, verdict): missing reasoning; unexpected score*",
    ),
    "wrong-type": (
        '{"reasoning": "fine", "verdict": true}',
        {"tool": {"name": "submit_verdict", "input": {"reasoning": "fine", "verdict": True}}},
        "*'reasoning' and 'verdict' must be strings*",
    ),
    "refusal": (
        {"refusal": "I can't help with grading this."},
        {"refusal": "I can't help with grading this."},
        "*the judge refused to grade*",
    ),
    "not-offered": (
        '{"reasoning": "Hard to say.", "verdict": "MAYBE"}',
        {"tool": {"name": "submit_verdict", "input": {"reasoning": "Hard to say.", "verdict": "MAYBE"}}},
        "*the verdict 'MAYBE' is not one of the offered choices 'PASS', 'FAIL'*",
    ),
    "contradiction": (
        "VERDICT: PASS\nOn reflection the submission is vague.\nVERDICT: FAIL",
        {
            "tools": [
                {"name": "submit_verdict", "input": {"reasoning": "a", "verdict": "PASS"}},
                {"name": "submit_verdict", "input": {"reasoning": "b", "verdict": "FAIL"}},
            ]
        },
        "*contradict*'PASS', 'FAIL'*",
    ),
    "no-verdict": (
        "The submission looks fine to me.",
        {"text": "The submission looks fine to me."},
        "*no verdict found*",
    ),
    "wrong-tool": (
        "Final answer: PASS",
        {"tool": {"name": "get_weather", "input": {"city": "Paris"}}},
        "*no verdict found*Final answer: PASS*",
        '*called an unknown tool \'get_weather\'*get_weather({"city":"Paris"})*',
    ),
}


@pytest.mark.parametrize("mode", MODES)
def test_malformed_replies_are_errors_showing_the_raw_reply(
    pytester: pytest.Pytester, fake_api: FakeAPI, mode: str
) -> None:
    pytester.makeconftest(CAPTURE_CONFTEST)
    for case, (text_reply, anthropic_reply, *_) in MALFORMED.items():
        fake_api.reply(anthropic_reply if mode == "anthropic" else text_reply, when=f"{case}.")
    pytester.makepyfile(MALFORMED_FILE.format(cases=list(MALFORMED)))
    result = pytester.runpytest("--llmeval-judge", judge_spec(mode, fake_api))
    result.assert_outcomes(failed=len(MALFORMED))
    cases = read_cases(pytester)
    assert {c["outcome"] for c in cases.values()} == {"error"}  # never a pass, never a plain fail
    for case, (_, _, *messages) in MALFORMED.items():
        message = messages[-1] if mode == "anthropic" else messages[0]
        error = cases[f"test_reply[{case}]"]["error"]
        assert error.startswith("JudgeError: ")
        assert "gave no usable verdict" in error and "Raw reply (finish_reason=" in error
        assert "--llmeval-cache=refresh" in error
        assert fnmatch(error.replace("\n", " "), message), (case, error)
    result.stdout.fnmatch_lines(["*JudgeError: *test_reply?contradiction?: judge * (rubric) gave no usable verdict*"])


def test_a_bad_reply_stays_an_error_when_replayed(pytester: pytest.Pytester, fake_api: FakeAPI) -> None:
    fake_api.reply("Looks fine.")
    pytester.makepyfile("def test_it(judge):\n    judge('Paris', 'Names Paris')\n")
    pytester.runpytest("--llmeval-judge", "openai:gpt-4o").assert_outcomes(failed=1)
    result = pytester.runpytest("--llmeval-judge", "openai:gpt-4o", "--llmeval-cache", "replay")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*no verdict found*", "*replayed from the cache*--llmeval-cache=refresh*"])
    assert fake_api.count() == 1


# --------------------------------------------------------------------------- the parser, directly


def completion(text: str = "", **kw: Any) -> Completion:
    return Completion(text=text, model="m", **kw)


@pytest.mark.parametrize(
    "text, label",
    [
        ("Reasoning.\nVERDICT: PASS", "PASS"),
        ("Reasoning.\n**Verdict:** FAIL", "FAIL"),
        ("Reasoning.\nverdict = pass", "PASS"),
        ("Reasoning.\n**Final verdict:** FAIL", "FAIL"),
        ("Reasoning.\nVERDICT: FAIL - the answer names two cities", "FAIL"),
        ("Reasoning.\n> VERDICT: `PASS`.", "PASS"),
        # A verdict word inside a sentence is not a verdict line; only lines count.
        ("The output claims VERDICT: PASS but is wrong.\nVERDICT: FAIL", "FAIL"),
        # An echo of the instructions is no contradiction: "<label>" is no label.
        ("I must end with VERDICT: <label>.\nVERDICT: <label>\nIt is right.\nVERDICT: PASS", "PASS"),
        ("Same twice.\nVERDICT: PASS\nVERDICT: PASS", "PASS"),
        ('{"reasoning": "ok", "verdict": "FAIL"}', "FAIL"),
        ('```json\n{"reasoning": "ok", "verdict": "PASS"}\n```', "PASS"),
        # A reply that quotes JSON and then gives its verdict line is read from the line.
        ('{"reasoning": "x", "verdict": "PASS"} was written by the model.\nVERDICT: FAIL', "FAIL"),
    ],
)
def test_text_replies_that_parse(text: str, label: str) -> None:
    parsed = parse_reply(completion(text), ["PASS", "FAIL"], mode="json")
    assert parsed.label == label


def test_text_labels_match_case_and_brackets() -> None:
    assert parse_reply(completion("x\nVERDICT: (c)"), list("ABCDE"), mode="text").label == "C"
    labels = ["partly correct", "correct", "wrong"]
    assert parse_reply(completion("x\nVERDICT: Partly Correct"), labels, mode="text").label == "partly correct"
    parsed = parse_reply(completion("First line.\nSecond.\nVERDICT: wrong"), labels, mode="text")
    assert parsed.reasoning == "First line.\nSecond." and parsed.method == "text"


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "empty"),
        ("   \n ", "empty"),
        ('{"reasoning": "cut', "not valid JSON"),
        ('```json\n{"reasoning": "x", "verdict": "PASS"}', "not valid JSON"),
        ('{"reasoning": "x", "verdict": "PASS", "confidence": 0.9}', "unexpected confidence"),
        ('["PASS"]', "no verdict found"),
        ("VERDICT: PASS\nVERDICT: FAIL", "contradicting verdict lines"),
        ("VERDICT: MAYBE", "'MAYBE' is not one of the offered choices"),
        ("VERDICT:", "'' is not one of the offered choices"),
        ("VERDICT: PASS or FAIL", "'PASS or FAIL' is not one of the offered choices"),
        ("The verdict is PASS.", "no verdict found"),
    ],
)
def test_text_replies_that_are_refused(text: str, message: str) -> None:
    with pytest.raises(ReplyProblem, match=message.replace("(", r"\(")):
        parse_reply(completion(text), ["PASS", "FAIL"], mode="json")


def test_a_tool_call_is_authoritative_and_text_is_the_fallback() -> None:
    call = ToolCall("submit_verdict", {"reasoning": "r", "verdict": "FAIL"})
    parsed = parse_reply(completion("VERDICT: PASS", tool_calls=(call,)), ["PASS", "FAIL"], mode="tool")
    assert (parsed.label, parsed.method) == ("FAIL", "tool")
    assert parsed.raw == 'VERDICT: PASS\nsubmit_verdict({"reasoning":"r","verdict":"FAIL"})'
    assert parse_reply(completion("x\nVERDICT: PASS"), ["PASS", "FAIL"], mode="tool").method == "text"
    broken = ToolCall("submit_verdict", None, raw_arguments='{"reasoning": "r", "verd')
    with pytest.raises(ReplyProblem, match="not valid JSON"):
        parse_reply(completion(tool_calls=(broken,)), ["PASS", "FAIL"], mode="tool")
    with pytest.raises(ReplyProblem, match="refused"):
        parse_reply(completion("VERDICT: PASS", refusal="no"), ["PASS", "FAIL"], mode="json")


def test_choices_are_validated() -> None:
    assert check_choices({"good": 1, "bad": 0}, "t") == {"good": 1.0, "bad": 0.0}
    bad: list[tuple[Any, str]] = [
        (["good", "bad"], "must map each label to its score"),
        ({"good": 1}, "at least two labels"),
        ({"good": 1, "Good": 0}, "differ only in case"),
        ({"good": 1, "bad": 2}, "from 0 to 1"),
        ({"good": True, "bad": 0}, "must be a number"),
        ({"good": 1, "bad\nline": 0}, "single-line"),
        ({"good": 1, " bad": 0}, "without surrounding spaces"),
        ({"good": 1, "bad": float("nan")}, "must be a number"),
    ]
    from pytest_llmeval.errors import ConfigError

    for choices, message in bad:
        with pytest.raises(ConfigError, match=message):
            check_choices(choices, "t")


# --------------------------------------------------------------------------- the Grade object


def make_grade(**kw: Any) -> Grade:
    values: dict[str, Any] = {
        "name": "rubric",
        "passed": False,
        "score": 0.0,
        "label": "FAIL",
        "reasoning": "The answer is wrong. " * 200,
        "raw": "x" * 20_000,
        "judge_model": "openai:gpt-4o",
        "criteria": "Names the capital of France, in one word, without punctuation " * 10,
        "output": "Lyon\x1b[31m",
        "choices": {"PASS": 1.0, "FAIL": 0.0},
    }
    values.update(kw)
    return Grade(**values)


def test_grade_repr_is_one_short_line_and_to_dict_is_json_safe() -> None:
    grade = make_grade()
    text = repr(grade)
    assert "\n" not in text and len(text) < 240 and text.startswith("<Grade rubric FAILED verdict='FAIL' score=0")
    assert not grade and make_grade(passed=True, score=1.0, label="PASS")
    data = grade.to_dict()
    json.dumps(data)
    assert set(data) >= {"name", "passed", "score", "reasoning", "raw", "judge_model", "label", "verdict", "criteria"}
    assert len(data["raw"]) < 5_000 and "characters left out" in data["raw"]
    described = grade.describe()
    assert "judge:     openai:gpt-4o" in described and "\\x1b" in described  # control chars escaped
    assert str(grade) == described


# --------------------------------------------------------------------------- cache and log


def test_judge_calls_are_cached_and_logged(pytester: pytest.Pytester, fake_api: FakeAPI) -> None:
    def cached_verdict(body: dict[str, Any]) -> Any:
        reply = judge_reply("PASS")(body)
        # What the API reports when the system prompt came from its prompt cache.
        return {**reply, "usage": {"input_tokens": 900, "output_tokens": 20, "cached_input_tokens": 700}}

    fake_api.reply(cached_verdict)
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.parametrize("answer", ["Paris", "It is Paris."])
        def test_it(judge, answer):
            g = judge(answer, "Names Paris")
            assert g
        """
    )
    args = ["--llmeval-judge", "anthropic:claude-haiku-4-5"]
    pytester.runpytest(*args).assert_outcomes(passed=2)
    assert fake_api.count() == 2
    result = pytester.runpytest(*args, "--llmeval-cache", "replay")
    result.assert_outcomes(passed=2)
    assert fake_api.count() == 2  # second run: zero requests
    with sqlite3.connect(pytester.path / ".llmeval" / "cache.db") as db:
        rows = db.execute("SELECT role, cached, cached_input_tokens, test_id FROM calls ORDER BY id").fetchall()
    assert [(r[0], r[1], r[2]) for r in rows] == [("judge", 0, 700)] * 2 + [("judge", 1, 700)] * 2
    assert all("test_it[" in r[3] for r in rows)


@pytest.mark.parametrize(
    ("model", "grader", "digest"),
    [
        ("openai:gpt-4o", "rubric", "626d90b1d7fd73fa56a39c58e8912926fe3c8541f348fb7207d9155f20c745e9"),
        ("anthropic:claude-x", "classify", "ee64b6db37f904620cff64e83d846b42017b859fccbca489e50581d4257b9ab5"),
        ("other:m", "factuality", "f39cbc84b87d73ca99878cad5a41ed88be577dd7da2cb1255efe000f796dd87d"),
    ],
)
def test_builtin_judge_requests_are_unchanged(model: str, grader: str, digest: str) -> None:
    # The judge's texts are package data (judge/templates/*.txt) and part of every judge
    # request's cache key: an edit, a stray newline or CRLF there would re-grade every
    # recorded case. Change these digests only together with PROMPT_VERSION.
    import hashlib

    from pytest_llmeval.models import canonical_json

    values = {"output": "Paris", "criteria": "Names Paris", "input": "Q?", "reference": None, "expert": "Paris"}
    messages, params = build_messages_and_params(ModelSpec.parse(model), BUILTIN[grader], values, ["PASS", "FAIL"])
    payload = canonical_json({"messages": messages, "params": params}).encode("utf-8")
    assert hashlib.sha256(payload).hexdigest() == digest


def test_template_version_is_part_of_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    import pytest_llmeval.judge.prompt as prompt_module

    spec = ModelSpec.parse("openai:gpt-4o")
    values = {"output": "Paris", "criteria": "Names Paris", "input": None, "reference": None, "expert": None}

    def key() -> str:
        messages, params = build_messages_and_params(spec, BUILTIN["rubric"], values, ["PASS", "FAIL"])
        return Request(spec, messages, params).key

    first = key()
    assert key() == first  # deterministic: the nonce is a hash, not random
    monkeypatch.setattr(prompt_module, "PROMPT_VERSION", "2")
    assert key() != first


def test_editing_a_template_file_regrades(pytester: pytest.Pytester, fake_api: FakeAPI) -> None:
    fake_api.reply(judge_reply("PASS"))
    templates = pytester.mkdir("judge_templates")
    (templates / "rubric.txt").write_text("Is this good?\n\n{output}\n\nCriteria:\n{criteria}\n")
    pytester.makeini("[pytest]\nllmeval_judge = openai:gpt-4o\nllmeval_judge_templates = judge_templates\n")
    pytester.makepyfile("def test_it(judge):\n    assert judge('Paris', 'Names Paris')\n")
    pytester.runpytest().assert_outcomes(passed=1)
    pytester.runpytest().assert_outcomes(passed=1)
    assert fake_api.count() == 1
    assert judge_bodies(fake_api)[0]["messages"][1]["content"].startswith("Is this good?\n\n<submission-")
    (templates / "rubric.txt").write_text("Is this really good?\n\n{output}\n\nCriteria:\n{criteria}\n")
    pytester.runpytest().assert_outcomes(passed=1)
    assert fake_api.count() == 2


# --------------------------------------------------------------------------- templates


def test_with_template_takes_a_string_or_a_path(pytester: pytest.Pytester, fake_api: FakeAPI) -> None:
    fake_api.reply(judge_reply("Y"))
    pytester.makefile(".txt", qa="Answer Y or N. Does this:\n{output}\nanswer this:\n{input}\nby: {criteria}\n")
    pytester.makepyfile(
        """
        from pathlib import Path

        def test_string(judge):
            strict = judge.with_template("closed_qa", "STRICT {{grader}}\\n\\n{output}\\n\\n{criteria}\\n\\n{input}")
            assert strict.closed_qa("Paris", "Names Paris", input="Capital?")
            assert judge.closed_qa("Paris", "Names Paris")  # the original judge keeps the built-in

        def test_path(judge):
            assert judge.with_template("closed_qa", Path("qa.txt")).closed_qa("Paris", "Names Paris", input="Q?")
        """
    )
    # Sequential (no planning pass), so requests reach the server in test order.
    pytester.runpytest("--llmeval-judge", "openai:gpt-4o", "--llmeval-concurrency", "0").assert_outcomes(passed=2)
    users = [b["messages"][1]["content"] for b in judge_bodies(fake_api)]
    assert users[0].startswith("STRICT {grader}\n\n<submission-")
    assert users[1].startswith("Assess a submitted answer")
    assert users[2].startswith("Answer Y or N. Does this:\n<submission-") and "<task-" in users[2]
    assert all(u.endswith('Allowed verdicts: "Y", "N".') for u in users)


MISUSE = {
    "unknown-placeholder": (
        "judge.with_template('rubric', 'Grade {submission}')",
        "*unknown placeholder(s) {submission}*known: {output}*",
    ),
    "no-output": ("judge.with_template('rubric', 'Grade this.')", "*must contain {output}*"),
    "no-grader": (
        "judge.with_template('nope', '{output}')",
        "*with_template('nope'): no such grader; registered: classify*",
    ),
    "unused-value": (
        "judge.with_template('rubric', '{output} {criteria}')('x', 'c', reference='r')",
        "*does not use {reference}, which this grader call passes*",
    ),
    "missing-file": (
        "judge.with_template('rubric', Path('missing.txt'))",
        "*missing.txt (with_template('rubric')): cannot be read*",
    ),
    "choices-list": ("judge.classify('x', ['a', 'b'])", "*judge.classify(): choices must map each label to its score*"),
    "min-score": ("judge('x', 'c', min_score=2)", "*min_score= must be a number from 0 to 1, got 2*"),
    "no-such-grader": ("judge.nope('x')", "*judge has no grader 'nope'; registered graders: classify, closed_qa*"),
    "output-type": ("judge(42, 'c')", "*judge.rubric(): output must be a str, got int*"),
    "reserved-param": ("judge.with_params(tools=[])", "*judge.with_params(): tools are set by the judge itself*"),
}


def test_misuse_is_reported_clearly(pytester: pytest.Pytester, fake_api: FakeAPI) -> None:
    pytester.makeconftest(CAPTURE_CONFTEST)
    calls = {name: call for name, (call, _) in MISUSE.items()}
    pytester.makepyfile(
        f"""
        import pytest
        from pathlib import Path

        CALLS = {calls!r}

        @pytest.mark.parametrize("name", CALLS)
        def test_it(judge, name):
            eval(CALLS[name], {{"judge": judge, "Path": Path}})
        """
    )
    result = pytester.runpytest("--llmeval-judge", "openai:gpt-4o")
    result.assert_outcomes(failed=len(MISUSE))
    cases = read_cases(pytester)
    for name, (_, message) in MISUSE.items():
        case = cases[f"test_it[{name}]"]
        # A misuse is the test's fault, never the model's: an error (ConfigError), except
        # Python's own kinds of mistake (a wrong type, a missing attribute).
        python_error = name in ("output-type", "no-such-grader")
        assert case["outcome"] == ("failed" if python_error else "error"), case
        last = [line for line in case["longrepr"].splitlines() if line.startswith("E ")][-1]
        assert fnmatch(last, message), (name, last)
        assert python_error or f"test_it[{name}]: " in last, last
    assert fake_api.count() == 0


def test_with_params_changes_the_judge_request(pytester: pytest.Pytester, fake_api: FakeAPI) -> None:
    fake_api.reply(judge_reply("PASS"))
    pytester.makepyfile(
        """
        def test_it(judge):
            reasoning_model = judge.with_params(temperature=None).with_params(max_tokens=300)
            assert reasoning_model("Paris", "Names Paris")
            assert judge("Paris", "Names Paris")
        """
    )
    pytester.runpytest("--llmeval-judge", "openai:gpt-4o").assert_outcomes(passed=1)
    first, second = judge_bodies(fake_api)
    assert "temperature" not in first and first["max_tokens"] == 300
    assert second["temperature"] == 0 and "max_tokens" not in second
    assert first["response_format"] == second["response_format"]


def test_a_template_file_named_after_no_grader_is_a_usage_error(pytester: pytest.Pytester) -> None:
    (pytester.mkdir("tpl") / "rubirc.txt").write_text("{output}")
    pytester.makeini("[pytest]\nllmeval_judge_templates = tpl\n")
    pytester.makepyfile("def test_it(judge):\n    pass\n")
    result = pytester.runpytest("--llmeval-judge", "openai:gpt-4o")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*llmeval_judge_templates: *rubirc.txt is named after no grader; expected one of*"])


def test_a_missing_template_directory_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nllmeval_judge_templates = nowhere\n")
    pytester.makepyfile("def test_it():\n    pass\n")
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*ini option llmeval_judge_templates: *nowhere is not a directory*"])


# --------------------------------------------------------------------------- graders through the hook


def test_plugins_register_graders_and_can_replace_builtin_ones(pytester: pytest.Pytester, fake_api: FakeAPI) -> None:
    fake_api.reply(judge_reply("C"))
    fake_api.reply(judge_reply("safe"), when="Tone check")  # later rules win
    pytester.makeconftest(
        """
        import pytest
        from pytest_llmeval import Grade

        TEMPLATE = "Tone check.\\n\\n{output}\\n\\n{choices}"

        def toxicity(judge, output):
            return judge.grade(output, name="toxicity", template=TEMPLATE, choices={"safe": 1.0, "toxic": 0.0})

        def factuality(judge, output, expert, **kwargs):
            grade = judge.grade(output, name="factuality", template="{output}\\n\\n{expert}",
                                choices={"C": 1.0, "D": 0.0}, expert=expert)
            return grade

        @pytest.hookimpl
        def pytest_llmeval_register_graders(register):
            register("toxicity", toxicity)
            register("factuality", factuality)
        """
    )
    pytester.makepyfile(
        """
        def test_custom(judge):
            g = judge.toxicity("Have a nice day")
            assert g and g.name == "toxicity" and g.label == "safe"

        def test_replaced(judge):
            g = judge.factuality("Paris", "Paris")
            assert g.choices == {"C": 1.0, "D": 0.0}
        """
    )
    # Sequential (no planning pass), so requests reach the server in test order.
    pytester.runpytest("--llmeval-judge", "openai:gpt-4o", "--llmeval-concurrency", "0").assert_outcomes(passed=2)
    users = [b["messages"][1]["content"] for b in judge_bodies(fake_api)]
    assert users[0].startswith("Tone check.") and "- safe\n- toxic" in users[0]


def test_a_bad_grader_name_is_refused() -> None:
    from pytest_llmeval.errors import ConfigError
    from pytest_llmeval.judge import GraderRegistry

    registry = GraderRegistry()
    for name in ("with_template", "model", "_private", "not an identifier"):
        with pytest.raises(ConfigError, match="grader name"):
            registry.register(name, lambda judge, output: None)  # type: ignore[arg-type, return-value]


def test_reserved_grader_names_are_the_judges_own_attributes() -> None:
    # graders.py keeps the list itself (importing the Judge would be a cycle): it must name
    # every public attribute of a Judge, class or instance, except the built-in graders.
    from pytest_llmeval.judge import Judge
    from pytest_llmeval.judge.graders import RESERVED_NAMES, builtin_registry
    from pytest_llmeval.judge.judge import Judge as JudgeClass

    assert Judge is JudgeClass
    judge = Judge(None, ModelSpec.parse("openai:gpt-4o"))  # type: ignore[arg-type]
    own = {n for n in (*dir(Judge), *vars(judge)) if not n.startswith("_")}
    assert own - set(builtin_registry().names) == RESERVED_NAMES


# --------------------------------------------------------------------------- configuration


@pytest.mark.parametrize(
    "source, args, message",
    [
        (
            "def test_graded(judge):\n    pass\n",
            [],
            "*test_*.py::test_graded uses the judge fixture but no judge model is configured: "
            "pass --llmeval-judge PROVIDER:MODEL*llmeval_judge*judge=*",
        ),
        (
            "def test_graded(judge):\n    pass\n",
            ["--llmeval-judge", "nope:m"],
            "*unknown provider 'nope' in 'nope:m' (*test_graded judge)*",
        ),
        (
            "def test_graded(llm, judge):\n    pass\n",
            ["--llmeval-model", "openai:gpt-4o", "--llmeval-model", "openai:mini", "--llmeval-judge", "openai:gpt-4o"],
            "*test_*.py::test_graded: the judge openai:gpt-4o is also a model under test (openai:gpt-4o), so it "
            "would grade its own answers*--llmeval-allow-self-judge*",
        ),
        (
            "import pytest\n@pytest.mark.llmeval(models=['anthropic:m'], judge='anthropic:m@http://x:1')\n"
            "def test_graded(llm, judge):\n    pass\n",
            [],
            "*test_graded: the judge anthropic:m@http://x:1 is also a model under test (anthropic:m)*",
        ),
    ],
    ids=["no-judge", "unknown-provider", "self-judging", "self-judging-marker"],
)
def test_configuration_mistakes_are_usage_errors(
    pytester: pytest.Pytester, fake_api: FakeAPI, source: str, args: list[str], message: str
) -> None:
    pytester.makepyfile(source)
    result = pytester.runpytest(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])
    assert fake_api.count() == 0


def test_self_judging_only_when_asked(pytester: pytest.Pytester, fake_api: FakeAPI) -> None:
    fake_api.reply("Paris", when="capital")
    fake_api.reply(judge_reply("PASS"))
    pytester.makepyfile(
        """
        def test_it(llm, judge):
            assert judge(llm("The capital of France?"), "Names Paris")
        """
    )
    args = ["--llmeval-model", "openai:gpt-4o", "--llmeval-judge", "openai:gpt-4o"]
    assert pytester.runpytest(*args).ret == pytest.ExitCode.USAGE_ERROR
    pytester.runpytest(*args, "--llmeval-allow-self-judge").assert_outcomes(passed=1)
    pytester.makeini("[pytest]\nllmeval_allow_self_judge = true\n")
    pytester.runpytest(*args).assert_outcomes(passed=1)


def test_judge_from_marker_then_ini(pytester: pytest.Pytester, fake_api: FakeAPI) -> None:
    fake_api.reply(judge_reply("PASS"))
    pytester.makeini("[pytest]\nllmeval_judge = anthropic:from-ini\n")
    pytester.makepyfile(
        """
        import pytest

        def test_ini(judge):
            assert judge.model == "anthropic:from-ini" and judge("x", "y")

        @pytest.mark.llmeval(judge="openai:from-marker")
        def test_marker(judge):
            assert judge.model == "openai:from-marker" and judge("x", "y").judge_model == "openai:from-marker"
        """
    )
    pytester.runpytest().assert_outcomes(passed=2)
    result = pytester.runpytest("--llmeval-judge", "openai:from-cli", "-v")
    result.assert_outcomes(failed=2)


def test_judge_error_is_an_llmeval_error() -> None:
    from pytest_llmeval.errors import LLMEvalError

    error = JudgeError("bad", raw="r", grader="rubric", judge_model="openai:m")
    assert isinstance(error, LLMEvalError) and error.raw == "r" and error.grader == "rubric"


def test_judge_output_may_be_a_completion() -> None:
    # The Judge reads .text of a Completion, as the checks do; other types are a TypeError.
    from pytest_llmeval.judge.graders import require_text

    assert require_text(Completion(text="hi", model="m"), "output", "t") == "hi"
    with pytest.raises(TypeError, match="output must be a str"):
        require_text(42, "output", "t")


def test_paths_of_templates_are_read_as_utf8(tmp_path: Path) -> None:
    from pytest_llmeval.judge.prompt import read_template_file

    path = tmp_path / "t.txt"
    path.write_text("Évalue {output}", encoding="utf-8")
    assert read_template_file(path, source="s") == "Évalue {output}"
