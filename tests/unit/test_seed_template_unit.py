"""The seed template's key and when a sandbox may (and may not) start from one, without
starting a registry: a fake seeded storage stands in for what a seed leaves."""

import json
import os
from pathlib import Path

import pytest

from chaosregistry.sandbox import content, seed_template
from chaosregistry.sandbox.implementations import implementation
from chaosregistry.sandbox.layout import Layout
from chaosregistry.sandbox.seed_template import (
    MANIFEST,
    apply_template,
    save_template,
    template_key,
    template_path,
)

BLOB = "docker/registry/v2/blobs/sha256/ab/abcd/data"
CHOSEN = implementation("distribution-3")


@pytest.fixture(autouse=True)
def cache_and_binary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty cache of this test's own, and a stand-in for the Distribution v3 program."""
    monkeypatch.setenv("CHAOSREGISTRY_CACHE", str(tmp_path / "cache"))
    program = tmp_path / "bin" / "registry"
    program.parent.mkdir()
    program.write_text("#!/bin/sh\n")
    program.chmod(0o755)
    monkeypatch.setenv("CHAOSREGISTRY_DISTRIBUTION3", str(program))
    return program


def seeded_run_dir(path: Path, blob: bytes = b"layer bytes" * 100) -> Layout:
    """A run dir as a finished seed leaves it: the storage, the catalog and the markers."""
    layout = Layout.at(path)
    data = layout.registry_storage / BLOB
    data.parent.mkdir(parents=True)
    data.write_bytes(blob)
    # Distribution's upload area: left out of a template.
    (layout.registry_storage / "docker/registry/v2/repositories/a/_uploads").mkdir(parents=True)
    layout.seed_marker.parent.mkdir(parents=True)
    layout.catalog_file.write_text('[{"repository": "a", "tag": "1"}]\n')
    layout.seed_manifests_file.write_text("[]\n")
    layout.seed_marker.write_text(json.dumps({"seed_version": content.SEED_VERSION}))
    return layout


def empty_run_dir(path: Path) -> Layout:
    layout = Layout.at(path)
    layout.make_dirs()
    return layout


def saved_template(tmp_path: Path) -> Path:
    saved = save_template(seeded_run_dir(tmp_path / "first"), CHOSEN, print)
    assert saved is not None
    return saved


