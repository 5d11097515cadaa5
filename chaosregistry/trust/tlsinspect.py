"""What a registry's TLS endpoint says about itself: protocol, ALPN, cipher, certificates, trust.

The facts come first, from handshakes with verification off, so that an expired, wrong-host or
untrusted certificate is still described; trust is then checked in handshakes of its own with
verification on. A failure anywhere becomes the one :class:`~chaosregistry.errors.PullError` the
project's classifier (:mod:`chaosregistry.oci.failures`) makes of it, so ``tls`` / ``expired``
means here what it means to a pull.

Python 3.11's ``ssl`` does not expose the certificates a server sent beyond its leaf, so the
facts handshake is pyOpenSSL's (``get_peer_cert_chain``); everything else is the standard
library's OpenSSL, the one the pull client uses. Read-only: a few TLS handshakes, no HTTP.
"""

import datetime
import errno
import ipaddress
import select
import socket
import ssl
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from OpenSSL import SSL

from chaosregistry.oci import failures
from chaosregistry.oci.client import tls_context

# Asked for one at a time: a server that serves both picks h2 when offered both, which would hide
# whether it still accepts HTTP/1.1 clients.
ALPN_PROTOCOLS = ("h2", "http/1.1")
# nginx (since 1.21.4) and others refuse a handshake whose ALPN offer holds nothing they serve;
# that refusal is the answer "not accepted", not a failure of the endpoint. Python 3.11 leaves
# ``SSLError.reason`` empty for this alert, so it is recognised by OpenSSL's words for it.
_NO_COMMON_PROTOCOL = "alert no application protocol"
_SECONDS_PER_DAY = 86400.0


# -- pure helpers -------------------------------------------------------------------------------
def days_left(not_after: datetime.datetime, now: datetime.datetime) -> float:
    """Days (fractional) from ``now`` until ``not_after``; negative once it has passed."""
    return (not_after - now).total_seconds() / _SECONDS_PER_DAY


def hostname_matches(host: str, dns_names: Iterable[str], ip_addresses: Iterable[str]) -> bool:
    """Whether ``host`` is one the SANs name (RFC 6125, no common-name fallback).

    An IP address matches only an IP SAN, equal as an address; a name matches a DNS SAN
    case-insensitively, where a ``*.`` wildcard stands for exactly one whole left-most label.
    """
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        address = None
    if address is not None:
        return any(_same_address(address, candidate) for candidate in ip_addresses)
    wanted = host.rstrip(".").lower()
    return bool(wanted) and any(_dns_match(pattern, wanted) for pattern in dns_names)


def _same_address(address: ipaddress.IPv4Address | ipaddress.IPv6Address, candidate: str) -> bool:
    try:
        return ipaddress.ip_address(candidate) == address
    except ValueError:
        return False


def _dns_match(pattern: str, host: str) -> bool:
    pattern = pattern.rstrip(".").lower()
    if pattern.startswith("*."):
        label, _, rest = host.partition(".")
        # "*.example.com" covers "a.example.com", never "example.com" or "a.b.example.com".
        return bool(label) and rest == pattern[2:] and "." in rest
    # Partial wildcards ("f*.example.com") are not honoured by browsers or OpenSSL's defaults
    # for public names either: compared literally, they match nothing real.
    return pattern == host


def subject_alt_names(cert: x509.Certificate) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The leaf's (DNS names, IP addresses) from its subjectAltName; empty when it has none."""
    try:
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return (), ()
    dns_names = tuple(sans.get_values_for_type(x509.DNSName))
    ip_addresses = tuple(str(ip) for ip in sans.get_values_for_type(x509.IPAddress))
    return dns_names, ip_addresses


def _utc_text(moment: datetime.datetime) -> str:
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def describe_leaf(cert: x509.Certificate, now: datetime.datetime) -> dict[str, Any]:
    """``subject``, ``issuer``, ``sans``, ``not_before``, ``not_after`` (UTC), ``days_left``."""
    dns_names, ip_addresses = subject_alt_names(cert)
    return {
        "subject": cert.subject.rfc4514_string(),
        "issuer": cert.issuer.rfc4514_string(),
        "sans": [*dns_names, *ip_addresses],
        "not_before": _utc_text(cert.not_valid_before_utc),
        "not_after": _utc_text(cert.not_valid_after_utc),
        "days_left": days_left(cert.not_valid_after_utc, now),
    }


def describe_chain_entry(cert: x509.Certificate, now: datetime.datetime) -> dict[str, Any]:
    """``subject``, ``not_after`` (UTC), ``days_left`` of one certificate the server sent."""
    return {
        "subject": cert.subject.rfc4514_string(),
        "not_after": _utc_text(cert.not_valid_after_utc),
        "days_left": days_left(cert.not_valid_after_utc, now),
    }


