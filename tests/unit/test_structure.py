"""The code's shape, read from its own source: no import circles, imports only go down the
layers, no module over 400 lines (docs/architecture.md)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = "basecone_migrate"
SOURCE = Path(__file__).resolve().parents[2] / "src" / PACKAGE
REVISIONS = f"{PACKAGE}.db.migrations.versions"
LINE_LIMIT = 400


def _modules() -> dict[str, Path]:
    found = {}
    for path in SOURCE.rglob("*.py"):
        parts = list(path.relative_to(SOURCE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


MODULES = _modules()


def _owner(name: str) -> str | None:
    """The module of ours that ``name`` (a module, or a name in one) is."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def imports(module: str) -> set[str]:
    """Every module of ours that ``module`` imports, at its top or inside a function (a
    circle held together by a late import is still a circle); `TYPE_CHECKING` blocks are
    for the type checker only and are left out."""
    path = MODULES[module]
    tree = ast.parse(path.read_text())
    skipped = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If)
               and ast.unparse(node.test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING")
               for n in ast.walk(node)}
    base = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            start = ".".join(base[:len(base) - node.level + 1]) if node.level else ""
            origin = ".".join(p for p in (start, node.module or "") if p)
            names = [origin, *(f"{origin}.{alias.name}" for alias in node.names)]
        else:
            continue
        found |= {owner for name in names if name.startswith(PACKAGE)
                  and (owner := _owner(name)) is not None and owner != module}
    return found


GRAPH = {module: imports(module) for module in MODULES}


def _circles() -> list[list[str]]:
    """The graph's strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    circles = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        for other in sorted(GRAPH[module]):
            if other not in index:
                visit(other)
                low[module] = min(low[module], low[other])
            elif other in stack:
                low[module] = min(low[module], index[other])
        if low[module] == index[module]:
            component = []
            while True:
                other = stack.pop()
                component.append(other)
                if other == module:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for module in sorted(GRAPH):
        if module not in index:
            visit(module)
    return circles


def test_the_graph_sees_late_imports() -> None:
    """The reader finds imports inside functions (else the checks below prove nothing)."""
    assert f"{PACKAGE}.services.transfer" in GRAPH[f"{PACKAGE}.services.background"]
    assert f"{PACKAGE}.cli.demo" in GRAPH[f"{PACKAGE}.cli.setup"]


def test_no_import_circles() -> None:
    assert _circles() == []


def test_the_migrations_package_imports_nothing() -> None:
    """Its use cases are imported from the module that holds each (no lazy facade to keep
    `list` lean, and nothing for a use case to import back)."""
    assert GRAPH[f"{PACKAGE}.services.migrations"] == set()


def _layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


@pytest.mark.parametrize("module", sorted(m for m in MODULES if not m.startswith(f"{PACKAGE}.cli")
                                          and m not in (f"{PACKAGE}.__main__",)))
def test_nothing_but_the_cli_imports_the_cli(module: str) -> None:
    assert not {m for m in GRAPH[module] if _layer(m) == "cli"}


@pytest.mark.parametrize("module", sorted(m for m in MODULES if _layer(m) == "cli"))
def test_the_cli_only_parses_calls_services_and_renders(module: str) -> None:
    """No command reaches past the services: no database, storage or mail of its own, no
    transaction opened in the CLI."""
    assert not {_layer(m) for m in GRAPH[module]} & {"db", "storage", "mail", "ownership"}, GRAPH[module]
    text = MODULES[module].read_text()
    assert not any(call in text for call in (".reading()", ".writing()", ".uow(")), module
    tree = ast.parse(text)
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert not {name for name in imported if name.split(".")[0] == "sqlalchemy"}, module


@pytest.mark.parametrize("module", sorted(m for m in MODULES if _layer(m) == "domain"))
def test_the_domain_imports_only_the_domain(module: str) -> None:
    assert {_layer(m) for m in GRAPH[module]} <= {"domain"}, GRAPH[module]


@pytest.mark.parametrize("module", sorted(m for m in MODULES if _layer(m) == "db"))
def test_the_database_layer_never_imports_services_or_the_cli(module: str) -> None:
    assert not {_layer(m) for m in GRAPH[module]} & {"services", "cli"}, GRAPH[module]


@pytest.mark.parametrize("module", sorted(m for m in MODULES if m.startswith(REVISIONS + ".")))
def test_a_revision_carries_what_it_needs(module: str) -> None:
    """An Alembic revision runs as it was written: it takes only column types and errors
    from the package, never live code that changes with it."""
    assert GRAPH[module] <= {f"{PACKAGE}.db.types", f"{PACKAGE}.errors"}, GRAPH[module]


def test_no_module_over_400_lines() -> None:
    """Alembic revisions aside: a module that grows past this mixes jobs; split it along them."""
    lengths = {m: len(p.read_text().splitlines()) for m, p in MODULES.items()
               if not m.startswith(REVISIONS)}
    assert {m: n for m, n in lengths.items() if n > LINE_LIMIT} == {}
