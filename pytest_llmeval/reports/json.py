"""``--llmeval-json PATH``: the results document as a JSON file, usable later as a baseline.

Reading one back (and checking it is one) is :func:`pytest_llmeval.gate.results.load_results`:
the gate reads baselines, and a report only writes.

The file is for programs first (the gate, the ``report`` command, a CI step) and for diffs
second: each top-level field is one line, and each entry of a list field (an eval, a
case) is one compact line of its own, so two runs' files differ by the lines of the cases
that changed. (``cache export`` is the file meant to be reviewed by eye.) This layout is
written by the C JSON encoder; an indented dump goes through the pure-Python one and took
seconds for a run of 30,000 cases.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the schema's types only: a report never imports the gate at run time
    from pytest_llmeval.gate.results import ResultsDocument

__all__ = ["render_json", "write_json"]


def render_json(results: ResultsDocument) -> str:
    """The JSON text of ``results``, ASCII-escaped so that a lone surrogate in a model output
    cannot make the file unwritable, and without NaN (which is not JSON)."""
    # One encoder for every line: ensure_ascii also keeps U+2028 and control characters
    # escaped, so no value can break the one-entry-per-line layout.
    encode = json.JSONEncoder(ensure_ascii=True, allow_nan=False, separators=(",", ":")).encode
    fields: list[str] = []
    for name, value in results.items():
        key = encode(name)
        if isinstance(value, list) and value:
            items = ",\n".join([encode(item) for item in value])
            fields.append(f"{key}: [\n{items}\n]")
        else:
            fields.append(f"{key}: {encode(value)}")
    return "{\n" + ",\n".join(fields) + "\n}\n"


def write_json(results: ResultsDocument, path: str | os.PathLike[str]) -> None:
    """Write ``results`` to ``path`` (parents created)."""
    target = Path(path)
    text = render_json(results)  # before touching the file: a ValueError leaves it as it was
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text, encoding="ascii")
