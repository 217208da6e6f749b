"""Model-graded checks: the object behind the ``judge`` fixture, its graders and ``Grade``.

How a verdict is reached:

1. The grader's template is rendered into one user message. Every value in it (the output
   under test, the task, criteria, reference or expert answers) is a *data block*:
   ``<submission-NONCE> ... </submission-NONCE>``, where NONCE is a hash of the whole
   prompt's content (deterministic, so the request and its cache key are too, yet not
   predictable by the text inside). Inside a block ``&``, ``<`` and ``>`` are escaped and a
   colon or ``=`` after a verdict-like word (``verdict``, ``score``...) is written as an
   entity, so the output under test cannot close its block, open another, or carry a line
   that reads as a verdict. The fixed system prompt tells the judge that blocks are data.
2. The judge model is called at temperature 0 through the same :class:`~.caller.Caller` as
   every other call (cached, logged with role ``judge``). OpenAI gets a strict JSON-schema
   ``response_format``; Anthropic a forced tool call; other providers plain text.
3. The reply is parsed strictly: a tool call or a JSON object with exactly ``reasoning``
   and ``verdict``; else (a server that ignored the format) the *last* line of the form
   ``VERDICT: <label>``, with an earlier, different verdict line being a contradiction.
   An empty or truncated reply, a wrong schema, a refusal, a label that was not offered or
   a contradiction raises :class:`~.errors.JudgeError` (the case is an *error*, never a
   pass and never a silent fail), showing the raw reply.
4. The label's score (from the grader's choices) gives the :class:`Grade`; it passes when
   the score is above 0, or at least ``min_score=`` when that is given.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pytest_llmeval.errors import ConfigError, JudgeError
from pytest_llmeval.judge.templates import BUILTIN, OUTPUT_INSTRUCTIONS, PROMPT_VERSION, SYSTEM, TOOL_NAME
from pytest_llmeval.llm import LLM
from pytest_llmeval.models import Completion, ModelSpec, canonical_json
from pytest_llmeval.recording import record_result

if TYPE_CHECKING:
    from pytest_llmeval.calls.caller import Caller
    from pytest_llmeval.marker import EvalMarker

__all__ = [
    "Grade",
    "Judge",
    "GraderRegistry",
    "neutralise",
    "render_prompt",
    "parse_reply",
    "RUBRIC_CHOICES",
    "CLOSED_QA_CHOICES",
    "FACTUALITY_CHOICES",
]

RUBRIC_CHOICES: dict[str, float] = {"PASS": 1.0, "FAIL": 0.0}
CLOSED_QA_CHOICES: dict[str, float] = {"Y": 1.0, "N": 0.0}
# The A-E scale of OpenAI's evals "fact" grader, scored as autoevals scores it: a consistent
# subset (A) is worth less than a consistent superset (B); a disagreement (D) is worth 0.
FACTUALITY_CHOICES: dict[str, float] = {"A": 0.4, "B": 0.6, "C": 1.0, "D": 0.0, "E": 1.0}

# Placeholder -> tag name of its data block. ``choices`` is not data: it lists the labels.
_BLOCKS = {
    "output": "submission",
    "input": "task",
    "criteria": "criteria",
    "reference": "reference",
    "expert": "expert",
}
_PLACEHOLDERS = (*_BLOCKS, "choices")
_PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([A-Za-z_][A-Za-z0-9_]*)\}")
_PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n")
# A colon or equals sign after a word our verdict format uses, possibly behind quotes or
# markdown: `VERDICT: PASS`, `"verdict": "PASS"`, `**Score** = 1`, `\"verdict\":`.
_VERDICT_WORD = re.compile(r"(?i)\b(verdict|reasoning|label|choice|grade|score)\b([\s\"'`*_\\]*)([:=])")
# A verdict line of a text reply: `VERDICT: PASS`, `**Verdict:** PASS`, `> Final verdict = "Y"`.
_MARKER_LINE = re.compile(r"(?im)^[ \t>*_#`-]*(?:final[ \t]+)?verdict[ \t*_`]*[:=](?P<label>[^\n]*)$")
_LABEL_EDGE = " \t*_`\"'.!"
# After a label on a verdict line, a separator may introduce a comment: `FAIL - too long`.
_LABEL_COMMENT = re.compile(r"\s+[-\u2013\u2014(\[]|[:;,]\s")
_FENCE = re.compile(r"\A```[A-Za-z0-9_-]*[ \t]*\n?(?P<body>.*?)\n?[ \t]*```\Z", re.S)
_RAW_SHOWN = 2000  # characters of a raw reply shown in an error
_RAW_KEPT = 4000  # characters of a raw reply kept in a grade's to_dict()
_MAX_LABEL = 100
_PROVIDER_MODES = {"openai": "json", "anthropic": "tool", "local": "json"}  # local: grammar-constrained JSON
# finish_reason values meaning "ran out of tokens" (OpenAI, Anthropic).
_TRUNCATED = frozenset({"length", "max_tokens"})


# --------------------------------------------------------------------------- the prompt


def neutralise(text: str) -> str:
    """``text`` made safe to place inside a data block.

    ``&``, ``<`` and ``>`` become entities, so no tag (real, fake, or our own with a guessed
    suffix) can appear; a ``:`` or ``=`` after a verdict-like word becomes ``&#58;`` or
    ``&#61;``, so a judge quoting the text cannot thereby write a verdict line or JSON key.
    """
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _VERDICT_WORD.sub(lambda m: m.group(1) + m.group(2) + ("&#58;" if m.group(3) == ":" else "&#61;"), text)


def template_placeholders(template: str) -> set[str]:
    """The placeholder names a template uses (``{{``/``}}`` are literal braces)."""
    return {m.group(1) for m in _PLACEHOLDER.finditer(template) if m.group(1)}


def check_template(template: str, *, source: str, given: Iterable[str] = (), where: str = "") -> None:
    """A :class:`ConfigError` naming ``source`` when the template cannot be used.

    It must show ``{output}``, use only known placeholders, and use every value in ``given``
    (a value passed to the grader that the template drops would silently not be graded).
    """
    source = f"{where}: judge template {source}" if where else f"judge template {source}"
    if not isinstance(template, str) or not template.strip():
        raise ConfigError(f"{source}: must be a non-empty string")
    used = template_placeholders(template)
    unknown = sorted(used - set(_PLACEHOLDERS))
    if unknown:
        raise ConfigError(
            f"{source}: unknown placeholder(s) {', '.join('{' + u + '}' for u in unknown)}; "
            f"known: {', '.join('{' + p + '}' for p in _PLACEHOLDERS)} (write {{{{ and }}}} for literal braces)"
        )
    if "output" not in used:
        raise ConfigError(f"{source}: must contain {{output}}, where the output under test goes")
    missing = sorted(set(given) - used - {"choices"})
    if missing:
        raise ConfigError(
            f"{source}: does not use {', '.join('{' + m + '}' for m in missing)}, "
            "which this grader call passes; add the placeholder or do not pass the value"
        )


def prompt_nonce(template: str, values: Mapping[str, str | None], labels: Sequence[str]) -> str:
    """The data blocks' tag suffix: a hash of everything in the prompt, so it is the same
    for the same prompt (stable cache keys) and cannot be known by text inside the blocks."""
    payload = canonical_json({"v": PROMPT_VERSION, "t": template, "f": dict(values), "l": list(labels)})
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:16]


def render_prompt(template: str, values: Mapping[str, str | None], labels: Sequence[str]) -> str:
    """The user message: the template with data blocks, then the allowed verdicts.

    A paragraph (text between blank lines) that uses a value that is ``None`` is left out.
    """
    nonce = prompt_nonce(template, values, labels)
    choices = "\n".join(f"- {label}" for label in labels)

    def fill(match: re.Match[str]) -> str:
        token, name = match.group(0), match.group(1)
        if token == "{{":
            return "{"
        if token == "}}":
            return "}"
        if name == "choices":
            return choices
        tag = f"{_BLOCKS[name]}-{nonce}"
        return f"<{tag}>\n{neutralise(values[name] or '')}\n</{tag}>"

    paragraphs = []
    for paragraph in _PARAGRAPH_BREAK.split(template.strip()):
        if any(name != "choices" and values.get(name) is None for name in template_placeholders(paragraph)):
            continue
        paragraphs.append(_PLACEHOLDER.sub(fill, paragraph))
    allowed = ", ".join(json.dumps(label, ensure_ascii=False) for label in labels)
    paragraphs.append(f"Allowed verdicts: {allowed}.")
    return "\n\n".join(paragraphs)


def verdict_schema(labels: Sequence[str]) -> dict[str, Any]:
    """The JSON schema of a verdict: reasoning first, so the model reasons before deciding."""
    return {
        "type": "object",
        "properties": {
            "reasoning": {"type": "string", "description": "Short step-by-step reasoning behind the verdict."},
            "verdict": {"type": "string", "enum": list(labels), "description": "One of the allowed verdict labels."},
        },
        "required": ["reasoning", "verdict"],
        "additionalProperties": False,
    }


def judge_mode(spec: ModelSpec) -> str:
    """How ``spec`` returns a verdict: ``json`` (JSON-schema response format, with the text
    fallback for servers that ignore it), ``tool`` (forced tool call) or ``text``."""
    return _PROVIDER_MODES.get(spec.provider, "text")


def build_messages_and_params(
    spec: ModelSpec, template: str, values: Mapping[str, str | None], labels: Sequence[str]
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The judge request's messages and the parameters that ask for a structured verdict
    (the judge adds its generation parameters, temperature 0 by default)."""
    mode = judge_mode(spec)
    system = SYSTEM.replace("{version}", PROMPT_VERSION) + OUTPUT_INSTRUCTIONS[mode]
    user = render_prompt(template, values, labels)
    system_message: dict[str, Any]
    if spec.provider == "anthropic":
        # The fixed instructions (and the tool before them) are the cacheable prefix; the
        # anthropic provider keeps this part list as it is.
        system_message = {
            "role": "system",
            "content": [{"type": "text", "text": system, "cache_control": {"type": "ephemeral"}}],
        }
    else:
        system_message = {"role": "system", "content": system}
    messages = [system_message, {"role": "user", "content": user}]
    params: dict[str, Any] = {}
    schema = verdict_schema(labels)
    if mode == "json":
        params["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": "judge_verdict", "strict": True, "schema": schema},
        }
    elif mode == "tool":
        params["tools"] = [
            {"name": TOOL_NAME, "description": "Record the verdict of this grading task.", "parameters": schema}
        ]
        params["tool_choice"] = {"name": TOOL_NAME}
    return messages, params


