"""What the docs claim about the code, checked where a machine can check it.

- Probes write only where docs/architecture.md says they may ("Where probes may write"): no
  probe module imports a fault lifecycle, a backend's plans, a test bed's lifecycle or an
  action, nor calls a registry or Kubernetes write, except the writes that section names.
- Every folder of the package says in its ``__init__`` docstring what lives there.
- Every ``make X`` the README and docs/ name is a target of the Makefile; every repository path
  and every ``chaosregistry.*`` dotted name in backticks, and every relative link, exists (a
  page of the activity reference exists once ``make docs`` generates it: it is not in docs/).

Each check is a function run on the real tree and, in the same module, on a planted violation
it must report.
"""

import ast
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

import lightkube

import chaosregistry
from chaosregistry import ACTIVITY_PACKAGES
from chaosregistry.experiment.reference import page_path

PACKAGE = Path(chaosregistry.__file__).resolve().parent
REPO_ROOT = PACKAGE.parent
ARCHITECTURE = REPO_ROOT / "docs" / "architecture.md"
# The pages the site generates (the activity reference): linked to from docs/, never in it.
GENERATED_PAGES = frozenset(page_path(kind) for kind in ACTIVITY_PACKAGES.values())

# --- Where probes may write ------------------------------------------------------------------

# Modules whose business is changing something: a probe imports nothing from them.
CHANGING_MODULES = (
    "chaosregistry.actions",
    "chaosregistry.faults.lifecycle",
    "chaosregistry.backends.local",  # and every local_*.py
    "chaosregistry.backends.kubernetes_deploy",
    "chaosregistry.backends.kubernetes_pods",
    "chaosregistry.sandbox.lifecycle",
    "chaosregistry.cluster",
    "chaosregistry.loadgen.launch",
    "chaosregistry.loadgen.stop",
)
# Functions that change something, in modules that also hold what a probe may read.
CHANGING_FUNCTIONS = {
    "chaosregistry.faults.injection": ("inject_plan", "revert_matching"),
    "chaosregistry.backends": ("backend_for",),
    "chaosregistry.backends.kubernetes": ("delete_chaos_object",),
    "chaosregistry.sandbox": ("up", "down", "start_process", "stop_process"),
    "chaosregistry.sandbox.seed": ("seed", "push_image", "push_unique_image", "push_content"),
    "chaosregistry.kubernetes.delivery": ("push_fresh_tag",),
}
# lightkube's Client methods that change a cluster.
KUBERNETES_WRITES = ("create", "delete", "deletecollection", "patch", "replace", "apply")
# The writes docs/architecture.md names, by probe module: a qualified function or a method.
ALLOWED_WRITES = {
    "chaosregistry.probes.replication": {"chaosregistry.sandbox.seed.push_unique_image"},
    "chaosregistry.probes.hygiene": {"mount_blob"},
    "chaosregistry.probes.push": {"chaosregistry.sandbox.seed.push_content"},
}


def registry_writes(client_source: str, class_name: str = "RegistryClient") -> set[str]:
    """The methods of the registry client that send PUT, POST, PATCH or DELETE, or call one
    that does (read from the source, so a new write method is found without a list)."""
    [cls] = [
        node
        for node in ast.parse(client_source).body
        if isinstance(node, ast.ClassDef) and node.name == class_name
    ]
    methods = {node.name: node for node in cls.body if isinstance(node, ast.FunctionDef)}
    writes = {
        name
        for name, node in methods.items()
        if any(
            isinstance(sub, ast.Constant) and sub.value in {"PUT", "POST", "PATCH", "DELETE"}
            for sub in ast.walk(node)
        )
    }
    while True:
        callers = {
            name
            for name, node in methods.items()
            if any(
                isinstance(sub, ast.Attribute)
                and isinstance(sub.value, ast.Name)
                and sub.value.id == "self"
                and sub.attr in writes
                for sub in ast.walk(node)
            )
        }
        if callers <= writes:
            return writes
        writes |= callers


def _changing(qualified: str) -> bool:
    module, _, name = qualified.rpartition(".")
    return qualified.startswith(CHANGING_MODULES) or name in CHANGING_FUNCTIONS.get(module, ())


