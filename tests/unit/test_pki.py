"""The shared PKI makes certificates that Python's own TLS stack accepts or refuses as named."""

import datetime
import socket
import ssl
import threading
from pathlib import Path

import pytest

from chaosregistry.trust.pki import Pki, ensure_pki, issue, server_spec


def _handshake(pki: Pki, name: str, ca_file: Path, server_hostname: str) -> None:
    """One real TLS handshake on loopback: a server with ``name``'s pair, a verifying client."""
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(pki.cert(name), pki.key(name))
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve() -> None:
        conn, _ = listener.accept()
        try:
            with server_context.wrap_socket(conn, server_side=True) as tls:
                tls.recv(1)
        except (ssl.SSLError, OSError):
            pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    client_context = ssl.create_default_context(cafile=str(ca_file))
    try:
        with (
            socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
            client_context.wrap_socket(raw, server_hostname=server_hostname) as tls,
        ):
            tls.sendall(b"x")
    finally:
        thread.join(5)
        listener.close()


def test_a_server_certificate_for_loopback_verifies_by_ip_and_by_name(tmp_path: Path) -> None:
    pki = ensure_pki(tmp_path / "pki", (server_spec("registry"),))
    _handshake(pki, "registry", pki.ca_cert, "127.0.0.1")
    _handshake(pki, "registry", pki.ca_cert, "localhost")


def test_expired_wrong_host_and_untrusted_certificates_are_refused(tmp_path: Path) -> None:
    pki = ensure_pki(tmp_path / "pki", ())
    past = datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=30)
    issue(pki, server_spec("expired", not_before=past, not_after=past + datetime.timedelta(1)))
    issue(pki, server_spec("wrong-host", dns_names=("elsewhere.invalid",), ip_addresses=()))
    other = Pki(tmp_path / "other")
    issue(other, server_spec("untrusted"), ca_name="someone-else")

    with pytest.raises(ssl.SSLCertVerificationError, match="expired"):
        _handshake(pki, "expired", pki.ca_cert, "127.0.0.1")
    with pytest.raises(ssl.SSLCertVerificationError, match="IP address mismatch"):
        _handshake(pki, "wrong-host", pki.ca_cert, "127.0.0.1")
    with pytest.raises(ssl.SSLCertVerificationError, match="unable to get local issuer"):
        _handshake(other, "untrusted", pki.ca_cert, "127.0.0.1")


def test_ensure_pki_keeps_the_ca_and_leaves_it_finds(tmp_path: Path) -> None:
    first = ensure_pki(tmp_path, (server_spec("registry"),))
    ca, leaf = first.ca_cert.read_bytes(), first.cert("registry").read_bytes()
    again = ensure_pki(tmp_path, (server_spec("registry"),))
    assert again.ca_cert.read_bytes() == ca
    assert again.cert("registry").read_bytes() == leaf
    assert oct(again.key("registry").stat().st_mode & 0o777) == "0o600"
