"""bench/hygiene: ``tag_compliance`` over >= 1000 tags vs a plain paged listing of the same tags.

Pushes one tiny image under ``--tags`` tags (default 1200; every third breaks the convention)
into a scratch repository, then alternates, round by round: the baseline (the same client's bare
``GET /v2/_catalog`` and ``/v2/<name>/tags/list`` requests, following ``Link`` headers, nothing
else) and the ``tag_compliance`` probe over the whole catalog, same ``page_size``. Reports
medians and the probe's ratio to the baseline. Goal (issue 14): report it; the probe should
cost little over the listing it cannot avoid.

    .venv/bin/python bench/hygiene.py [--sandbox-dir DIR] [--implementation distribution-3]
        [--tags 1200] [--page-size 100] [--rounds 7]

Without --sandbox-dir a temporary sandbox is started and stopped.
"""

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

from chaosregistry import sandbox
from chaosregistry.errors import ErrorClass, PullError
from chaosregistry.experiment.settings import resolve_target
from chaosregistry.oci import Platform, RegistryClient
from chaosregistry.oci.protocol import CATALOG, PULL, Request
from chaosregistry.probes.hygiene import tag_compliance

REPOSITORY = "scratch/bench-hygiene"


def push_tags(client: RegistryClient, count: int) -> None:
    from chaosregistry.loadgen.fresh import fresh_image

    layer, config, manifest = fresh_image(Platform.parse("linux/amd64"), layer_bytes=512)
    client.push_blob(REPOSITORY, layer.data, layer.digest)
    client.push_blob(REPOSITORY, config.data, config.digest)
    for index in range(count):
        # Every third tag breaks the convention, so the probe has something to report.
        tag = f"bench-prod-1.{index}.0" if index % 3 else f"bench-{index}"
        client.push_manifest(REPOSITORY, tag, manifest.data, manifest.media_type)


def plain_listing(client: RegistryClient, page_size: int) -> int:
    """Catalog then every repository's tags, by Link headers only: the requests the probe
    cannot avoid. Returns the number of tags."""

    def pages(path: str, key: str, resource: str, actions: str) -> list[str]:
        names: list[str] = []
        params: dict[str, str] = {"n": str(page_size)}
        while True:
            request = Request("GET", path, path, path, {}, params)
            answer = client._exchange(request, resource, actions)
            names += json.loads(answer.body).get(key) or []
            link = answer.header("link")
            if not link:
                return names
            params = dict(parse_qsl(urlsplit(link.split(">")[0].lstrip("<")).query))

    tags = 0
    for repository in pages("/v2/_catalog", "repositories", CATALOG, "*"):
        try:
            tags += len(pages(f"/v2/{repository}/tags/list", "tags", repository, PULL))
        except PullError as exc:
            if exc.error_class is not ErrorClass.NOT_FOUND:
                raise  # a repository with blobs and no tag answers NAME_UNKNOWN: no tags
    return tags


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sandbox-dir", type=Path)
    parser.add_argument("--implementation", default="distribution-2")
    parser.add_argument("--tags", type=int, default=1200)
    parser.add_argument("--page-size", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()

    owned = args.sandbox_dir is None
    run_dir = args.sandbox_dir or Path(tempfile.mkdtemp(prefix="bench-hygiene-"))
    load_before = os.getloadavg()
    try:
        if owned:
            sandbox.up(
                run_dir, base_port=sandbox.find_free_base_port(), implementation=args.implementation
            )
        configuration = {"sandbox_dir": str(run_dir)}
        implementation = sandbox.load_endpoints(run_dir)["implementation"]
        registry = resolve_target(configuration, None)
        with registry.client() as client:
            started = time.perf_counter()
            push_tags(client, args.tags)
            print(
                f"pushed {args.tags} tags in {time.perf_counter() - started:.1f} s", file=sys.stderr
            )
        seconds: dict[str, list[float]] = {"plain listing": [], "tag_compliance": []}
        result: dict[str, object] = {}
        for _ in range(args.rounds):
            with registry.client() as client:
                started = time.perf_counter()
                tags = plain_listing(client, args.page_size)
                seconds["plain listing"].append(time.perf_counter() - started)
            started = time.perf_counter()
            result = tag_compliance(page_size=args.page_size, configuration=configuration)
            seconds["tag_compliance"].append(time.perf_counter() - started)
            assert result["tags"] == tags, (result["tags"], tags)
    finally:
        if owned:
            sandbox.down(run_dir)
            shutil.rmtree(run_dir, ignore_errors=True)
    load_after = os.getloadavg()
    base = statistics.median(seconds["plain listing"])
    print(
        f"{implementation}: {result['tags']} tags in {result['repositories']} repositories, "
        f"page_size {args.page_size}, {result['pages']} pages (probe), paging {result['paging']}, "
        f"{args.rounds} rounds"
    )
    for name, values in seconds.items():
        median = statistics.median(values)
        spread = (max(values) - min(values)) / median
        print(
            f"{name:16} median {median * 1000:7.1f} ms  {median / base:4.2f}x  spread {spread:.0%}"
        )
    print(f"non-compliant {result['non_compliant_count']}, ratio {result['compliance_ratio']:.3f}")
    print(f"load average (1 min) {load_before[0]:.1f} before, {load_after[0]:.1f} after")
    return 0


if __name__ == "__main__":
    sys.exit(main())
