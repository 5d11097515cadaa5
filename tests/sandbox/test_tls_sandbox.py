"""registry_tls and the pull path against a real nginx serving each certificate fault."""

import ssl
from pathlib import Path
from typing import Any

import pytest
from support.ports import free_port
from support.tls import EXPIRED_DAYS_AGO, TlsServers

from chaosregistry.errors import PullError
from chaosregistry.oci.client import RegistryClient
from chaosregistry.oci.transport import StdlibTransport
from chaosregistry.probes.registry import registry_reachable, registry_tls

pytest_plugins = ["support.tls"]


@pytest.fixture(autouse=True)
def no_sandbox(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # resolve_target falls back to a sandbox's endpoints and credentials: keep these tests to
    # the URLs they name.
    monkeypatch.delenv("CHAOSREGISTRY_SANDBOX_DIR", raising=False)
    monkeypatch.chdir(tmp_path)


def _inspect(servers: TlsServers, name: str) -> dict[str, Any]:
    return registry_tls(
        target=servers.https_url(name),
        configuration={"registry_ca_bundle": str(servers.ca_bundle)},
    )


def _ping_error(servers: TlsServers, name: str, *, http2: bool = False) -> dict[str, Any]:
    client = RegistryClient(
        servers.https_url(name), verify=str(servers.ca_bundle), timeout=5, http2=http2
    )
    try:
        with pytest.raises(PullError) as raised:
            client.ping()
    finally:
        client.close()
    return raised.value.as_dict()


def test_the_valid_server_is_described_and_verified(tls_servers: TlsServers) -> None:
    result = _inspect(tls_servers, "valid")
    assert result["error"] is None
    assert (result["tls"], result["trusted"], result["verified"]) == (True, True, True)
    assert result["hostname_match"] is True
    # Debian's nginx 1.22 enables TLS 1.2 by default, not 1.3 (1.23.4 added it).
    assert result["tls_version"] == "TLSv1.2"
    assert result["cipher"]
    assert result["alpn_offered"] == ["h2", "http/1.1"] and result["h2"] is True
    leaf = result["leaf"]
    assert leaf["issuer"] == "CN=chaosregistry-ca"
    assert leaf["sans"] == ["localhost", "127.0.0.1"]
    assert 364.9 < leaf["days_left"] <= 365.0
    # The server's certificate file holds the leaf then the CA: both are reported, leaf first.
    assert [entry["subject"] for entry in result["chain"]] == [
        "CN=localhost",
        "CN=chaosregistry-ca",
    ]
    assert result["chain"][1]["days_left"] > 3600
    assert result["min_days_left"] == leaf["days_left"]
    assert 0 < result["seconds"] < 5


def test_h1_only_server_accepts_http11_and_refuses_h2(tls_servers: TlsServers) -> None:
    result = _inspect(tls_servers, "h1_only")
    assert result["alpn_offered"] == ["http/1.1"]
    assert result["h2"] is False
    assert result["verified"] is True and result["error"] is None


def test_tls13_only_server_negotiates_tls13(tls_servers: TlsServers) -> None:
    result = _inspect(tls_servers, "tls13_only")
    assert result["tls_version"] == "TLSv1.3"
    assert result["cipher"].startswith("TLS_")  # TLS 1.3 suites carry that prefix
    assert result["verified"] is True


def test_expired_certificate_is_described_with_negative_days_left(tls_servers: TlsServers) -> None:
    result = _inspect(tls_servers, "expired")
    assert result["verified"] is False and result["trusted"] is False
    assert result["hostname_match"] is True
    assert -EXPIRED_DAYS_AGO - 0.1 < result["leaf"]["days_left"] < -EXPIRED_DAYS_AGO + 0.1
    assert result["min_days_left"] == result["leaf"]["days_left"]
    assert result["error"]["class"] == "tls"
    assert result["error"]["detail"] == {"reason": "expired"}


def test_wrong_host_certificate_is_trusted_but_does_not_match(tls_servers: TlsServers) -> None:
    result = _inspect(tls_servers, "wrong_host")
    assert result["trusted"] is True
    assert result["hostname_match"] is False
    assert result["verified"] is False
    assert result["leaf"]["sans"] == ["elsewhere.invalid"]
    assert result["error"]["detail"] == {"reason": "hostname-mismatch"}


def test_untrusted_ca_is_reported_as_unknown_ca(tls_servers: TlsServers) -> None:
    result = _inspect(tls_servers, "untrusted")
    assert result["trusted"] is False and result["verified"] is False
    assert result["hostname_match"] is True  # the name is right; only the issuer is unknown
    assert result["leaf"]["issuer"] == "CN=someone-else"
    assert result["error"]["class"] == "tls"
    assert result["error"]["detail"] == {"reason": "unknown-ca"}


def test_plain_http_port_is_a_handshake_failure_with_no_facts(tls_servers: TlsServers) -> None:
    result = _inspect(tls_servers, "plain")
    assert result["error"]["class"] == "tls"
    assert result["error"]["detail"] == {"reason": "handshake"}
    assert result["leaf"] is None and result["tls_version"] is None


def test_plain_http_url_reports_no_tls_and_no_error(tls_servers: TlsServers) -> None:
    result = registry_tls(target=tls_servers.url("plain"))
    assert result["tls"] is False
    assert result["error"] is None and result["verified"] is False


def test_without_the_ca_bundle_the_valid_server_is_unknown_ca(tls_servers: TlsServers) -> None:
    # No registry_ca_bundle: the system CAs, which never signed the test CA.
    result = registry_tls(target=tls_servers.https_url("valid"))
    assert result["verified"] is False
    assert result["error"]["detail"] == {"reason": "unknown-ca"}
    assert result["leaf"]["days_left"] > 364


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("expired", "expired"),
        ("wrong_host", "hostname-mismatch"),
        ("untrusted", "unknown-ca"),
        ("plain", "handshake"),
    ],
)
def test_pull_client_classifies_each_certificate_fault(
    tls_servers: TlsServers, name: str, reason: str
) -> None:
    error = _ping_error(tls_servers, name)
    assert error["class"] == "tls", error
    assert error["detail"] == {"reason": reason}


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("expired", "expired"),
        ("wrong_host", "hostname-mismatch"),
        ("untrusted", "unknown-ca"),
        ("plain", "handshake"),
    ],
)
def test_http2_driver_classifies_each_certificate_fault_alike(
    tls_servers: TlsServers, name: str, reason: str
) -> None:
    # libcurl verifies (OpenSSL's verify code, its own host name check); the one table names
    # the reason exactly as for the HTTP/1.1 transport above.
    error = _ping_error(tls_servers, name, http2=True)
    assert error["class"] == "tls", error
    assert error["detail"] == {"reason": reason}


