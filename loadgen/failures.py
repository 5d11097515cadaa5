"""Classify what geventhttpclient (Locust's FastHttpUser) reports into an :class:`ErrorClass`.

The twin of :mod:`chaosregistry.oci.failures` for the Locust side, so a timeout or a reset means
the same thing in a probe's result and in a load's records. Imported only inside Locust
processes (and tests): it imports gevent.
"""

import errno
import socket
import ssl

import gevent
from geventhttpclient.response import HTTPConnectionClosed, HTTPParseError
from geventhttpclient.useragent import BadStatusCode, RetriesExceeded

from chaosregistry.errors import ErrorClass

_ERRNO_CLASSES = {
    errno.ECONNREFUSED: ErrorClass.REFUSED,
    errno.EHOSTUNREACH: ErrorClass.REFUSED,
    errno.ENETUNREACH: ErrorClass.REFUSED,
    errno.ECONNRESET: ErrorClass.RESET,
    errno.ECONNABORTED: ErrorClass.RESET,
    errno.EPIPE: ErrorClass.RESET,
    errno.ETIMEDOUT: ErrorClass.TIMEOUT,
}


def classify(
    *, status: int = 0, error: BaseException | None = None, in_body: bool = False
) -> ErrorClass:
    """The class of one failed request: by HTTP ``status`` when there is one, else by ``error``.

    ``in_body``: the error happened while reading a response body, where a connection the
    server closed before the promised length is a truncated transfer (a reset stays a reset),
    as in :func:`chaosregistry.oci.failures.from_exception`.
    """
    if status >= 400:
        if status in (401, 403):
            return ErrorClass.AUTH
        if status == 404:
            return ErrorClass.NOT_FOUND
        if status == 429:
            return ErrorClass.RATE_LIMITED
        if status >= 500:
            return ErrorClass.SERVER_ERROR
        return ErrorClass.PROTOCOL
    # geventhttpclient wraps the error that exhausted its retries, and Locust's bad-status
    # error carries the code.
    while isinstance(error, RetriesExceeded) and getattr(error, "original", None) is not None:
        error = getattr(error, "original")  # noqa: B009 - set through **kw, unknown to mypy
    if isinstance(error, BadStatusCode) and getattr(error, "code", 0) >= 400:
        return classify(status=int(error.code))
    if isinstance(error, gevent.Timeout | TimeoutError | socket.timeout):
        return ErrorClass.TIMEOUT
    if isinstance(error, HTTPConnectionClosed):
        return ErrorClass.TRUNCATED if in_body else ErrorClass.RESET
    if isinstance(error, HTTPParseError | ssl.SSLError):
        return ErrorClass.PROTOCOL
    if isinstance(error, ConnectionRefusedError | socket.gaierror):
        return ErrorClass.REFUSED
    if isinstance(error, ConnectionResetError | BrokenPipeError | ConnectionAbortedError):
        return ErrorClass.RESET
    if isinstance(error, OSError) and error.errno in _ERRNO_CLASSES:
        return _ERRNO_CLASSES[error.errno]
    return ErrorClass.PROTOCOL
