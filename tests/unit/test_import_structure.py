"""No import cycle anywhere in the package, lazy imports included.

The modules are read as the package is installed: pyproject's ``package-dir`` maps the top-level
folders (``probes/`` -> ``chaosregistry.probes``, ...) into the one ``chaosregistry`` namespace.
Every ``import`` statement counts, also one inside a function: an import moved into a function
to dodge a cycle still leaves the two modules needing each other, and it is then the order of
first calls that decides whether it works.
"""

import ast
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


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


def installed_layout(repo_root: Path) -> dict[str, Path]:
    """The package's modules as installed, from pyproject's ``package-dir`` mapping."""
    setuptools = tomllib.loads((repo_root / "pyproject.toml").read_text())["tool"]["setuptools"]
    return module_files(
        {package: repo_root / folder for package, folder in setuptools["package-dir"].items()}
    )


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
    modules = installed_layout(REPO_ROOT)
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
