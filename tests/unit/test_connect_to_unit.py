"""Connections opened at a fault proxy's address still speak TLS to the registry's own name.

A loopback TLS server whose certificate names only ``registry.invalid`` stands in for the proxy's
listener: the client asks for ``https://registry.invalid``, connects to the loopback port, sends
that name as SNI and verifies the certificate against it; a URL the certificate does not name
fails its host-name check the same way through the same address.
"""

import socket
import ssl
import threading
from collections.abc import Iterator

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
