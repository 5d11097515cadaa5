"""A template of the seeded storage, kept in the project's cache and copied into a new sandbox
before its registries start, so that ``seed`` finds the content already there.

The seed is deterministic (``sandbox.content``): with one content, one implementation and one
build of its programs, every sandbox's storage holds the same files after the seed. So the first
sandbox that seeds by pushing, into an empty storage, saves that storage and the seed's state
files (``catalog.json``, ``state/seed.json``, ``state/seed-manifests.json``) as the template;
the next sandbox with an empty storage copies them in and skips the ~230 MiB of pushes (and the
CPU that builds the images). The signed images are not in it: their signatures are made with
each sandbox's own key (``sandbox.signing``), after the seed, as before.

A template lives in ``<cache>/sandbox-seed/<implementation>-<key>/`` (``osutil.cache``), its
key (``template_key``) hashing everything its bytes depend on: the template format, the seed
version and the source of the content's recipes and encoding, Python's and zlib's versions, the
implementation and the programs that write the storage (path, size, modification time). It is
used only when its ``template.json`` names that key and lists its files, each present at its
size; a template that is missing, partial or of another key is never used, and the sandbox
seeds by pushing. A template is written in a temporary directory and renamed into place, under
the cache's lock; saving one removes the implementation's templates of other keys.

ggcr keeps manifests in memory and blobs on disk: its template holds each node's blob directory
and the seed's manifests, which ``sandbox.ggcr_node`` puts back when the node starts (as after
a restart). The token registry is Distribution, and its storage is in the template too.

Copies, never hard links: faults and tests write into a sandbox's storage (they delete tags,
corrupt or truncate blobs, switch it read-only), and must not reach the template or another
sandbox.
"""

import contextlib
import hashlib
import json
import shutil
import sys
import tempfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from chaosregistry.oci import blobs
from chaosregistry.osutil import locks
from chaosregistry.osutil.cache import cache_root
from chaosregistry.osutil.files import write_bytes_atomic, write_json
from chaosregistry.sandbox import content
from chaosregistry.sandbox.implementations import Implementation
from chaosregistry.sandbox.layout import Layout

Progress = Callable[[str], None]

# Bump when what a template holds, or how it is laid out, changes.
TEMPLATE_FORMAT = 1
MANIFEST = "template.json"
# Distribution's in-progress uploads: none once the seed is done, and never part of the content.
UPLOADS = "_uploads"
# Saving copies ~230 MiB (ggcr: three storages); another worker saving the same key waits.
LOCK_TIMEOUT = 120.0


def templates_dir() -> Path:
    return cache_root() / "sandbox-seed"


