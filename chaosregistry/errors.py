"""The project's exception tree, in one place.

``ChaosRegistryError`` is the root. Everything a user can get wrong (a malformed URL, an unknown
platform, a count of zero) is a ``ConfigError``; everything the registry or the network does to a
pull (or to a push: same requests, same classes) is a ``PullError`` carrying one ``ErrorClass``.
Activities translate both into ``chaoslib.exceptions.ActivityFailed`` with one line; the CLI
prints that line and exits non-zero.
"""

from enum import StrEnum
from typing import Any


class ChaosRegistryError(Exception):
    """Root of every error this project raises on purpose."""


class ConfigError(ChaosRegistryError):
    """Bad input from the user: a value, a file or a field that cannot be used as given."""


class ErrorClass(StrEnum):
    """Why a registry request failed. Stable strings: they appear in probe results and reports."""

    TIMEOUT = "timeout"
    REFUSED = "refused"
    # The registry's host name did not resolve: nothing was sent to it (``detail["reason"]`` is
    # a :class:`DnsReason`).
    DNS = "dns"
    TLS = "tls"
    RESET = "reset"
    AUTH = "auth"
    # The token realm could not be used: refused, unresolved, timed out, reset or a 5xx from it
    # (the registry itself answered; ``detail["cause"]`` keeps the transport class).
    AUTH_UNAVAILABLE = "auth-unavailable"
    NOT_FOUND = "not-found"
    RATE_LIMITED = "rate-limited"
    # 405: the registry does not take this method here. Distribution's answer to every write
    # while it is read-only (``maintenance.readonly``), and to deletes when they are disabled.
    METHOD_NOT_ALLOWED = "method-not-allowed"
    SERVER_ERROR = "server-error"
    DIGEST_MISMATCH = "digest-mismatch"
    TRUNCATED = "truncated"
    PLATFORM_NOT_FOUND = "platform-not-found"
    PROTOCOL = "protocol"


class TlsReason(StrEnum):
    """Why a TLS handshake failed (``detail["reason"]`` of a ``tls`` error). Stable strings."""

    UNKNOWN_CA = "unknown-ca"
    EXPIRED = "expired"
    HOSTNAME_MISMATCH = "hostname-mismatch"
    HANDSHAKE = "handshake"


class DnsReason(StrEnum):
    """Why a host name did not resolve (``detail["reason"]`` of a ``dns`` error). Stable strings.

    ``name-not-known``: the resolver answered that the name does not exist (NXDOMAIN, a name
    under ``.invalid``); ``no-address``: the name exists but has no address of the family asked
    for; ``temporary``: no answer now (the resolver unreachable or timing out, SERVFAIL), worth
    retrying; ``failed``: a non-recoverable resolver failure, or any other ``getaddrinfo`` error.
    """

    NAME_NOT_KNOWN = "name-not-known"
    NO_ADDRESS = "no-address"
    TEMPORARY = "temporary"
    FAILED = "failed"


class PullError(ChaosRegistryError):
    """A registry request failed; ``error_class`` says why, ``detail`` keeps what the server said.

    ``detail`` never holds credentials: only status codes, registry error codes and the
    rate-limit headers a caller may want to honour.
    """

    def __init__(
        self,
        error_class: ErrorClass,
        message: str,
        *,
        status: int | None = None,
        detail: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.error_class = error_class
        self.status = status
        self.detail = detail or {}

    def as_dict(self) -> dict[str, Any]:
        return {
            "class": str(self.error_class),
            "message": str(self),
            "status": self.status,
            "detail": self.detail,
        }
