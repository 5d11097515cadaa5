"""The hygiene probes against the real sandbox, figures checked against its catalog.json.

Run on each implementation (``--sandbox-implementation distribution-3`` / ``ggcr``): the paging
each one does differs (see chaosregistry/probes/hygiene.py's docstring) and is asserted here.
"""

import re
import secrets
from typing import Any

from support.sandbox import SandboxInfo

from chaosregistry.experiment.settings import resolve_target
from chaosregistry.loadgen.fresh import fresh_image
from chaosregistry.oci import Platform
from chaosregistry.probes.hygiene import layer_reuse, tag_compliance

# How each implementation pages, asked n=2 (checked on the seeded content).
CATALOG_PAGING = {"distribution-2": "link", "distribution-3": "link", "ggcr": "unpaged"}


def config(sandbox: SandboxInfo) -> dict[str, Any]:
    return {"sandbox_dir": str(sandbox.run_dir)}


def seeded(sandbox: SandboxInfo) -> list[str]:
    return sorted({entry["repository"] for entry in sandbox.catalog})


def test_non_compliant_tags_are_exactly_the_catalogs(sandbox: SandboxInfo) -> None:
    pattern = r"[a-z]+-prod-[0-9.]+"
    result = tag_compliance(
        pattern=pattern,
        repositories=seeded(sandbox),
        allowed=["nightly"],
        page_size=2,
        configuration=config(sandbox),
    )
    expected: dict[str, list[str]] = {}
    for entry in sandbox.catalog:
        if not re.fullmatch(pattern, entry["tag"]) and entry["tag"] != "nightly":
            expected.setdefault(entry["repository"], []).append(entry["tag"])
    assert result["ok"], result["errors"]
    assert result["non_compliant"] == {repo: sorted(tags) for repo, tags in expected.items()}
    assert result["tags"] == len(sandbox.catalog)
    assert result["allowed_tags"] == sum(e["tag"] == "nightly" for e in sandbox.catalog)
    wrong = sum(len(tags) for tags in expected.values())
    assert result["compliance_ratio"] == (len(sandbox.catalog) - wrong) / len(sandbox.catalog)


def test_the_default_convention_over_the_whole_paged_catalog(sandbox: SandboxInfo) -> None:
    result = tag_compliance(page_size=2, configuration=config(sandbox))
    implementation = sandbox.endpoints["implementation"]
    assert result["ok"], (result["catalog_error"], result["errors"])
    assert result["paging"]["catalog"] == CATALOG_PAGING[implementation]
    # Other tests may add repositories; the seeded ones are all there with their own tags.
    assert result["repositories"] >= len(seeded(sandbox))
    assert result["pages"] > result["repositories"]  # the catalog took several pages
    assert result["non_compliant"].get("shop/api") == ["nightly"]
    assert result["non_compliant"].get("payments/worker") == ["nightly"]
    for repository in ("tiny/hello", "shop/frontend", "medium/app", "big/blob"):
        assert repository not in result["non_compliant"]


def test_tags_page_on_every_implementation(sandbox: SandboxInfo) -> None:
    # Five tags of one small image on one replica (ggcr's replicas share nothing).
    url = sandbox.endpoints["replicas"][0]["url"]
    repository = f"scratch/hygiene-{secrets.token_hex(4)}"
    tags = [f"scratch-dev-1.0.{i}" for i in range(5)]
    layer, image_config, manifest = fresh_image(Platform.parse("linux/amd64"))
    registry = resolve_target(config(sandbox), None, target=url)
    with registry.client() as client:
        client.push_blob(repository, layer.data, layer.digest)
        client.push_blob(repository, image_config.data, image_config.digest)
        for tag in tags:
            client.push_manifest(repository, tag, manifest.data, manifest.media_type)
        listing = client.list_tags(repository, page_size=2)
    assert listing.names == tags
    expected = {
        "distribution-2": ("n-ignored", 1),  # every tag in one answer, whatever n says
        "distribution-3": ("link", 3),
        "ggcr": ("last", 3),  # pages without Link headers: continued with last
    }
    assert (listing.paging, listing.pages) == expected[sandbox.endpoints["implementation"]]

    result = tag_compliance(
        repositories=[repository], page_size=2, target=url, configuration=config(sandbox)
    )
    assert (result["tags"], result["compliance_ratio"], result["non_compliant"]) == (5, 1.0, {})