def probe_writes(
    source: str, module: str, write_methods: Iterable[str], allowed: Mapping[str, set[str]]
) -> list[str]:
    """Each import of something that changes state and each call of a write method in one
    probe module, but for the writes ``allowed`` names for that module."""
    methods = set(write_methods)
    names: dict[str, str] = {}  # local name -> what it is (qualified)
    found: list[tuple[int, str]] = []
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for alias in node.names:
                qualified = f"{node.module}.{alias.name}"
                names[alias.asname or alias.name] = qualified
                if _changing(qualified):
                    found.append((node.lineno, qualified))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                names[alias.asname or alias.name.partition(".")[0]] = (
                    alias.name if alias.asname else alias.name.partition(".")[0]
                )
                if _changing(alias.name):
                    found.append((node.lineno, alias.name))
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            owner = node.func.value
            if isinstance(owner, ast.Name) and owner.id in names:
                qualified = f"{names[owner.id]}.{node.func.attr}"
                if _changing(qualified):
                    found.append((node.lineno, qualified))
                    continue
            if node.func.attr in methods:
                found.append((node.lineno, node.func.attr))
    return [
        f"{module}:{line}: {what}"
        for line, what in sorted(set(found))
        if what not in allowed.get(module, set())
    ]


def _write_methods(source: str) -> set[str]:
    """The write methods to look for in a module: the registry client's, and lightkube's where
    the module talks to Kubernetes (elsewhere ``replace`` or ``delete`` are other objects')."""
    methods = registry_writes((PACKAGE / "oci" / "client.py").read_text())
    if re.search(r"^(from|import) (lightkube|chaosregistry\.kubernetes)\b", source, re.MULTILINE):
        methods |= set(KUBERNETES_WRITES)
    return methods


def test_the_list_of_writes_names_what_exists() -> None:
    # A renamed write would leave the check blind: every name it looks for exists.
    assert {"push_blob", "push_manifest", "mount_blob", "delete_manifest"} <= registry_writes(
        (PACKAGE / "oci" / "client.py").read_text()
    )
    assert all(callable(getattr(lightkube.Client, name, None)) for name in KUBERNETES_WRITES)
    for module, functions in CHANGING_FUNCTIONS.items():
        path = PACKAGE.joinpath(*module.split(".")[1:])
        path = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
        defined = {
            node.name
            for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, ast.FunctionDef)
        } | {
            alias.asname or alias.name
            for node in ast.parse(path.read_text()).body
            if isinstance(node, ast.ImportFrom)
            for alias in node.names
        }
        assert set(functions) <= defined, (module, set(functions) - defined)


def test_probes_write_only_where_the_architecture_says() -> None:
    found = [
        problem
        for path in sorted((PACKAGE / "probes").glob("*.py"))
        for problem in probe_writes(
            path.read_text(),
            f"chaosregistry.probes.{path.stem}",
            _write_methods(path.read_text()),
            ALLOWED_WRITES,
        )
    ]
    assert not found, "probes that change state (docs/architecture.md):\n" + "\n".join(found)


def test_the_writes_allowed_are_the_ones_the_architecture_names() -> None:
    section = ARCHITECTURE.read_text().split("### Where probes may write", 1)[1]
    section = section.split("\n## ", 1)[0]
    for module, writes in ALLOWED_WRITES.items():
        assert f"probes/{module.rpartition('.')[2]}.py" in section, module
        for write in writes:
            assert write.rpartition(".")[2] in section, write
    # And each allowed write is really made (an allowance nothing uses is a stale one).
    for module, writes in ALLOWED_WRITES.items():
        source = (PACKAGE / "probes" / f"{module.rpartition('.')[2]}.py").read_text()
        made = {
            p.rpartition(": ")[2] for p in probe_writes(source, module, _write_methods(source), {})
        }
        assert writes <= made, (module, writes - made)


PLANTED_PROBE = """from lightkube import Client
from chaosregistry.faults.injection import MAX_DURATION, inject_plan
from chaosregistry.actions.network import add_latency
from chaosregistry import sandbox
from chaosregistry.sandbox.seed import push_unique_image
from chaosregistry.oci.reference import ImageReference


def a_probe(client, kube):
    sandbox.up("runs/sandbox")
    sandbox.status("runs/sandbox")
    client.push_manifest("repo", "tag", b"{}", "application/json")
    client.get_manifest("repo", "tag")
    kube.patch(object(), "name", {})
    kube.get(object(), "name")
    push_unique_image(client, ImageReference.parse("replication/probe"))
"""


