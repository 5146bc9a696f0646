"""The package's layers, read from the source with ``ast``: calls flow one way.

The allowed order, lowest first (a module may import from its own layer and from the layers
below it, never from one above, and no two modules may import each other, directly or in a
circle — imports under ``TYPE_CHECKING`` and inside functions count too):

1. ``claystore.errors`` — the exception hierarchy.
2. ``claystore.dialects`` — what differs per database engine.  Knows nothing above it.
3. ``claystore.datastore`` — the datastore API (keys, queries, datastores, the JSON-table
   store).  Knows nothing of the ORM: stored objects reach it through the ``ObjectStore``
   port that the ORM implements.
4. ``claystore.orm`` — the object model, itself in four layers:

   a. model definition, no I/O: ``system``, ``types``, ``jsoncodec``, ``fields``, ``state``,
      ``attributes``, ``mapping``, ``graph``, ``identity``, ``ownership``;
   b. SQL on one connection (or one per backend): ``aliases``, ``backends``, ``schema``,
      ``database``, ``rows``, ``loading``, ``rowstream``, ``moveplan``, ``moving``, ``liveness``,
      ``loopguard``, ``twophase``, ``routing``, ``persistence``, ``unitofwork``, ``modelcompiler``,
      ``plancache``, ``federation``;
   c. transactions: ``transaction``, ``sessionwork``, ``context``;
   d. the object API: ``asynctwin``, ``active``, ``versions``, ``modelquery``, ``model``,
      ``session``, ``asyncsession``, ``objectstore``.
5. ``claystore.migrations`` — the system tables' versions, alembic integration for model
   tables, registry-aware migration operations; then ``claystore.housekeeping`` — integrity
   checks, sizes, locks and stats of a store.
6. ``claystore.client`` (and its ``claystore.configuration``), ``claystore.web`` — the client
   and the web integration.
7. ``claystore.cli`` — the ``claystore`` command.
8. ``claystore`` (the package) — the public surface.

Also: no engine branch outside ``claystore.dialects`` (no ``is_pg``, no comparison with an
engine name, no dialect-specific SQLAlchemy import, keyword or variant).
"""

from __future__ import annotations

import ast
import graphlib
from pathlib import Path

import pytest

import claystore

SOURCE = Path(claystore.__file__).parent
ORM_LAYERS = [
    [
        "system",
        "types",
        "jsoncodec",
        "fields",
        "state",
        "attributes",
        "mapping",
        "graph",
        "identity",
        "ownership",
    ],
    [
        "aliases",
        "backends",
        "schema",
        "database",
        "rows",
        "loading",
        "rowstream",
        "moveplan",
        "moving",
        "liveness",
        "loopguard",
        "twophase",
        "routing",
        "persistence",
        "unitofwork",
        "modelcompiler",
        "plancache",
        "federation",
    ],
    ["transaction", "sessionwork", "context"],
    [
        "asynctwin",
        "active",
        "versions",
        "querymerge",
        "modelquery",
        "model",
        "session",
        "asyncsession",
        "objectstore",
    ],
]
ENGINE_NAMES = {"postgresql", "postgres", "sqlite"}


