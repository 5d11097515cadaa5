"""Chaos Mesh's CRDs are generated once per cache, however many clusters come up at once (two
test clusters on a cold cache raced on the shared directory: one's ``go mod tidy`` failed, the
other's controller-gen wrote nothing). controller-gen and the generation are stubbed here; the
real ones run in ``chaosregistry cluster build`` and the cluster tier."""

import threading
import time
from pathlib import Path

import pytest

from chaosregistry.cluster import crds


def test_two_clusters_coming_up_at_once_generate_the_crds_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHAOSREGISTRY_CACHE", str(tmp_path))
    monkeypatch.setattr(crds, "ensure_controller_gen", lambda progress: tmp_path / "controller-gen")
    generations: list[str] = []

    def generate(directory: Path, controller_gen: Path, progress: crds.Progress) -> list[Path]:
        generations.append(threading.current_thread().name)
        time.sleep(0.3)  # long enough for the other cluster to arrive meanwhile
        out = directory / "crds"
        out.mkdir()
        (out / "chaos-mesh.org_podchaos.yaml").write_text("kind: CustomResourceDefinition\n")
        return sorted(out.glob("*.yaml"))

    monkeypatch.setattr(crds, "_generate", generate)
    results: dict[str, list[Path]] = {}

    def up(name: str) -> None:
        results[name] = crds.generate_crds(lambda line: None)

    threads = [threading.Thread(target=up, args=(name,), name=name) for name in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(generations) == 1
    assert (
        results["a"] == results["b"] == [crds.crd_directory() / "crds/chaos-mesh.org_podchaos.yaml"]
    )
