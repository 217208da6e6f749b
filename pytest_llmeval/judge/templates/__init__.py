"""The judge's built-in prompt texts, kept as package data (``templates/*.txt``).

A grader template is plain text with placeholders: ``{output}`` (required), ``{input}``,
``{criteria}``, ``{reference}``, ``{expert}`` and ``{choices}``; ``{{`` and ``}}`` are
literal braces. Every placeholder but ``{choices}`` becomes a delimited data block (see
:mod:`pytest_llmeval.judge.prompt`); a paragraph that uses an optional value the test did
not give is left out. The built-in grader templates are ``<grader>.txt`` here, the same
names users give their own in the directory of the ini option ``llmeval_judge_templates``
(or pass to ``judge.with_template(...)``), so a built-in file is a starting point to copy.

``system.txt`` is the fixed system prompt (``{version}`` becomes :data:`PROMPT_VERSION`);
``output-<mode>.txt`` its last lines, by how the provider returns the verdict.

``PROMPT_VERSION`` is written into the judge's system prompt, hence into every judge
request's cache key: bump it whenever any text here changes, so that stored verdicts made
with the old wording are not replayed.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from functools import cache

__all__ = ["PROMPT_VERSION", "TOOL_NAME", "BUILTIN", "OUTPUT_INSTRUCTIONS", "system_prompt", "read_text"]

PROMPT_VERSION = "1"

# The name of the forced tool on providers that grade through tool use (Anthropic).
TOOL_NAME = "submit_verdict"


@cache
def read_text(name: str) -> str:
    """The text of ``templates/<name>.txt``, read once per process.

    Read exactly as stored (UTF-8, no newline translation): the text is part of every
    judge request's cache key, so a stray ``\\r`` or stripped newline would re-grade.
    """
    from importlib.resources import files  # lazy: a run without a judge never reads these

    return files(__name__).joinpath(f"{name}.txt").read_bytes().decode("utf-8")


def system_prompt() -> str:
    """The fixed system prompt, the same for every grader and call (so a provider's prompt
    cache can keep it); ``{version}`` is still to be filled in."""
    return read_text("system")


class _Texts(Mapping[str, str]):
    """A read-only mapping of names to template files, read on first access."""

    def __init__(self, names: tuple[str, ...], prefix: str = "") -> None:
        self._names = names
        self._prefix = prefix

    def __getitem__(self, name: str) -> str:
        if name not in self._names:
            raise KeyError(name)
        text = read_text(self._prefix + name)
        # The tool's name lives in code (the parser needs it too); the file names it once.
        return text.replace("{tool_name}", TOOL_NAME) if self._prefix == "output-" else text

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)

    def __repr__(self) -> str:
        return f"<judge templates {', '.join(self._names)}>"


#: The built-in graders' templates by grader name.
BUILTIN: Mapping[str, str] = _Texts(("rubric", "closed_qa", "factuality", "classify"))
#: The system prompt's last lines by verdict mode (``json``, ``tool``, ``text``).
OUTPUT_INSTRUCTIONS: Mapping[str, str] = _Texts(("json", "tool", "text"), prefix="output-")