def _modules() -> dict[str, Path]:
    found = {}
    for path in SOURCE.rglob("*.py"):
        parts = ["claystore", *path.relative_to(SOURCE).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


MODULES = _modules()


def _imports(module: str, path: Path) -> set[str]:
    """The claystore modules ``module`` imports (a name imported from a package counts as its
    submodule when it is one, else as the package)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            for alias in node.names:
                submodule = f"{source}.{alias.name}"
                found.add(submodule if submodule in MODULES else source)
    return {name for name in found if name in MODULES and name != module}


GRAPH = {module: _imports(module, path) for module, path in MODULES.items()}


def _layer(module: str) -> tuple[int, int]:
    """(layer, orm sub-layer) of a module, per the module docstring."""
    if module == "claystore.errors":
        return (1, 0)
    if module.startswith("claystore.dialects"):
        return (2, 0)
    if module.startswith("claystore.datastore"):
        return (3, 0)
    if module == "claystore.orm":
        return (4, 0)
    if module.startswith("claystore.orm."):
        name = module.removeprefix("claystore.orm.")
        for number, members in enumerate(ORM_LAYERS):
            if name in members:
                return (4, number)
        pytest.fail(f"{module} is in no orm layer: add it to ORM_LAYERS and the docstring")
    if module.startswith("claystore.migrations"):
        return (5, 0)
    if module.startswith("claystore.housekeeping"):
        return (5, 1)
    if module in ("claystore.client", "claystore.configuration", "claystore.web"):
        return (6, 0)
    if module.startswith("claystore.cli"):
        return (7, 0)
    if module == "claystore":
        return (8, 0)
    pytest.fail(f"{module} is in no layer: add it to this test and its docstring")


def test_no_import_cycles() -> None:
    """No module imports itself through others (TYPE_CHECKING imports included)."""
    try:
        graphlib.TopologicalSorter(GRAPH).prepare()
    except graphlib.CycleError as exc:
        pytest.fail(f"import cycle: {' -> '.join(exc.args[1])}")


def test_imports_never_point_up_a_layer() -> None:
    """Every import goes to the module's own layer or one below (see the module docstring)."""
    upward = [
        f"{module} ({_layer(module)}) imports {target} ({_layer(target)})"
        for module, targets in sorted(GRAPH.items())
        for target in sorted(targets)
        if _layer(target) > _layer(module)
    ]
    assert upward == []


def test_the_datastore_knows_nothing_of_the_orm() -> None:
    """datastore/ imports no orm module, and dialects/ nothing but errors and dialects."""
    wrong = [
        f"{module} imports {target}"
        for module, targets in GRAPH.items()
        for target in targets
        if (module.startswith("claystore.datastore") and target.startswith("claystore.orm"))
        or (
            module.startswith("claystore.dialects")
            and not target.startswith(("claystore.dialects", "claystore.errors"))
        )
    ]
    assert wrong == []


def _engine_branches(source: str, name: str) -> list[str]:
    """Places in a module's source that decide by engine instead of asking the dialect."""
    found = []
    for node in ast.walk(ast.parse(source, name)):
        where = f"{name}:{getattr(node, 'lineno', '?')}"
        if isinstance(node, ast.Name) and node.id in ("is_pg", "is_sqlite", "is_postgres"):
            found.append(f"{where}: {node.id}")
        elif isinstance(node, ast.Attribute) and node.attr in ("is_pg", "_is_pg"):
            found.append(f"{where}: .{node.attr}")
        elif isinstance(node, ast.Compare):
            constants = [
                c for c in ast.walk(node) if isinstance(c, ast.Constant) and c.value in ENGINE_NAMES
            ]
            if constants:
                found.append(f"{where}: compares with {constants[0].value!r}")
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
            "sqlalchemy.dialects"
        ):
            found.append(f"{where}: imports {node.module}")
        elif isinstance(node, ast.keyword) and (node.arg or "").startswith(
            ("postgresql_", "sqlite_")
        ):
            found.append(f"{where}: keyword {node.arg}")
        elif isinstance(node, ast.Attribute) and node.attr in ("with_variant", "ddl_if"):
            found.append(f"{where}: .{node.attr}()")
    return found


def test_engine_differences_live_in_dialects() -> None:
    """Outside claystore.dialects nothing branches on the engine (see the module docstring)."""
    found = [
        branch
        for module, path in sorted(MODULES.items())
        if not module.startswith("claystore.dialects")
        for branch in _engine_branches(path.read_text(), str(path.relative_to(SOURCE)))
    ]
    assert found == []


def test_the_engine_branch_check_sees_branches() -> None:
    """The check above finds each kind of engine branch it looks for."""
    code = (
        "from sqlalchemy.dialects import postgresql\n"
        "if dialect.name == 'postgresql': pass\n"
        "if support.is_pg: pass\n"
        "sa.Index('i', 'c', sqlite_where=None)\n"
        "t = sa.JSON().with_variant(postgresql.JSONB())\n"
    )
    found = _engine_branches(code, "sample.py")
    assert [f.split(":")[1] for f in found] == ["1", "2", "3", "4", "5"], found
