"""A registry no one here wrote and not our sandbox: Debian's ``docker-registry`` (CNCF
Distribution 2.8), started by hand as a user would run theirs.

HTTPS from a private CA made with ``openssl`` (its certificate names only ``localhost``: a
client that checked ``127.0.0.1`` instead would fail), htpasswd basic auth (bcrypt), loopback
only, a port from ``support.ports``; an image pushed with ``crane append`` (two random layers).
Everything lives in one directory; ``running_foreign_registry`` stops the process at the end.
"""

import json
import os
import secrets
import signal
import ssl
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import bcrypt
import httpx

from chaosregistry.sandbox.binaries import CACHE, find_binary
from support.polling import eventually
from support.ports import free_port

DOCKER_REGISTRY = "/usr/bin/docker-registry"
USERNAME = "alice"
IMAGE = "demo/app:1.0"


@dataclass(frozen=True)
class ForeignRegistry:
    directory: Path
    port: int
    ca: Path  # the private CA that signed its certificate
    other_ca: Path  # a CA that did not
    password: str
    image: str = IMAGE

    @property
    def url(self) -> str:
        return f"https://localhost:{self.port}"

    def env(self) -> dict[str, str]:
        """The environment a user would run ``chaosregistry`` with: credentials in it."""
        return {
            **os.environ,
            "CHAOSREGISTRY_USERNAME": USERNAME,
            "CHAOSREGISTRY_PASSWORD": self.password,
        }


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def _make_ca(directory: Path, name: str, subject: str) -> None:
    _openssl(
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "30",
        "-keyout", f"{name}.key", "-out", f"{name}.pem", "-subj", subject,
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        cwd=directory,
    )  # fmt: skip


def _make_certificates(directory: Path) -> None:
    _make_ca(directory, "ca", "/CN=Private CA of a user")
    _make_ca(directory, "other-ca", "/CN=Someone else's CA")
    _openssl(
        "req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key",
        "-out", "server.csr", "-subj", "/CN=localhost",
        cwd=directory,
    )  # fmt: skip
    (directory / "ext.cnf").write_text(
        "subjectAltName=DNS:localhost\nextendedKeyUsage=serverAuth\n"
    )
    _openssl(
        "x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", "server.pem", "-days", "20", "-extfile", "ext.cnf",
        cwd=directory,
    )  # fmt: skip


def _config(directory: Path, port: int) -> Path:
    config = directory / "config.yml"
    config.write_text(
        json.dumps(  # JSON is YAML
            {
                "version": 0.1,
                "log": {"level": "info"},
                "storage": {
                    "filesystem": {"rootdirectory": str(directory / "data")},
                    "delete": {"enabled": True},
                },
                "http": {
                    "addr": f"127.0.0.1:{port}",
                    "secret": secrets.token_hex(16),
                    "tls": {
                        "certificate": str(directory / "server.pem"),
                        "key": str(directory / "server.key"),
                    },
                },
                "auth": {"htpasswd": {"realm": "demo", "path": str(directory / "htpasswd")}},
            }
        )
    )
    return config


def _push_image(registry: ForeignRegistry) -> None:
    crane = find_binary(
        "crane", env="CHAOSREGISTRY_CRANE", cached=CACHE / "crane-0.22.1/crane", on_path="crane"
    )
    directory = registry.directory
    env = {
        **os.environ,
        "DOCKER_CONFIG": str(directory / "docker"),
        "SSL_CERT_FILE": str(registry.ca),
    }
    host = f"localhost:{registry.port}"
    subprocess.run(
        [crane, "auth", "login", host, "-u", USERNAME, "--password-stdin"],
        input=registry.password,
        text=True,
        env=env,
        check=True,
        capture_output=True,
    )
    layers = []
    for index, size in enumerate((3_000_000, 1_000_000)):
        layer_dir = directory / f"layer{index}"
        (layer_dir / "app").mkdir(parents=True)
        (layer_dir / "app" / "blob").write_bytes(os.urandom(size))
        subprocess.run(["tar", "-C", str(layer_dir), "-cf", f"{layer_dir}.tar", "."], check=True)
        layers += ["-f", f"{layer_dir}.tar"]
    subprocess.run(
        [crane, "append", *layers, "-t", f"{host}/{registry.image}", "--platform", "linux/amd64"],
        env=env,
        check=True,
        capture_output=True,
    )


@contextmanager
def running_foreign_registry(directory: Path) -> Iterator[ForeignRegistry]:
    """Start docker-registry in ``directory`` (HTTPS, basic auth, an image pushed); stop it
    after."""
    directory.mkdir(parents=True, exist_ok=True)
    _make_certificates(directory)
    password = secrets.token_urlsafe(18)
    hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=5)).decode()
    (directory / "htpasswd").write_text(f"{USERNAME}:{hashed}\n")
    port = free_port()
    registry = ForeignRegistry(
        directory, port, directory / "ca.pem", directory / "other-ca.pem", password
    )
    with open(directory / "registry.log", "ab") as log:
        process = subprocess.Popen(
            [DOCKER_REGISTRY, "serve", str(_config(directory, port))],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        trusted = ssl.create_default_context(cafile=str(registry.ca))

        def answers() -> bool:
            try:
                status = httpx.get(f"{registry.url}/v2/", verify=trusted, timeout=1.0)
            except httpx.HTTPError:
                return False
            return status.status_code == 401

        eventually("docker-registry answers /v2/ with 401", answers, timeout=20)
        _push_image(registry)
        yield registry
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
