"""Baseline for bench/load.py: the plainest Locust FastHttpUser that pulls one known image.

It is told the manifest path and blob digests up front (environment variables), sends basic
auth only when given credentials, and fetches the blobs one after another without reading the
manifest or checking anything: the floor any pull user's request overhead is measured against.

    BENCH_REPOSITORY, BENCH_REFERENCE   the image
    BENCH_BLOBS                         comma-separated blob digests (config first)
    BENCH_CREDENTIALS_FILE              optional JSON {"username", "password"}
"""

import json
import os
from pathlib import Path

from locust import FastHttpUser, constant, task

REPOSITORY = os.environ.get("BENCH_REPOSITORY", "")
REFERENCE = os.environ.get("BENCH_REFERENCE", "")
BLOBS = [digest for digest in os.environ.get("BENCH_BLOBS", "").split(",") if digest]
ACCEPT = "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json"


def _auth() -> tuple[str, str] | None:
    path = os.environ.get("BENCH_CREDENTIALS_FILE")
    if not path:
        return None
    data = json.loads(Path(path).read_text())
    return (str(data["username"]), str(data["password"]))


class PlainPullUser(FastHttpUser):
    wait_time = constant(0)
    auth = _auth()

    @task
    def pull(self) -> None:
        self.client.get(
            f"/v2/{REPOSITORY}/manifests/{REFERENCE}",
            name="/v2/[name]/manifests/[ref]",
            headers={"Accept": ACCEPT},
            auth=self.auth,
        )
        for digest in BLOBS:
            self.client.get(
                f"/v2/{REPOSITORY}/blobs/{digest}", name="/v2/[name]/blobs/[digest]", auth=self.auth
            )
