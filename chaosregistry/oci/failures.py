"""The one error-class table: what went wrong on the wire -> a :class:`PullError` with an
:class:`ErrorClass`.

Statuses (``status_error``), transport failures (``from_exception``), TLS failures
(``tls_failure``) and name-resolution failures (``dns_failure``) are classified here and nowhere
else; a token request (``token=True``, the
request the protocol routes as ``TOKEN_ROUTE``) that cannot be answered by its realm is
``auth-unavailable``, one the realm refuses is ``auth``; the pull protocol
(:mod:`chaosregistry.oci.protocol`) and both of its drivers (the httpx client and the Locust
user) call it, so probes, loads and reports agree on what "timeout" or "reset" means.
"""

import errno
import http.client
import json
import socket
import ssl
from collections.abc import Mapping
from typing import Any

import httpx

from chaosregistry.errors import DnsReason, ErrorClass, PullError, TlsReason

# Headers worth keeping on a 429 so callers can honour them (Docker Hub style plus standard).
RATE_LIMIT_HEADERS = ("retry-after", "ratelimit-limit", "ratelimit-remaining", "ratelimit-reset")
# How the protocol routes a request to a token realm (drivers pass ``token=`` from it).
TOKEN_ROUTE = "[token]"
# A token realm that fails this way is unavailable, not the registry: the registry answered the
# request that sent us there. TLS and rate limits keep their own classes.
_REALM_UNAVAILABLE = frozenset(
    {
        ErrorClass.TIMEOUT,
        ErrorClass.REFUSED,
        ErrorClass.DNS,
        ErrorClass.RESET,
        ErrorClass.TRUNCATED,
        ErrorClass.SERVER_ERROR,
        ErrorClass.NOT_FOUND,
        ErrorClass.PROTOCOL,
    }
)


def _for_token(error: PullError) -> PullError:
    if error.error_class not in _REALM_UNAVAILABLE:
        return error
    detail = {**error.detail, "cause": str(error.error_class)}
    return PullError(
        ErrorClass.AUTH_UNAVAILABLE,
        f"{error} (the token realm is unavailable)",
        status=error.status,
        detail=detail,
    )


def status_error(
    status: int, headers: Mapping[str, str], body: bytes, what: str, *, token: bool = False
) -> PullError:
    """A PullError for a non-success HTTP answer to ``what`` (e.g. ``manifest shop:1.0``).

    ``headers`` may be any mapping with case-insensitive ``get`` or lower-case keys. ``token``:
    the answer came from a token realm (a 5xx or 404 there: ``auth-unavailable``).
    """
    error = _status_error(status, headers, body, what)
    return _for_token(error) if token else error


def _status_error(status: int, headers: Mapping[str, str], body: bytes, what: str) -> PullError:
    detail: dict[str, Any] = {}
    codes = _registry_error_codes(body)
    if codes:
        detail["codes"] = codes
    if status in (401, 403):
        error_class = ErrorClass.AUTH
    elif status == 404:
        error_class = ErrorClass.NOT_FOUND
    elif status == 405:
        error_class = ErrorClass.METHOD_NOT_ALLOWED
    elif status == 429:
        error_class = ErrorClass.RATE_LIMITED
        detail.update({h: str(headers[h]) for h in RATE_LIMIT_HEADERS if headers.get(h)})
    elif status >= 500:
        error_class = ErrorClass.SERVER_ERROR
    else:
        error_class = ErrorClass.PROTOCOL
    suffix = f" ({', '.join(codes)})" if codes else ""
    return PullError(error_class, f"{what}: HTTP {status}{suffix}", status=status, detail=detail)


def from_exception(
    exc: BaseException, what: str, *, in_body: bool = False, token: bool = False
) -> PullError:
    """A PullError for a transport-level failure while doing ``what``.

    Knows httpx's exceptions and the standard library's (what any other driver raises once it
    has translated its own library's types). ``in_body``: the failure came while reading a
    response body, where a connection closed early is a truncated transfer. ``token``: the
    request went to a token realm (refused, timed out, reset there: ``auth-unavailable``).
    Re-raises what is not a transport failure (a bug should not become a "protocol" error).
    """
    error = _from_exception(exc, what, in_body=in_body)
    return _for_token(error) if token else error


