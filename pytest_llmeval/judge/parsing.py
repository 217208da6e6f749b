"""Reading a verdict from a judge reply, strictly.

A tool call or a JSON object with exactly ``reasoning`` and ``verdict`` is authoritative;
else (a server that ignored the format) the *last* line of the form ``VERDICT: <label>``.
Only the judge's own verdict decides, so anything that makes it ambiguous is a
:class:`ReplyProblem`, which the judge turns into a :class:`~pytest_llmeval.errors.JudgeError`:

- an empty or truncated reply, a wrong schema, a refusal, a label that was not offered;
- a JSON key given twice (``{"verdict": "FAIL", "verdict": "PASS"}``: JSON parsers keep
  either one);
- a JSON verdict followed by anything (``{"verdict": "FAIL"}`` then ``VERDICT: PASS``), or
  mixed with verdict lines;
- verdict lines, tool calls, or verdict lines inside the ``reasoning`` field that give
  another label than the verdict (the text beside a tool call is commentary: the call decides);
- a final verdict line that only looks like one (``ＶＥＲＤＩＣＴ: PASS``, ``VER\u200bDICT``):
  lines are recognised as a model reads them (:mod:`pytest_llmeval.judge.lookalike`), so such
  a line counts as a contradiction, but only an ordinary one can be the verdict.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pytest_llmeval.judge.lookalike import fold_label, skeleton
from pytest_llmeval.judge.templates import TOOL_NAME
from pytest_llmeval.models import Completion, canonical_json

__all__ = ["ReplyProblem", "ParsedReply", "raw_reply", "match_label", "parse_reply"]

# A verdict line of a text reply: `VERDICT: PASS`, `**Verdict:** PASS`, `> Final verdict = "Y"`.
_MARKER_LINE = re.compile(r"(?i)^[ \t>*_#`-]*(?:final[ \t]+)?verdict[ \t*_`]*[:=](?P<label>.*)$")
# The same line as read (in a folded line, see lookalike.skeleton): what counts as a verdict
# line when looking for contradictions, however it is disguised.
_FOLDED_MARKER = re.compile(r"^(?:final)?verdict[:=]")
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


class _DuplicateKey(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _unique_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for key, value in pairs:
        if key in obj:
            raise _DuplicateKey(key)
        obj[key] = value
    return obj


def _strict_json(text: str, where: str) -> Any:
    """``text`` as JSON, refusing a key given twice (which ``json.loads`` would resolve by
    keeping the last one: a forged second ``verdict`` would win)."""
    try:
        return json.loads(text, object_pairs_hook=_unique_pairs)
    except _DuplicateKey as dup:
        raise ReplyProblem(f"{where} gives the key {dup.key!r} twice, so its verdict is ambiguous") from None


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
    # A verdict line in the reasoning that says otherwise: the fields contradict each other.
    _agree(label, _line_verdicts(reasoning, labels), f"{where}'s verdict and a verdict line in its reasoning")
    return label, reasoning


def _label_list(labels: Sequence[str]) -> str:
    return ", ".join(repr(label) for label in labels)


def _agree(label: str, others: Sequence[str], what: str) -> None:
    differing = [other for other in others if other != label]
    if differing:
        shown = _label_list(list(dict.fromkeys([*differing, label])))
        raise ReplyProblem(f"{what} contradict each other: {shown}")


def _parse_tool_calls(completion: Completion, labels: Sequence[str]) -> tuple[str, str]:
    found: list[tuple[str, str]] = []
    for call in completion.tool_calls:
        if call.name != TOOL_NAME:
            raise ReplyProblem(f"the judge called an unknown tool {call.name!r} instead of {TOOL_NAME!r}")
        if call.arguments is None:
            raise ReplyProblem(f"the {TOOL_NAME} call's arguments are not valid JSON (truncated?)")
        arguments = call.arguments
        if call.raw_arguments:
            # The provider parsed these already; read the raw text again to see duplicate keys.
            arguments = _strict_json(call.raw_arguments, f"the {TOOL_NAME} call")
        found.append(_check_verdict_object(arguments, labels, f"the {TOOL_NAME} call"))
    verdicts = list(dict.fromkeys(label for label, _ in found))
    if len(verdicts) > 1:
        raise ReplyProblem(f"the judge's tool calls contradict each other: {_label_list(verdicts)}")
    return found[-1]


@dataclass(frozen=True)
class _Marker:
    """A line that reads as a verdict line."""

    start: int  # offset of the line in the reply
    label_text: str  # what follows the colon
    ordinary: bool  # written as a verdict line is written, not with look-alikes


def _markers(text: str) -> list[_Marker]:
    found = []
    offset = 0
    for line in text.splitlines(keepends=True):
        folded, origin = skeleton(line)
        match = _FOLDED_MARKER.match(folded)
        if match is not None:
            colon = origin[match.end() - 1]
            ordinary = _MARKER_LINE.match(line.rstrip("\r\n")) is not None and line[colon] in ":="
            found.append(_Marker(offset, line[colon + 1 :].rstrip("\r\n"), ordinary))
        offset += len(line)
    return found


def _line_verdicts(text: str, labels: Sequence[str]) -> list[str]:
    """The labels that verdict lines in ``text`` read as (look-alikes included)."""
    readings = (_read_label(marker.label_text, labels) for marker in _markers(text))
    return [label for label in readings if label is not None]


def _read_label(raw: str, labels: Sequence[str]) -> str | None:
    """The label a verdict line's text reads as, look-alike letters folded."""
    label = _marker_label(raw, labels)
    if label is not None:
        return label
    text = raw.strip().strip(_LABEL_EDGE)
    for candidate in (text, _LABEL_COMMENT.split(text, maxsplit=1)[0]):
        folded = fold_label(candidate)
        matches = [label for label in labels if fold_label(label) == folded]
        if folded and len(matches) == 1:
            return matches[0]
    return None