def catalog_figures(sandbox: SandboxInfo) -> dict[str, Any]:
    """The layer_reuse figures, computed from catalog.json alone."""
    size: dict[str, int] = {}
    repositories: dict[str, set[str]] = {}
    references: dict[str, int] = {}
    manifests = set()
    for entry in sandbox.catalog:
        for platform in entry["platforms"]:
            key = (entry["repository"], platform["manifest_digest"])
            if key in manifests:
                continue  # another tag of the same image
            manifests.add(key)
            for blob in [platform["config"], *platform["layers"]]:
                size[blob["digest"]] = blob["size"]
                repositories.setdefault(blob["digest"], set()).add(entry["repository"])
                references[blob["digest"]] = references.get(blob["digest"], 0) + 1
    return {
        "manifests": len(manifests),
        "blobs": len(size),
        "references": sum(references.values()),
        "shared_blobs": sum(len(r) > 1 for r in repositories.values()),
        "bytes_stored": sum(size.values()),
        "bytes_referenced": sum(size[d] * references[d] for d in size),
        "bytes_by_repository": sum(size[d] * len(repositories[d]) for d in size),
        "most_shared": max(size, key=lambda d: (len(repositories[d]), references[d])),
        "most_shared_repositories": max(len(r) for r in repositories.values()),
    }


def test_layer_reuse_figures_are_exactly_the_catalogs(sandbox: SandboxInfo) -> None:
    result = layer_reuse(repositories=seeded(sandbox), page_size=2, configuration=config(sandbox))
    expected = catalog_figures(sandbox)
    assert result["ok"], result["errors"]
    assert result["tags"] == len(sandbox.catalog)
    for key in (
        "manifests",
        "blobs",
        "references",
        "shared_blobs",
        "bytes_stored",
        "bytes_referenced",
        "bytes_by_repository",
    ):
        assert result[key] == expected[key], key
    assert result["indexes"] == len(
        {e["digest"] for e in sandbox.catalog if len(e["platforms"]) > 1}
    )
    assert result["reuse_ratio"] == expected["bytes_referenced"] / expected["bytes_stored"]
    top = result["top_shared"][0]
    assert top["digest"] == expected["most_shared"]  # the shared base OS layer
    assert top["repositories"] == expected["most_shared_repositories"] == 2
    assert result["mount"] is None


def test_the_mount_check_on_this_implementation(sandbox: SandboxInfo) -> None:
    scratch = f"scratch/mount-{secrets.token_hex(4)}"
    result = layer_reuse(
        repositories=["tiny/hello"],
        check_mount=True,
        mount_repository=scratch,
        configuration=config(sandbox),
    )
    mount = result["mount"]
    layer = sandbox.image("tiny/hello", "latest")["platforms"][0]["layers"][0]
    assert (mount["digest"], mount["from"], mount["to"]) == (layer["digest"], "tiny/hello", scratch)
    if sandbox.endpoints["implementation"] == "ggcr":
        # ggcr starts an ordinary upload instead, and cannot cancel it (DELETE answers 400).
        assert (mount["mounted"], mount["status"], mount["upload_cancelled"]) == (False, 202, False)
        assert mount["cancel_status"] == 400
    else:
        assert (mount["mounted"], mount["status"], mount["error"]) == (True, 201, None)
        # The blob is now linked into the scratch repository.
        with resolve_target(config(sandbox), None).client() as client:
            fetched = client.fetch_blob(scratch, layer["digest"], layer["size"])
        assert fetched.size == layer["size"]