# -- handshakes ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Endpoint:
    """Where to shake hands: ``host`` as the URL names it (also the name checked), ``port``;
    ``address``: (host, port) to connect to instead (a fault proxy's listener), the names sent
    and checked staying ``host``'s."""

    host: str
    port: int
    address: tuple[str, int] | None = None

    @property
    def is_ip(self) -> bool:
        try:
            ipaddress.ip_address(self.host)
        except ValueError:
            return False
        return True


class _Deadline:
    def __init__(self, seconds: float) -> None:
        self._end = time.monotonic() + seconds

    def remaining(self) -> float:
        left = self._end - time.monotonic()
        if left <= 0:
            raise httpx.ConnectTimeout("TLS inspection ran out of time")
        return left


def _connect(endpoint: Endpoint, deadline: _Deadline) -> socket.socket:
    # Raised as the httpx transport exceptions (as our StdlibTransport does) because those are
    # what the one classifier knows: refused stays "refused", a timeout "timeout".
    try:
        return socket.create_connection(
            endpoint.address or (endpoint.host, endpoint.port), timeout=deadline.remaining()
        )
    except TimeoutError as exc:
        raise httpx.ConnectTimeout(f"connect to {endpoint.host}:{endpoint.port} timed out") from exc
    except OSError as exc:
        raise httpx.ConnectError(str(exc)) from exc


def _stdlib_handshake(
    endpoint: Endpoint, context: ssl.SSLContext, deadline: _Deadline
) -> ssl.SSLSocket:
    raw = _connect(endpoint, deadline)
    try:
        raw.settimeout(deadline.remaining())
        return context.wrap_socket(raw, server_hostname=endpoint.host)
    except TimeoutError as exc:
        raw.close()
        raise httpx.ConnectTimeout(f"TLS handshake with {endpoint.host} timed out") from exc
    except BaseException:
        raw.close()
        raise


def _unverified_context() -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # no CA store: nothing is checked
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def verifying_context(verify: bool | str, *, check_hostname: bool) -> ssl.SSLContext:
    """A context trusting the CA bundle at ``verify`` (a path), else the system CAs.

    ``verify=False`` (the user's "do not check" for pulls) still checks against the system CAs:
    checking is what this inspection is for. Bundles are read as the pull client reads them.
    """
    # A context of its own (check_hostname changes), never the shared system one.
    context = tls_context(verify) if isinstance(verify, str) else ssl.create_default_context()
    context.check_hostname = check_hostname
    return context


def _as_ssl_error(exc: SSL.Error) -> Exception:
    """pyOpenSSL's error as the standard library's, which is what the classifier reads."""
    if isinstance(exc, SSL.SysCallError) and exc.args and exc.args[0] == errno.ECONNRESET:
        return ConnectionResetError(errno.ECONNRESET, "connection reset during the TLS handshake")
    words = "; ".join(str(part[-1]) for part in exc.args[0]) if _is_error_stack(exc) else str(exc)
    error = ssl.SSLError(words or type(exc).__name__)
    # Python-made SSLErrors carry no .reason; the classifier reports it.
    error.reason = words or type(exc).__name__
    return error


def _is_error_stack(exc: SSL.Error) -> bool:
    return (
        bool(exc.args)
        and isinstance(exc.args[0], list)
        and all(isinstance(part, tuple) and part for part in exc.args[0])
    )


@dataclass(frozen=True)
class PeerFacts:
    tls_version: str
    cipher: str
    leaf: x509.Certificate
    chain: list[x509.Certificate]


def peer_facts(endpoint: Endpoint, deadline: _Deadline) -> PeerFacts:
    """One handshake with verification off: version, cipher, the leaf and every cert sent."""
    context = SSL.Context(SSL.TLS_CLIENT_METHOD)
    context.set_verify(SSL.VERIFY_NONE)  # facts first: an untrusted chain is still described
    raw = _connect(endpoint, deadline)
    connection = SSL.Connection(context, raw)
    try:
        if not endpoint.is_ip:  # SNI carries names only (RFC 6066)
            connection.set_tlsext_host_name(endpoint.host.encode("idna"))
        connection.set_connect_state()
        _drive_handshake(connection, raw, deadline, endpoint)
        leaf = connection.get_peer_certificate(as_cryptography=True)
        chain = connection.get_peer_cert_chain(as_cryptography=True) or []
        version = connection.get_protocol_version_name()
        cipher = connection.get_cipher_name() or ""
    except SSL.Error as exc:
        raise _as_ssl_error(exc) from exc
    finally:
        raw.close()
    if leaf is None:
        raise ssl.SSLError("the server sent no certificate")
    return PeerFacts(version, cipher, leaf, list(chain))


