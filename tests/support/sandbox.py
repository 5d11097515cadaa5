"""The one sandbox factory: ``running_sandbox`` brings a real sandbox up in a directory and
always down; ``SandboxInfo`` is what tests see of it. The session's ``sandbox`` fixture
(tests/conftest.py) and the modules that need one of their own (another implementation, the
second site) all start theirs here."""

import json
import ssl
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chaosregistry.oci import ImageReference, Platform, RegistryClient, pull
from chaosregistry.oci.auth import Credentials
from chaosregistry.sandbox import down, load_credentials, up
from support.ports import free_base_port


@dataclass(frozen=True)
class SandboxInfo:
    """A running sandbox: its endpoints dict, the user's credentials and the seeded catalog."""

    endpoints: dict[str, Any]
    username: str
    password: str = field(repr=False)  # keeps the password out of assertion messages
    catalog: list[dict[str, Any]] = field(repr=False)
    run_dir: Path

    @property
    def ca_file(self) -> str:
        """The sandbox's CA (PEM path), which verifies every HTTPS endpoint of it."""
        return str(self.endpoints["ca_file"])

    @property
    def tls(self) -> ssl.SSLContext:
        """An SSL context trusting this sandbox's CA only (for httpx and raw sockets)."""
        return ssl.create_default_context(cafile=self.ca_file)

    @property
    def auth(self) -> tuple[str, str]:
        return (self.username, self.password)

    def image(self, repository: str, tag: str) -> dict[str, Any]:
        """The catalog entry of ``repository:tag``."""
        for entry in self.catalog:
            if (entry["repository"], entry["tag"]) == (repository, tag):
                return entry
        raise KeyError(f"{repository}:{tag} not in the seeded catalog")


@contextmanager
def running_sandbox(
    run_dir: Path, *, label: str = "sandbox", **options: Any
) -> Iterator[SandboxInfo]:
    """A sandbox up in ``run_dir`` on a free base port of this worker's (support.ports),
    ``up(**options)`` (implementation, second_site, seed_content...), its progress on stderr
    prefixed ``label``; always brought down. Its catalog is empty when ``seed_content=False``."""
    try:
        endpoints = up(
            run_dir,
            base_port=free_base_port(),
            progress=lambda line: print(f"{label}: {line}", file=sys.stderr),
            **options,
        )
        creds = load_credentials(run_dir)
        seeded = options.get("seed_content", True)
        catalog = json.loads(Path(endpoints["catalog_file"]).read_text()) if seeded else []
        yield SandboxInfo(endpoints, creds.username, creds.password, catalog, Path(run_dir))
    finally:
        down(run_dir)


def assert_pulls_the_catalogued_bytes(sandbox: SandboxInfo) -> None:
    """Every seeded tag and platform pulls from the registry, digest-verified, with exactly the
    catalogued manifest, blobs and byte count."""
    pulled_platforms = 0
    with RegistryClient(
        sandbox.endpoints["registry"],
        credentials=Credentials(sandbox.username, sandbox.password),
        verify=sandbox.ca_file,
    ) as client:
        for entry in sandbox.catalog:
            for platform in entry["platforms"]:
                result = pull(
                    client,
                    ImageReference(entry["repository"], entry["tag"]),
                    platform=Platform.parse(platform["platform"]),
                )
                assert result.ok and result.verified, result.error
                assert result.digest == entry["digest"], (result.digest, entry)
                assert result.manifest_digest == platform["manifest_digest"], platform
                expected = [platform["config"], *platform["layers"]]
                pulled = [(b.digest, b.size) for b in result.blob_timings]
                assert pulled == [(b["digest"], b["size"]) for b in expected], pulled
                assert result.bytes == sum(b["size"] for b in expected), result.bytes
                pulled_platforms += 1
    assert pulled_platforms == sum(len(e["platforms"]) for e in sandbox.catalog)
