"""Build the cluster's binaries from Go modules with the machine's Go, cached by version.

``k8s.io/kubernetes`` replaces its ``k8s.io/*`` staging modules with local directories that are
not part of its module zip, so ``go install k8s.io/kubernetes/cmd/kubelet@v1.34.4`` fails. We
generate a throwaway module in the cache directory that requires ``k8s.io/kubernetes`` and
replaces every staging module with its published ``v0.<minor>.<patch>`` twin (the list is read
from that release's own go.mod), then ``go build`` the command packages in one invocation so
their shared dependencies compile once. etcd and controller-gen get the same treatment (etcd's
server module has replace directives too). Chaos Mesh's controller-manager is built inside a
copy of its own module instead (its replaces point at a nested module, see ``versions``).

Layout: ``<cache>/<name>-<version>/{src/go.mod,bin/<binary>,build.log}``. A build lands in
``bin.partial`` and is renamed to ``bin`` only when every binary exists, so a warm start checks
one directory and never rebuilds.
"""

import hashlib
import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from chaosregistry.cluster import versions
from chaosregistry.errors import ChaosRegistryError
from chaosregistry.osutil import locks
from chaosregistry.osutil.cache import cache_root
from chaosregistry.osutil.files import write_text_atomic

Progress = Callable[[str], None]

# No DWARF, neither compiled (-gcflags) nor linked (-w, in every -ldflags here): nothing here
# debugs these binaries, and a cold compile takes 0.86x the CPU without it (bench/go_build.py).
# Panics still print their stacks (those come from the symbol tables Go always keeps).
GO_BUILD_FLAGS = ("-trimpath", "-p", "2", "-gcflags=all=-dwarf=false")
HEARTBEAT_SECONDS = 30.0


class BuildError(ChaosRegistryError):
    """A Go toolchain step failed; the message names the step and the log file (``log``, when
    the step wrote one)."""

    def __init__(self, message: str, log: Path | None = None) -> None:
        super().__init__(message)
        self.log = log


def go_binary() -> str:
    found = os.environ.get("CHAOSREGISTRY_GO") or shutil.which("go") or "/usr/local/go/bin/go"
    if not Path(found).exists():
        raise BuildError("no Go toolchain: install Go or set CHAOSREGISTRY_GO")
    return found


@dataclass(frozen=True)
class GoBuild:
    """One throwaway module and the command packages built from it."""

    name: str
    version: str
    requires: tuple[tuple[str, str], ...]
    replaces: tuple[tuple[str, str, str], ...]
    packages: tuple[str, ...]
    # go build names a binary after its package, or the element before a /vN suffix; some
    # names say little (etcd's server module builds "server"), so they are renamed.
    renames: tuple[tuple[str, str], ...] = ()
    # -X name=value pairs stamped at link time (the version a binary reports).
    stamps: tuple[tuple[str, str], ...] = ()

    @property
    def directory(self) -> Path:
        return cache_root() / f"{self.name}-{self.version}"

    @property
    def bin_dir(self) -> Path:
        return self.directory / "bin"

    def built_names(self) -> list[str]:
        names = []
        for package in self.packages:
            parts = package.rstrip("/").split("/")
            major_suffix = re.fullmatch(r"v[0-9]+", parts[-1]) and len(parts) > 1
            names.append(parts[-2] if major_suffix else parts[-1])
        return names

    def binaries(self) -> list[str]:
        renames = dict(self.renames)
        return [renames.get(name, name) for name in self.built_names()]

    def ldflags(self) -> str:
        return " ".join(["-s", "-w", *(f"-X {name}={value}" for name, value in self.stamps)])

    def recipe(self) -> str:
        """What the binaries were built from; a cached build with another recipe is redone."""
        text = json.dumps([self.go_mod(), self.packages, self.ldflags(), self.renames])
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def is_built(self) -> bool:
        return _built_with(self.directory, self.recipe()) and all(
            (self.bin_dir / name).is_file() for name in self.binaries()
        )

    def go_mod(self) -> str:
        lines = [f"module chaosregistry.invalid/build/{self.name}", "", "go 1.24.0", ""]
        lines += ["require ("] + [f"\t{path} {version}" for path, version in self.requires]
        lines.append(")")
        if self.replaces:
            lines += ["", "replace ("]
            lines += [f"\t{old} => {new} {version}" for old, new, version in self.replaces]
            lines.append(")")
        return "\n".join(lines) + "\n"


