"""Reading a verdict from a judge reply, strictly.

A tool call or a JSON object with exactly ``reasoning`` and ``verdict`` is authoritative;
else (a server that ignored the format) the *last* line of the form ``VERDICT: <label>``,
with an earlier, different verdict line being a contradiction. An empty or truncated
reply, a wrong schema, a refusal, a label that was not offered or a contradiction is a
:class:`ReplyProblem`, which the judge turns into a :class:`~pytest_llmeval.errors.JudgeError`:
model output never decides a verdict by accident.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pytest_llmeval.judge.templates import TOOL_NAME
from pytest_llmeval.models import Completion, canonical_json

__all__ = ["ReplyProblem", "ParsedReply", "raw_reply", "match_label", "parse_reply"]

# A verdict line of a text reply: `VERDICT: PASS`, `**Verdict:** PASS`, `> Final verdict = "Y"`.
_MARKER_LINE = re.compile(r"(?im)^[ \t>*_#`-]*(?:final[ \t]+)?verdict[ \t*_`]*[:=](?P<label>[^\n]*)$")
_LABEL_EDGE = " \t*_`\"'.!"
# After a label on a verdict line, a separator may introduce a comment: `FAIL - too long`.
_LABEL_COMMENT = re.compile(r"\s+[-\u2013\u2014(\[]|[:;,]\s")
_FENCE = re.compile(r"\A```[A-Za-z0-9_-]*[ \t]*\n?(?P<body>.*?)\n?[ \t]*```\Z", re.S)
# finish_reason values meaning "ran out of tokens" (OpenAI, Anthropic).
_TRUNCATED = frozenset({"length", "max_tokens"})


class ReplyProblem(Exception):
    """Why a judge reply gives no verdict (turned into a :class:`JudgeError` with context)."""


@dataclass(frozen=True)
class ParsedReply:
    """A verdict read from a judge reply."""

    label: str
    reasoning: str
    method: str  # "tool", "json" or "text"
    raw: str


def raw_reply(completion: Completion) -> str:
    """The reply as shown to a human: its text, then any tool calls as ``name({json})``."""
    parts = [completion.text] if completion.text else []
    for call in completion.tool_calls:
        args = canonical_json(call.arguments) if call.arguments is not None else call.raw_arguments
        parts.append(f"{call.name}({args})")
    if completion.refusal and not completion.text:
        parts.append(f"[refusal] {completion.refusal}")
    return "\n".join(parts)


def match_label(text: str, labels: Sequence[str]) -> str | None:
    """The offered label ``text`` names: exact, else case-insensitive, else without
    surrounding brackets (``(A)``); ``None`` when it names none."""
    candidate = text.strip()
    for value in (candidate, candidate.strip("()[]{}<>").strip()):
        if value in labels:
            return value
        folded = [label for label in labels if label.casefold() == value.casefold()]
        if len(folded) == 1:
            return folded[0]
    return None


def _check_verdict_object(obj: Any, labels: Sequence[str], where: str) -> tuple[str, str]:
    if not isinstance(obj, dict):
        raise ReplyProblem(f"{where} is a JSON {type(obj).__name__}, not an object with 'reasoning' and 'verdict'")
    expected = {"reasoning", "verdict"}
    if set(obj) != expected:
        problems = []
        if missing := sorted(expected - set(obj)):
            problems.append("missing " + ", ".join(missing))
        if extra := sorted(set(obj) - expected):
            problems.append("unexpected " + ", ".join(extra))
        raise ReplyProblem(f"{where} does not follow the verdict schema (reasoning, verdict): {'; '.join(problems)}")
    reasoning, verdict = obj["reasoning"], obj["verdict"]
    if not isinstance(reasoning, str) or not isinstance(verdict, str):
        raise ReplyProblem(f"{where} does not follow the verdict schema: 'reasoning' and 'verdict' must be strings")
    label = match_label(verdict, labels)
    if label is None:
        raise ReplyProblem(f"the verdict {verdict!r} is not one of the offered choices {_label_list(labels)}")
    return label, reasoning


def _label_list(labels: Sequence[str]) -> str:
    return ", ".join(repr(label) for label in labels)


def _parse_tool_calls(completion: Completion, labels: Sequence[str]) -> tuple[str, str]:
    found: list[tuple[str, str]] = []
    for call in completion.tool_calls:
        if call.name != TOOL_NAME:
            raise ReplyProblem(f"the judge called an unknown tool {call.name!r} instead of {TOOL_NAME!r}")
        if call.arguments is None:
            raise ReplyProblem(f"the {TOOL_NAME} call's arguments are not valid JSON (truncated?)")
        found.append(_check_verdict_object(call.arguments, labels, f"the {TOOL_NAME} call"))
    verdicts = list(dict.fromkeys(label for label, _ in found))
    if len(verdicts) > 1:
        raise ReplyProblem(f"the judge's tool calls contradict each other: {_label_list(verdicts)}")
    return found[-1]


def _parse_text(text: str, labels: Sequence[str], finish_reason: str | None) -> tuple[str, str, str]:
    """(label, reasoning, method) from a text reply: a whole-reply JSON object, else the
    last ``VERDICT:`` line."""
    body = text.strip()
    fence = _FENCE.match(body)
    if fence is not None:
        body = fence.group("body").strip()
    json_problem: str | None = None
    if body.startswith("{") or (body.startswith("```") and fence is None):
        try:
            obj = json.loads(body)
        except json.JSONDecodeError as exc:
            truncated = (
                f" (the reply was cut off: finish_reason={finish_reason})" if finish_reason in _TRUNCATED else ""
            )
            json_problem = f"the reply looks like JSON but is not valid JSON{truncated}: {exc.msg} at char {exc.pos}"
        else:
            label, reasoning = _check_verdict_object(obj, labels, "the JSON reply")
            return label, reasoning, "json"
    markers = list(_MARKER_LINE.finditer(text))
    if not markers:
        if json_problem:
            raise ReplyProblem(json_problem)
        raise ReplyProblem(
            "no verdict found: the reply is neither a JSON object with 'reasoning' and 'verdict' "
            "nor text ending with a 'VERDICT: <label>' line"
        )
    readings = [_marker_label(m.group("label"), labels) for m in markers]
    last = readings[-1]
    if last is None:
        shown = markers[-1].group("label").strip(_LABEL_EDGE)
        raise ReplyProblem(f"the verdict {shown!r} is not one of the offered choices {_label_list(labels)}")
    others = [r for r in readings[:-1] if r is not None and r != last]
    if others:
        raise ReplyProblem(
            f"the reply has contradicting verdict lines: {_label_list(list(dict.fromkeys([*others, last])))}"
        )
    reasoning = text[: markers[-1].start()].strip()
    return last, reasoning, "text"


def _marker_label(raw: str, labels: Sequence[str]) -> str | None:
    text = raw.strip().strip(_LABEL_EDGE)
    label = match_label(text, labels)
    if label is None:
        # `FAIL - the answer names two cities`: the label, then a comment.
        head = _LABEL_COMMENT.split(text, maxsplit=1)[0]
        if head != text:
            label = match_label(head.strip(_LABEL_EDGE), labels)
    return label


def parse_reply(completion: Completion, labels: Sequence[str], *, mode: str) -> ParsedReply:
    """The verdict in ``completion``; :class:`ReplyProblem` when there is none to trust.

    ``mode`` is how the verdict was asked for (:func:`~pytest_llmeval.judge.prompt.judge_mode`). A tool call is
    authoritative when present; a reply without one is read as text (for servers that
    ignore a response format or tool choice).
    """
    raw = raw_reply(completion)
    if completion.refusal:
        raise ReplyProblem(f"the judge refused to grade: {completion.refusal}")
    if mode == "tool" and completion.tool_calls:
        label, reasoning = _parse_tool_calls(completion, labels)
        return ParsedReply(label, reasoning, "tool", raw)
    if not completion.text.strip():
        if completion.finish_reason in _TRUNCATED:
            raise ReplyProblem(
                f"the reply is empty: the judge ran out of tokens (finish_reason={completion.finish_reason})"
            )
        raise ReplyProblem("the reply is empty")
    label, reasoning, method = _parse_text(completion.text, labels, completion.finish_reason)
    return ParsedReply(label, reasoning, method, raw)
