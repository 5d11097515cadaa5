"""Chaos Mesh's CRDs, generated at set-up time from its Go API module and applied.

Nothing is copied into the repository: a throwaway module in the cache requires
``github.com/chaos-mesh/chaos-mesh/api`` at the pinned version, ``controller-gen`` (built from
controller-tools) reads its ``v1alpha1`` types with the options Chaos Mesh's own Makefile uses,
and the YAML lands in ``<cache>/chaos-mesh-crds-<version>/crds``. Applying is server-side apply,
so it is idempotent; then we wait for every CRD to be Established.
"""

import hashlib
import time
from pathlib import Path
from typing import Any

import yaml
from lightkube import Client
from lightkube.codecs import from_dict
from lightkube.resources.apiextensions_v1 import CustomResourceDefinition

from chaosregistry.cluster import versions
from chaosregistry.cluster.build import (
    BuildError,
    Progress,
    build_lock,
    ensure_controller_gen,
    go_binary,
    run_go,
)
from chaosregistry.cluster.processes import ClusterError
from chaosregistry.kubernetes.client import translated
from chaosregistry.osutil.cache import cache_root

API_MODULE = "github.com/chaos-mesh/chaos-mesh/api"
API_PACKAGE = f"{API_MODULE}/v1alpha1"
CHAOS_MESH_GROUP = "chaos-mesh.org"
DIGEST_ANNOTATION = "chaosregistry.io/crds-digest"


def crd_directory() -> Path:
    return cache_root() / f"chaos-mesh-crds-{versions.CHAOS_MESH_API_VERSION}"


def generate_crds(progress: Progress) -> list[Path]:
    """The generated CRD files (generating them first when the cache has none), one generation
    at a time: two clusters coming up at once on a cold cache share the directory."""
    directory = crd_directory()
    if done := _generated(directory):
        return done
    controller_gen = ensure_controller_gen(progress)
    directory.mkdir(parents=True, exist_ok=True)
    with build_lock(directory):
        return _generated(directory) or _generate(directory, controller_gen, progress)


def _generated(directory: Path) -> list[Path]:
    out = directory / "crds"
    return sorted(out.glob("*.yaml")) if out.is_dir() else []


def _generate(directory: Path, controller_gen: Path, progress: Progress) -> list[Path]:
    out = directory / "crds"
    src = directory / "src"
    src.mkdir(parents=True, exist_ok=True)
    log = directory / "build.log"
    (src / "go.mod").write_text(
        "module chaosregistry.invalid/build/chaos-mesh-crds\n\ngo 1.25.0\n\n"
        f"require {API_MODULE} {versions.CHAOS_MESH_API_VERSION}\n"
    )
    (src / "tools.go").write_text(f'package tools\n\nimport _ "{API_PACKAGE}"\n')
    progress(f"crds: resolving {API_MODULE} {versions.CHAOS_MESH_API_VERSION}")
    run_go([go_binary(), "mod", "tidy"], cwd=src, log=log, step="go mod tidy (chaos-mesh api)")
    partial = directory / "crds.partial"
    partial.mkdir(exist_ok=True)
    for stale in partial.glob("*"):
        stale.unlink()
    progress("crds: generating Chaos Mesh CRDs with controller-gen")
    run_go(
        [
            str(controller_gen),
            "crd:ignoreUnexportedFields=true,crdVersions=v1",
            f"paths={API_PACKAGE}",
            f"output:crd:dir={partial}",
        ],
        cwd=src,
        log=log,
        step="controller-gen crd",
    )
    files = sorted(partial.glob("*.yaml"))
    if not files:
        raise BuildError(f"controller-gen wrote no CRD (see {log})", log)
    partial.rename(out)
    return sorted(out.glob("*.yaml"))


# libyaml's loader when PyYAML has it: the generated CRDs are 3 MB of YAML.
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_crds(files: list[Path]) -> list[dict[str, Any]]:
    documents = []
    for path in files:
        for document in yaml.load_all(path.read_text(), Loader=_LOADER):
            if isinstance(document, dict) and document.get("kind") == "CustomResourceDefinition":
                documents.append(document)
    return documents


def apply_crds(kube: Client, documents: list[dict[str, Any]], *, timeout: float = 60.0) -> None:
    """Server-side apply every CRD, then wait until each is Established."""
    names = []
    with translated():
        for document in documents:
            kube.apply(from_dict(document), force=True)
            names.append(document["metadata"]["name"])
    deadline = time.monotonic() + timeout
    pending = set(names)
    while pending:
        with translated():
            for name in sorted(pending):
                crd = kube.get(CustomResourceDefinition, name)
                conditions = (crd.status.conditions if crd.status else None) or []
                if any(c.type == "Established" and c.status == "True" for c in conditions):
                    pending.discard(name)
        if pending and time.monotonic() > deadline:
            raise ClusterError(f"CRDs not Established after {timeout:.0f} s: {sorted(pending)}")
        if pending:
            time.sleep(0.5)


def _digest(files: list[Path]) -> str:
    hasher = hashlib.sha256()
    for path in files:
        hasher.update(path.name.encode() + b"\0" + path.read_bytes())
    return hasher.hexdigest()[:16]


def _installed(kube: Client, names: list[str], digest: str) -> bool:
    """True when every CRD is there, Established, and applied from these very files."""
    with translated():
        present = {
            crd.metadata.name: crd
            for crd in kube.list(CustomResourceDefinition)
            if crd.metadata is not None
        }
    for name in names:
        crd = present.get(name)
        if crd is None or crd.metadata is None:
            return False
        if (crd.metadata.annotations or {}).get(DIGEST_ANNOTATION) != digest:
            return False
        conditions = (crd.status.conditions if crd.status else None) or []
        if not any(c.type == "Established" and c.status == "True" for c in conditions):
            return False
    return True


def install_chaos_mesh_crds(kube: Client, progress: Progress) -> list[str]:
    """Generate (cached) and apply Chaos Mesh's CRDs; returns their names.

    Each CRD carries the digest of the generated files it came from, so a warm start that
    finds them all in place skips re-applying 3 MB of schema.
    """
    files = generate_crds(progress)
    digest = _digest(files)
    # controller-gen names each file <group>_<plural>.yaml and each CRD <plural>.<group>.
    names = sorted(".".join(reversed(path.stem.split("_", 1))) for path in files)
    if _installed(kube, names, digest):
        progress(f"crds: {len(names)} Chaos Mesh CRDs already installed")
        return names
    documents = load_crds(files)
    for document in documents:
        document["metadata"].setdefault("annotations", {})[DIGEST_ANNOTATION] = digest
    names = sorted(d["metadata"]["name"] for d in documents)
    apply_crds(kube, documents)
    progress(f"crds: {len(names)} Chaos Mesh CRDs established")
    return names
