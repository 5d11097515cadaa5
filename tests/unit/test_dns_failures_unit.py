"""A host name that does not resolve is ``dns`` (with its reason), not ``refused``.

No test here asks a DNS server: this machine's resolver (``/etc/resolv.conf``) is off the
loopback, so even a name under ``.invalid`` (RFC 6761) would send a query off the box. The
resolver's own error is made by the C library instead: ``getaddrinfo`` with ``AI_NUMERICHOST``
answers a non-numeric name at once with ``EAI_NONAME`` ("Name or service not known"), the very
``socket.gaierror`` an NXDOMAIN gives, without a packet. ``numeric_only_resolver`` puts that in
place of the ``socket.getaddrinfo`` the standard library's and httpcore's connects call, so the
real drivers raise, wrap and classify it end to end.
"""

import errno
import socket
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from geventhttpclient.useragent import RetriesExceeded
from prometheus_client import CollectorRegistry

from chaosregistry.errors import DnsReason, ErrorClass, PullError
from chaosregistry.gameday.verdict import BEFORE_REGISTRY
from chaosregistry.loadgen import failures as locust_failures
from chaosregistry.observability.sli_exporter import SliMetrics
from chaosregistry.oci import ImageReference, RegistryClient, pull
from chaosregistry.oci.auth import Credentials
from chaosregistry.oci.failures import dns_failure, from_exception

UNRESOLVABLE = "registry.invalid"


def resolver_error(host: str = UNRESOLVABLE) -> socket.gaierror:
    """The C library's real answer for a name it may not look up (no query is sent)."""
    try:
        socket.getaddrinfo(host, 443, flags=socket.AI_NUMERICHOST)
    except socket.gaierror as exc:
        return exc
    raise AssertionError(f"{host} resolved as a numeric address")


