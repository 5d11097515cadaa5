"""No import cycle anywhere in the package, lazy imports included; every import follows the
layers docs/architecture.md draws ("The layering rule").

The modules are read from the folder the package is imported from.
Every ``import`` statement counts, also one inside a function: an import moved into a function
to dodge a cycle still leaves the two modules needing each other, and it is then the order of
first calls that decides whether it works.
"""

import ast
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import chaosregistry

REPO_ROOT = Path(chaosregistry.__file__).resolve().parent.parent
ARCHITECTURE = REPO_ROOT / "docs" / "architecture.md"


@dataclass(frozen=True)
class ImportEdge:
    """``importer`` imports ``imported`` at ``path``:``line``."""

    importer: str
    imported: str
    path: Path
    line: int


def module_files(package_dirs: Mapping[str, Path]) -> dict[str, Path]:
    """Every module of the mapped packages by dotted name (a package is its ``__init__``)."""
    modules: dict[str, Path] = {}
    for package, directory in package_dirs.items():
        for path in sorted(directory.rglob("*.py")):
            parts = list(path.relative_to(directory).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join([package, *parts])] = path
    return modules


def installed_layout() -> dict[str, Path]:
    """The package's modules, read from the folder it is imported from."""
    return module_files({"chaosregistry": Path(chaosregistry.__file__).resolve().parent})


def _imported_names(
    node: ast.Import | ast.ImportFrom, importer: str, is_package: bool
) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = node.module or ""
    if node.level:
        # Relative: "." is the importer's own package (the importer itself for an __init__).
        package = importer.split(".")
        if not is_package:
            package.pop()
        package = package[: len(package) - (node.level - 1)]
        base = ".".join([*package, base] if base else package)
    # "from pkg import name" imports the submodule pkg.name when there is one, else pkg itself.
    return [f"{base}.{alias.name}" for alias in node.names] + [base]


def import_edges(modules: Mapping[str, Path]) -> Iterator[ImportEdge]:
    """Each import, at any depth (module level, functions, classes), of one of ``modules``."""
    for importer, path in modules.items():
        is_package = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if not isinstance(node, ast.Import | ast.ImportFrom):
                continue
            names = _imported_names(node, importer, is_package)
            if isinstance(node, ast.ImportFrom):
                submodules = [name for name in names[:-1] if name in modules]
                # The package itself counts only for names that are not submodules of it.
                if len(submodules) < len(names) - 1:
                    submodules.append(names[-1])
                names = submodules
            for name in names:
                # "import a.b.c" needs a.b.c; the deepest of ours it names is the edge.
                while name and name not in modules:
                    name = name.rpartition(".")[0]
                if name and name != importer:
                    yield ImportEdge(importer, name, path, node.lineno)