def test_the_key_is_stable_and_changes_with_the_seed_version_the_program_and_the_format(
    cache_and_binary: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = template_key(CHOSEN)
    assert template_key(CHOSEN) == key

    monkeypatch.setattr(content, "SEED_VERSION", content.SEED_VERSION + 1)
    assert template_key(CHOSEN) != key
    monkeypatch.undo()
    monkeypatch.setenv("CHAOSREGISTRY_DISTRIBUTION3", str(cache_and_binary))

    stat = cache_and_binary.stat()
    os.utime(cache_and_binary, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    rebuilt = template_key(CHOSEN)
    assert rebuilt != key

    monkeypatch.setattr(seed_template, "TEMPLATE_FORMAT", seed_template.TEMPLATE_FORMAT + 1)
    assert template_key(CHOSEN) not in (key, rebuilt)


def test_a_saved_template_is_copied_into_a_new_sandbox_with_the_seed_marker(
    tmp_path: Path,
) -> None:
    directory = saved_template(tmp_path)
    assert directory == template_path(CHOSEN, template_key(CHOSEN))
    # Written beside, then renamed: nothing temporary is left in the cache.
    assert sorted(p.name for p in directory.parent.iterdir()) == [".lock", directory.name]
    assert not list(directory.rglob("_uploads"))

    layout = empty_run_dir(tmp_path / "second")
    assert apply_template(layout, CHOSEN, print) is True

    first = Layout.at(tmp_path / "first")
    assert (layout.registry_storage / BLOB).read_bytes() == (
        first.registry_storage / BLOB
    ).read_bytes()
    for name in ("catalog_file", "seed_manifests_file", "seed_marker"):
        assert getattr(layout, name).read_bytes() == getattr(first, name).read_bytes()


def test_without_a_template_nothing_is_copied(tmp_path: Path) -> None:
    layout = empty_run_dir(tmp_path / "run")

    assert apply_template(layout, CHOSEN, print) is False
    assert list(layout.registry_storage.iterdir()) == []
    assert not layout.seed_marker.exists()


@pytest.mark.parametrize("damage", ["file missing", "file truncated", "manifest missing"])
def test_a_partial_template_is_not_used(tmp_path: Path, damage: str) -> None:
    directory = saved_template(tmp_path)
    blob = directory / "storage/registry" / BLOB
    if damage == "file missing":
        blob.unlink()
    elif damage == "file truncated":
        blob.write_bytes(blob.read_bytes()[:10])
    else:
        (directory / MANIFEST).unlink()
    layout = empty_run_dir(tmp_path / "run")

    assert apply_template(layout, CHOSEN, print) is False
    assert list(layout.registry_storage.iterdir()) == []
    assert not layout.catalog_file.exists()


def test_a_template_of_another_key_is_not_used_and_a_new_save_replaces_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stale = saved_template(tmp_path)
    monkeypatch.setattr(content, "SEED_VERSION", content.SEED_VERSION + 1)
    layout = empty_run_dir(tmp_path / "run")

    assert apply_template(layout, CHOSEN, print) is False
    assert list(layout.registry_storage.iterdir()) == []

    fresh = save_template(seeded_run_dir(tmp_path / "newer"), CHOSEN, print)
    assert fresh is not None and fresh != stale
    assert not stale.exists()


def test_a_template_whose_manifest_names_another_key_is_not_used(tmp_path: Path) -> None:
    directory = saved_template(tmp_path)
    manifest = json.loads((directory / MANIFEST).read_text())
    (directory / MANIFEST).write_text(json.dumps({**manifest, "key": "0" * 64}))

    assert apply_template(empty_run_dir(tmp_path / "run"), CHOSEN, print) is False


def test_a_storage_that_already_holds_content_is_left_alone(tmp_path: Path) -> None:
    saved_template(tmp_path)
    layout = empty_run_dir(tmp_path / "run")
    pushed = layout.registry_storage / "docker/registry/v2/repositories/pushed-by-a-test"
    pushed.mkdir(parents=True)

    assert apply_template(layout, CHOSEN, print) is False
    assert [p.name for p in layout.registry_storage.iterdir()] == ["docker"]
    assert not layout.seed_marker.exists()


def test_a_copy_that_fails_half_way_leaves_an_empty_storage_and_no_marker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    saved_template(tmp_path)
    layout = empty_run_dir(tmp_path / "run")

    def vanished(source: Path, *_: object, **__: object) -> None:
        raise FileNotFoundError(f"{source} removed under us")

    monkeypatch.setattr(seed_template.shutil, "copytree", vanished)
    lines: list[str] = []

    assert apply_template(layout, CHOSEN, lines.append) is False
    assert list(layout.registry_storage.iterdir()) == []
    assert not layout.seed_marker.exists() and not layout.catalog_file.exists()
    assert "pushing instead" in lines[-1]


def test_a_save_when_a_usable_template_exists_writes_nothing(tmp_path: Path) -> None:
    directory = saved_template(tmp_path)
    before = (directory / MANIFEST).stat().st_mtime_ns

    assert save_template(seeded_run_dir(tmp_path / "again"), CHOSEN, print) is None
    assert (directory / MANIFEST).stat().st_mtime_ns == before


def test_ggcr_templates_hold_each_node_s_blob_directory_and_the_token_registry_s(
    tmp_path: Path,
) -> None:
    layout = Layout.at(tmp_path)
    assert implementation("ggcr").seeded_storages(layout) == [
        layout.run_dir / "storage" / "registry",
        layout.run_dir / "storage" / "registry-1",
        layout.run_dir / "storage" / "registry-2",
    ]
    assert CHOSEN.seeded_storages(layout) == [layout.registry_storage]