def _program(path: str) -> dict[str, Any]:
    real = Path(path).resolve()
    stat = real.stat()
    return {"path": str(real), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def _sources_digest() -> str:
    """The source of the recipes and of the bytes they become (layers, configs, manifests)."""
    digest = hashlib.sha256()
    for module in (content, blobs):
        digest.update(Path(str(module.__file__)).read_bytes())
    return digest.hexdigest()


def template_facts(chosen: Implementation) -> dict[str, Any]:
    """Everything a seeded storage's bytes depend on (what ``template_key`` hashes)."""
    programs = sorted({chosen.replica_binary(), chosen.distribution_binary()})
    return {
        "format": TEMPLATE_FORMAT,
        "seed_version": content.SEED_VERSION,
        "sources": _sources_digest(),
        "python": list(sys.version_info[:2]),
        "zlib": zlib.ZLIB_RUNTIME_VERSION,
        "implementation": chosen.name,
        "programs": [_program(path) for path in programs],
    }


def template_key(chosen: Implementation) -> str:
    text = json.dumps(template_facts(chosen), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def template_path(chosen: Implementation, key: str) -> Path:
    return templates_dir() / f"{chosen.name}-{key[:16]}"


def _state_files(layout: Layout) -> list[Path]:
    """The seed's state files, the marker last: a copy cut short leaves no marker."""
    return [layout.catalog_file, layout.seed_manifests_file, layout.seed_marker]


def _relative(layout: Layout, paths: list[Path]) -> list[str]:
    return [str(path.relative_to(layout.run_dir)) for path in paths]


def usable_template(directory: Path, key: str, layout: Layout, chosen: Implementation) -> bool:
    """Whether ``directory`` is a whole template of ``key``: its manifest names the key, the
    storages and state files this layout needs, and every file it lists is there at its size."""
    try:
        manifest = json.loads((directory / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if not isinstance(manifest, dict) or manifest.get("key") != key:
        return False
    files = manifest.get("files")
    storages = _relative(layout, chosen.seeded_storages(layout))
    if not isinstance(files, dict) or manifest.get("storages") != storages:
        return False
    if not all(state in files for state in _relative(layout, _state_files(layout))):
        return False
    for name, size in files.items():
        try:
            if (directory / name).stat().st_size != size:
                return False
        except OSError:
            return False
    return True


def storage_is_empty(layout: Layout, chosen: Implementation) -> bool:
    """No seed marker and nothing in any storage the seed fills: a template may go there."""
    if layout.seed_marker.exists():
        return False
    return all(
        not storage.exists() or not any(storage.iterdir())
        for storage in chosen.seeded_storages(layout)
    )


def apply_template(layout: Layout, chosen: Implementation, progress: Progress) -> bool:
    """Copy the seed template into ``layout``'s empty storages; False (nothing copied) when
    there is no usable template or the copy fails. Call with the registries stopped."""
    if not storage_is_empty(layout, chosen):
        return False
    key = template_key(chosen)
    directory = template_path(chosen, key)
    if not usable_template(directory, key, layout, chosen):
        return False
    storages = chosen.seeded_storages(layout)
    try:
        for storage in storages:
            partial = storage.with_name(f".{storage.name}.template")
            shutil.rmtree(partial, ignore_errors=True)
            shutil.copytree(directory / storage.relative_to(layout.run_dir), partial)
            if storage.exists():
                storage.rmdir()  # empty: checked above
            partial.rename(storage)
        for path in _state_files(layout):
            write_bytes_atomic(path, (directory / path.relative_to(layout.run_dir)).read_bytes())
    except OSError as exc:
        # Removed under us (a newer template replaced it) or the disk is full: push instead.
        _undo_apply(layout, storages)
        progress(f"seed: template {directory} not used ({exc}); pushing instead")
        return False
    progress(f"seed: content v{content.SEED_VERSION} copied from the template {directory}")
    return True


def _undo_apply(layout: Layout, storages: list[Path]) -> None:
    for path in _state_files(layout):
        path.unlink(missing_ok=True)
    for storage in storages:
        shutil.rmtree(storage.with_name(f".{storage.name}.template"), ignore_errors=True)
        shutil.rmtree(storage, ignore_errors=True)
        storage.mkdir(parents=True, exist_ok=True)


def save_template(layout: Layout, chosen: Implementation, progress: Progress) -> Path | None:
    """Save ``layout``'s storages and seed state as the template, unless a usable one exists.

    Call right after ``seed`` pushed into storages that were empty, before anything else writes
    there (the signatures). Returns the template's directory, or None when none was written (one
    exists, another worker holds the lock too long, or the copy failed: said in a progress line;
    a sandbox never fails for its template).
    """
    key = template_key(chosen)
    target = template_path(chosen, key)
    if usable_template(target, key, layout, chosen):
        return None
    root = templates_dir()
    try:
        root.mkdir(parents=True, exist_ok=True)
        with locks.hold(root / ".lock", timeout=LOCK_TIMEOUT):
            if usable_template(target, key, layout, chosen):
                return None
            _write_template(layout, chosen, key, target)
            _remove_other_keys(chosen, target)
    except (OSError, locks.LockBusy) as exc:
        progress(f"seed: template not saved ({exc})")
        return None
    progress(f"seed: saved the template {target} for the next sandbox")
    return target


def _write_template(layout: Layout, chosen: Implementation, key: str, target: Path) -> None:
    """Copy into a temporary directory beside ``target``, then rename it into place."""
    temporary = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        storages = chosen.seeded_storages(layout)
        for storage in storages:
            shutil.copytree(
                storage,
                temporary / storage.relative_to(layout.run_dir),
                ignore=shutil.ignore_patterns(UPLOADS),
            )
        for path in _state_files(layout):
            copy = temporary / path.relative_to(layout.run_dir)
            copy.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, copy)
        files = {
            str(path.relative_to(temporary)): path.stat().st_size
            for path in sorted(temporary.rglob("*"))
            if path.is_file()
        }
        write_json(
            temporary / MANIFEST,
            {
                "key": key,
                "facts": template_facts(chosen),
                "storages": _relative(layout, storages),
                "files": files,
            },
        )
        # A directory of this name that is not a usable template (partial, another key).
        shutil.rmtree(target, ignore_errors=True)
        temporary.rename(target)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise


def _remove_other_keys(chosen: Implementation, keep: Path) -> None:
    """The implementation's templates of other keys: never used again (a sandbox copying one
    right now falls back to pushing); and temporary directories a killed save left (saves
    write them under the lock this caller holds)."""
    for other in [*keep.parent.glob(f"{chosen.name}-*"), *keep.parent.glob(f".{chosen.name}-*")]:
        if other != keep and other.is_dir():
            with contextlib.suppress(OSError):
                shutil.rmtree(other)
