"""Loading eval cases from JSONL, JSON and CSV files."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from pytest_llmeval.casefiles import CaseFileError, cases, load_cases

pytest_plugins = ["pytester"]


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def ids_and_values(params: list[Any]) -> list[tuple[str, dict[str, Any]]]:
    return [(p.id, p.values[0]) for p in params]


# --------------------------------------------------------------------------- JSONL


def test_jsonl_ids_from_field_and_line_numbers(tmp_path: Path) -> None:
    path = write(
        tmp_path / "capitals.jsonl",
        '{"id": "fr", "country": "France"}\n\n{"country": "Japan"}\n   \n{"id": 7, "country": "Peru"}\n',
    )
    assert ids_and_values(cases(path)) == [
        ("fr", {"id": "fr", "country": "France"}),
        ("capitals-3", {"country": "Japan"}),  # the line it is on, blank lines counted
        ("7", {"id": 7, "country": "Peru"}),
    ]


def test_jsonl_crlf_and_unicode_line_separator(tmp_path: Path) -> None:
    # U+2028 may appear unescaped inside a JSON string; it must not split the line.
    path = write(tmp_path / "c.jsonl", '{"q": "a\u2028b"}\r\n{"q": "c"}\r\n')
    assert [c["q"] for c in load_cases(path)] == ["a\u2028b", "c"]


def test_jsonl_malformed_line_names_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path / "bad.jsonl", '{"a": 1}\n\n{"a": 2,}\n')
    with pytest.raises(CaseFileError) as info:
        cases(path)
    assert str(info.value).startswith(f"{path}:3: invalid JSON")
    assert info.value.line == 3 and info.value.path == path
    assert isinstance(info.value, ValueError)


def test_jsonl_non_object_line(tmp_path: Path) -> None:
    path = write(tmp_path / "bad.jsonl", '{"a": 1}\n["a", 2]\n')
    with pytest.raises(CaseFileError, match=r"bad\.jsonl:2: expected a JSON object per line, got array"):
        cases(path)


def test_ndjson_is_jsonl(tmp_path: Path) -> None:
    path = write(tmp_path / "c.ndjson", '{"a": 1}\n')
    assert load_cases(path) == [{"a": 1}]


# --------------------------------------------------------------------------- JSON


def test_json_list_with_position_ids(tmp_path: Path) -> None:
    data = [{"q": "a"}, {"id": "second", "q": "b"}, {"q": "c"}]
    path = write(tmp_path / "qa.json", json.dumps(data, indent=2))
    assert [p.id for p in cases(path)] == ["qa-1", "second", "qa-3"]
    assert load_cases(path) == data


def test_json_cases_object(tmp_path: Path) -> None:
    path = write(tmp_path / "qa.json", json.dumps({"name": "x", "cases": [{"q": "a"}]}))
    assert load_cases(path) == [{"q": "a"}]


def test_json_non_object_case_names_its_line(tmp_path: Path) -> None:
    path = write(
        tmp_path / "qa.json",
        '{\n  "meta": {"cases": 1},\n  "cases": [\n    {"q": "a"},\n    "oops"\n  ]\n}\n',
    )
    with pytest.raises(CaseFileError, match=r"qa\.json:5: case 2: expected a JSON object, got string"):
        cases(path)


def test_json_malformed_names_line(tmp_path: Path) -> None:
    path = write(tmp_path / "qa.json", '[\n  {"q": "a"},\n  {"q": }\n]')
    with pytest.raises(CaseFileError, match=r"qa\.json:3: invalid JSON: Expecting value \(column 9\)"):
        cases(path)


@pytest.mark.parametrize("text", ['{"tests": []}', '"cases"', "42"])
def test_json_wrong_shape(tmp_path: Path, text: str) -> None:
    path = write(tmp_path / "qa.json", text)
    with pytest.raises(CaseFileError, match=r'expected a list of objects or \{"cases": \[\.\.\.\]\}'):
        cases(path)


# --------------------------------------------------------------------------- CSV


def test_csv_values_are_strings_and_ids_are_rows(tmp_path: Path) -> None:
    path = write(tmp_path / "sheet.csv", "id,question,answer\nq1,2+2?,4\n,3+3?,6\n")
    assert ids_and_values(cases(path)) == [
        ("q1", {"id": "q1", "question": "2+2?", "answer": "4"}),
        # An empty id cell means no id: row 3 as a spreadsheet counts, header included.
        ("sheet-3", {"id": "", "question": "3+3?", "answer": "6"}),
    ]
    # Blank lines are skipped but still counted, so the id points at the row.
    path = write(tmp_path / "noid.csv", "question,answer\n2+2?,4\n\n3+3?,6\n")
    assert [p.id for p in cases(path)] == ["noid-2", "noid-4"]


def test_csv_byte_order_mark_and_multiline_field(tmp_path: Path) -> None:
    path = tmp_path / "excel.csv"
    path.write_bytes('\ufeffq,a\n"two\nlines",x\n"one",y\n'.encode())
    params = cases(path)
    assert ids_and_values(params) == [
        ("excel-2", {"q": "two\nlines", "a": "x"}),
        ("excel-4", {"q": "one", "a": "y"}),
    ]


@pytest.mark.parametrize(
    ("row", "found"),
    [("1,2,3", 3), ("1", 1)],
)
def test_csv_ragged_row(tmp_path: Path, row: str, found: int) -> None:
    path = write(tmp_path / "r.csv", f"a,b\n1,2\n{row}\n")
    with pytest.raises(CaseFileError, match=rf"r\.csv:3: row has {found} field\(s\) but the header has 2"):
        cases(path)


def test_csv_duplicate_columns(tmp_path: Path) -> None:
    path = write(tmp_path / "d.csv", "a,b,a\n1,2,3\n")
    with pytest.raises(CaseFileError, match=r"d\.csv:1: duplicate column name"):
        cases(path)


# --------------------------------------------------------------------------- ids


def test_duplicate_ids_name_both_lines_jsonl(tmp_path: Path) -> None:
    path = write(tmp_path / "dup.jsonl", '{"id": "a"}\n{"id": "b"}\n\n{"id": "a"}\n')
    with pytest.raises(CaseFileError, match=r"dup\.jsonl:4: duplicate id 'a', first used on line 1"):
        cases(path)


def test_duplicate_ids_name_both_lines_json(tmp_path: Path) -> None:
    path = write(tmp_path / "dup.json", '[\n{"id": 1},\n{"id": "1"}\n]')
    with pytest.raises(CaseFileError, match=r"dup\.json:3: duplicate id '1', first used on line 2"):
        cases(path)


def test_duplicate_ids_name_both_rows_csv(tmp_path: Path) -> None:
    path = write(tmp_path / "dup.csv", "id,q\nx,1\ny,2\nx,3\n")
    with pytest.raises(CaseFileError, match=r"dup\.csv:4: duplicate id 'x', first used on line 2"):
        cases(path)


def test_explicit_id_clashing_with_generated_one(tmp_path: Path) -> None:
    path = write(tmp_path / "t.jsonl", '{"q": 1}\n{"id": "t-1"}\n')
    with pytest.raises(CaseFileError, match="duplicate id 't-1'"):
        cases(path)


def test_load_cases_allows_duplicate_ids(tmp_path: Path) -> None:
    path = write(tmp_path / "dup.jsonl", '{"id": "a"}\n{"id": "a"}\n')
    assert len(load_cases(path)) == 2


def test_custom_and_disabled_id_field(tmp_path: Path) -> None:
    path = write(tmp_path / "k.jsonl", '{"id": "x", "name": "first"}\n{"id": "x", "name": "second"}\n')
    assert [p.id for p in cases(path, id_field="name")] == ["first", "second"]
    assert [p.id for p in cases(path, id_field=None)] == ["k-1", "k-2"]


# --------------------------------------------------------------------------- files


@pytest.mark.parametrize("name", ["e.jsonl", "e.json", "e.csv"])
@pytest.mark.parametrize("text", ["", "\n  \n"])
def test_empty_file_is_an_error(tmp_path: Path, name: str, text: str) -> None:
    path = write(tmp_path / name, text)
    with pytest.raises(CaseFileError, match="no cases found"):
        cases(path)


@pytest.mark.parametrize(("name", "text"), [("h.csv", "a,b\n"), ("l.json", "[]"), ("o.json", '{"cases": []}')])
def test_file_without_cases_is_an_error(tmp_path: Path, name: str, text: str) -> None:
    with pytest.raises(CaseFileError, match="no cases found"):
        cases(write(tmp_path / name, text))


def test_unknown_extension_lists_supported(tmp_path: Path) -> None:
    path = write(tmp_path / "cases.yaml", "- a: 1\n")
    with pytest.raises(
        CaseFileError, match=r"unsupported case file type '\.yaml'; supported: \.jsonl, \.ndjson, \.json, \.csv"
    ):
        cases(path)


def test_missing_file_names_resolved_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    here = Path(__file__).resolve().parent
    with pytest.raises(FileNotFoundError, match="case file not found") as info:
        cases("nowhere.jsonl")
    assert str(here / "nowhere.jsonl") in str(info.value)
    assert str(tmp_path / "nowhere.jsonl") in str(info.value)
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "abs.jsonl")):
        cases(tmp_path / "abs.jsonl")


def import_module_at(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"cases_caller_{path.parent.name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_relative_path_resolves_from_the_calling_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    evals = tmp_path / "evals"
    write(evals / "data" / "cases.jsonl", '{"id": "beside-module"}\n')
    write(tmp_path / "data" / "cases.jsonl", '{"id": "in-cwd"}\n')
    write(
        evals / "caller.py",
        "from pytest_llmeval.casefiles import cases, load_cases\n"
        "PARAMS = cases('data/cases.jsonl')\n"
        "LOADED = load_cases('data/cases.jsonl')\n",
    )
    monkeypatch.chdir(tmp_path)  # the cwd holds a decoy with the same relative path
    module = import_module_at(evals / "caller.py")
    assert [p.id for p in module.PARAMS] == ["beside-module"]
    assert module.LOADED == [{"id": "beside-module"}]


def test_relative_path_falls_back_to_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path / "work" / "only-here.jsonl", '{"id": "cwd"}\n')
    write(
        tmp_path / "evals" / "caller.py",
        "from pytest_llmeval.casefiles import cases\nPARAMS = cases('only-here.jsonl')\n",
    )
    monkeypatch.chdir(tmp_path / "work")
    module = import_module_at(tmp_path / "evals" / "caller.py")
    assert [p.id for p in module.PARAMS] == ["cwd"]


# --------------------------------------------------------------------------- in pytest


def test_parametrize_with_cases_gives_ids(pytester: pytest.Pytester) -> None:
    pytester.makefile(".jsonl", x='{"id": "france", "capital": "Paris"}\n{"capital": "Tokyo"}\n')
    pytester.makepyfile(
        test_capitals="""
        import pytest
        from pytest_llmeval.casefiles import cases

        @pytest.mark.parametrize("case", cases("x.jsonl"))
        def test_capital(case):
            assert case["capital"] in ("Paris", "Tokyo")
        """
    )
    result = pytester.runpytest("-v")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*test_capital[[]france[]] PASSED*", "*test_capital[[]x-2[]] PASSED*"])


def test_malformed_case_file_is_a_collection_error(pytester: pytest.Pytester) -> None:
    pytester.makefile(".jsonl", x='{"capital": "Paris"}\n{"capital": \n')
    pytester.makepyfile(
        test_capitals="""
        import pytest
        from pytest_llmeval.casefiles import cases

        @pytest.mark.parametrize("case", cases("x.jsonl"))
        def test_capital(case):
            pass
        """
    )
    result = pytester.runpytest()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*ERROR collecting test_capitals.py*", "*x.jsonl:2: invalid JSON*"])