@pytest.fixture
def numeric_only_resolver(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    real = socket.getaddrinfo

    def numeric_only(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        flags = kwargs.pop("flags", args[3] if len(args) > 3 else 0)
        family = kwargs.pop("family", args[0] if args else 0)
        kind = kwargs.pop("type", args[1] if len(args) > 1 else 0)
        proto = kwargs.pop("proto", args[2] if len(args) > 2 else 0)
        return real(host, port, family, kind, proto, flags | socket.AI_NUMERICHOST)

    monkeypatch.setattr(socket, "getaddrinfo", numeric_only)
    yield


def test_the_resolver_error_is_the_one_an_unknown_name_gives() -> None:
    error = resolver_error()
    assert error.errno == socket.EAI_NONAME
    assert error.strerror == "Name or service not known"


def test_a_pull_from_a_name_that_does_not_resolve_is_dns_not_refused(
    numeric_only_resolver: None,
) -> None:
    # HTTP/1.1 only: the HTTP/2 driver (libcurl) resolves in C, past this fixture, so it would
    # ask the machine's resolver; the namespace test below covers it without a packet leaving.
    with RegistryClient(f"https://{UNRESOLVABLE}:5000", timeout=5) as client:
        result = pull(client, ImageReference.parse("shop/api:1.0"))
    assert result.error is not None
    assert result.error.error_class is ErrorClass.DNS, result.error
    assert result.error.detail == {"reason": "name-not-known"}
    assert "Name or service not known" in str(result.error)
    assert result.error.as_dict()["class"] == "dns"


def test_a_closed_port_on_a_name_that_resolves_stays_refused() -> None:
    """The dns rule must not swallow the connect errors it sits in front of."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with RegistryClient(f"http://127.0.0.1:{port}", timeout=5) as client:
        result = pull(client, ImageReference.parse("shop/api:1.0"))
    assert result.error is not None and result.error.error_class is ErrorClass.REFUSED


def _gaierror(code: int, words: str) -> socket.gaierror:
    return socket.gaierror(code, words)


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (_gaierror(socket.EAI_NONAME, "Name or service not known"), DnsReason.NAME_NOT_KNOWN),
        (
            _gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution"),
            DnsReason.TEMPORARY,
        ),
        (
            _gaierror(socket.EAI_FAIL, "Non-recoverable failure in name resolution"),
            DnsReason.FAILED,
        ),
        (
            _gaierror(socket.EAI_NODATA, "No address associated with hostname"),
            DnsReason.NO_ADDRESS,
        ),
    ],
)
def test_each_resolver_code_gives_its_reason_however_it_is_wrapped(
    error: socket.gaierror, reason: DnsReason
) -> None:
    # As httpx raises it (httpx.ConnectError from httpcore.ConnectError from the gaierror).
    try:
        try:
            raise error
        except socket.gaierror as exc:
            raise httpx.ConnectError(str(exc)) from exc
    except httpx.ConnectError as wrapped:
        classified = from_exception(wrapped, "ping")
    assert classified.error_class is ErrorClass.DNS
    assert classified.detail["reason"] == str(reason)
    assert error.strerror in str(classified)
    assert dns_failure(error) == (reason, error.strerror)


def test_the_locust_user_classifies_the_resolver_error_as_the_probes_do() -> None:
    # gevent's resolvers raise socket.gaierror; geventhttpclient wraps it after its retries.
    wrapped = RetriesExceeded(f"https://{UNRESOLVABLE}/v2/", 1, original=resolver_error())
    load = locust_failures.from_exception(wrapped, "ping")
    assert load.error_class is ErrorClass.DNS
    assert load.detail == {"reason": "name-not-known"}
    bare = locust_failures.from_exception(resolver_error(), "ping")
    assert bare.error_class is ErrorClass.DNS


def realm_that_does_not_resolve() -> Callable[[httpx.Request], httpx.Response]:
    realm = f"https://auth.{UNRESOLVABLE}/token"
    challenge = f'Bearer realm="{realm}",service="reg",scope="repository:shop/api:pull"'

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.host == f"auth.{UNRESOLVABLE}":
            error = resolver_error(request.url.host)
            raise httpx.ConnectError(str(error), request=request) from error
        return httpx.Response(401, headers={"WWW-Authenticate": challenge})

    return handler


def test_a_token_realm_that_does_not_resolve_is_auth_unavailable_caused_by_dns() -> None:
    client = RegistryClient(
        "http://reg.test",
        credentials=Credentials("chaos", "secret"),
        transport=httpx.MockTransport(realm_that_does_not_resolve()),
    )
    with client, pytest.raises(PullError) as caught:
        client.get_manifest("shop/api", "1.0")
    assert caught.value.error_class is ErrorClass.AUTH_UNAVAILABLE
    assert caught.value.detail["cause"] == "dns"
    assert caught.value.detail["reason"] == "name-not-known"


def test_a_connect_error_without_a_resolver_cause_is_not_dns() -> None:
    refused = ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused")
    try:
        raise httpx.ConnectError("[Errno 111] Connection refused") from refused
    except httpx.ConnectError as exc:
        wrapped = exc
    assert from_exception(wrapped, "ping").error_class is ErrorClass.REFUSED
    assert dns_failure(wrapped) is None


def test_the_consumers_of_the_table_see_dns() -> None:
    """The SLI exporter's series and the verdict read the table, not lists of their own."""
    registry = CollectorRegistry()
    SliMetrics(registry)
    samples = {
        sample.labels.get("error_class")
        for metric in registry.collect()
        for sample in metric.samples
    }
    assert "dns" in samples
    # A hypothesis whose every pull failed to resolve never reached the registry.
    assert ErrorClass.DNS.value in BEFORE_REGISTRY


NO_NETWORK_SCRIPT = """
import json, sys
from chaosregistry.errors import PullError
from chaosregistry.oci import RegistryClient
seen = {}
for http2 in (False, True):
    try:
        with RegistryClient("https://registry.invalid", http2=http2, timeout=5) as client:
            client.get_manifest("team/app", "v1")
    except PullError as exc:
        seen["h2" if http2 else "h1"] = exc.as_dict()
print(json.dumps(seen))
"""


def test_a_real_lookup_that_fails_is_dns_on_both_drivers() -> None:
    """A real resolver failure, not a made one: in a network namespace of its own (``unshare
    --net``: only a loopback, which is down) the machine's resolver cannot be reached, so the
    lookup fails inside the C library (HTTP/1.1) and inside libcurl (HTTP/2) without a packet
    leaving the namespace."""
    import json
    import subprocess
    import sys

    done = subprocess.run(
        ["unshare", "--net", sys.executable, "-c", NO_NETWORK_SCRIPT],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    seen = json.loads(done.stdout)
    assert seen["h1"]["class"] == seen["h2"]["class"] == ErrorClass.DNS.value
    # The C library says why (no resolver answered); libcurl does not, so its reason claims
    # nothing more than "failed".
    assert seen["h1"]["detail"]["reason"] == DnsReason.TEMPORARY.value
    assert seen["h2"]["detail"]["reason"] == DnsReason.FAILED.value
    assert "registry.invalid" in seen["h2"]["message"]
