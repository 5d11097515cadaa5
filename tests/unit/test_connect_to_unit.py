"""Connections opened at a fault proxy's address still speak TLS to the registry's own name.

A loopback TLS server whose certificate names only ``registry.invalid`` stands in for the proxy's
listener: the client asks for ``https://registry.invalid``, connects to the loopback port, sends
that name as SNI and verifies the certificate against it; a URL the certificate does not name
fails its host-name check the same way through the same address. The same holds for the pull
load's geventhttpclient connections (``loadgen.connect``).
"""

import socket
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from chaosregistry.errors import ErrorClass, PullError, TlsReason
from chaosregistry.oci.client import RegistryClient
from chaosregistry.trust.pki import Pki, ensure_pki, server_spec
from chaosregistry.trust.tlsinspect import Endpoint, inspect

NAME = "registry.invalid"
ANSWER = (
    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n"
    b"Docker-Distribution-API-Version: registry/2.0\r\n\r\n{}"
)


class Listener:
    def __init__(self, pki: Pki) -> None:
        self.names: list[str | None] = []
        self.requests: list[bytes] = []  # each request's head, as received
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(pki.cert("registry"), pki.key("registry"))
        # HTTP/1.1 only: an HTTP/2 client falls back to it, as against a registry without h2.
        context.set_alpn_protocols(["http/1.1"])
        context.sni_callback = lambda sock, name, ctx: self.names.append(name)  # type: ignore[assignment,misc]
        self._context = context
        self._socket = socket.socket()
        self._socket.bind(("127.0.0.1", 0))
        self._socket.listen(8)
        self.port = int(self._socket.getsockname()[1])
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                raw, _ = self._socket.accept()
            except OSError:
                return
            try:
                with self._context.wrap_socket(raw, server_side=True) as conn:
                    data = b""
                    while b"\r\n\r\n" not in data:
                        chunk = conn.recv(4096)
                        if not chunk:
                            break
                        data += chunk
                    if data:
                        self.requests.append(data)
                        conn.sendall(ANSWER)
            except (ssl.SSLError, OSError):
                raw.close()

    def close(self) -> None:
        self._socket.close()


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    directory = tmp_path_factory.mktemp("pki")
    return ensure_pki(directory, (server_spec("registry", dns_names=(NAME,), ip_addresses=()),))


@pytest.fixture
def listener(pki: Pki) -> Iterator[Listener]:
    server = Listener(pki)
    yield server
    server.close()


def test_the_client_connects_to_the_listener_and_verifies_the_registrys_name(
    pki: Pki, listener: Listener
) -> None:
    with RegistryClient(
        f"https://{NAME}", verify=str(pki.ca_cert), connect_to=("127.0.0.1", listener.port)
    ) as client:
        ping = client.ping()
    assert ping.status == 200
    assert listener.names == [NAME]


def test_a_name_the_certificate_lacks_fails_its_check_through_the_same_listener(
    pki: Pki, listener: Listener
) -> None:
    with (
        RegistryClient(
            "https://other.invalid",
            verify=str(pki.ca_cert),
            connect_to=("127.0.0.1", listener.port),
        ) as client,
        pytest.raises(PullError) as caught,
    ):
        client.ping()
    assert caught.value.error_class is ErrorClass.TLS
    assert caught.value.detail["reason"] == TlsReason.HOSTNAME_MISMATCH
    assert listener.names == ["other.invalid"]


def test_the_http2_transport_also_connects_to_the_listener_with_the_registrys_name(
    pki: Pki, listener: Listener
) -> None:
    with RegistryClient(
        f"https://{NAME}",
        verify=str(pki.ca_cert),
        http2=True,
        connect_to=("127.0.0.1", listener.port),
    ) as client:
        assert client.ping().status == 200
    assert listener.names == [NAME]


def test_tls_inspection_through_the_listener_checks_the_registrys_name(
    pki: Pki, listener: Listener
) -> None:
    facts = inspect(
        Endpoint(NAME, 443, ("127.0.0.1", listener.port)),
        verify=str(pki.ca_cert),
        timeout=5.0,
        what=f"https://{NAME}",
    )
    assert facts["verified"] is True and facts["hostname_match"] is True
    assert set(listener.names) == {NAME}


