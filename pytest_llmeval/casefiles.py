"""Eval cases from JSONL, JSON or CSV files, as ``pytest.param``s.

``@pytest.mark.parametrize("case", cases("capitals.jsonl"))`` turns each case into one
test whose id is the case's ``id`` field, or ``<file stem>-<line>`` when it has none.
"""

from __future__ import annotations

import csv
import io
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from _pytest.mark.structures import ParameterSet

__all__ = ["SUPPORTED_SUFFIXES", "CaseFileError", "cases", "load_cases"]

SUPPORTED_SUFFIXES = (".jsonl", ".ndjson", ".json", ".csv")


class CaseFileError(ValueError):
    """A case file that cannot be used: malformed, empty, or with duplicate ids.

    The message starts with ``<path>:<line>:`` (or ``<path>:`` when no line applies) so
    editors and terminals can jump to the spot.
    """

    def __init__(self, path: Path, line: int | None, message: str) -> None:
        self.path = path
        self.line = line
        where = f"{path}:{line}" if line is not None else str(path)
        super().__init__(f"{where}: {message}")


@dataclass(frozen=True)
class _Case:
    data: dict[str, Any]
    line: int | None  # where the case starts in the file, when known
    number: int  # what a case without an id is called: line, row or 1-based position


def cases(path: str | os.PathLike[str], *, id_field: str | None = "id") -> list[ParameterSet]:
    """Load eval cases as ``pytest.param(case, id=...)``, one per case.

    ``path`` is a ``.jsonl`` (one object a line, blank lines skipped), ``.json`` (a list
    of objects, or ``{"cases": [...]}``) or ``.csv`` file (a header row; values stay
    strings). A relative path is resolved against the directory of the module that
    calls ``cases``, then the current directory. A case's test id is its ``id_field``
    value; without one (or when it is null or empty) it is ``<file stem>-<N>``, N being the line (JSONL), the row as a
    spreadsheet numbers it, header included (CSV), or the 1-based position (JSON)::

        @pytest.mark.parametrize("case", cases("capitals.jsonl"))
        def test_capital(llm, case): ...

    Raises ``FileNotFoundError`` naming the resolved path and :class:`CaseFileError`
    (``<path>:<line>: ...``) for a malformed file, a non-object case, an empty file or
    two cases with the same id.
    """
    resolved = _resolve(path, sys._getframe(1).f_globals)
    loaded = _load(resolved)
    params = []
    seen: dict[str, _Case] = {}
    import pytest  # here, not at module level: pytest_llmeval/__init__ imports this module

    for case in loaded:
        case_id = _case_id(case, resolved, id_field)
        if case_id in seen:
            raise CaseFileError(
                resolved,
                case.line,
                f"duplicate id {case_id!r}, first used {_where(seen[case_id])}",
            )
        seen[case_id] = case
        params.append(pytest.param(case.data, id=case_id))
    return params


