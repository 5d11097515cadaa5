"""Real cosign against the sandbox: the reference verifier the image_signature probe is
cross-checked with.

cosign talks to the registry behind the client-registry hop over HTTPS, trusting the sandbox's
CA (``--registry-cacert``), with the sandbox's credentials in a Docker config of its own (0600,
never on a command line). ``HTTPS_PROXY``/``HTTP_PROXY`` name a dead loopback port: Go never
proxies loopback, so the registry is reached, while anything cosign might try to fetch from
elsewhere (a TUF root) fails at once on this machine instead of leaving it.
"""

import base64
import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from chaosregistry.sandbox.binaries import cosign_binary
from support.sandbox import SandboxInfo

DEAD_PROXY = "http://127.0.0.1:9"


@dataclass(frozen=True)
class Cosign:
    sandbox: SandboxInfo
    home: Path  # DOCKER_CONFIG, keys, cosign's own files
    registry: str  # the URL cosign talks to (default: the sandbox's registry, HTTPS)

    @classmethod
    def for_sandbox(cls, sandbox: SandboxInfo, home: Path, registry: str = "") -> "Cosign":
        """``registry``: another URL of the sandbox, e.g. one ggcr replica (plain HTTP): ggcr's
        replicas share nothing, so an upload's requests must all reach the same one."""
        home.mkdir(parents=True, exist_ok=True)
        url = registry or str(sandbox.endpoints["registry"])
        host = url.split("://", 1)[1]
        auth = base64.b64encode(f"{sandbox.username}:{sandbox.password}".encode()).decode()
        config = home / "config.json"
        config.write_text(json.dumps({"auths": {host: {"auth": auth}}}))
        config.chmod(0o600)
        return cls(sandbox, home, url)

    @property
    def host(self) -> str:
        return self.registry.split("://", 1)[1]

    def _transport(self) -> list[str]:
        if self.registry.startswith("http://"):
            return ["--allow-http-registry=true"]
        return ["--registry-cacert", self.sandbox.ca_file]

    def ref(self, image: str) -> str:
        return f"{self.host}/{image}"

    def run(self, *args: str, password: str = "") -> subprocess.CompletedProcess[str]:
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(self.home),
            "DOCKER_CONFIG": str(self.home),
            "TUF_ROOT": str(self.home / "tuf"),
            "HTTPS_PROXY": DEAD_PROXY,
            "HTTP_PROXY": DEAD_PROXY,
            "NO_PROXY": "",
            "COSIGN_PASSWORD": password,
            "COSIGN_YES": "true",
        }
        return subprocess.run(
            [cosign_binary(), *args],
            capture_output=True,
            text=True,
            timeout=120,
            env=env,
            cwd=self.home,
        )

    def verify(self, image: str, key: Path | str) -> subprocess.CompletedProcess[str]:
        """``cosign verify --key KEY --insecure-ignore-tlog`` (offline, no transparency log)."""
        return self.run(
            "verify",
            "--key",
            str(key),
            "--insecure-ignore-tlog=true",
            *self._transport(),
            "--output",
            "json",
            self.ref(image),
        )

    def generate_key_pair(self, prefix: str = "cosign") -> tuple[Path, Path]:
        done = self.run("generate-key-pair", "--output-key-prefix", prefix)
        assert done.returncode == 0, done.stderr
        return self.home / f"{prefix}.key", self.home / f"{prefix}.pub"

    def sign(
        self, image: str, key: Path, *, bundle: bool = False
    ) -> subprocess.CompletedProcess[str]:
        """``cosign sign --key``, no transparency log: in the legacy ``.sig`` tag format, or
        with ``bundle`` in the bundle format (a referrer; the referrers tag where the registry
        has no referrers API)."""
        return self.run(
            "sign",
            "--key",
            str(key),
            "--tlog-upload=false",
            "--use-signing-config=false",
            f"--new-bundle-format={'true' if bundle else 'false'}",
            *self._transport(),
            self.ref(image),
        )
