"""A real nginx with one TLS server per certificate fault, for tests of TLS inspection and errors.

One Debian nginx process (own prefix, pid, conf and logs in a temp dir, ``daemon off``) serves,
each on its own loopback port, a fake registry (``/v2/`` answers 200 with
``Docker-Distribution-Api-Version: registry/2.0``) behind:

``valid``        a leaf from the test CA, sent with the CA (a two-certificate chain), h2 + h1
``expired``      a leaf of the test CA whose validity ended 29 days ago
``wrong_host``   a leaf of the test CA for ``elsewhere.invalid`` only (not 127.0.0.1)
``untrusted``    a leaf from another CA, which no client here trusts
``h1_only``      the valid leaf, ``listen ... ssl`` without ``http2``
``tls13_only``   the valid leaf, ``ssl_protocols TLSv1.3``
``plain``        plain HTTP, for a TLS client to fail its handshake on

Certificates come from :mod:`chaosregistry.trust.pki` (the project's one PKI module). Test modules
load the ``tls_servers`` fixture with ``pytest_plugins = ["support.tls"]`` and import the rest;
that import comes first, so this module is not assertion-rewritten (PYTEST_DONT_REWRITE) and
checks with ``pytest.fail`` instead of ``assert``.
"""

import contextlib
import datetime
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from chaosregistry.trust.pki import Pki, ensure_pki, issue, server_spec
from support.ports import free_base_port

NGINX = Path("/usr/sbin/nginx")
HOST = "127.0.0.1"
SERVERS = ("valid", "expired", "wrong_host", "untrusted", "h1_only", "tls13_only", "plain")
EXPIRED_DAYS_AGO = 29
READY_TIMEOUT = 15.0


@dataclass(frozen=True)
class TlsServers:
    """The running nginx: ``ca_bundle`` is the test CA every client here trusts."""

    ports: dict[str, int]
    ca_bundle: Path
    directory: Path

    def url(self, name: str) -> str:
        scheme = "http" if name == "plain" else "https"
        return f"{scheme}://{HOST}:{self.ports[name]}"

    def https_url(self, name: str) -> str:
        """``https://`` even for the plain-HTTP port: a TLS client talking to it."""
        return f"https://{HOST}:{self.ports[name]}"


def make_certificates(directory: Path) -> tuple[Pki, Pki]:
    """(the test CA with its valid, expired and wrong-host leaves, another CA with its leaf)."""
    trusted = ensure_pki(directory / "ca", (server_spec("valid"),))
    ended = datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=EXPIRED_DAYS_AGO)
    issue(
        trusted,
        server_spec("expired", not_before=ended - datetime.timedelta(days=30), not_after=ended),
    )
    issue(trusted, server_spec("wrong_host", dns_names=("elsewhere.invalid",), ip_addresses=()))
    other = Pki(directory / "other-ca")
    issue(other, server_spec("untrusted"), ca_name="someone-else")
    return trusted, other


def _registry_location() -> str:
    return """        location /v2/ {
            default_type application/json;
            add_header Docker-Distribution-Api-Version registry/2.0 always;
            return 200 '{}';
        }"""


def _tls_server(
    port: int, cert: Path, key: Path, *, http2: bool = True, protocols: str = ""
) -> str:
    listen = f"listen {HOST}:{port} ssl{' http2' if http2 else ''};"
    only = f"\n        ssl_protocols {protocols};" if protocols else ""
    return f"""    server {{
        {listen}
        ssl_certificate {cert};
        ssl_certificate_key {key};{only}
{_registry_location()}
    }}"""


def nginx_config(directory: Path, ports: dict[str, int], trusted: Pki, other: Pki) -> str:
    """nginx.conf for the servers above (nginx 1.22: ``http2`` is a ``listen`` parameter)."""
    # nginx sends the chain its certificate file holds: the leaf then the CA.
    bundle = directory / "valid-with-ca.crt"
    bundle.write_bytes(trusted.cert("valid").read_bytes() + trusted.ca_cert.read_bytes())
    valid = (bundle, trusted.key("valid"))
    servers = [
        _tls_server(ports["valid"], *valid),
        _tls_server(ports["expired"], trusted.cert("expired"), trusted.key("expired")),
        _tls_server(ports["wrong_host"], trusted.cert("wrong_host"), trusted.key("wrong_host")),
        _tls_server(ports["untrusted"], other.cert("untrusted"), other.key("untrusted")),
        _tls_server(ports["h1_only"], *valid, http2=False),
        _tls_server(ports["tls13_only"], *valid, protocols="TLSv1.3"),
        f"""    server {{
        listen {HOST}:{ports["plain"]};
{_registry_location()}
    }}""",
    ]
    tmp = directory / "tmp"
    # As root, workers would run as nobody and could not enter pytest's 0700 temp dirs.
    user = "user root;\n" if os.geteuid() == 0 else ""
    body = "\n".join(servers)
    return f"""{user}daemon off;
worker_processes 1;
pid {directory / "nginx.pid"};
error_log {directory / "error.log"} info;
events {{
    worker_connections 64;
}}
http {{
    access_log {directory / "access.log"};
    client_body_temp_path {tmp / "client_body"};
    proxy_temp_path {tmp / "proxy"};
    fastcgi_temp_path {tmp / "fastcgi"};
    uwsgi_temp_path {tmp / "uwsgi"};
    scgi_temp_path {tmp / "scgi"};
{body}
}}
"""


def _accepts_tcp(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=0.5):
            return True
    except OSError:
        return False


def _stop(process: subprocess.Popen[bytes]) -> None:
    # Its own session: the group is nginx's master and worker, nothing else.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


@contextlib.contextmanager
def running_tls_servers(directory: Path) -> Iterator[TlsServers]:
    """Start the nginx above in ``directory``; it is stopped (whole group) however this ends."""
    if not NGINX.exists():
        pytest.fail(f"{NGINX} not found; run `make setup`")
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "tmp").mkdir(exist_ok=True)
    (directory / "logs").mkdir(exist_ok=True)  # nginx opens <prefix>/logs/error.log at start
    trusted, other = make_certificates(directory / "pki")
    base = free_base_port(span=len(SERVERS))
    ports = {name: base + offset for offset, name in enumerate(SERVERS)}
    conf = directory / "nginx.conf"
    conf.write_text(nginx_config(directory, ports, trusted, other))
    log = directory / "nginx.out"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(NGINX), "-p", str(directory), "-c", str(conf), "-e", str(directory / "error.log")],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + READY_TIMEOUT
        while not all(_accepts_tcp(port) for port in ports.values()):
            if process.poll() is not None:
                errors = (directory / "error.log").read_text(errors="replace")[-2000:]
                pytest.fail(f"nginx exited with {process.returncode}: {errors}")
            if time.monotonic() > deadline:
                pytest.fail(f"nginx did not listen on {ports} within {READY_TIMEOUT}s")
            time.sleep(0.05)
        yield TlsServers(ports, trusted.ca_cert, directory)
    finally:
        _stop(process)


@pytest.fixture(scope="module")
def tls_servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsServers]:
    """The nginx above, started once per test module and always stopped."""
    directory = tmp_path_factory.mktemp("tls-servers")
    with running_tls_servers(directory) as servers:
        yield servers
    shutil.rmtree(directory / "tmp", ignore_errors=True)