def test_the_loads_connections_go_to_the_listener_with_the_registrys_name_and_host(
    pki: Pki, listener: Listener
) -> None:
    import ssl as stdlib_ssl

    from chaosregistry.loadgen.connect import ConnectToClientPool, origin_of

    def context(*_: object, **__: object) -> stdlib_ssl.SSLContext:
        return stdlib_ssl.create_default_context(cafile=str(pki.ca_cert))

    pool = ConnectToClientPool(
        origin_of(f"https://{NAME}"),
        ("127.0.0.1", listener.port),
        ssl_context_factory=context,
        connection_timeout=5.0,
        network_timeout=5.0,
    )
    try:
        response = pool.get_client(f"https://{NAME}/v2/").get("/v2/")
        assert response.status_code == 200 and response.read() == b"{}"
    finally:
        pool.close()
    assert listener.names == [NAME]
    (request,) = listener.requests
    assert f"\r\nHost: {NAME}\r\n".encode() in request


def test_the_loads_connection_to_a_name_the_certificate_lacks_fails_its_check(
    pki: Pki, listener: Listener
) -> None:
    import ssl as stdlib_ssl

    from chaosregistry.loadgen import failures as wire
    from chaosregistry.loadgen.connect import ConnectToClientPool, origin_of

    def context(*_: object, **__: object) -> stdlib_ssl.SSLContext:
        return stdlib_ssl.create_default_context(cafile=str(pki.ca_cert))

    pool = ConnectToClientPool(
        origin_of("https://other.invalid:8443"),
        ("127.0.0.1", listener.port),
        ssl_context_factory=context,
        connection_timeout=5.0,
        network_timeout=5.0,
    )
    try:
        with pytest.raises(wire.WIRE_ERRORS) as caught:
            pool.get_client("https://other.invalid:8443/v2/").get("/v2/")
    finally:
        pool.close()
    failure = wire.from_exception(caught.value, "GET /v2/")
    assert failure.error_class is ErrorClass.TLS
    assert failure.detail["reason"] == TlsReason.HOSTNAME_MISMATCH
    assert listener.names == ["other.invalid"]
    assert listener.requests == []


def test_the_loads_other_origins_connect_directly() -> None:
    from chaosregistry.loadgen.connect import ConnectToClientPool, origin_of

    pool = ConnectToClientPool(origin_of("https://registry.invalid"), ("127.0.0.1", 1))
    try:
        redirected = pool.get_client("https://REGISTRY.invalid:443/v2/")
        storage = pool.get_client("https://storage.invalid/blob")
    finally:
        pool.close()
    assert (redirected.host, redirected.port) == ("127.0.0.1", 1)
    assert (storage.host, storage.port) == ("storage.invalid", 443)


def test_the_load_is_told_the_address_the_probes_connect_to(pki: Pki, tmp_path: Path) -> None:
    from chaosregistry.experiment.settings import parse_settings
    from chaosregistry.loadgen.command import locust_command
    from chaosregistry.loadgen.parameters import LoadParameters

    parameters = LoadParameters.check(
        users=1, spawn_rate=1, duration=5, processes=1, target="registry", mode="warm",
        platform="linux/amd64", verify=True, blob_concurrency=3, fresh_images=1,
    )  # fmt: skip
    configuration = {"registry_url": f"https://{NAME}:5000", "registry_ca_bundle": str(pki.ca_cert)}
    direct = parse_settings(configuration).registry.resolve({})
    assert "--connect-to" not in locust_command(parameters, direct, tmp_path, "tag", None)

    configuration["fault_proxy"] = {
        "listen": "127.0.0.1:26369",
        "api": "127.0.0.1:26368",
        "dir": str(tmp_path / "proxy"),
    }
    proxied = parse_settings(configuration).registry.resolve({})
    command = locust_command(parameters, proxied, tmp_path, "tag", None)
    assert proxied.connect_to == ("127.0.0.1", 26369)
    assert command[command.index("--connect-to") + 1] == "127.0.0.1:26369"
    assert command[command.index("--host") + 1] == f"https://{NAME}:5000"
