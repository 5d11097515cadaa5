"""Translate what went wrong on the wire into one :class:`PullError` with an :class:`ErrorClass`.

This is the only place that decides how a failure is classified, so probes, the Locust user and
reports all agree on what "timeout" or "reset" means.
"""

import errno
import json
import ssl
from typing import Any

import httpx

from chaosregistry.errors import ErrorClass, PullError, TlsReason

# Headers worth keeping on a 429 so callers can honour them (Docker Hub style plus standard).
RATE_LIMIT_HEADERS = ("retry-after", "ratelimit-limit", "ratelimit-remaining", "ratelimit-reset")


def from_response(response: httpx.Response, what: str) -> PullError:
    """A PullError for a non-success HTTP answer to ``what`` (e.g. ``manifest shop:1.0``)."""
    status = response.status_code
    detail: dict[str, Any] = {}
    codes = _registry_error_codes(response)
    if codes:
        detail["codes"] = codes
    if status in (401, 403):
        error_class = ErrorClass.AUTH
    elif status == 404:
        error_class = ErrorClass.NOT_FOUND
    elif status == 429:
        error_class = ErrorClass.RATE_LIMITED
        detail.update({h: response.headers[h] for h in RATE_LIMIT_HEADERS if h in response.headers})
    elif status >= 500:
        error_class = ErrorClass.SERVER_ERROR
    else:
        error_class = ErrorClass.PROTOCOL
    suffix = f" ({', '.join(codes)})" if codes else ""
    return PullError(error_class, f"{what}: HTTP {status}{suffix}", status=status, detail=detail)


def from_exception(exc: Exception, what: str) -> PullError:
    """A PullError for a transport-level failure while doing ``what``."""
    if isinstance(exc, PullError):
        return exc
    if isinstance(exc, httpx.TimeoutException):
        return PullError(ErrorClass.TIMEOUT, f"{what}: timed out ({type(exc).__name__})")
    text = str(exc) or type(exc).__name__
    tls = tls_failure(exc)
    if tls is not None:
        reason, message = tls
        return PullError(
            ErrorClass.TLS, f"{what}: TLS {reason} ({message})", detail={"reason": str(reason)}
        )
    root = _root_os_error(exc)
    if isinstance(exc, httpx.ConnectError):
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
    if isinstance(exc, ConnectionResetError | BrokenPipeError):
        return PullError(ErrorClass.RESET, f"{what}: connection reset ({text})")
    raise exc


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
            return reason, seen.verify_message or seen.reason or "certificate verify failed"
        if isinstance(seen, ssl.SSLError):
            return TlsReason.HANDSHAKE, seen.reason or str(seen)
        seen = seen.__cause__ or seen.__context__
    return None


def _root_os_error(exc: BaseException) -> OSError | None:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno is not None:
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def _registry_error_codes(response: httpx.Response) -> list[str]:
    """The distribution spec's ``errors[].code`` values, when the body has them."""
    try:
        body = json.loads(response.read() or b"{}")
    except (ValueError, httpx.HTTPError):
        return []
    errors = body.get("errors") if isinstance(body, dict) else None
    if not isinstance(errors, list):
        return []
    return [str(e.get("code")) for e in errors if isinstance(e, dict) and e.get("code")]
