"""geventhttpclient's and gevent's exceptions, put in the terms of the one error-class table.

The Locust user's I/O library raises its own types (``gevent.Timeout``, ``HTTPConnectionClosed``,
``RetriesExceeded`` wrapping the real cause...). This module only translates them into the
standard library's exceptions; :mod:`chaosregistry.oci.failures` then classifies them exactly as
it classifies what the probes' httpx client sees. Imported only inside Locust processes (and
tests): it imports gevent.
"""

import http.client

import gevent
from geventhttpclient.response import HTTPConnectionClosed, HTTPParseError
from geventhttpclient.useragent import ConnectionError as UserAgentError
from geventhttpclient.useragent import RetriesExceeded

from chaosregistry.errors import PullError
from chaosregistry.oci import failures

# What the user's I/O may raise while sending a request or reading its body.
WIRE_ERRORS = (OSError, gevent.Timeout, HTTPParseError, UserAgentError)


def standard_error(exc: BaseException, *, in_body: bool) -> BaseException:
    """The standard-library exception that means what ``exc`` means."""
    # geventhttpclient wraps the error that exhausted its retries.
    while isinstance(exc, RetriesExceeded) and getattr(exc, "original", None) is not None:
        exc = getattr(exc, "original")  # noqa: B009 - set through **kw, unknown to mypy
    if isinstance(exc, gevent.Timeout):
        return TimeoutError(str(exc) or "timed out")
    if isinstance(exc, HTTPConnectionClosed):
        # Closed before the promised length: truncated in a body, a reset before any answer.
        return http.client.IncompleteRead(b"") if in_body else ConnectionResetError(str(exc))
    if isinstance(exc, HTTPParseError):
        if in_body and "incomplete" in str(exc).lower():
            # Its parser's word for a body that ended before its Content-Length.
            return http.client.IncompleteRead(b"")
        return http.client.HTTPException(f"invalid HTTP response: {exc}")
    if isinstance(exc, UserAgentError) and not isinstance(exc, OSError):
        return ConnectionAbortedError(str(exc) or type(exc).__name__)
    return exc


def from_exception(
    exc: BaseException, what: str, *, in_body: bool = False, route: str = ""
) -> PullError:
    """The classified PullError for a failure of the Locust user's I/O while doing ``what``
    (``route``: the request's, so a token request's failure is classified as one)."""
    return failures.from_exception(
        standard_error(exc, in_body=in_body),
        what,
        in_body=in_body,
        token=route == failures.TOKEN_ROUTE,
    )
