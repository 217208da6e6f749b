"""``--llmeval-json PATH``: the results document as a JSON file, usable later as a baseline.

Reading one back (and checking it is one) is :func:`pytest_llmeval.gate.results.load_results`:
the gate reads baselines, and a report only writes.
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
    return json.dumps(results, indent=1, sort_keys=False, ensure_ascii=True, allow_nan=False) + "\n"


def write_json(results: ResultsDocument, path: str | os.PathLike[str]) -> None:
    """Write ``results`` to ``path`` (parents created)."""
    target = Path(path)
    text = render_json(results)  # before touching the file: a ValueError leaves it as it was
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text, encoding="ascii")