def test_a_probe_that_writes_is_reported_unless_the_architecture_names_the_write() -> None:
    methods = _write_methods(PLANTED_PROBE)

    assert probe_writes(PLANTED_PROBE, "chaosregistry.probes.planted", methods, ALLOWED_WRITES) == [
        "chaosregistry.probes.planted:2: chaosregistry.faults.injection.inject_plan",
        "chaosregistry.probes.planted:3: chaosregistry.actions.network.add_latency",
        "chaosregistry.probes.planted:5: chaosregistry.sandbox.seed.push_unique_image",
        "chaosregistry.probes.planted:10: chaosregistry.sandbox.up",
        "chaosregistry.probes.planted:12: push_manifest",
        "chaosregistry.probes.planted:14: patch",
    ]
    # Where nothing talks to Kubernetes, ``replace`` is a string's.
    elsewhere = 'def other(text):\n    return text.replace("t", "")\n'
    assert (
        probe_writes(elsewhere, "chaosregistry.probes.other", _write_methods(elsewhere), {}) == []
    )
    # The same push in the module the architecture names for it is allowed there only.
    assert probe_writes(
        PLANTED_PROBE, "chaosregistry.probes.replication", methods, ALLOWED_WRITES
    ) == [
        "chaosregistry.probes.replication:2: chaosregistry.faults.injection.inject_plan",
        "chaosregistry.probes.replication:3: chaosregistry.actions.network.add_latency",
        "chaosregistry.probes.replication:10: chaosregistry.sandbox.up",
        "chaosregistry.probes.replication:12: push_manifest",
        "chaosregistry.probes.replication:14: patch",
    ]


def test_a_new_write_method_of_the_registry_client_is_found_without_a_list() -> None:
    source = """
class RegistryClient:
    def get_thing(self):
        return self.send(Request("GET", "/v2/"))

    def put_thing(self):
        return self.send(Request("PUT", "/v2/x"))

    def put_twice(self):
        self.put_thing()
        return self.put_thing()
"""
    assert registry_writes(source) == {"put_thing", "put_twice"}


# --- Each folder says what lives there --------------------------------------------------------


def undocumented_packages(package: Path) -> list[str]:
    """Folders of ``package`` (itself included) whose ``__init__`` has no docstring."""
    return [
        str(init.parent.relative_to(package.parent))
        for init in sorted(package.rglob("__init__.py"))
        if not (ast.get_docstring(ast.parse(init.read_text())) or "").strip()
    ]


def test_every_folder_of_the_package_says_what_lives_there() -> None:
    assert undocumented_packages(PACKAGE) == []


def test_a_folder_without_a_docstring_is_reported(tmp_path: Path) -> None:
    (tmp_path / "pkg" / "told").mkdir(parents=True)
    (tmp_path / "pkg" / "silent").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text('"""What lives here."""\n')
    (tmp_path / "pkg" / "told" / "__init__.py").write_text('"""Told."""\nimport os\n')
    (tmp_path / "pkg" / "silent" / "__init__.py").write_text("import os\n")

    assert undocumented_packages(tmp_path / "pkg") == ["pkg/silent"]


# --- The docs name what exists ----------------------------------------------------------------


def documents(root: Path = REPO_ROOT) -> list[Path]:
    return [root / "README.md", *sorted((root / "docs").rglob("*.md"))]


def make_targets(makefile: str) -> set[str]:
    return set(re.findall(r"^([a-z][\w-]*):", makefile, flags=re.MULTILINE))


def named_make_targets(text: str) -> set[str]:
    """``make X`` in a code span, or at the start of a line (code blocks)."""
    return set(re.findall(r"(?:^|`)make ([a-z][\w-]*)", text, flags=re.MULTILINE))


def code_spans(text: str) -> list[str]:
    text = re.sub(r"^```.*?^```", "", text, flags=re.MULTILINE | re.DOTALL)
    return re.findall(r"`([^`\n]+)`", text)


