"""An httpx transport on the standard library's ``http.client``, built for multi-GB blob bodies.

httpx's default transport (httpcore + h11) copies every 64 KiB of a body through h11's receive
buffer several times; on this project's benchmark machine that capped a verified 192 MiB pull at
about a quarter of curl's speed. ``http.client`` reads a body straight into a fresh ``bytes`` per
1 MiB chunk (``read``), which keeps pace with curl. The httpx API stays the seam:
requests, timeouts, redirects, auth and tests (``MockTransport``) all work as with any
transport, and failures are raised as the httpx exceptions the classifier already knows.

Scope: HTTP/1.1 with keep-alive, plain or TLS; no proxies (httpx still routes proxied URLs from
the environment to its own transports).

``connect_to`` (this transport, and ``oci.curl``'s for HTTP/2) opens a registry's connections
at another address, as curl's ``--connect-to`` does: the TCP connection goes to a fault proxy's
listener, while the Host header, the TLS server name (SNI) and the certificate's host-name check
stay the registry's own. A proxy that passes TCP through cannot then pass for the registry.
"""

import http.client
import socket
import ssl
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import httpx

from chaosregistry.osutil.tls import system_trust

# Bytes asked of the socket per body chunk: large enough that Python's per-chunk cost vanishes
# next to the copy, small enough to keep memory per stream low.
CHUNK_SIZE = 1 << 20
_DEFAULT_TIMEOUT = 30.0

Origin = tuple[str, str, int]
# (host, port) as the URL names it -> (host, port) the connection is opened to instead.
ConnectTo = Mapping[tuple[str, int], tuple[str, int]]


def _origin(url: httpx.URL) -> Origin:
    port = url.port or (443 if url.scheme == "https" else 80)
    return (url.scheme, url.host, port)


class StdlibTransport(httpx.BaseTransport):
    """A keep-alive connection pool of ``http.client`` connections, at most ``max_connections``."""

    def __init__(
        self,
        *,
        ssl_context: ssl.SSLContext | None = None,
        max_connections: int = 16,
        connect_to: ConnectTo | None = None,
    ) -> None:
        self._ssl_context = ssl_context or system_trust()
        self._connect_to = dict(connect_to or {})
        self._idle: dict[Origin, list[http.client.HTTPConnection]] = {}
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(max_connections)
        self._closed = False

    # -- pool ------------------------------------------------------------------------------
    def _take_idle(self, origin: Origin) -> http.client.HTTPConnection | None:
        with self._lock:
            idle = self._idle.get(origin)
            return idle.pop() if idle else None

    def _give_back(self, origin: Origin, connection: http.client.HTTPConnection) -> None:
        with self._lock:
            if not self._closed:
                self._idle.setdefault(origin, []).append(connection)
                return
        connection.close()

    def _new_connection(
        self, origin: Origin, timeouts: dict[str, Any]
    ) -> http.client.HTTPConnection:
        scheme, host, port = origin
        connect_timeout = timeouts.get("connect") or _DEFAULT_TIMEOUT
        connection: http.client.HTTPConnection
        if scheme == "https":
            connection = http.client.HTTPSConnection(
                host, port, timeout=connect_timeout, context=self._ssl_context
            )
        else:
            connection = http.client.HTTPConnection(host, port, timeout=connect_timeout)
        address = self._connect_to.get((host, port))
        if address is not None:
            # http.client opens its socket through this attribute, then wraps it for TLS with
            # server_hostname=host: only the TCP destination changes.
            connection._create_connection = (  # type: ignore[attr-defined]
                lambda _address, timeout, source: socket.create_connection(address, timeout, source)
            )
        try:
            connection.connect()
        except TimeoutError as exc:
            connection.close()
            raise httpx.ConnectTimeout(f"connect to {host}:{port} timed out") from exc
        except OSError as exc:
            connection.close()
            raise httpx.ConnectError(str(exc)) from exc
        return connection

    # -- requests --------------------------------------------------------------------------
    def handle_request(self, request: httpx.Request) -> httpx.Response:
        timeouts: dict[str, Any] = request.extensions.get("timeout", {})
        pool_timeout = timeouts.get("pool")
        if not self._slots.acquire(timeout=pool_timeout if pool_timeout is not None else -1):
            raise httpx.PoolTimeout("no free connection in the pool")
        try:
            return self._send(request, timeouts)
        except BaseException:
            self._slots.release()
            raise

    def _send(self, request: httpx.Request, timeouts: dict[str, Any]) -> httpx.Response:
        origin = _origin(request.url)
        body = request.read()
        reused = self._take_idle(origin)
        # A kept-alive connection the server has since closed fails before any answer: retry
        # such a request once on a new connection (only requests without a body are retried).
        for connection in ([reused] if reused is not None else []) + [None]:
            fresh = connection is None
            if connection is None:
                connection = self._new_connection(origin, timeouts)
            try:
                response = self._exchange(connection, request, body, timeouts)
            # Over TLS a closed kept-alive connection shows as an SSL EOF, not a disconnect.
            except (
                http.client.RemoteDisconnected,
                ConnectionResetError,
                BrokenPipeError,
                ssl.SSLEOFError,
            ) as exc:
                connection.close()
                if fresh or body:
                    raise _translate(exc, reading=True) from exc
                continue
            except BaseException as exc:
                connection.close()
                if isinstance(exc, OSError | http.client.HTTPException):
                    raise _translate(exc, reading=True) from exc
                raise
            return httpx.Response(
                status_code=response.status,
                headers=response.getheaders(),
                stream=_Body(self, origin, connection, response),
                extensions={"http_version": b"HTTP/1.1", "reason_phrase": response.reason.encode()},
            )
        raise AssertionError("unreachable: the loop always returns or raises")

    def _exchange(
        self,
        connection: http.client.HTTPConnection,
        request: httpx.Request,
        body: bytes,
        timeouts: dict[str, Any],
    ) -> http.client.HTTPResponse:
        sock = connection.sock
        if sock is not None:
            sock.settimeout(timeouts.get("read") or _DEFAULT_TIMEOUT)
        target = request.url.raw_path.decode("ascii")
        connection.putrequest(request.method, target, skip_host=True, skip_accept_encoding=True)
        for name, value in request.headers.multi_items():
            connection.putheader(name, value)
        connection.endheaders(body or None)
        return connection.getresponse()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            connections = [c for idle in self._idle.values() for c in idle]
            self._idle.clear()
        for connection in connections:
            connection.close()

    def _release(self) -> None:
        self._slots.release()