def _drive_handshake(
    connection: SSL.Connection, raw: socket.socket, deadline: _Deadline, endpoint: Endpoint
) -> None:
    # pyOpenSSL on a socket with a timeout sees a non-blocking fd: wait for it ourselves.
    raw.setblocking(False)
    while True:
        try:
            connection.do_handshake()
            return
        except SSL.WantReadError:
            readable, _, _ = select.select([raw], [], [], deadline.remaining())
        except SSL.WantWriteError:
            _, readable, _ = select.select([], [raw], [], deadline.remaining())
        if not readable:
            raise httpx.ConnectTimeout(f"TLS handshake with {endpoint.host} timed out")


def served_certificate(endpoint: Endpoint, *, timeout: float = 5.0) -> x509.Certificate:
    """The leaf certificate ``endpoint`` serves now (one handshake, verification off).

    Raises ``ssl.SSLError`` / ``OSError`` / ``httpx.HTTPError`` as ``peer_facts`` does.
    """
    return peer_facts(endpoint, _Deadline(timeout)).leaf


def fingerprint(cert: x509.Certificate) -> str:
    """SHA-256 of the certificate's DER, lower-case hex (what ``openssl x509 -fingerprint``
    prints, without the colons)."""
    return cert.fingerprint(hashes.SHA256()).hex()


def accepts_protocol(endpoint: Endpoint, protocol: str, deadline: _Deadline) -> bool:
    """Whether the server selects ``protocol`` when it is the only one offered (ALPN)."""
    context = _unverified_context()
    context.set_alpn_protocols([protocol])
    try:
        with _stdlib_handshake(endpoint, context, deadline) as tls:
            return tls.selected_alpn_protocol() == protocol
    except ssl.SSLError as exc:
        if _NO_COMMON_PROTOCOL in str(exc).lower():
            return False
        raise


def check_trust(
    endpoint: Endpoint, verify: bool | str, deadline: _Deadline, *, hostname: bool
) -> None:
    """A verifying handshake (the chain, and the host name when ``hostname``); raises on failure."""
    context = verifying_context(verify, check_hostname=hostname)
    with _stdlib_handshake(endpoint, context, deadline):
        pass


# -- the whole inspection -----------------------------------------------------------------------
def no_facts(*, tls: bool) -> dict[str, Any]:
    """The result's keys before (or without, for plain HTTP) any handshake."""
    return {
        "tls": tls,
        "tls_version": None,
        "alpn_offered": [],
        "h2": False,
        "cipher": None,
        "trusted": False,
        "verified": False,
        "hostname_match": None,
        "leaf": None,
        "chain": [],
        "min_days_left": None,
        "error": None,
    }


def inspect(endpoint: Endpoint, *, verify: bool | str, timeout: float, what: str) -> dict[str, Any]:
    """Everything ``registry_tls`` reports but ``url`` and ``seconds``; see that probe.

    Never raises for what the server does (that is ``error``); ``ConfigError`` for a CA bundle
    that cannot be used.
    """
    # Bad configuration is the user's mistake, not a fact about the server: check it up front.
    verifying_context(verify, check_hostname=True)
    deadline = _Deadline(timeout)
    now = datetime.datetime.now(datetime.UTC)
    result = no_facts(tls=True)
    try:
        facts = peer_facts(endpoint, deadline)
        dns_names, ip_addresses = subject_alt_names(facts.leaf)
        chain = [describe_chain_entry(cert, now) for cert in facts.chain]
        leaf = describe_leaf(facts.leaf, now)
        result.update(
            tls_version=facts.tls_version,
            cipher=facts.cipher,
            leaf=leaf,
            chain=chain,
            hostname_match=hostname_matches(endpoint.host, dns_names, ip_addresses),
            min_days_left=min([leaf["days_left"], *(entry["days_left"] for entry in chain)]),
        )
        offered = [p for p in ALPN_PROTOCOLS if accepts_protocol(endpoint, p, deadline)]
        result.update(alpn_offered=offered, h2="h2" in offered)
        check_trust(endpoint, verify, deadline, hostname=False)
        result["trusted"] = True
        check_trust(endpoint, verify, deadline, hostname=True)
        result["verified"] = True
    except (ssl.SSLError, OSError, httpx.HTTPError) as exc:
        result["error"] = failures.from_exception(exc, what).as_dict()
    return result