# --------------------------------------------------------------------------- the reply


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

    ``mode`` is how the verdict was asked for (:func:`judge_mode`). A tool call is
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


# --------------------------------------------------------------------------- the grade


def _short(value: Any, limit: int) -> str:
    """``repr`` of a value cut in the middle when long (reprs escape control characters)."""
    if isinstance(value, str) and len(value) > limit:
        half = max(limit // 2, 1)
        return f"{value[:half]!r}...{value[-half:]!r} ({len(value):,} chars)"
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _cut(text: str | None, limit: int) -> str | None:
    if text is None or len(text) <= limit:
        return text
    half = limit // 2
    return f"{text[:half]}...[{len(text):,} chars, shortened]...{text[-half:]}"


@dataclass(frozen=True, repr=False)
class Grade:
    """A judge's verdict: truthy when it passes.

    ``label`` (alias ``verdict``) is the choice the judge made, ``score`` its value in 0..1,
    ``reasoning`` the judge's own words, ``raw`` its whole reply and ``judge_model`` who
    graded. It passes when ``score`` is above 0, or at least ``min_score`` when given.
    """

    name: str
    passed: bool
    score: float
    label: str
    reasoning: str
    raw: str
    judge_model: str
    criteria: str | None = None
    reference: str | None = None
    output: str = ""
    choices: dict[str, float] = field(default_factory=dict)
    min_score: float | None = None
    method: str = ""  # "tool", "json" or "text": how the verdict was read
    cached: bool = False
    key: str = ""

    def __bool__(self) -> bool:
        return self.passed

    @property
    def verdict(self) -> str:
        """The label the judge chose (``PASS``, ``Y``, ``C``, one of the classify choices)."""
        return self.label

    def __repr__(self) -> str:
        # One line on purpose: pytest prints the repr of a failed `assert judge(...)` on one
        # line and cuts it near 240 characters, so each part is kept short.
        status = "PASSED" if self.passed else "FAILED"
        about = f" | criteria: {_short(self.criteria, 50)}" if self.criteria else ""
        return (
            f"<Grade {self.name} {status} verdict={self.label!r} score={self.score:g}"
            f"{about} | why: {_short(self.reasoning, 80)}>"
        )

    def __str__(self) -> str:
        return self.describe()

    def describe(self) -> str:
        """A readable multi-line description for reports and terminal sections."""
        status = "PASSED" if self.passed else "FAILED"
        threshold = f"at least {self.min_score:g}" if self.min_score is not None else "above 0"
        lines = [
            f"{self.name}: {status} (verdict {self.label!r}, score {self.score:g}, passes {threshold})",
            f"  judge:     {self.judge_model}{' (cached)' if self.cached else ''}",
        ]
        if self.criteria is not None:
            lines.append(f"  criteria:  {_short(self.criteria, 400)}")
        if self.reference is not None:
            lines.append(f"  reference: {_short(self.reference, 400)}")
        lines.append(f"  output:    {_short(self.output, 400)}")
        lines.append(f"  reasoning: {_short(self.reasoning, 800)}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict for reports (long text shortened)."""
        return {
            "name": self.name,
            "passed": self.passed,
            "score": self.score,
            "label": self.label,
            "verdict": self.label,
            "reasoning": _cut(self.reasoning, _RAW_KEPT),
            "raw": _cut(self.raw, _RAW_KEPT),
            "judge_model": self.judge_model,
            "criteria": _cut(self.criteria, _RAW_KEPT),
            "reference": _cut(self.reference, _RAW_KEPT),
            "choices": dict(self.choices),
            "min_score": self.min_score,
            "method": self.method,
            "cached": self.cached,
        }


# --------------------------------------------------------------------------- graders

Grader = Callable[..., Grade]


class GraderRegistry:
    """Graders by name, filled through the ``pytest_llmeval_register_graders`` hook.

    A later registration of a name replaces the earlier one, so a plugin can replace a
    built-in grader.
    """

    def __init__(self) -> None:
        self._graders: dict[str, Grader] = {}

    def register(self, name: str, grader: Grader) -> None:
        """Add ``grader`` as ``judge.<name>``; ``grader(judge, output, ...)`` returns a Grade."""
        if not isinstance(name, str) or not name.isidentifier() or name.startswith("_"):
            raise ConfigError(f"grader name {name!r}: must be a Python identifier not starting with '_'")
        if hasattr(Judge, name) and name not in BUILTIN:
            raise ConfigError(f"grader name {name!r}: clashes with the judge's own attribute judge.{name}")
        if not callable(grader):
            raise ConfigError(f"grader {name!r}: expected a callable grader(judge, output, ...), got {grader!r}")
        self._graders[name] = grader

    def get(self, name: str) -> Grader | None:
        return self._graders.get(name)

    def __contains__(self, name: object) -> bool:
        return name in self._graders

    @property
    def names(self) -> list[str]:
        return sorted(self._graders)


def _require_text(value: Any, what: str, where: str, *, optional: bool = False) -> str | None:
    if value is None and optional:
        return None
    text = getattr(value, "text", value)  # a Completion is graded by its text
    if not isinstance(text, str):
        kind = "a str or None" if optional else "a str"
        raise TypeError(f"{where}: {what} must be {kind}, got {type(value).__name__}")
    return text


def check_choices(choices: Any, where: str) -> dict[str, float]:
    """``choices`` validated: at least two labels, each a short single-line string,
    distinct ignoring case, each with a score from 0 to 1."""
    if not isinstance(choices, Mapping):
        raise ConfigError(
            f"{where}: choices must map each label to its score, e.g. {{'helpful': 1.0, 'unhelpful': 0.0}}; "
            f"got {type(choices).__name__}"
        )
    if len(choices) < 2:
        raise ConfigError(f"{where}: choices must offer at least two labels, got {list(choices)!r}")
    out: dict[str, float] = {}
    seen: dict[str, str] = {}
    for label, score in choices.items():
        if (
            not isinstance(label, str)
            or not label.strip()
            or label != label.strip()
            or len(label) > _MAX_LABEL
            or any(not ch.isprintable() for ch in label)
        ):
            raise ConfigError(
                f"{where}: choice label {label!r} must be a non-empty single-line string of at most "
                f"{_MAX_LABEL} characters without surrounding spaces"
            )
        if label.casefold() in seen:
            raise ConfigError(f"{where}: choice labels {seen[label.casefold()]!r} and {label!r} differ only in case")
        seen[label.casefold()] = label
        if isinstance(score, bool) or not isinstance(score, (int, float)) or not math.isfinite(score):
            raise ConfigError(f"{where}: the score of choice {label!r} must be a number from 0 to 1, got {score!r}")
        if not 0.0 <= score <= 1.0:
            raise ConfigError(f"{where}: the score of choice {label!r} must be from 0 to 1, got {score!r}")
        out[label] = float(score)
    return out


def _check_min_score(min_score: Any, where: str) -> float | None:
    if min_score is None:
        return None
    if isinstance(min_score, bool) or not isinstance(min_score, (int, float)) or not 0.0 <= min_score <= 1.0:
        raise ConfigError(f"{where}: min_score= must be a number from 0 to 1, got {min_score!r}")
    return float(min_score)


def rubric(
    judge: Judge,
    output: Any,
    criteria: str,
    *,
    reference: str | None = None,
    input: str | None = None,
    min_score: float | None = None,
) -> Grade:
    """PASS (1) or FAIL (0): does ``output`` meet ``criteria``? ``reference`` is an answer to
    compare with, ``input`` the task the model was given."""
    __tracebackhide__ = True  # a JudgeError's traceback ends at the test's line
    return judge.grade(
        output,
        name="rubric",
        template=BUILTIN["rubric"],
        choices=RUBRIC_CHOICES,
        criteria=_require_text(criteria, "criteria", "judge()"),
        reference=_require_text(reference, "reference", "judge()", optional=True),
        input=_require_text(input, "input", "judge()", optional=True),
        min_score=min_score,
    )


def closed_qa(
    judge: Judge,
    output: Any,
    criteria: str,
    *,
    input: str | None = None,
    min_score: float | None = None,
) -> Grade:
    """Y (1) or N (0): does the answer to ``input`` meet ``criteria`` (OpenAI evals' closedqa)?"""
    __tracebackhide__ = True
    return judge.grade(
        output,
        name="closed_qa",
        template=BUILTIN["closed_qa"],
        choices=CLOSED_QA_CHOICES,
        criteria=_require_text(criteria, "criteria", "judge.closed_qa()"),
        input=_require_text(input, "input", "judge.closed_qa()", optional=True),
        min_score=min_score,
    )


def factuality(
    judge: Judge,
    output: Any,
    expert: str,
    *,
    input: str | None = None,
    min_score: float | None = None,
) -> Grade:
    """OpenAI evals' A-E factuality scale against an ``expert`` answer, scored A 0.4, B 0.6,
    C 1, D 0, E 1: passes unless the answers disagree (D), or from ``min_score`` when given."""
    __tracebackhide__ = True
    return judge.grade(
        output,
        name="factuality",
        template=BUILTIN["factuality"],
        choices=FACTUALITY_CHOICES,
        expert=_require_text(expert, "expert", "judge.factuality()"),
        input=_require_text(input, "input", "judge.factuality()", optional=True),
        min_score=min_score,
    )


def classify(
    judge: Judge,
    output: Any,
    choices: Mapping[str, float],
    *,
    criteria: str | None = None,
    input: str | None = None,
    min_score: float | None = None,
) -> Grade:
    """One of the caller's labels; ``choices`` maps each label to its score (0..1)."""
    __tracebackhide__ = True
    return judge.grade(
        output,
        name="classify",
        template=BUILTIN["classify"],
        choices=choices,
        criteria=_require_text(criteria, "criteria", "judge.classify()", optional=True),
        input=_require_text(input, "input", "judge.classify()", optional=True),
        min_score=min_score,
    )


@pytest.hookimpl(tryfirst=True)
def pytest_llmeval_register_graders(register: Callable[[str, Grader], None]) -> None:
    """The built-in graders, registered through the same hook as a plugin's (tryfirst, so
    a plugin registering the same name replaces them)."""
    register("rubric", rubric)
    register("closed_qa", closed_qa)
    register("factuality", factuality)
    register("classify", classify)


def builtin_registry() -> GraderRegistry:
    """A registry holding only the built-in graders (for a Judge made outside pytest)."""
    registry = GraderRegistry()
    pytest_llmeval_register_graders(registry.register)
    return registry


# --------------------------------------------------------------------------- the judge


def read_template_file(path: Path, *, source: str, where: str = "") -> str:
    """A template file's text; a :class:`ConfigError` naming ``source`` when unreadable."""
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        prefix = f"{where}: " if where else ""
        raise ConfigError(f"{prefix}judge template {path} ({source}): cannot be read: {exc}") from None


class Judge:
    """The grading model bound to the running test; every method returns a :class:`Grade`.

    - ``judge(output, criteria, *, reference=None, input=None)``: rubric, PASS or FAIL.
    - ``judge.closed_qa(output, criteria, *, input=None)``: Y or N.
    - ``judge.factuality(output, expert, *, input=None)``: OpenAI evals' A-E scale, scored.
    - ``judge.classify(output, choices, *, criteria=None)``: one of ``choices`` (label -> score).
    - ``judge.<name>(...)``: a grader registered through ``pytest_llmeval_register_graders``.

    Every grader also takes ``min_score=``. An unusable reply raises :class:`JudgeError`.
    """

    def __init__(
        self,
        caller: Caller,
        spec: ModelSpec,
        *,
        test_id: str | None = None,
        tags: Sequence[str] | None = None,
        graders: GraderRegistry | None = None,
        template_dir: Path | None = None,
        templates: Mapping[str, str] | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> None:
        self.spec = spec
        self.test_id = test_id
        self._caller = caller
        self._tags = list(tags or ())
        self._graders = graders if graders is not None else builtin_registry()
        self._template_dir = template_dir
        self._templates = dict(templates or {})  # grader name -> template text (with_template)
        # Generation parameters; temperature 0 unless with_params() says otherwise.
        given = {"temperature": 0} if params is None else params
        self._params = {k: v for k, v in given.items() if v is not None}
        self._llm = LLM(caller, spec, test_id=test_id, tags=self._tags, role="judge", defaults=self._params)

    @property
    def model(self) -> str:
        """The judge model as ``PROVIDER:MODEL``."""
        return str(self.spec)

    def __repr__(self) -> str:
        return f"<judge {self.model}>"

    # -- the built-in graders, dispatched through the registry so a plugin can replace them
    def __call__(
        self,
        output: Any,
        criteria: str,
        *,
        reference: str | None = None,
        input: str | None = None,
        min_score: float | None = None,
    ) -> Grade:
        """Rubric grading: PASS if ``output`` meets ``criteria``, else FAIL."""
        __tracebackhide__ = True
        return self._dispatch("rubric", output, criteria, reference=reference, input=input, min_score=min_score)

    def closed_qa(
        self,
        output: Any,
        criteria: str,
        *,
        input: str | None = None,
        min_score: float | None = None,
    ) -> Grade:
        """Y if the answer to ``input`` meets ``criteria``, else N."""
        __tracebackhide__ = True
        return self._dispatch("closed_qa", output, criteria, input=input, min_score=min_score)

    def factuality(
        self,
        output: Any,
        expert: str,
        *,
        input: str | None = None,
        min_score: float | None = None,
    ) -> Grade:
        """A-E against the ``expert`` answer; passes unless they disagree (D) by default."""
        __tracebackhide__ = True
        return self._dispatch("factuality", output, expert, input=input, min_score=min_score)

    def classify(
        self,
        output: Any,
        choices: Mapping[str, float],
        *,
        criteria: str | None = None,
        input: str | None = None,
        min_score: float | None = None,
    ) -> Grade:
        """One label of ``choices`` (label -> score from 0 to 1); passes when its score is
        above 0, or at least ``min_score``."""
        __tracebackhide__ = True
        return self._dispatch("classify", output, choices, criteria=criteria, input=input, min_score=min_score)

    def __getattr__(self, name: str) -> Callable[..., Grade]:
        # Only reached for names that are not attributes: registered third-party graders.
        graders = self.__dict__.get("_graders")
        if name.startswith("_") or graders is None or name not in graders:
            known = ", ".join(graders.names) if graders is not None else ""
            raise AttributeError(f"judge has no grader {name!r}; registered graders: {known}")
        return functools.partial(self._dispatch, name)

    def _dispatch(self, name: str, output: Any, *args: Any, **kwargs: Any) -> Grade:
        __tracebackhide__ = True
        grader = self._graders.get(name)
        if grader is None:
            raise ConfigError(
                f"{self._where}: no grader {name!r} is registered; registered: {', '.join(self._graders.names)}"
            )
        grade = grader(self, output, *args, **kwargs)
        if not isinstance(grade, Grade):
            raise ConfigError(f"{self._where}: grader {name!r} returned {type(grade).__name__}, not a Grade")
        return grade

    # -- templates --------------------------------------------------------------------
    def with_template(self, grader: str, template: str | os.PathLike[str]) -> Judge:
        """A judge that renders ``grader`` with ``template``: a ``str`` is the template
        text, a path (``pathlib.Path``) a UTF-8 file holding it."""
        if grader not in self._graders:
            raise ConfigError(
                f"{self._where}: with_template({grader!r}): no such grader; registered: {', '.join(self._graders.names)}"
            )
        if isinstance(template, os.PathLike):
            text = read_template_file(Path(template), source=f"with_template({grader!r})", where=self._where)
            source = f"{os.fspath(template)} (with_template)"
        elif isinstance(template, str):
            text, source = template, f"with_template({grader!r})"
        else:
            raise TypeError(f"with_template: template must be a str or a path, got {type(template).__name__}")
        check_template(text, source=source, where=self._where)
        return self._replace(templates={**self._templates, grader: text})

    def with_params(self, **params: Any) -> Judge:
        """A judge sending these generation parameters (``max_tokens=``, ``seed=``...); a
        value of ``None`` removes one, e.g. ``temperature=None`` for models that refuse
        temperature 0. They are part of the cache key like any parameter."""
        refused = sorted(set(params) & {"response_format", "tools", "tool_choice", "messages", "model"})
        if refused:
            raise ConfigError(f"{self._where}: judge.with_params(): {', '.join(refused)} are set by the judge itself")
        return self._replace(params={**self._params, **params})

    def _replace(self, **changes: Any) -> Judge:
        kwargs: dict[str, Any] = {
            "test_id": self.test_id,
            "tags": self._tags,
            "graders": self._graders,
            "template_dir": self._template_dir,
            "templates": self._templates,
            "params": self._params,
        }
        kwargs.update(changes)
        return Judge(self._caller, self.spec, **kwargs)

    def template_for(self, name: str, default: str) -> tuple[str, str]:
        """(text, where it came from) of grader ``name``: ``with_template``, else
        ``<name>.txt`` in the ini ``llmeval_judge_templates`` directory, else ``default``."""
        if name in self._templates:
            return self._templates[name], f"with_template({name!r})"
        if self._template_dir is not None:
            path = self._template_dir / f"{name}.txt"
            if path.is_file():
                return read_template_file(path, source="ini llmeval_judge_templates", where=self._where), str(path)
        return default, f"built-in {name}"

    # -- grading ----------------------------------------------------------------------
    @property
    def _where(self) -> str:
        return self.test_id or "judge"

    def grade(
        self,
        output: Any,
        *,
        name: str,
        template: str,
        choices: Mapping[str, float],
        criteria: str | None = None,
        reference: str | None = None,
        expert: str | None = None,
        input: str | None = None,
        min_score: float | None = None,
    ) -> Grade:
        """Grade ``output`` with ``template`` (the default text; a user override for
        ``name`` wins), offering ``choices`` (label -> score). The building block of every
        grader, built-in or registered."""
        __tracebackhide__ = True
        where = f"{self._where}: judge.{name}()"
        text = _require_text(output, "output", where)
        assert text is not None
        labels_scores = check_choices(choices, where)
        min_score = _check_min_score(min_score, where)
        template_text, source = self.template_for(name, template)
        values: dict[str, str | None] = {
            "output": text,
            "input": input,
            "criteria": criteria,
            "reference": reference,
            "expert": expert,
        }
        given = [k for k, v in values.items() if v is not None]
        check_template(template_text, source=source, given=given, where=self._where)
        labels = list(labels_scores)
        messages, params = build_messages_and_params(self.spec, template_text, values, labels)
        completion = self._llm.chat(messages, **params)
        try:
            parsed = parse_reply(completion, labels, mode=judge_mode(self.spec))
        except ReplyProblem as problem:
            raise self._error(name, str(problem), completion) from None
        score = labels_scores[parsed.label]
        passed = score >= min_score if min_score is not None else score > 0.0
        result = Grade(
            name=name,
            passed=passed,
            score=score,
            label=parsed.label,
            reasoning=parsed.reasoning,
            raw=parsed.raw,
            judge_model=self.model,
            criteria=criteria,
            reference=reference if reference is not None else expert,
            output=text,
            choices=labels_scores,
            min_score=min_score,
            method=parsed.method,
            cached=completion.cached,
            key=completion.key,
        )
        record_result(result)
        return result

    def _error(self, grader: str, reason: str, completion: Completion) -> JudgeError:
        raw = raw_reply(completion)
        shown = raw if len(raw) <= _RAW_SHOWN else raw[:_RAW_SHOWN] + f"... ({len(raw):,} chars)"
        lines = [
            f"{self._where}: judge {self.model} ({grader}) gave no usable verdict: {reason}.",
            f"Raw reply (finish_reason={completion.finish_reason}): {shown!r}",
        ]
        if completion.key:
            origin = "replayed from" if completion.cached else "stored in"
            lines.append(
                f"The reply was {origin} the cache (key {completion.key[:19]}...); "
                "rerun with --llmeval-cache=refresh to ask the judge again."
            )
        return JudgeError("\n".join(lines), raw=raw, grader=grader, judge_model=self.model)


# --------------------------------------------------------------------------- pytest glue


def same_model(a: ModelSpec, b: ModelSpec) -> bool:
    """Whether two specs name the same model (the base URL aside: one model behind two
    servers is still one model grading itself)."""
    return a.provider == b.provider and a.name == b.name


def _self_judging(where: str, judge: ModelSpec, model: ModelSpec) -> str:
    return (
        f"{where}: the judge {judge} is also a model under test ({model}), so it would grade its own "
        "answers; use another judge, or allow it with --llmeval-allow-self-judge "
        "(ini llmeval_allow_self_judge = true)"
    )


def judge_config_errors(session: Any, marker: EvalMarker | None, where: str, models: Sequence[ModelSpec]) -> list[str]:
    """Collection-time problems of a test that uses ``judge``: no judge configured, an
    unknown provider, the judge also being a model under test (without the opt-in), a
    template file named after no grader."""
    spec = session.judge_for(marker)
    if spec is None:
        return [
            f"{where} uses the judge fixture but no judge model is configured: pass --llmeval-judge "
            "PROVIDER:MODEL (e.g. openai:gpt-4o), set llmeval_judge in the ini file, or use "
            "@pytest.mark.llmeval(judge='PROVIDER:MODEL')"
        ]
    errors: list[str] = []
    try:
        session.registry.validate(spec, source=f"{where} judge")
    except ConfigError as exc:
        errors.append(str(exc))
    if not getattr(session.settings, "allow_self_judge", False):
        errors.extend(_self_judging(where, spec, model) for model in models if same_model(model, spec))
    template_dir = getattr(session.settings, "judge_templates", None)
    graders = getattr(session, "graders", None)
    if template_dir is not None and graders is not None:
        for path in sorted(Path(template_dir).glob("*.txt")):
            if path.stem not in graders:
                errors.append(
                    f"ini option llmeval_judge_templates: {path} is named after no grader; "
                    f"expected one of {', '.join(f'{n}.txt' for n in graders.names)}"
                )
    return errors


def make_judge(session: Any, test_id: str, marker: EvalMarker | None, under_test: ModelSpec | None) -> Judge:
    """The ``judge`` fixture's value for one test (the collection checks, repeated here for
    a judge requested in a way collection could not see)."""
    spec = session.judge_for(marker)
    if spec is None:
        raise ConfigError(judge_config_errors(session, marker, test_id, ())[0])
    if (
        under_test is not None
        and same_model(under_test, spec)
        and not getattr(session.settings, "allow_self_judge", False)
    ):
        raise ConfigError(_self_judging(test_id, spec, under_test))
    return Judge(
        session.caller,
        spec,
        test_id=test_id,
        tags=marker.tags if marker else (),
        graders=getattr(session, "graders", None),
        template_dir=getattr(session.settings, "judge_templates", None),
    )