def test_http2_driver_talks_h2_to_the_valid_server_and_h1_to_an_h1_only_one(
    tls_servers: TlsServers,
) -> None:
    for name, version in (("valid", "HTTP/2"), ("h1_only", "HTTP/1.1")):
        with RegistryClient(
            tls_servers.https_url(name), verify=str(tls_servers.ca_bundle), http2=True
        ) as client:
            client.ping()
            assert client.http_version == version, name


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("expired", "expired"),
        ("wrong_host", "hostname-mismatch"),
        ("untrusted", "unknown-ca"),
        ("plain", "handshake"),
    ],
)
def test_registry_reachable_reports_tls_not_refused(
    tls_servers: TlsServers, name: str, reason: str
) -> None:
    result = registry_reachable(
        target=tls_servers.https_url(name),
        configuration={"registry_ca_bundle": str(tls_servers.ca_bundle)},
    )
    assert result["reachable"] is False
    assert result["error"]["class"] == "tls"
    assert result["error"]["detail"] == {"reason": reason}


def test_registry_reachable_reaches_the_valid_server(tls_servers: TlsServers) -> None:
    # The other half of the cases above: the same client and CA bundle do get through.
    result = registry_reachable(
        target=tls_servers.https_url("valid"),
        configuration={"registry_ca_bundle": str(tls_servers.ca_bundle)},
    )
    assert result["reachable"] is True, result["error"]
    assert result["api_version"] == "registry/2.0"


def _client_up_to_tls12(servers: TlsServers, name: str) -> RegistryClient:
    context = ssl.create_default_context(cafile=str(servers.ca_bundle))
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    return RegistryClient(
        servers.https_url(name),
        verify=str(servers.ca_bundle),
        timeout=5,
        transport=StdlibTransport(ssl_context=context, max_connections=1),
    )


def test_a_tls12_client_fails_its_handshake_with_a_tls13_only_server(
    tls_servers: TlsServers,
) -> None:
    with (
        _client_up_to_tls12(tls_servers, "tls13_only") as client,
        pytest.raises(PullError) as raised,
    ):
        client.ping()
    assert raised.value.as_dict()["class"] == "tls"
    assert raised.value.detail == {"reason": "handshake"}
    # The same client pings a server that still speaks TLS 1.2: the version is the cause.
    with _client_up_to_tls12(tls_servers, "valid") as client:
        assert client.ping().status == 200


def test_a_closed_port_is_refused_not_tls() -> None:
    # Nothing listens there: no handshake was ever attempted, so the class must not be tls.
    port = free_port()
    result = registry_tls(target=f"https://127.0.0.1:{port}")
    assert result["error"]["class"] == "refused"
    assert result["leaf"] is None