def missing_paths(
    text: str, doc: Path, root: Path, generated: frozenset[str] = GENERATED_PAGES
) -> list[str]:
    """Repository paths in code spans, and relative link targets, that do not exist.

    A span is a repository path when its first part is a top-level folder of the repository,
    or a folder of the package (``faults/ledger.py``: read under ``chaosregistry/``). Spans with
    a placeholder (``<name>``, ``*``) are patterns, not paths. A test file is found at any
    depth under ``tests/`` (the tiers are folders). A link from a page of docs/ to a page the
    site generates (``generated``: paths under docs/) exists; the README is read outside the
    site, where those pages do not exist."""
    package = root / "chaosregistry"
    top = {p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")}
    inner = {p.name for p in package.iterdir() if p.is_dir() and not p.name.startswith("_")}
    missing = []
    for span in code_spans(text):
        token = span.strip().rstrip(".,:;")
        if " " in token or not re.fullmatch(r"[\w./-]+", token) or "/" not in token:
            continue
        first = token.split("/", 1)[0]
        if first == "tests" and token.endswith(".py"):
            if not any((root / "tests").rglob(Path(token).name)):
                missing.append(token)
        elif first in top and first not in {"runs"}:
            if not (root / token).exists():
                missing.append(token)
        elif first in inner and not (package / token).exists():
            missing.append(token)
    in_site = (root / "docs") in doc.parents
    built = {(root / "docs" / page).resolve() for page in generated} if in_site else set()
    for target in re.findall(r"\]\(([^)\s#]+)(?:#[^)]*)?\)", text):
        path = doc.parent / target
        if "://" not in target and not path.exists() and path.resolve() not in built:
            missing.append(target)
    return missing


def _defined_names(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.FunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names |= {t.id for t in targets if isinstance(t, ast.Name)}
        elif isinstance(node, ast.ImportFrom | ast.Import):
            names |= {alias.asname or alias.name.partition(".")[0] for alias in node.names}
    return names


def missing_dotted_names(text: str, package: Path) -> list[str]:
    """``chaosregistry.a.b`` names in code spans that are neither a module of the package nor
    a name defined in one (``chaosregistry.probes.pull.pull_image``)."""
    missing = []
    for span in code_spans(text):
        for dotted in re.findall(r"\bchaosregistry(?:\.\w+)+(?![\w/-])", span):
            parts = dotted.split(".")[1:]
            path, rest = package, list(parts)
            while rest and (path / rest[0]).is_dir():
                path = path / rest.pop(0)
            if rest and (path / f"{rest[0]}.py").exists():
                path = path / f"{rest.pop(0)}.py"
            module = path / "__init__.py" if path.is_dir() else path
            if rest and rest[0] not in _defined_names(module):
                missing.append(dotted)
    return missing


def test_every_make_target_the_docs_name_exists() -> None:
    targets = make_targets((REPO_ROOT / "Makefile").read_text())
    named = {
        (doc.relative_to(REPO_ROOT).as_posix(), target)
        for doc in documents()
        for target in named_make_targets(doc.read_text())
    }
    assert {"gameday", "test", "help"} <= {target for _, target in named}
    assert sorted(item for item in named if item[1] not in targets) == []


def test_every_path_and_dotted_name_the_docs_name_exists() -> None:
    problems = [
        f"{doc.relative_to(REPO_ROOT)}: {name}"
        for doc in documents()
        for name in [
            *missing_paths(doc.read_text(), doc, REPO_ROOT),
            *missing_dotted_names(doc.read_text(), PACKAGE),
        ]
    ]
    assert problems == []


def test_a_stale_target_path_link_or_name_is_reported() -> None:
    text = (
        "Run `make test` or `make tests`.\n\n"
        "```\nmake gameday\nmake nothing-here\n```\n\n"
        "See `faults/ledger.py`, `faults/ledgers.py`, `tests/test_stats.py`,"
        " `tests/test_gone.py`, `experiments/vars/<backend>.yaml`, `runs/sandbox`,"
        " [the map](architecture.md), [gone](reference/gone.md),"
        " [generated](reference/probes.md), [not generated](reference/probe.md) and"
        " `chaosregistry.probes.pull.pull_image`, `chaosregistry.probes.pull.pull_everything`,"
        " `chaosregistry.gameday.verdict`, `chaosregistry.verdict`, `chaosregistry.io/fault`.\n"
    )

    assert named_make_targets(text) - make_targets((REPO_ROOT / "Makefile").read_text()) == {
        "tests",
        "nothing-here",
    }
    assert missing_paths(text, REPO_ROOT / "docs" / "guide.md", REPO_ROOT) == [
        "faults/ledgers.py",
        "tests/test_gone.py",
        "reference/gone.md",
        "reference/probe.md",
    ]
    # The README is read where nothing is generated: the same link from it is a broken one.
    readme_link = "[probes](docs/reference/probes.md)"
    assert missing_paths(readme_link, REPO_ROOT / "README.md", REPO_ROOT) == [
        "docs/reference/probes.md"
    ]
    assert missing_dotted_names(text, PACKAGE) == [
        "chaosregistry.probes.pull.pull_everything",
        "chaosregistry.verdict",
    ]
