"""The layout rules of docs/ARCHITECTURE.md, checked on the source: no import cycles, each
layer imports only what it may, pytest's internals only behind the one guarded module."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "pytest_llmeval"
NAME = "pytest_llmeval"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def runtime_imports(path: Path) -> Iterator[tuple[str, int]]:
    """Package modules imported by ``path`` at run time (lazy ones included; not TYPE_CHECKING)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    this = module_name(path)
    package = this if path.name == "__init__.py" else this.rpartition(".")[0]

    def visit(node: ast.AST) -> Iterator[tuple[str, int]]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                yield from (x for n in child.orelse for x in visit_one(n))
                continue
            yield from visit_one(child)

    def visit_one(node: ast.AST) -> Iterator[tuple[str, int]]:
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith(NAME):
                    yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            if target.startswith(NAME):
                for alias in node.names:
                    sub = f"{target}.{alias.name}"
                    yield (sub if sub in MODULES else target), node.lineno
        yield from visit(node)

    yield from visit(tree)


def importers() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for name, path in MODULES.items():
        graph[name] = {target for target, _ in runtime_imports(path) if target in MODULES and target != name}
    return graph


def test_the_package_has_no_import_cycle() -> None:
    graph = importers()
    # A package's __init__ re-exporting its own modules is not a cycle of concern.
    for name in graph:
        graph[name] = {t for t in graph[name] if not (name.startswith(t + ".") and MODULES[t].name == "__init__.py")}
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def walk(node: str, stack: list[str]) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append([*stack[stack.index(nxt) :], nxt])
            elif nxt not in state:
                walk(nxt, stack)
        stack.pop()
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            walk(name, [])
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def _forbidden(layer: str, allowed: tuple[str, ...]) -> list[str]:
    bad = []
    for name, path in MODULES.items():
        if not name.startswith(layer):
            continue
        for target, line in runtime_imports(path):
            if not any(target == a or target.startswith(a + ".") for a in allowed):
                bad.append(f"{path.relative_to(PACKAGE.parent)}:{line} imports {target}")
    return bad


@pytest.mark.parametrize(
    ("layer", "allowed"),
    [
        # The store imports only the plain data of models.py (and itself).
        ("pytest_llmeval.store", ("pytest_llmeval.store", "pytest_llmeval.models")),
        # Reports are pure functions of the results document.
        ("pytest_llmeval.reports", ("pytest_llmeval.reports", "pytest_llmeval.text")),
    ],
)
def test_a_layer_imports_only_what_it_may(layer: str, allowed: tuple[str, ...]) -> None:
    assert not _forbidden(layer, allowed)


@pytest.mark.parametrize(
    ("layer", "never"),
    [
        ("pytest_llmeval.providers", ("calls.caller", "planning", "session", "plugin", "gate", "reports")),
        ("pytest_llmeval.planning", ("session", "plugin")),
        ("pytest_llmeval.intercept", ("session", "plugin", "planning", "gate", "reports")),
        ("pytest_llmeval.calls", ("planning", "session", "plugin", "gate", "reports")),
    ],
)
def test_a_layer_never_imports_the_layers_above_it(layer: str, never: tuple[str, ...]) -> None:
    bad = []
    for name, path in MODULES.items():
        if name.startswith(layer):
            for target, line in runtime_imports(path):
                if any(target == f"{NAME}.{n}" or target.startswith(f"{NAME}.{n}.") for n in never):
                    bad.append(f"{path.relative_to(PACKAGE.parent)}:{line} imports {target}")
    assert not bad


PRIVATE_PYTEST = ("_initrequest", "_request", "_setupstate", "_report_sections", "_remove_plugins", "funcargs")


def test_pytest_internals_are_used_in_one_guarded_module_only() -> None:
    guarded = PACKAGE / "planning" / "_pytest_internals.py"
    bad = []
    for path in MODULES.values():
        if path == guarded:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        typing_only = {
            id(n) for block in ast.walk(tree) if isinstance(block, ast.If) and _is_type_checking(block)
            for stmt in block.body for n in ast.walk(stmt)
        }  # fmt: skip
        for node in ast.walk(tree):
            if id(node) in typing_only:
                continue
            if isinstance(node, ast.Attribute) and node.attr in PRIVATE_PYTEST:
                if not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls")):
                    bad.append(f"{path.name}:{node.lineno} .{node.attr}")
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
                if any(n == "_pytest" or n.startswith("_pytest.") for n in names):
                    bad.append(f"{path.name}:{node.lineno} imports _pytest")
            if isinstance(node, ast.Call) and getattr(node.func, "attr", "") in (
                "resume_global_capture",
                "suspend_global_capture",
                "read_global_capture",
            ):
                bad.append(f"{path.name}:{node.lineno} capture manager call")
    assert not bad


def test_plugin_py_holds_only_hooks_and_fixtures() -> None:
    tree = ast.parse((PACKAGE / "plugin.py").read_text(encoding="utf-8"))
    others = []
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            others.append(f"class {node.name}")
        elif isinstance(node, ast.FunctionDef):
            fixture = any("fixture" in ast.unparse(d) for d in node.decorator_list)
            if not (node.name.startswith("pytest_") or fixture):
                others.append(f"def {node.name}")
    assert not others


def test_planning_switches_itself_off_on_a_pytest_it_does_not_know(pytester: pytest.Pytester, fake_api) -> None:
    # The one guard: planning on a pytest whose internals it does not know would be a gamble.
    fake_api.latency = 0.2
    pytester.makeconftest("import pytest\npytest.__version__ = '99.1.0'\n")
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.parametrize("i", range(4))
        def test_case(llm, i):
            assert llm(f"q{i}") == f"echo: q{i}"
        """
    )
    result = pytester.runpytest_subprocess("--llmeval-model", "openai:gpt-4o-mini", "--llmeval-concurrency", "4")
    result.assert_outcomes(passed=4)
    assert result.stdout.str().count("pytest 99.1.0 is outside the versions") == 1
    result.stdout.fnmatch_lines(["*the planning pass is off and model calls are made one at a time*"])
    assert fake_api.peak_in_flight == 1 and fake_api.count() == 4