def _from_exception(exc: BaseException, what: str, *, in_body: bool = False) -> PullError:
    if isinstance(exc, PullError):
        return exc
    if isinstance(exc, httpx.TimeoutException | TimeoutError):
        return PullError(ErrorClass.TIMEOUT, f"{what}: timed out ({type(exc).__name__})")
    text = str(exc) or type(exc).__name__
    dns = dns_failure(exc)
    if dns is not None:
        # Before the connect-error rule below: httpx and httpcore wrap the resolver's error in
        # the same ConnectError as a refused port, but nothing was sent to the registry.
        dns_reason, words = dns
        return PullError(
            ErrorClass.DNS,
            f"{what}: DNS {dns_reason} ({words})",
            detail={"reason": str(dns_reason)},
        )
    if in_body and _caused_by(exc, ssl.SSLEOFError):
        # The connection ended inside a TLS record of the body: a cut transfer, as over plain
        # HTTP, not a TLS fault (where the cut falls decides which one the reader sees).
        return PullError(ErrorClass.TRUNCATED, f"{what}: body truncated ({text})")
    tls = tls_failure(exc)
    if tls is not None:
        reason, message = tls
        return PullError(
            ErrorClass.TLS, f"{what}: TLS {reason} ({message})", detail={"reason": str(reason)}
        )
    root = _root_os_error(exc)
    if isinstance(exc, http.client.IncompleteRead) or (in_body and _closed_early(exc)):
        return PullError(ErrorClass.TRUNCATED, f"{what}: body truncated ({text})")
    if isinstance(exc, httpx.ConnectError | ConnectionRefusedError):
        if root is not None and root.errno == errno.ECONNRESET:
            return PullError(ErrorClass.RESET, f"{what}: connection reset while connecting")
        return PullError(ErrorClass.REFUSED, f"{what}: cannot connect ({text})")
    if isinstance(exc, httpx.RemoteProtocolError):
        # h11 says "peer closed connection without sending complete message body" when a body
        # stops short of its Content-Length: that is a truncated transfer, not a reset.
        if "complete message body" in text or "incomplete" in text.lower():
            return PullError(ErrorClass.TRUNCATED, f"{what}: body truncated ({text})")
        return PullError(ErrorClass.RESET, f"{what}: connection closed by peer ({text})")
    if isinstance(exc, httpx.ReadError | httpx.WriteError | httpx.CloseError):
        return PullError(ErrorClass.RESET, f"{what}: connection reset ({text})")
    if isinstance(exc, httpx.HTTPError):
        return PullError(ErrorClass.PROTOCOL, f"{what}: {text}")
    if isinstance(exc, http.client.HTTPException):
        return PullError(ErrorClass.PROTOCOL, f"{what}: {text}")
    if root is not None and root.errno in _ERRNO_CLASSES:
        error_class = _ERRNO_CLASSES[root.errno]
        return PullError(error_class, f"{what}: {error_class} ({text})")
    if isinstance(exc, OSError):
        return PullError(ErrorClass.RESET, f"{what}: connection failed ({text})")
    raise exc


# Socket errors by errno, for drivers whose library raises bare OSErrors.
_ERRNO_CLASSES = {
    errno.ECONNREFUSED: ErrorClass.REFUSED,
    errno.EHOSTUNREACH: ErrorClass.REFUSED,
    errno.ENETUNREACH: ErrorClass.REFUSED,
    errno.ECONNRESET: ErrorClass.RESET,
    errno.ECONNABORTED: ErrorClass.RESET,
    errno.EPIPE: ErrorClass.RESET,
    errno.ETIMEDOUT: ErrorClass.TIMEOUT,
}


def _closed_early(exc: BaseException) -> bool:
    """A connection that ended before the body did (not a reset: those stay resets)."""
    return isinstance(exc, ConnectionError) and not isinstance(
        exc, ConnectionResetError | ConnectionRefusedError
    )


# OpenSSL's X509_V_ERR_* codes, as ssl.SSLCertVerificationError.verify_code carries them.
_VERIFY_CODES = {
    2: TlsReason.UNKNOWN_CA,  # unable to get issuer certificate
    10: TlsReason.EXPIRED,  # certificate has expired
    9: TlsReason.EXPIRED,  # certificate is not yet valid: outside its validity window too
    18: TlsReason.UNKNOWN_CA,  # self-signed certificate
    19: TlsReason.UNKNOWN_CA,  # self-signed certificate in chain
    20: TlsReason.UNKNOWN_CA,  # unable to get local issuer certificate
    21: TlsReason.UNKNOWN_CA,  # unable to verify the first certificate
    62: TlsReason.HOSTNAME_MISMATCH,  # hostname mismatch
    64: TlsReason.HOSTNAME_MISMATCH,  # IP address mismatch
}


def tls_failure(exc: BaseException) -> tuple[TlsReason, str] | None:
    """``(reason, OpenSSL's words)`` when ``exc`` (or what caused it) is a TLS failure."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError):
            reason = _VERIFY_CODES.get(seen.verify_code or 0, TlsReason.HANDSHAKE)
            words = seen.verify_message or getattr(seen, "reason", None)
            return reason, words or "certificate verify failed"
        if isinstance(seen, ssl.SSLError):
            # An SSLError raised from Python code (not by OpenSSL) has no ``reason``.
            return TlsReason.HANDSHAKE, getattr(seen, "reason", None) or str(seen)
        seen = seen.__cause__ or seen.__context__
    return None


# getaddrinfo's EAI_* codes, as socket.gaierror.errno carries them (EAI_NODATA and
# EAI_ADDRFAMILY are glibc's; absent elsewhere).
_DNS_CODES = {
    socket.EAI_NONAME: DnsReason.NAME_NOT_KNOWN,
    socket.EAI_AGAIN: DnsReason.TEMPORARY,
    socket.EAI_FAIL: DnsReason.FAILED,
    **{
        code: DnsReason.NO_ADDRESS
        for code in (getattr(socket, "EAI_NODATA", None), getattr(socket, "EAI_ADDRFAMILY", None))
        if code is not None
    },
}


def dns_failure(exc: BaseException) -> tuple[DnsReason, str] | None:
    """``(reason, the resolver's words)`` when ``exc`` (or what caused it) is a failure to
    resolve a host name (``socket.gaierror``, which gevent's resolvers raise too)."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, socket.gaierror):
            reason = _DNS_CODES.get(seen.errno, DnsReason.FAILED)
            return reason, seen.strerror or str(seen) or "name resolution failed"
        seen = seen.__cause__ or seen.__context__
    return None


def _caused_by(exc: BaseException, kind: type[BaseException]) -> bool:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, kind):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _root_os_error(exc: BaseException) -> OSError | None:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno is not None:
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def _registry_error_codes(body: bytes) -> list[str]:
    """The distribution spec's ``errors[].code`` values, when the body has them."""
    try:
        document = json.loads(body or b"{}")
    except ValueError:
        return []
    errors = document.get("errors") if isinstance(document, dict) else None
    if not isinstance(errors, list):
        return []
    return [str(e.get("code")) for e in errors if isinstance(e, dict) and e.get("code")]