def load_cases(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The cases in a JSONL, JSON or CSV file as a list of dicts.

    Paths resolve and files are checked as for :func:`cases`; duplicate ids are allowed.
    """
    resolved = _resolve(path, sys._getframe(1).f_globals)
    return [case.data for case in _load(resolved)]


def _where(case: _Case) -> str:
    return f"on line {case.line}" if case.line is not None else f"by case {case.number}"


def _case_id(case: _Case, path: Path, id_field: str | None) -> str:
    # An empty cell (CSV) or null means "no id", not an id of "".
    value = case.data.get(id_field) if id_field is not None else None
    if value is not None and value != "":
        return str(value)
    return f"{path.stem}-{case.number}"


def _resolve(path: str | os.PathLike[str], caller_globals: dict[str, Any]) -> Path:
    """An absolute path; relative ones start at the calling module's directory.

    The caller's directory comes first so that ``cases("data.jsonl")`` next to a test
    file works whatever directory pytest was started from.
    """
    candidate = Path(path)
    if candidate.is_absolute():
        if not candidate.is_file():
            raise FileNotFoundError(f"case file not found: {candidate}")
        return candidate
    tried: list[Path] = []
    module_file = caller_globals.get("__file__")
    if module_file:
        tried.append(Path(module_file).resolve().parent / candidate)
    tried.append(Path.cwd() / candidate)
    for option in tried:
        if option.is_file():
            return option
    raise FileNotFoundError(
        f"case file not found: {tried[0]}" + (f" (nor {tried[1]})" if len(tried) > 1 and tried[1] != tried[0] else "")
    )


def _load(path: Path) -> list[_Case]:
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise CaseFileError(
            path,
            None,
            f"unsupported case file type {suffix or '(none)'!r}; supported: {', '.join(SUPPORTED_SUFFIXES)}",
        )
    # utf-8-sig: spreadsheet exports often start with a byte order mark.
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as err:
        raise CaseFileError(path, None, f"not UTF-8 text ({err})") from None
    if suffix == ".csv":
        loaded = _load_csv(path, text)
    elif suffix == ".json":
        loaded = _load_json(path, text)
    else:
        loaded = _load_jsonl(path, text)
    if not loaded:
        raise CaseFileError(path, None, "no cases found in the file")
    return loaded


def _kind(value: Any) -> str:
    names = {
        dict: "object",
        list: "array",
        str: "string",
        bool: "boolean",
        type(None): "null",
    }
    return names.get(type(value), "number" if isinstance(value, (int, float)) else "value")


def _load_jsonl(path: Path, text: str) -> list[_Case]:
    loaded = []
    # split("\n"), not splitlines(): U+2028 and friends may sit unescaped in JSON strings.
    for line_number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except ValueError as err:
            raise CaseFileError(path, line_number, f"invalid JSON: {err}") from None
        if not isinstance(data, dict):
            raise CaseFileError(path, line_number, f"expected a JSON object per line, got {_kind(data)}")
        loaded.append(_Case(data, line_number, line_number))
    return loaded


def _load_json(path: Path, text: str) -> list[_Case]:
    if not text.strip():
        return []
    try:
        document = json.loads(text)
    except json.JSONDecodeError as err:
        raise CaseFileError(path, err.lineno, f"invalid JSON: {err.msg} (column {err.colno})") from None
    if isinstance(document, dict) and isinstance(document.get("cases"), list):
        items = document["cases"]
    elif isinstance(document, list):
        items = document
    else:
        raise CaseFileError(
            path,
            1,
            f'expected a list of objects or {{"cases": [...]}}, got {_kind(document)}',
        )
    lines = _element_lines(text, items is not document)
    loaded = []
    for index, data in enumerate(items):
        line = lines[index] if lines is not None else None
        if not isinstance(data, dict):
            raise CaseFileError(
                path,
                line,
                f"case {index + 1}: expected a JSON object, got {_kind(data)}",
            )
        loaded.append(_Case(data, line, index + 1))
    return loaded


def _element_lines(text: str, wrapped: bool) -> list[int] | None:
    """The line each element of the case array starts on, for error messages.

    The text is known to be valid JSON here, so a tiny scanner suffices; anything
    unexpected gives ``None`` and messages fall back to case numbers.
    """
    decoder = json.JSONDecoder()
    try:
        pos = _skip_space(text, 0)
        if wrapped:
            pos = _find_member(decoder, text, pos, "cases")
        if text[pos] != "[":
            return None
        starts: list[int] = []
        pos = _skip_space(text, pos + 1)
        while text[pos] != "]":
            starts.append(text.count("\n", 0, pos) + 1)
            _, pos = decoder.raw_decode(text, pos)
            pos = _skip_space(text, pos)
            if text[pos] == ",":
                pos = _skip_space(text, pos + 1)
        return starts
    except (IndexError, ValueError):
        return None


def _find_member(decoder: json.JSONDecoder, text: str, pos: int, name: str) -> int:
    """The position of the value of the top-level object's member ``name``."""
    if text[pos] != "{":
        raise ValueError("not an object")
    found = -1
    pos = _skip_space(text, pos + 1)
    while text[pos] != "}":
        key, pos = decoder.raw_decode(text, pos)
        pos = _skip_space(text, _skip_space(text, pos) + 1)  # past the ':'
        if key == name:
            # Duplicate keys: json.loads keeps the last one, so keep scanning.
            found = pos
        _, pos = decoder.raw_decode(text, pos)
        pos = _skip_space(text, pos)
        if text[pos] == ",":
            pos = _skip_space(text, pos + 1)
    if found < 0:
        raise ValueError(f"no member {name!r}")
    return found


def _skip_space(text: str, pos: int) -> int:
    while text[pos] in " \t\r\n":
        pos += 1
    return pos


def _load_csv(path: Path, text: str) -> list[_Case]:
    # newline="" as the csv docs ask, so quoted fields may hold line breaks.
    reader = csv.DictReader(io.StringIO(text, newline=""))
    try:
        header = reader.fieldnames
    except csv.Error as err:
        raise CaseFileError(path, 1, f"invalid CSV: {err}") from None
    if not header:
        return []
    duplicated = sorted({name for name in header if header.count(name) > 1})
    if duplicated:
        raise CaseFileError(path, 1, f"duplicate column name(s) in the header: {duplicated}")
    loaded = []
    while True:
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as err:
            raise CaseFileError(path, reader.line_num, f"invalid CSV: {err}") from None
        # line_num is where the row ends; a quoted field may have spanned lines before it.
        start = reader.line_num - sum(v.count("\n") for v in row.values() if isinstance(v, str))
        _check_row_width(path, start, row, len(header))
        loaded.append(_Case(dict(row), start, start))
    return loaded


def _check_row_width(path: Path, line: int, row: dict[Any, Any], width: int) -> None:
    # DictReader hides ragged rows: extra fields go under the key None, missing ones
    # become None values. Either is almost always a stray or missing comma.
    if None in row:
        found = width + len(row[None])
    else:
        found = sum(1 for value in row.values() if value is not None)
    if found != width:
        raise CaseFileError(path, line, f"row has {found} field(s) but the header has {width}")
