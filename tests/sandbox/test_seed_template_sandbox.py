"""A sandbox started from the seed template serves what a pushed seed serves; a stale template
is not used. Each test has a cache of its own (``$CHAOSREGISTRY_CACHE``), so it starts with
no template whatever the machine's cache holds."""

import json
from pathlib import Path

import pytest
from support.sandbox import assert_pulls_the_catalogued_bytes, running_sandbox

from chaosregistry.sandbox.content import SEED_VERSION
from chaosregistry.sandbox.implementations import implementation
from chaosregistry.sandbox.seed_template import MANIFEST, template_key, template_path

COPIED = "copied from the template"
SAVED = "saved the template"


@pytest.fixture
def own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    cache = tmp_path / "cache"
    monkeypatch.setenv("CHAOSREGISTRY_CACHE", str(cache))
    return cache


def progress_of(capsys: pytest.CaptureFixture[str], label: str) -> list[str]:
    return [line for line in capsys.readouterr().err.splitlines() if line.startswith(label)]


def test_a_sandbox_from_the_template_serves_the_pushed_seed_s_catalog_and_bytes(
    tmp_path: Path, own_cache: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with running_sandbox(tmp_path / "pushed", label="pushed") as pushed:
        pushed_lines = progress_of(capsys, "pushed")
    assert not any(COPIED in line for line in pushed_lines), pushed_lines
    assert any(SAVED in line for line in pushed_lines), pushed_lines
    key = template_key(implementation("distribution-2"))
    assert (template_path(implementation("distribution-2"), key) / MANIFEST).is_file()

    with running_sandbox(tmp_path / "copied", label="copied") as copied:
        copied_lines = progress_of(capsys, "copied")
        assert any(COPIED in line for line in copied_lines), copied_lines
        assert not any("seed: big/blob" in line for line in copied_lines), copied_lines
        assert copied.catalog == pushed.catalog
        assert_pulls_the_catalogued_bytes(copied)
        # The signatures are the sandbox's own, made with its own key, as before.
        signatures = json.loads(Path(copied.endpoints["signatures_file"]).read_text())
        assert sum(image["signed"] for image in signatures["images"]) == 4
        assert (copied.run_dir / "secrets/signing.key").read_bytes() != (
            pushed.run_dir / "secrets/signing.key"
        ).read_bytes()


def test_a_template_of_another_key_is_not_used_and_the_seed_is_pushed(
    tmp_path: Path, own_cache: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    chosen = implementation("distribution-2")
    key = template_key(chosen)
    stale = template_path(chosen, key)
    # Where this key's template goes, a whole one from another version (its manifest names
    # another key): an empty storage and catalog, which seed would take for a finished seed.
    (stale / "storage/registry").mkdir(parents=True)
    (stale / "state").mkdir()
    files = {
        "catalog.json": "[]",
        "state/seed-manifests.json": "[]",
        "state/seed.json": json.dumps({"seed_version": SEED_VERSION, "tags": 0}),
    }
    for name, text in files.items():
        (stale / name).write_text(text)
    (stale / MANIFEST).write_text(
        json.dumps(
            {
                "key": "0" * 64,
                "storages": ["storage/registry"],
                "files": {name: len(text) for name, text in files.items()},
            }
        )
    )

    with running_sandbox(tmp_path / "run", label="stale") as sandbox:
        lines = progress_of(capsys, "stale")
        assert not any(COPIED in line for line in lines), lines
        assert any("seed: big/blob" in line for line in lines), lines
        assert len(sandbox.catalog) == 16
        assert_pulls_the_catalogued_bytes(sandbox)
    # The pushed seed replaced it with a template of this key.
    assert json.loads((stale / MANIFEST).read_text())["key"] == key