def _decode_leading_object(body: str) -> tuple[Any, int] | None:
    """The JSON value at the start of ``body`` and where it ends, or ``None``."""
    try:
        return json.JSONDecoder().raw_decode(body)
    except json.JSONDecodeError:
        return None


def _json_lines(text: str) -> bool:
    """Whether some line of ``text`` is a whole JSON object with a ``verdict`` key."""
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("{") and stripped.endswith("}"):
            decoded = _decode_leading_object(stripped)
            if decoded is not None and isinstance(decoded[0], dict):
                if any(fold_label(str(key)) == "verdict" for key in decoded[0]):
                    return True
    return False


def _parse_text(text: str, labels: Sequence[str], finish_reason: str | None) -> tuple[str, str, str]:
    """(label, reasoning, method) from a text reply: a whole-reply JSON object, else the
    last ``VERDICT:`` line."""
    body = text.strip()
    fence = _FENCE.match(body)
    after_fence = ""
    if fence is not None:
        body = fence.group("body").strip()
    elif body.startswith("```"):
        # A fence that does not close the reply: closed further on, with more after it, or never.
        inside = body.partition("\n")[2]
        closing = re.search(r"(?m)^[ \t]*```[ \t]*$", inside)
        if closing is None:
            raise ReplyProblem("the reply looks like JSON but is not valid JSON: its code fence is not closed")
        body, after_fence = inside[: closing.start()].strip(), "\n" + inside[closing.end() :]
    if body.startswith("{"):
        decoded = _decode_leading_object(body)
        if decoded is None:
            truncated = (
                f" (the reply was cut off: finish_reason={finish_reason})" if finish_reason in _TRUNCATED else ""
            )
            try:
                json.loads(body)
            except json.JSONDecodeError as exc:
                raise ReplyProblem(
                    f"the reply looks like JSON but is not valid JSON{truncated}: {exc.msg} at char {exc.pos}"
                ) from None
        assert decoded is not None
        end = decoded[1]
        rest = body[end:] + after_fence
        if not rest.strip():
            obj = _strict_json(body, "the JSON reply")
            label, reasoning = _check_verdict_object(obj, labels, "the JSON reply")
            return label, reasoning, "json"
        if not rest.split("\n", 1)[0].strip():
            # A JSON reply that goes on: whatever follows, only one of the two could be the verdict.
            if _markers(rest) or _json_lines(rest) or rest.lstrip().startswith("{"):
                raise ReplyProblem(
                    "the reply gives a JSON verdict followed by another verdict; a verdict must be given once"
                )
            raise ReplyProblem("the reply has text after its JSON verdict object; expected the object alone")
        # JSON inside a prose line is a quotation (the judge citing the output): read the lines.
    markers = _markers(text)
    if not markers:
        raise ReplyProblem(
            "no verdict found: the reply is neither a JSON object with 'reasoning' and 'verdict' "
            "nor text ending with a 'VERDICT: <label>' line"
        )
    if _json_lines(text):
        raise ReplyProblem("the reply mixes a JSON verdict object and verdict lines; a verdict must be given once")
    last = markers[-1]
    readings = [_read_label(m.label_text, labels) for m in markers[:-1]]
    final = _marker_label(last.label_text, labels)
    if not last.ordinary:
        reading = _read_label(last.label_text, labels)
        _agree(reading or "", [r for r in readings if r is not None], "the reply's verdict lines")
        raise ReplyProblem(
            "the final verdict line is written with look-alike or invisible characters "
            f"({text[last.start :].splitlines()[0].strip()!r}), so it is not the judge's own verdict line"
        )
    if final is None:
        shown = last.label_text.strip().strip(_LABEL_EDGE)
        raise ReplyProblem(f"the verdict {shown!r} is not one of the offered choices {_label_list(labels)}")
    others = [r for r in readings if r is not None and r != final]
    if others:
        raise ReplyProblem(
            f"the reply has contradicting verdict lines: {_label_list(list(dict.fromkeys([*others, final])))}"
        )
    reasoning = text[: last.start].strip()
    return final, reasoning, "text"


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
    ignore a response format or tool choice). The text beside a tool call is the judge's
    commentary, never its verdict.
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