class _Body(httpx.SyncByteStream):
    """A response body read in 1 MiB chunks; the connection goes back to the pool when done."""

    def __init__(
        self,
        transport: StdlibTransport,
        origin: Origin,
        connection: http.client.HTTPConnection,
        response: http.client.HTTPResponse,
    ) -> None:
        self._transport = transport
        self._origin = origin
        self._connection: http.client.HTTPConnection | None = connection
        self._response = response

    def __iter__(self) -> Iterator[bytes]:
        response = self._response
        # With a known length (every blob), each chunk is filled to CHUNK_SIZE by ``read``: a
        # loop of recv in C into one fresh ``bytes``, no copy. Over TLS one recv returns a single
        # 16 KiB record, and the per-chunk Python work above us (httpx, the size check, the hash
        # call, GIL hand-offs between blob threads) on 4096 chunks per 64 MiB cost more CPU than
        # the decryption (bench/README.md). The price: a chunk at a trickle arrives only when
        # full, so per-chunk checks (a pull's cancel) run that much later; timeouts still apply
        # to every recv. Without a length (chunked, or until close) ``read1`` yields what comes.
        read = response.read if response.length is not None else response.read1
        try:
            while chunk := read(CHUNK_SIZE):
                yield chunk
        except http.client.IncompleteRead as exc:
            raise httpx.RemoteProtocolError(
                f"peer closed connection without sending complete message body ({exc!r})"
            ) from exc
        except (OSError, http.client.HTTPException) as exc:
            raise _translate(exc, reading=True) from exc
        if self._response.length not in (None, 0):
            raise httpx.RemoteProtocolError(
                "peer closed connection without sending complete message body "
                f"({self._response.length} bytes missing)"
            )

    def close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is None:
            return
        complete = self._response.isclosed() or self._response.length == 0
        if complete and not self._response.will_close:
            self._response.close()
            self._transport._give_back(self._origin, connection)
        else:
            connection.close()
        self._transport._release()


def _translate(exc: BaseException, *, reading: bool) -> Exception:
    """The httpx exception for a standard-library failure (what ``failures`` classifies)."""
    if isinstance(exc, TimeoutError):
        return httpx.ReadTimeout(str(exc) or "read timed out")
    if isinstance(exc, http.client.RemoteDisconnected):
        return httpx.RemoteProtocolError("Server disconnected without sending a response.")
    if isinstance(exc, http.client.IncompleteRead):
        return httpx.RemoteProtocolError(
            f"peer closed connection without sending complete message body ({exc!r})"
        )
    if isinstance(exc, http.client.HTTPException):
        return httpx.RemoteProtocolError(f"invalid HTTP response: {exc!r}")
    if isinstance(exc, ConnectionResetError | BrokenPipeError):
        return httpx.ReadError(str(exc))
    if isinstance(exc, OSError):
        return httpx.ReadError(str(exc)) if reading else httpx.ConnectError(str(exc))
    return httpx.TransportError(str(exc))


class PerThreadTransport(httpx.BaseTransport):
    """One inner transport (and so one HTTP/2 connection) per thread.

    httpcore's synchronous HTTP/2 connection is not safe to share between threads: two threads
    can send their frames out of order, nginx answers "client sent HEADERS frame with incorrect
    identifier" and drops the connection, and every request on it fails as if the registry had
    reset it (seen in bench/pull.py with 8 threads). Each thread's requests multiplex on its own
    connection instead; a response is read by the thread that asked for it, as our pulls do.
    """

    def __init__(self, factory: Callable[[], httpx.BaseTransport]) -> None:
        self._factory = factory
        self._local = threading.local()
        self._made: list[httpx.BaseTransport] = []
        self._lock = threading.Lock()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        transport: httpx.BaseTransport | None = getattr(self._local, "transport", None)
        if transport is None:
            transport = self._factory()
            self._local.transport = transport
            with self._lock:
                self._made.append(transport)
        return transport.handle_request(request)

    def close(self) -> None:
        with self._lock:
            made, self._made = self._made, []
        for transport in made:
            transport.close()
