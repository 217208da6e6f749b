"""The judge's prompt: data blocks that the output under test cannot escape, the rendered
user message, and the messages and parameters of one judge request.

Every value placed in the prompt (the output under test, the task, criteria, reference or
expert answers) is a *data block* ``<submission-NONCE> ... </submission-NONCE>``, where
NONCE is a hash of the whole prompt's content (deterministic, so the request and its cache
key are too, yet not predictable by the text inside). Inside a block ``&``, ``<`` and ``>``
are escaped and every colon or ``=`` after a verdict-like word (``verdict``, ``score``...)
is written as an entity, so the output under test cannot close its block, open another, or
carry a line or a JSON key that reads as a verdict. Words are found as a model reads them
(:mod:`pytest_llmeval.judge.lookalike`): whatever punctuation or markdown surrounds or splits
them, in any case, in look-alike letters (fullwidth, Cyrillic or Greek homoglyphs,
mathematical letters), with invisible characters inside, or spelled with ``\\uXXXX`` escapes.
The fixed system prompt tells the judge that blocks are data.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from pytest_llmeval.errors import ConfigError
from pytest_llmeval.judge.lookalike import skeleton
from pytest_llmeval.judge.templates import OUTPUT_INSTRUCTIONS, PROMPT_VERSION, TOOL_NAME, system_prompt
from pytest_llmeval.models import ModelSpec, canonical_json

__all__ = [
    "neutralise",
    "template_placeholders",
    "check_template",
    "read_template_file",
    "prompt_nonce",
    "render_prompt",
    "verdict_schema",
    "judge_mode",
    "build_messages_and_params",
]

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
# The words of our verdict formats (the text line and the JSON keys) and their neighbours a
# judge might take for one, matched in the folded text (see lookalike.skeleton).
_VERDICT_WORD = re.compile(r"(?=(verdict|reasoning|label|choice|grade|score))")
_ENTITIES = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}
_PROVIDER_MODES = {"openai": "json", "anthropic": "tool", "local": "json"}  # local: grammar-constrained JSON


def neutralise(text: str) -> str:
    """``text`` made safe to place inside a data block.

    ``&``, ``<`` and ``>`` become entities, so no tag (real, fake, or our own with a guessed
    suffix) can appear. After a verdict-like word, every colon or equals sign (or a look-alike
    of one) becomes a numeric entity (``&#58;``, ``&#61;``...): on the rest of the word's line,
    and beyond line breaks while only punctuation follows (``"verdict"\\n: "PASS"`` is JSON).
    So a judge quoting or reading the text finds no verdict line and no JSON verdict key in
    it, however the word is disguised.
    """
    folded, origin = skeleton(text)
    ends = {m.start() + len(m.group(1)) for m in _VERDICT_WORD.finditer(folded)}
    escape: set[int] = set()
    armed = seen_text = False
    for j, char in enumerate(folded):
        if j in ends:
            armed, seen_text = True, False
        if not armed:
            continue
        if char in ":=":
            escape.add(origin[j])
        elif char == "\n":
            # A new line that starts with words is a new statement; only punctuation
            # (a JSON key's colon on the next line) keeps the word's reach.
            armed = not seen_text
        else:
            seen_text = True
    out = []
    for i, char in enumerate(text):
        if i in escape:
            out.append(f"&#{ord(char)};")
        else:
            out.append(_ENTITIES.get(char, char))
    return "".join(out)


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


def read_template_file(path: Path, *, source: str, where: str = "") -> str:
    """A template file's text; a :class:`ConfigError` naming ``source`` when unreadable."""
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        prefix = f"{where}: " if where else ""
        raise ConfigError(f"{prefix}judge template {path} ({source}): cannot be read: {exc}") from None


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
    spec: ModelSpec,
    template: str,
    values: Mapping[str, str | None],
    labels: Sequence[str],
    *,
    mode: str | None = None,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The judge request's messages and the parameters that ask for a structured verdict
    (the judge adds its generation parameters, temperature 0 by default). ``mode``
    overrides :func:`judge_mode`: ``"json_object"`` or ``"text"`` for a server that rejects
    the JSON-schema response format."""
    mode = mode or judge_mode(spec)
    instructions = OUTPUT_INSTRUCTIONS["json" if mode == "json_object" else mode]
    system = system_prompt().replace("{version}", PROMPT_VERSION) + instructions
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
    elif mode == "json_object":
        # The JSON mode of OpenAI-compatible servers that know no json_schema format; the
        # schema is the grammar llama.cpp, vLLM and Ollama constrain the reply to.
        params["response_format"] = {"type": "json_object", "schema": schema}
    elif mode == "tool":
        params["tools"] = [
            {"name": TOOL_NAME, "description": "Record the verdict of this grading task.", "parameters": schema}
        ]
        params["tool_choice"] = {"name": TOOL_NAME}
    return messages, params