def go_env(gobin: Path | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env.update({"CGO_ENABLED": "0", "GOTOOLCHAIN": "local", "GO111MODULE": "on"})
    # -mod=mod lets go build update the throwaway go.mod/go.sum; go install pkg@version
    # refuses any -mod flag.
    env["GOFLAGS"] = "-buildvcs=false" if gobin is not None else "-mod=mod -buildvcs=false"
    if gobin is not None:
        env["GOBIN"] = str(gobin)
    return env


def run_go(
    argv: Sequence[str],
    *,
    cwd: Path,
    log: Path,
    step: str,
    gobin: Path | None = None,
    heartbeat: Progress | None = None,
) -> str:
    """Run a Go toolchain command, output appended to ``log``; BuildError names the step.

    With ``heartbeat`` (and ``-v`` in ``argv``, which makes go print each package it
    compiles), a progress line goes out every HEARTBEAT_SECONDS during long builds.
    """
    with log.open("a") as out:
        out.write(f"$ {' '.join(argv)}\n")
        out.flush()
        # go -v reports packages on stderr: read it when reporting progress, else log it.
        process = subprocess.Popen(
            list(argv),
            cwd=cwd,
            env=go_env(gobin),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT if heartbeat is not None else out,
            text=True,
        )
        assert process.stdout is not None
        lines: list[str] = []
        last = time.monotonic()
        for compiled, line in enumerate(process.stdout, start=1):
            out.write(line)
            lines.append(line)
            if heartbeat is not None and time.monotonic() - last >= HEARTBEAT_SECONDS:
                last = time.monotonic()
                heartbeat(f"build: {compiled} packages compiled so far (now {line.strip()})")
        returncode = process.wait()
    if returncode != 0:
        tail = log.read_text().strip().splitlines()[-1:] or [""]
        raise BuildError(f"{step} failed (exit {returncode}): {tail[0]} — see {log}", log)
    return "".join(lines)


@contextmanager
def build_lock(directory: Path) -> Iterator[None]:
    """One build per cache entry at a time (a CLI and a test session, or two test clusters
    coming up at once, may race)."""
    with locks.hold(directory / ".lock", timeout=None):
        yield


def ensure_built(build: GoBuild, progress: Progress) -> Path:
    """The directory holding ``build``'s binaries, building them first if needed."""
    if build.is_built():
        return build.bin_dir
    with build_lock(build.directory):
        if build.is_built():
            return build.bin_dir
        go = go_binary()
        src = build.directory / "src"
        src.mkdir(parents=True, exist_ok=True)
        log = build.directory / "build.log"
        (src / "go.mod").write_text(build.go_mod())
        (src / "go.sum").unlink(missing_ok=True)
        started = time.monotonic()
        progress(f"build: resolving {build.name} {build.version} modules")
        pinned = [f"{package}@{build.requires[0][1]}" for package in build.packages]
        run_go([go, "get", *pinned], cwd=src, log=log, step=f"go get {build.name}")
        partial = build.directory / "bin.partial"
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir()
        names = ", ".join(build.binaries())
        progress(f"build: compiling {names} (2 cores; a cold build takes minutes)")
        run_go(
            [
                go,
                "build",
                "-v",
                *GO_BUILD_FLAGS,
                f"-ldflags={build.ldflags()}",
                "-o",
                str(partial) + "/",
                *build.packages,
            ],
            cwd=src,
            log=log,
            step=f"go build {build.name}",
            heartbeat=progress,
        )
        for old, new in build.renames:
            if (partial / old).is_file():
                (partial / old).rename(partial / new)
        missing = [name for name in build.binaries() if not (partial / name).is_file()]
        if missing:
            raise BuildError(f"go build {build.name} produced no {', '.join(missing)}")
        shutil.rmtree(build.bin_dir, ignore_errors=True)
        partial.rename(build.bin_dir)
        seconds = time.monotonic() - started
        (build.directory / "built.json").write_text(
            json.dumps(
                {"version": build.version, "recipe": build.recipe(), "seconds": round(seconds, 1)}
            )
            + "\n"
        )
        progress(f"build: {build.name} {build.version} built in {seconds:.0f} s")
    return build.bin_dir


_STAGING_REPLACE = re.compile(r"^\s*(k8s\.io/[\w.-]+)\s*=>\s*\./staging/", re.MULTILINE)


def kubernetes_staging_modules(progress: Progress) -> tuple[str, ...]:
    """The staging module paths that the pinned k8s.io/kubernetes release replaces locally."""
    target = cache_root() / f"k8s-{versions.KUBERNETES_VERSION}"
    target.mkdir(parents=True, exist_ok=True)
    listing = target / "staging-modules.txt"
    if listing.is_file():
        return tuple(listing.read_text().split())
    progress(f"build: reading k8s.io/kubernetes {versions.KUBERNETES_VERSION} go.mod")
    out = run_go(
        [
            go_binary(),
            "mod",
            "download",
            "-json",
            f"k8s.io/kubernetes@{versions.KUBERNETES_VERSION}",
        ],
        cwd=target,
        log=target / "build.log",
        step="go mod download k8s.io/kubernetes",
    )
    go_mod = Path(json.loads(out)["GoMod"]).read_text()
    modules = tuple(sorted(set(_STAGING_REPLACE.findall(go_mod))))
    if not modules:
        raise BuildError("k8s.io/kubernetes go.mod lists no staging replacements")
    # Atomic: another build (``make pytest-all``'s in the background, a test's ``cluster up``)
    # may read it at any moment, outside any lock.
    write_text_atomic(listing, "\n".join(modules) + "\n")
    return modules


def kubernetes_version_stamps(version: str) -> tuple[tuple[str, str], ...]:
    """The -X stamps upstream's build sets, so the binaries report ``version`` (not v0.0.0)."""
    major, minor = version.removeprefix("v").split(".")[:2]
    values = {
        "gitVersion": version,
        "gitMajor": major,
        "gitMinor": minor,
        "gitTreeState": "clean",
        "buildDate": "1970-01-01T00:00:00Z",
    }
    return tuple(
        (f"{package}.{name}", value)
        for package in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version")
        for name, value in values.items()
    )


def kubernetes_build(progress: Progress) -> GoBuild:
    staging = kubernetes_staging_modules(progress)
    return GoBuild(
        name="k8s",
        version=versions.KUBERNETES_VERSION,
        requires=(("k8s.io/kubernetes", versions.KUBERNETES_VERSION),),
        replaces=tuple((m, m, versions.KUBERNETES_STAGING_VERSION) for m in staging),
        packages=tuple(f"k8s.io/kubernetes/cmd/{cmd}" for cmd in versions.KUBERNETES_COMMANDS),
        stamps=kubernetes_version_stamps(versions.KUBERNETES_VERSION),
    )


ETCD_BUILD = GoBuild(
    name="etcd",
    version=versions.ETCD_VERSION,
    requires=(("go.etcd.io/etcd/server/v3", versions.ETCD_VERSION),),
    replaces=tuple(
        (m, m, versions.ETCD_VERSION)
        for m in (
            "go.etcd.io/etcd/api/v3",
            "go.etcd.io/etcd/client/pkg/v3",
            "go.etcd.io/etcd/client/v3",
            "go.etcd.io/etcd/pkg/v3",
        )
    ),
    packages=("go.etcd.io/etcd/server/v3",),
    renames=(("server", "etcd"),),
)


def ensure_controller_gen(progress: Progress) -> Path:
    """controller-gen, ``go install``-ed into the cache (controller-tools has no replaces)."""
    directory = cache_root() / f"controller-gen-{versions.CONTROLLER_TOOLS_VERSION}"
    binary = directory / "bin" / "controller-gen"
    if binary.is_file():
        return binary
    with build_lock(directory):
        if binary.is_file():
            return binary
        progress(f"build: go install controller-gen {versions.CONTROLLER_TOOLS_VERSION}")
        started = time.monotonic()
        package = (
            f"sigs.k8s.io/controller-tools/cmd/controller-gen@{versions.CONTROLLER_TOOLS_VERSION}"
        )
        run_go(
            [go_binary(), "install", *GO_BUILD_FLAGS, "-ldflags=-s -w", package],
            cwd=directory,
            log=directory / "build.log",
            step="go install controller-gen",
            gobin=directory / "bin",
        )
        progress(f"build: controller-gen built in {time.monotonic() - started:.0f} s")
    return binary


CHAOS_MESH_MODULE = "github.com/chaos-mesh/chaos-mesh"
# The test bed's controller-manager: Chaos Mesh's controllers for PodChaos and NetworkChaos only
# (see its header), placed into the module's copy as a command of its own. About a third less
# source to compile than Chaos Mesh's own cmd/chaos-controller-manager (the cloud kinds' SDKs,
# Helm and the other kinds): 62 MB of Go against 97 MB.
CHAOS_CONTROLLER_SOURCE = Path(__file__).with_name("chaos_controller") / "main.go"
CHAOS_CONTROLLER_PACKAGE = "./cmd/testbed-chaos-controller"


def _writable_copy(source: Path, target: Path) -> None:
    """Copy a module out of the read-only module cache, writable (go build writes go.sum)."""
    shutil.copytree(source, target)
    for path in [target, *target.rglob("*")]:
        path.chmod(path.stat().st_mode | 0o200)


def chaos_mesh_source(src: Path, log: Path | None = None) -> Path:
    """A writable copy of Chaos Mesh's module at ``src`` (replacing what is there), its API
    module copied to the ``./api`` its replace directives point at, and the test bed's command
    (CHAOS_CONTROLLER_PACKAGE) added; downloads go to ``log`` (default: ``src``'s sibling
    ``build.log``)."""
    go, log = go_binary(), log or src.parent / "build.log"
    src.parent.mkdir(parents=True, exist_ok=True)
    modules = {}
    for module, pinned in (
        (CHAOS_MESH_MODULE, versions.CHAOS_MESH_VERSION),
        (f"{CHAOS_MESH_MODULE}/api", versions.CHAOS_MESH_API_VERSION),
    ):
        out = run_go(
            [go, "mod", "download", "-json", f"{module}@{pinned}"],
            cwd=src.parent,
            log=log,
            step=f"go mod download {module}",
        )
        modules[module] = Path(json.loads(out)["Dir"])
    shutil.rmtree(src, ignore_errors=True)
    _writable_copy(modules[CHAOS_MESH_MODULE], src)
    shutil.rmtree(src / "api", ignore_errors=True)
    _writable_copy(modules[f"{CHAOS_MESH_MODULE}/api"], src / "api")
    command = src / CHAOS_CONTROLLER_PACKAGE
    command.mkdir(parents=True)
    (command / "main.go").write_text(CHAOS_CONTROLLER_SOURCE.read_text())
    return src


def ensure_chaos_mesh_controller(progress: Progress) -> Path:
    """Chaos Mesh's controller-manager, built inside its own module so its replace directives
    apply (see ``versions``), with its API module copied to the ``./api`` they point at."""
    version = versions.CHAOS_MESH_VERSION
    directory = cache_root() / f"chaos-mesh-{version}"
    binary = directory / "bin" / "chaos-controller-manager"
    stamps = (
        ("github.com/chaos-mesh/chaos-mesh/pkg/version.gitVersion", version),
        ("github.com/chaos-mesh/chaos-mesh/pkg/version.gitCommit", version.rsplit("-", 1)[1]),
    )
    ldflags = " ".join(["-s", "-w", *(f"-X {name}={value}" for name, value in stamps)])
    main_go = CHAOS_CONTROLLER_SOURCE.read_text()
    recipe = json.dumps([version, versions.CHAOS_MESH_API_VERSION, main_go, ldflags])
    recipe = hashlib.sha256(recipe.encode()).hexdigest()[:16]
    if _built_with(directory, recipe) and binary.is_file():
        return binary
    with build_lock(directory):
        if _built_with(directory, recipe) and binary.is_file():
            return binary
        go, log = go_binary(), directory / "build.log"
        started = time.monotonic()
        progress(f"build: downloading Chaos Mesh {version} and its API module")
        src = chaos_mesh_source(directory / "src", log)
        partial = directory / "bin.partial"
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir()
        progress("build: compiling chaos-controller-manager (2 cores; a cold build takes minutes)")
        run_go(
            [
                go,
                "build",
                "-v",
                *GO_BUILD_FLAGS,
                f"-ldflags={ldflags}",
                "-o",
                str(partial / binary.name),
                CHAOS_CONTROLLER_PACKAGE,
            ],
            cwd=src,
            log=log,
            step="go build chaos-controller-manager",
            heartbeat=progress,
        )
        shutil.rmtree(binary.parent, ignore_errors=True)
        partial.rename(binary.parent)
        shutil.rmtree(src)  # the module cache keeps the source
        seconds = time.monotonic() - started
        (directory / "built.json").write_text(
            json.dumps({"version": version, "recipe": recipe, "seconds": round(seconds, 1)}) + "\n"
        )
        progress(f"build: chaos-controller-manager built in {seconds:.0f} s")
    return binary


def _built_with(directory: Path, recipe: str) -> bool:
    """Whether ``directory``'s build stamp names ``recipe`` (a build from other sources, or
    from before recipes were stamped, is redone)."""
    try:
        stamp = json.loads((directory / "built.json").read_text())
    except (OSError, ValueError):
        return False
    return isinstance(stamp, dict) and stamp.get("recipe") == recipe


@dataclass(frozen=True)
class Binaries:
    """Absolute paths of every binary the cluster runs."""

    etcd: Path
    kube_apiserver: Path
    kube_controller_manager: Path
    kube_scheduler: Path
    kubelet: Path
    chaos_controller_manager: Path


def ensure_binaries(progress: Progress) -> Binaries:
    """Build (or find cached) etcd, the Kubernetes server binaries and Chaos Mesh's
    controller-manager, the three side by side.

    Side by side, not one after the other: much of a cold build is module downloads and
    single-threaded links, which leave the second core idle while a lone build runs; each
    compile is still capped at ``-p 2``. The first failure is raised once all three have ended
    (a half-done build is never left in ``bin``, see ``ensure_built``)."""

    def named(name: str) -> Progress:
        return lambda line: progress(line.replace("build:", f"build [{name}]:", 1))

    with ThreadPoolExecutor(max_workers=3, thread_name_prefix="go-build") as pool:
        etcd = pool.submit(ensure_built, ETCD_BUILD, named("etcd"))
        k8s = pool.submit(lambda: ensure_built(kubernetes_build(named("k8s")), named("k8s")))
        mesh = pool.submit(ensure_chaos_mesh_controller, named("chaos-mesh"))
        wait([etcd, k8s, mesh])
    etcd_bin, k8s_bin, chaos_mesh = etcd.result(), k8s.result(), mesh.result()
    return Binaries(
        etcd=etcd_bin / "etcd",
        kube_apiserver=k8s_bin / "kube-apiserver",
        kube_controller_manager=k8s_bin / "kube-controller-manager",
        kube_scheduler=k8s_bin / "kube-scheduler",
        kubelet=k8s_bin / "kubelet",
        chaos_controller_manager=chaos_mesh,
    )
