"""The sandbox's HTTPS: a private CA, HTTP/2 by ALPN, and every pull path over TLS.

Against the real parts: nginx (registry, rate-limited twin, mirror upstream), Distribution's
mirror serving TLS itself and pulling through over TLS, the token server behind TLS, and the
plain-HTTP listener kept for comparisons.
"""

import socket
import ssl
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from cryptography import x509
from support.sandbox import SandboxInfo

from chaosregistry.errors import PullError
from chaosregistry.experiment.settings import resolve_target
from chaosregistry.oci import ImageReference, RegistryClient, pull
from chaosregistry.oci.auth import Credentials
from chaosregistry.probes import pull as pull_probes
from chaosregistry.sandbox import up
from chaosregistry.sandbox.seed import push_unique_image

# Every endpoint a client (or the mirror) talks to, and what ALPN must pick there. The token
# server is Python's http.server, which speaks HTTP/1.1 only, so it offers nothing else.
HTTP2_ENDPOINTS = (
    "registry",
    "registry_direct",
    "registry_ratelimited",
    "mirror",
    "mirror_direct",
    "mirror_upstream",
    "token_registry",
)
HTTP1_ENDPOINTS = ("token_realm",)


def _handshake(url: str, context: ssl.SSLContext) -> tuple[str | None, str | None]:
    """(ALPN protocol, TLS version) after a handshake with ``url``'s host and port."""
    parts = urlsplit(url)
    assert parts.hostname is not None and parts.port is not None
    with (
        socket.create_connection((parts.hostname, parts.port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname=parts.hostname) as tls,
    ):
        return tls.selected_alpn_protocol(), tls.version()


def _offering_h2(context: ssl.SSLContext) -> ssl.SSLContext:
    context.set_alpn_protocols(["h2", "http/1.1"])
    return context


def _creds(sandbox: SandboxInfo) -> Credentials:
    return Credentials(sandbox.username, sandbox.password)


def test_endpoints_publish_https_urls_and_the_ca_file(sandbox: SandboxInfo) -> None:
    endpoints = sandbox.endpoints
    ca = x509.load_pem_x509_certificate(Path(sandbox.ca_file).read_bytes())
    assert ca.subject.rfc4514_string() == "CN=chaosregistry-sandbox-ca"
    assert Path(sandbox.ca_file) == sandbox.run_dir / "pki" / "ca.crt"
    for name in (*HTTP2_ENDPOINTS, *HTTP1_ENDPOINTS, "token_stats_url"):
        assert endpoints[name].startswith("https://127.0.0.1:"), name
    assert endpoints["registry_http"].startswith("http://127.0.0.1:")


@pytest.mark.parametrize("name", HTTP2_ENDPOINTS)
def test_every_client_facing_endpoint_negotiates_h2_verified_by_the_sandbox_ca(
    sandbox: SandboxInfo, name: str
) -> None:
    protocol, version = _handshake(sandbox.endpoints[name], _offering_h2(sandbox.tls))
    assert protocol == "h2", name
    assert version in ("TLSv1.2", "TLSv1.3")


def test_the_token_server_speaks_tls_with_http1_only(sandbox: SandboxInfo) -> None:
    protocol, _ = _handshake(sandbox.endpoints["token_realm"], _offering_h2(sandbox.tls))
    assert protocol == "http/1.1"


@pytest.mark.parametrize("name", (*HTTP2_ENDPOINTS, *HTTP1_ENDPOINTS))
def test_every_https_endpoint_fails_verification_without_the_sandbox_ca(
    sandbox: SandboxInfo, name: str
) -> None:
    system_cas = _offering_h2(ssl.create_default_context())
    with pytest.raises(ssl.SSLCertVerificationError, match="unable to get local issuer"):
        _handshake(sandbox.endpoints[name], system_cas)


def test_the_serving_certificate_names_localhost_too(sandbox: SandboxInfo) -> None:
    port = urlsplit(sandbox.endpoints["registry_direct"]).port
    protocol, _ = _handshake(f"https://localhost:{port}", _offering_h2(sandbox.tls))
    assert protocol == "h2"


def test_a_second_up_keeps_the_ca_clients_were_told_to_trust(sandbox: SandboxInfo) -> None:
    pki = sandbox.run_dir / "pki"

    def files() -> dict[str, bytes]:
        # Files only: certificate faults keep a CA of their own in a subdirectory.
        return {path.name: path.read_bytes() for path in pki.iterdir() if path.is_file()}

    before = files()
    assert {"ca.crt", "ca.key"} <= set(before)
    up(sandbox.run_dir, base_port=sandbox.endpoints["base_port"], progress=lambda _line: None)
    assert files() == before


def test_a_pull_over_https_with_basic_auth(sandbox: SandboxInfo) -> None:
    entry = sandbox.image("shop/frontend", "latest")
    with RegistryClient(
        sandbox.endpoints["registry"], credentials=_creds(sandbox), verify=sandbox.ca_file
    ) as client:
        result = pull(client, ImageReference.parse("shop/frontend:latest"))
    assert result.ok, result.error
    assert result.digest == entry["digest"]
    assert result.bytes == entry["total_bytes"]


def test_the_mirror_pulls_through_over_tls_an_image_it_never_cached(
    sandbox: SandboxInfo,
) -> None:
    # Pushed to a replica just now: the mirror must fetch it over HTTPS from its upstream
    # (through the mirror-upstream hop to nginx), answering the bearer challenge on the way.
    entry = push_unique_image(
        sandbox.endpoints["replicas"][0]["url"], _creds(sandbox), "scratch/tls-through", "v1"
    )
    stats = sandbox.endpoints["token_stats_url"]
    issued_before = httpx.get(stats, verify=sandbox.tls).json()["tokens_issued"]
    with RegistryClient(sandbox.endpoints["mirror"], verify=sandbox.ca_file) as client:
        result = pull(client, ImageReference.parse("scratch/tls-through:v1"))
    assert result.ok, result.error
    assert result.digest == entry["digest"]
    assert result.bytes == entry["total_bytes"]
    assert httpx.get(stats, verify=sandbox.tls).json()["tokens_issued"] > issued_before


def test_bearer_tokens_over_tls_on_the_token_registry(sandbox: SandboxInfo) -> None:
    entry = sandbox.image("tiny/hello", "latest")
    with RegistryClient(
        sandbox.endpoints["token_registry"], credentials=_creds(sandbox), verify=sandbox.ca_file
    ) as client:
        result = pull(client, ImageReference.parse("tiny/hello:latest"))
    assert result.ok, result.error
    assert result.digest == entry["digest"]
    with httpx.Client(verify=sandbox.tls, trust_env=False, timeout=10.0) as raw:
        challenge = raw.get(sandbox.endpoints["token_registry"] + "/v2/").headers
    assert f'realm="{sandbox.endpoints["token_realm"]}"' in challenge["WWW-Authenticate"]


def test_the_plain_http_listener_still_pulls_with_the_same_auth(sandbox: SandboxInfo) -> None:
    entry = sandbox.image("tiny/hello", "latest")
    url = sandbox.endpoints["registry_http"]
    with httpx.Client(trust_env=False, timeout=10.0) as raw:
        assert raw.get(url + "/v2/").status_code == 401
    with RegistryClient(url, credentials=_creds(sandbox)) as client:
        result = pull(client, ImageReference.parse("tiny/hello:latest"))
    assert result.ok, result.error
    assert result.digest == entry["digest"]


def test_the_ratelimited_twin_answers_429_over_https(sandbox: SandboxInfo) -> None:
    url = sandbox.endpoints["registry_ratelimited"] + "/v2/"
    with httpx.Client(verify=sandbox.tls, trust_env=False, timeout=10.0) as client:
        responses = [client.get(url) for _ in range(15)]
    limited = [response for response in responses if response.status_code == 429]
    assert limited, [response.status_code for response in responses]
    assert limited[0].url.scheme == "https"
    assert int(limited[0].headers["Retry-After"]) > 0


@pytest.mark.parametrize("target", ["registry", "mirror", "token_registry", "registry_direct"])
def test_resolve_target_trusts_the_sandbox_ca_for_its_endpoints(
    sandbox: SandboxInfo, target: str
) -> None:
    configuration = {"sandbox_dir": str(sandbox.run_dir)}
    assert resolve_target(configuration, None, target).verify == sandbox.ca_file
    # The same URL given by value, and under the name localhost, is still the sandbox's.
    url = sandbox.endpoints[target]
    assert resolve_target(configuration, None, url).verify == sandbox.ca_file
    localhost = url.replace("127.0.0.1", "localhost")
    assert resolve_target(configuration, None, localhost).verify == sandbox.ca_file


def test_resolve_target_keeps_explicit_tls_settings_and_other_hosts_on_system_cas(
    sandbox: SandboxInfo, tmp_path: Path
) -> None:
    configuration = {"sandbox_dir": str(sandbox.run_dir)}
    bundle = tmp_path / "bundle.pem"
    bundle.write_bytes(Path(sandbox.ca_file).read_bytes())
    with_bundle = {**configuration, "registry_ca_bundle": str(bundle)}
    assert resolve_target(with_bundle, None).verify == str(bundle)
    assert resolve_target({**configuration, "registry_verify_tls": False}, None).verify is False
    other = "https://127.0.0.1:1"
    assert resolve_target(configuration, None, other).verify is True


def test_the_sandbox_credentials_go_to_the_sandbox_only(sandbox: SandboxInfo) -> None:
    """A registry elsewhere, named without secrets while a sandbox is around, gets none of the
    sandbox's credentials (they would be sent to it)."""
    configuration = {"sandbox_dir": str(sandbox.run_dir)}
    ours = resolve_target(configuration, None, "registry").credentials
    assert ours is not None and ours.password == sandbox.password
    for url in ("https://registry.example.invalid", "https://127.0.0.1:1"):
        elsewhere = resolve_target({**configuration, "registry_url": url}, None)
        assert elsewhere.url == url and elsewhere.credentials is None


def test_the_pull_probe_uses_the_sandbox_ca_without_being_told(sandbox: SandboxInfo) -> None:
    result = pull_probes.pull_image(
        "tiny/hello:latest", target="mirror", configuration={"sandbox_dir": str(sandbox.run_dir)}
    )
    assert result["ok"], result["error"]
    assert result["registry"] == sandbox.endpoints["mirror"]


@pytest.mark.parametrize(
    ("target", "http2", "expected"),
    [
        ("registry", False, "HTTP/1.1"),
        ("registry", True, "HTTP/2"),
        ("mirror", True, "HTTP/2"),  # Distribution's own TLS, through the hop
        ("registry_http", True, "HTTP/1.1"),  # plain HTTP: no ALPN, so HTTP/1.1 whatever we ask
    ],
)
def test_pull_probes_report_the_http_version_actually_negotiated(
    sandbox: SandboxInfo, target: str, http2: bool, expected: str
) -> None:
    configuration = {"sandbox_dir": str(sandbox.run_dir)}
    if target == "registry_http":
        configuration["registry_http_url"] = sandbox.endpoints["registry_http"]
    one = pull_probes.pull_image(
        "shop/api:latest", target=target, http2=http2, configuration=configuration
    )
    assert one["ok"], one["error"]
    assert one["verified"] and one["bytes"] > 0
    assert one["http_version"] == expected
    many = pull_probes.pull_latency(
        "shop/api:latest", count=3, concurrency=2, target=target, http2=http2,
        configuration=configuration,
    )  # fmt: skip
    assert many["succeeded"] == 3 and many["http_version"] == expected


def test_http2_requests_from_many_threads_at_once_all_succeed(sandbox: SandboxInfo) -> None:
    """A shared HTTP/2 connection broke under threads with httpcore (frames out of order, the
    server drops it); libcurl handles are not thread-safe either: the HTTP/2 transport keeps
    one multi handle (and connection) per thread, so none of these fails."""
    from concurrent.futures import ThreadPoolExecutor

    ca = sandbox.endpoints["ca_file"]
    with RegistryClient(
        sandbox.endpoints["token_registry"], credentials=_creds(sandbox), verify=ca, http2=True
    ) as client:

        def requests(_: int) -> list[str | None]:
            outcomes: list[str | None] = []
            for _ in range(40):
                try:
                    client.get_manifest("tiny/hello", "latest")
                    outcomes.append(None)
                except PullError as exc:
                    outcomes.append(str(exc))
            return outcomes

        with ThreadPoolExecutor(max_workers=12) as pool:
            outcomes = [o for batch in pool.map(requests, range(12)) for o in batch]
        assert client.http_version == "HTTP/2"
    failed = [o for o in outcomes if o is not None]
    assert not failed, f"{len(failed)} of {len(outcomes)} failed, e.g. {failed[0]}"
