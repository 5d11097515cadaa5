"""Where the nodes resolved a Deployment's image (chaosregistry.probes.mirror.pull_hosts, the
figures of ``node_pull_hosts``), read from an access log in the sandbox's nginx format with the
hops a sandbox publishes (``sandbox.layout.build_endpoints``)."""

from pathlib import Path
from typing import Any

from chaosregistry.oci.reference import ImageReference
from chaosregistry.probes.mirror import pull_hosts
from chaosregistry.sandbox.layout import Layout, Ports, build_endpoints

HOST = "registry.chaosregistry.test:15000"
TAG = "push-1800000000000"


def hops(tmp_path: Path) -> dict[str, Any]:
    hops: dict[str, Any] = build_endpoints(Layout.at(tmp_path), Ports(15000))["hops"]
    return hops


def port(found: dict[str, Any], hop: str) -> str:
    return str(found[hop]["upstream"]).rsplit(":", 1)[1]


def line(method: str, path: str, status: int, at_port: str) -> str:
    """One access-log line as log_format "sandbox" (chaosregistry.sandbox.configs) writes it."""
    return (
        f'127.0.0.1 [2027-01-15T08:00:00+00:00] "{method} {path} HTTP/1.1" {status} 0 '
        f"rt=0.001 upstream=127.0.0.1:15020 ustatus={status} port={at_port}"
    )


def test_the_nodes_lookups_at_the_origin_and_the_mirrors_at_its_upstream_are_told_apart(
    tmp_path: Path,
) -> None:
    found = hops(tmp_path)
    origin, upstream = port(found, "client-registry"), port(found, "mirror-upstream")
    manifest = f"/v2/demo/app/manifests/{TAG}"
    log = tmp_path / "nginx-access.log"
    log.write_text(
        "\n".join(
            [
                # The pipeline's push: no ns= mark, not a node's.
                line("PUT", manifest, 201, origin),
                line("HEAD", manifest, 200, origin),
                # The mirror asked its upstream for the node and was refused.
                line("HEAD", manifest, 429, upstream),
                line("GET", manifest, 429, upstream),
                # Three pods resolved the tag at the origin; one fetched the manifest by digest
                # and a blob (not a lookup of the tag).
                *[line("HEAD", f"{manifest}?ns={HOST}", 200, origin)] * 3,
                line("GET", f"/v2/demo/app/manifests/sha256:{'a' * 64}?ns={HOST}", 200, origin),
                line("GET", f"/v2/demo/app/blobs/sha256:{'b' * 64}?ns={HOST}", 200, origin),
                # Another tag, another image's host.
                line("HEAD", f"/v2/demo/app/manifests/other?ns={HOST}", 200, origin),
                line("HEAD", f"{manifest}?ns=elsewhere.test", 200, origin),
            ]
        )
        + "\n"
    )
    figures = pull_hosts(log, found, HOST, ImageReference("demo/app", TAG))
    assert figures == {
        "at_origin": {"200": 3},
        "mirror_upstream": {"429": 2},
        "origin_resolves": 3,
        "mirror_fetches": 0,
    }


def test_a_release_the_mirror_fetched_counts_as_the_mirrors(tmp_path: Path) -> None:
    found = hops(tmp_path)
    upstream = port(found, "mirror-upstream")
    log = tmp_path / "nginx-access.log"
    log.write_text(line("GET", f"/v2/demo/app/manifests/{TAG}", 200, upstream) + "\n")
    figures = pull_hosts(log, found, HOST, ImageReference("demo/app", TAG))
    assert (figures["origin_resolves"], figures["mirror_fetches"]) == (0, 1)


def test_no_log_yet_is_no_request(tmp_path: Path) -> None:
    figures = pull_hosts(tmp_path / "absent.log", hops(tmp_path), HOST, ImageReference("a", "1"))
    assert figures["at_origin"] == {} and figures["mirror_upstream"] == {}