def find_cycles(edges: list[ImportEdge]) -> list[list[ImportEdge]]:
    """One cycle per strongly connected group of modules (Tarjan), as the edges that close it."""
    graph: dict[str, dict[str, ImportEdge]] = {}
    for edge in edges:
        graph.setdefault(edge.importer, {}).setdefault(edge.imported, edge)
        graph.setdefault(edge.imported, {})
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[set[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for target in graph[module]:
            if target not in index:
                visit(target)
                low[module] = min(low[module], low[target])
            elif target in on_stack:
                low[module] = min(low[module], index[target])
        if low[module] == index[module]:
            group = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.add(member)
                if member == module:
                    break
            if len(group) > 1:
                groups.append(group)

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return [_cycle_in(graph, group) for group in groups]


def _cycle_in(graph: Mapping[str, Mapping[str, ImportEdge]], group: set[str]) -> list[ImportEdge]:
    """A path from the group's first module back to itself, through the group only."""
    start = min(group)
    paths: list[tuple[str, list[ImportEdge]]] = [(start, [])]
    seen = {start}
    while paths:
        module, path = paths.pop(0)
        for target, edge in sorted(graph[module].items()):
            if target == start:
                return [*path, edge]
            if target in group and target not in seen:
                seen.add(target)
                paths.append((target, [*path, edge]))
    raise AssertionError(f"no cycle through {start} in its own strongly connected group")


def describe(cycle: list[ImportEdge], root: Path) -> str:
    steps = [cycle[0].importer] + [
        f"{edge.imported}  ({edge.path.relative_to(root)}:{edge.line})" for edge in cycle
    ]
    return "\n    -> ".join(steps)


def test_the_package_has_no_import_cycle() -> None:
    modules = installed_layout()
    # The mapping was read: the folders that pyproject maps in are there.
    assert {
        "chaosregistry.faults.lifecycle",
        "chaosregistry.probes",
        "chaosregistry.loadgen",
    } <= set(modules)
    cycles = find_cycles(list(import_edges(modules)))
    assert not cycles, "import cycles:\n" + "\n".join(
        "  " + describe(cycle, REPO_ROOT) for cycle in cycles
    )


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_a_cycle_hidden_in_a_function_is_found_and_printed(tmp_path: Path) -> None:
    _write(tmp_path / "pkg" / "__init__.py", "")
    _write(tmp_path / "pkg" / "a.py", "from pkg import b\n")
    _write(tmp_path / "pkg" / "b.py", "import os\n\ndef late():\n    from . import c\n")
    _write(tmp_path / "pkg" / "c.py", "from pkg.a import something\n")
    _write(tmp_path / "pkg" / "d.py", "from pkg import a\n")
    modules = module_files({"pkg": tmp_path / "pkg"})

    [cycle] = find_cycles(list(import_edges(modules)))

    assert [(edge.importer, edge.imported) for edge in cycle] == [
        ("pkg.a", "pkg.b"),
        ("pkg.b", "pkg.c"),
        ("pkg.c", "pkg.a"),
    ]
    assert describe(cycle, tmp_path) == (
        "pkg.a\n    -> pkg.b  (pkg/a.py:1)\n    -> pkg.c  (pkg/b.py:4)\n    -> pkg.a  (pkg/c.py:1)"
    )


def test_importing_a_name_from_a_package_is_an_edge_to_its_init_only(tmp_path: Path) -> None:
    # A submodule using its own package's __init__ re-exports is no cycle with its siblings.
    _write(tmp_path / "pkg" / "__init__.py", "from pkg.a import thing\n")
    _write(tmp_path / "pkg" / "a.py", "thing = 1\n")
    _write(tmp_path / "pkg" / "b.py", "from pkg import thing\nfrom pkg import a\n")
    modules = module_files({"pkg": tmp_path / "pkg"})

    edges = {(edge.importer, edge.imported) for edge in import_edges(modules)}

    assert edges == {("pkg", "pkg.a"), ("pkg.b", "pkg"), ("pkg.b", "pkg.a")}
    assert find_cycles(list(import_edges(modules))) == []


@dataclass(frozen=True)
class Layer:
    """A row of docs/architecture.md's layer table: its folders and the layers it may import."""

    name: str
    folders: frozenset[str]
    may_import: frozenset[str]


def documented_layers(text: str) -> list[Layer]:
    """The table under "## The layering rule": layer | folders (in backticks) | may import."""
    section = text.split("\n## The layering rule\n", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("|")]
    layers = []
    for row in rows[2:]:  # the header and its rule
        name, folders, may_import = (cell.strip() for cell in row.strip().strip("|").split("|"))
        layers.append(
            Layer(
                name,
                frozenset(re.findall(r"`([^`]+)`", folders)),
                frozenset(word.strip() for word in may_import.split(",") if word.strip()),
            )
        )
    return layers


def folder_of(module: str, path: Path) -> str:
    """How the layer table names a module's place: ``oci/``, ``cli.py`` or ``__init__.py``."""
    parts = module.split(".")
    if len(parts) == 1:
        return "__init__.py"
    if len(parts) == 2 and path.name != "__init__.py":
        return f"{parts[1]}.py"
    return f"{parts[1]}/"


def layering_violations(
    edges: list[ImportEdge], modules: Mapping[str, Path], layers: list[Layer]
) -> list[str]:
    """Each edge from one layer into another that the importer's row does not list."""
    layer_of = {folder: layer for layer in layers for folder in layer.folders}
    found = []
    for edge in edges:
        importer = layer_of[folder_of(edge.importer, modules[edge.importer])]
        imported = layer_of[folder_of(edge.imported, modules[edge.imported])]
        if importer != imported and imported.name not in importer.may_import:
            found.append(
                f"{edge.importer} ({importer.name}) imports {edge.imported} ({imported.name})"
                f"  ({edge.path.name}:{edge.line})"
            )
    return found


def test_every_folder_of_the_package_sits_in_one_documented_layer() -> None:
    layers = documented_layers(ARCHITECTURE.read_text())
    modules = installed_layout()
    documented = [folder for layer in layers for folder in layer.folders]
    names = {layer.name for layer in layers}

    assert len(documented) == len(set(documented)), "a folder in two layers"
    assert {folder_of(module, path) for module, path in modules.items()} == set(documented)
    assert all(layer.may_import <= names for layer in layers), layers


def test_every_import_follows_the_documented_layers() -> None:
    modules = installed_layout()
    violations = layering_violations(
        list(import_edges(modules)), modules, documented_layers(ARCHITECTURE.read_text())
    )
    assert not violations, "imports against docs/architecture.md's layers:\n" + "\n".join(
        violations
    )


def test_an_import_against_the_layers_is_reported() -> None:
    modules = installed_layout()
    layers = documented_layers(ARCHITECTURE.read_text())

    def edge(importer: str, imported: str) -> ImportEdge:
        return ImportEdge(importer, imported, modules[importer], 1)

    allowed = [
        edge("chaosregistry.probes.pull", "chaosregistry.oci.pull"),
        edge("chaosregistry.faults.injection", "chaosregistry.backends"),
        edge("chaosregistry.gameday.runner", "chaosregistry.reports"),
    ]
    planted = [
        edge("chaosregistry.oci.client", "chaosregistry.faults.ledger"),
        edge("chaosregistry.gameday.runner", "chaosregistry.probes.pull"),
        edge("chaosregistry.errors", "chaosregistry.cli"),
    ]

    assert layering_violations(allowed, modules, layers) == []
    assert layering_violations(planted, modules, layers) == [
        "chaosregistry.oci.client (protocols) imports chaosregistry.faults.ledger (services)"
        "  (client.py:1)",
        "chaosregistry.gameday.runner (runners) imports chaosregistry.probes.pull (activities)"
        "  (runner.py:1)",
        "chaosregistry.errors (foundations) imports chaosregistry.cli (runners)  (errors.py:1)",
    ]


LAYER_LINE = re.compile(r"^Layer: (?P<name>[\w ]+) \(may import (?P<may>[^;]+); see ", re.M)


def stated_layer(docstring: str) -> tuple[str, frozenset[str]] | None:
    """The layer a folder's ``__init__`` docstring states, and what it says the folder may
    import ("services, protocols and foundations"), or None when it states none."""
    match = LAYER_LINE.search(docstring)
    if match is None:
        return None
    words = re.split(
        r",\s*|\s+and\s+", match.group("may").replace("the package root", "package root")
    )
    return match.group("name"), frozenset(word.strip() for word in words if word.strip())


def layer_statement_problems(layers: list[Layer], docstrings: Mapping[str, str]) -> list[str]:
    """Each folder whose docstring does not state its row of the layer table."""
    problems = []
    for layer in layers:
        for folder in sorted(f for f in layer.folders if f.endswith("/")):
            stated = stated_layer(docstrings.get(folder, ""))
            if stated != (layer.name, layer.may_import):
                problems.append(
                    f"{folder}: states {stated}, the table says {layer.name} "
                    f"(may import {sorted(layer.may_import)})"
                )
    return problems


def _folder_docstrings() -> dict[str, str]:
    package = Path(chaosregistry.__file__).resolve().parent
    return {
        f"{init.parent.name}/": ast.get_docstring(ast.parse(init.read_text())) or ""
        for init in package.glob("*/__init__.py")
    }


def test_every_folder_states_its_layer_as_the_table_gives_it() -> None:
    layers = documented_layers(ARCHITECTURE.read_text())

    assert layer_statement_problems(layers, _folder_docstrings()) == []


def test_a_folder_that_states_another_layer_or_none_is_reported() -> None:
    layers = documented_layers(ARCHITECTURE.read_text())
    docstrings = _folder_docstrings()
    docstrings["oci/"] = "The pull protocol.\n\nLayer: services (may import foundations; see x)."
    del docstrings["trust/"]

    problems = layer_statement_problems(layers, docstrings)

    assert [problem.split(":")[0] for problem in problems] == ["oci/", "trust/"]
    assert "states ('services', frozenset({'foundations'}))" in problems[0]
    assert "states None" in problems[1]
