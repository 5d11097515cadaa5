"""HTTP/2 for the httpx driver on libcurl and nghttp2 (pycurl): the native I/O under ``http2``.

httpx's own HTTP/2 (httpcore + the pure-Python ``h2``) frames every 16 KiB DATA frame in
Python: ~3.3 s of CPU per 192 MiB pull, 0.12x curl --http2. libcurl does the framing, TLS and
flow control in C; Python sees one callback per DATA frame. Measured on one 192 MiB verified
pull against the sandbox's HTTPS registry (3 blobs at once, sha256 per chunk, load ~9):
pycurl 0.72x curl --http2 (0.36 s CPU), curl-cffi 0.60x (0.44 s CPU; it bundles BoringSSL and
curl-impersonate for browser fingerprints we do not need). urllib3-future installs itself as
``urllib3`` and would replace the one the Kubernetes client uses. Hence pycurl
(bench/README.md has the figures).

The protocol core, the httpx driver's requests, redirects, auth and error classes stay as they
are: this is a transport. Each thread gets its own libcurl multi handle (libcurl handles are not
thread-safe), whose connection cache keeps that thread's connection open between requests, as
:class:`chaosregistry.oci.transport.PerThreadTransport` does for httpx's h2. A thread reads its
streams one at a time (a pull's blob thread does): a stream another stream of the same thread
leaves unread is buffered. A thread's handle and connection live until the client is closed.
Failures are raised as the httpx and standard-library exceptions
:mod:`chaosregistry.oci.failures` classifies (TLS ones with OpenSSL's verify code), so the one
error table applies unchanged.

Scope: HTTPS with HTTP/2 by ALPN (HTTP/1.1 where the server offers no h2, and over plain
HTTP); no proxies.
"""

import errno
import io
import os
import socket
import ssl
import threading
import time
from collections.abc import Iterator, Mapping
from typing import Any

import httpx
import pycurl

_DEFAULT_TIMEOUT = 30.0
# How long one wait for the socket may block: short enough to notice a read timeout on time.
_MAX_WAIT = 1.0
# curl's own header that httpx does not set (a 100-continue wait before every push): never sent.
_SUPPRESSED = ("Expect:",)
_HOP_BY_HOP = frozenset({"connection", "keep-alive", "host", "transfer-encoding", "upgrade"})
# libcurl's CURLE_HTTP2_STREAM (a stream reset), which pycurl does not name.
_E_HTTP2_STREAM = 92
_X509_V_ERR_HOSTNAME_MISMATCH = 62


def ca_file(verify: bool | str) -> str | None:
    """The CA bundle libcurl should trust for ``verify`` (None: no verification)."""
    if verify is False:
        return None
    if isinstance(verify, str):
        return verify
    # The wheel's libcurl was built elsewhere: point it at this system's roots, as ssl does.
    paths = ssl.get_default_verify_paths()
    return paths.cafile or paths.openssl_cafile


class CurlTransport(httpx.BaseTransport):
    """An httpx transport on libcurl, HTTP/2 over TLS where the server offers it.

    ``verify``: as :class:`chaosregistry.oci.client.RegistryClient`'s (the system CAs, none,
    or a CA bundle path); the host name is always checked when verifying. ``connect_to``:
    ``{(host, port): (connect_host, connect_port)}``, libcurl's ``CONNECT_TO``: the TCP
    connection goes to the second address while the Host header, SNI and the certificate's
    host-name check stay the first's (a fault proxy in front of the registry).
    """

    def __init__(
        self,
        *,
        verify: bool | str = True,
        connect_to: Mapping[tuple[str, int], tuple[str, int]] | None = None,
    ) -> None:
        self._ca_file = ca_file(verify)
        self._connect_to = [
            f"{host}:{port}:{to_host}:{to_port}"
            for (host, port), (to_host, to_port) in (connect_to or {}).items()
        ]
        self._local = threading.local()
        self._threads: list[_Thread] = []
        self._lock = threading.Lock()
        self._closed = False

    def _thread(self) -> "_Thread":
        mine: _Thread | None = getattr(self._local, "state", None)
        if mine is None:
            mine = _Thread()
            with self._lock:
                if self._closed:
                    raise httpx.TransportError("the client is closed")
                self._threads.append(mine)
            self._local.state = mine
        return mine

    def close(self) -> None:
        with self._lock:
            self._closed = True
            threads, self._threads = self._threads, []
        for state in threads:
            state.multi.close()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        timeouts: dict[str, Any] = request.extensions.get("timeout", {})
        exchange = _Exchange(self._thread(), self._easy(request, timeouts), timeouts)
        exchange.start()
        try:
            exchange.wait_for_headers()
        except BaseException:
            exchange.close()
            raise
        return httpx.Response(
            status_code=exchange.status,
            headers=exchange.headers,
            stream=_Body(exchange),
            extensions={"http_version": exchange.http_version, "reason_phrase": b""},
        )

    def _easy(self, request: httpx.Request, timeouts: dict[str, Any]) -> pycurl.Curl:
        easy = pycurl.Curl()
        easy.setopt(pycurl.URL, str(request.url))
        if self._connect_to:
            easy.setopt(pycurl.CONNECT_TO, self._connect_to)
        easy.setopt(pycurl.HTTP_VERSION, pycurl.CURL_HTTP_VERSION_2TLS)
        easy.setopt(pycurl.NOSIGNAL, 1)
        connect = timeouts.get("connect") or _DEFAULT_TIMEOUT
        easy.setopt(pycurl.CONNECTTIMEOUT_MS, max(1, int(connect * 1000)))
        if self._ca_file is None:
            easy.setopt(pycurl.SSL_VERIFYPEER, 0)
            easy.setopt(pycurl.SSL_VERIFYHOST, 0)
        else:
            easy.setopt(pycurl.CAINFO, self._ca_file)
            easy.setopt(pycurl.SSL_VERIFYPEER, 1)
            easy.setopt(pycurl.SSL_VERIFYHOST, 2)
        headers = [
            f"{name}: {value}"
            for name, value in request.headers.multi_items()
            if name.lower() not in _HOP_BY_HOP
        ]
        easy.setopt(pycurl.HTTPHEADER, [*headers, *_SUPPRESSED])
        method = request.method.upper()
        body = request.read()
        if method == "HEAD":
            easy.setopt(pycurl.NOBODY, 1)
        elif method != "GET" or body:
            if body or method in ("POST", "PUT", "PATCH"):
                # Read from a buffer, not COPYPOSTFIELDS: pycurl refuses bytes holding a NUL.
                easy.setopt(pycurl.POST, 1)
                easy.setopt(pycurl.POSTFIELDSIZE_LARGE, len(body))
                easy.setopt(pycurl.READDATA, io.BytesIO(body))
            easy.setopt(pycurl.CUSTOMREQUEST, method)
        return easy


class _Thread:
    """One thread's libcurl multi handle (its connections) and the exchanges running on it."""

    def __init__(self) -> None:
        self.multi = pycurl.CurlMulti()
        self.exchanges: dict[int, _Exchange] = {}


class _Exchange:
    """One request on a thread's multi handle: its answer's head, then its body as it comes."""

    def __init__(self, thread: _Thread, easy: pycurl.Curl, timeouts: dict[str, Any]):
        self._thread = thread
        self._multi = thread.multi
        self._easy = easy
        self._read_timeout = timeouts.get("read") or _DEFAULT_TIMEOUT
        self._connect_timeout = timeouts.get("connect") or _DEFAULT_TIMEOUT
        self._pending: list[bytes] = []
        self._status_line = b""
        self._header_lines: list[bytes] = []
        self._head_done = False
        self._received = 0
        self._done = False
        self._error: tuple[int, str] | None = None
        self._attached = False
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.http_version = b"HTTP/1.1"
        easy.setopt(pycurl.HEADERFUNCTION, self._on_header)
        easy.setopt(pycurl.WRITEFUNCTION, self._on_data)

    # -- libcurl's callbacks (run inside ``perform``, in this thread) ------------------------
    def _on_header(self, line: bytes) -> None:
        if line.startswith(b"HTTP/"):
            # A new answer: an interim 1xx's head is dropped with its lines.
            self._status_line = line.strip()
            self._header_lines = []
            return
        if line in (b"\r\n", b"\n"):
            parts = self._status_line.split(None, 2)
            status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
            if status >= 200:
                self.status = status
                # The version the answer came over, from its status line ("HTTP/2 200").
                self.http_version = parts[0]
                self.headers = [
                    (name.strip(), value.strip())
                    for name, _, value in (h.partition(b":") for h in self._header_lines)
                ]
                self._head_done = True
            return
        self._header_lines.append(line)

    def _on_data(self, data: bytes) -> None:
        self._pending.append(data)
        self._received += len(data)

    # -- driving ------------------------------------------------------------------------------
    def start(self) -> None:
        self._thread.exchanges[id(self._easy)] = self
        self._multi.add_handle(self._easy)
        self._attached = True

    def wait_for_headers(self) -> None:
        # Before the head: connecting (libcurl's own connect timeout) and then the server's
        # first byte, which httpx's read timeout bounds.
        self._pump(lambda: self._head_done, self._connect_timeout + self._read_timeout)
        if not self._head_done:
            raise httpx.RemoteProtocolError("Server disconnected without sending a response.")

    def chunks(self) -> Iterator[bytes]:
        while True:
            if not self._pending and not self._done:
                self._pump(lambda: bool(self._pending), self._read_timeout)
            if self._pending:
                # One chunk per wake-up: libcurl hands over one DATA frame (8-16 KiB) per
                # callback; joining them keeps the per-chunk work above us (httpx, the size
                # check, the hash call) to one call per socket read. Waiting to gather 1 MiB, as
                # the HTTP/1.1 transport reads, was slower here (bench/README.md).
                chunk = self._pending[0] if len(self._pending) == 1 else b"".join(self._pending)
                self._pending = []
                yield chunk
            elif self._done:
                # The end may come with the last bytes: a failed end is raised after them.
                if self._error is not None:
                    raise self._failure(*self._error)
                return

    def _pump(self, ready: Any, timeout: float) -> None:
        """Run libcurl until ``ready()``, the transfer ends (raising its failure), or nothing
        arrived for ``timeout`` seconds."""
        last = time.monotonic()
        seen = self._received
        while True:
            while self._multi.perform()[0] == pycurl.E_CALL_MULTI_PERFORM:
                pass
            self._collect()
            if ready():
                return
            if self._done:
                if self._error is not None:
                    raise self._failure(*self._error)
                return
            now = time.monotonic()
            if self._received != seen:
                last, seen = now, self._received
            if now - last > timeout:
                raise self._timeout()
            if self._multi.select(_MAX_WAIT) == -1:
                # No socket to wait on yet (the name is being resolved): libcurl's own advice.
                time.sleep(min(_MAX_WAIT, max(self._multi.timeout(), 1) / 1000))

    def _collect(self) -> None:
        while True:
            queued, ok, failed = self._multi.info_read()
            # The multi handle is the thread's: a message may be another exchange's.
            for handle in ok:
                self._thread.exchanges[id(handle)]._finish(None)
            for handle, code, message in failed:
                self._thread.exchanges[id(handle)]._finish((code, message))
            if not queued:
                return

    def _finish(self, error: tuple[int, str] | None) -> None:
        self._done = True
        self._error = error

    def close(self) -> None:
        if self._attached:
            self._attached = False
            # Removing an unfinished transfer resets its stream (h2) or closes its connection
            # (h1); a finished one leaves the connection in the multi's cache.
            self._multi.remove_handle(self._easy)
            del self._thread.exchanges[id(self._easy)]
        self._easy.close()

    # -- failures, in the terms failures.py classifies -----------------------------------------
    def _timeout(self) -> Exception:
        if not self._head_done and not self._easy.getinfo(pycurl.CONNECT_TIME):
            return httpx.ConnectTimeout("connect timed out")
        return httpx.ReadTimeout("read timed out")

    def _failure(self, code: int, message: str) -> Exception:
        os_errno = self._easy.getinfo(pycurl.OS_ERRNO)
        cause: BaseException | None = OSError(os_errno, os.strerror(os_errno)) if os_errno else None
        error: Exception
        if code == pycurl.E_OPERATION_TIMEDOUT:
            error = self._timeout()
        elif code == pycurl.E_COULDNT_RESOLVE_HOST:
            # libcurl's message does not say why (unknown name, or no answer): EAI_FAIL, whose
            # reason in the one table is "failed", claims no more than it knows.
            cause = socket.gaierror(socket.EAI_FAIL, message)
            error = httpx.ConnectError(message)
        elif code == pycurl.E_COULDNT_CONNECT:
            cause = cause or ConnectionRefusedError(errno.ECONNREFUSED, message)
            error = httpx.ConnectError(message)
        elif code == pycurl.E_PEER_FAILED_VERIFICATION:
            verify_code = self._easy.getinfo(pycurl.SSL_VERIFYRESULT)
            if "subject name" in message or "does not match" in message:
                # libcurl checks the host name itself, after OpenSSL's verification passed; it
                # reports X509_V_ERR_UNSPECIFIED (1) and says so in words.
                verify_code = _X509_V_ERR_HOSTNAME_MISMATCH
            cause = _verification_error(verify_code, message)
            error = httpx.ConnectError(message)
        elif code == pycurl.E_SSL_CONNECT_ERROR:
            # A handshake the socket broke (reset, closed) is that socket failure, as for the
            # standard library's handshake; only what TLS itself refused is a TLS failure.
            cause = cause or ssl.SSLError(message)
            error = httpx.ConnectError(message)
        elif self._head_done and (
            code == pycurl.E_PARTIAL_FILE or (os_errno != errno.ECONNRESET and self._short())
        ):
            error = httpx.RemoteProtocolError(
                f"peer closed connection without sending complete message body ({message})"
            )
        elif code == pycurl.E_GOT_NOTHING:
            error = httpx.RemoteProtocolError("Server disconnected without sending a response.")
        elif code in (pycurl.E_RECV_ERROR, pycurl.E_SEND_ERROR) or os_errno:
            error = httpx.ReadError(message)
        elif code in (pycurl.E_HTTP2, _E_HTTP2_STREAM):
            error = httpx.RemoteProtocolError(message)
        else:
            error = httpx.TransportError(f"curl error {code}: {message}")
        error.__cause__ = cause
        return error

    def _short(self) -> bool:
        """Whether the body stopped before its Content-Length."""
        length = float(self._easy.getinfo(pycurl.CONTENT_LENGTH_DOWNLOAD_T))
        return length >= 0 and self._received < length


def _verification_error(verify_code: int, message: str) -> ssl.SSLCertVerificationError:
    error = ssl.SSLCertVerificationError(1, message)
    error.verify_code = verify_code
    error.verify_message = message.removeprefix("SSL certificate problem: ")
    return error


class _Body(httpx.SyncByteStream):
    def __init__(self, exchange: _Exchange) -> None:
        self._exchange = exchange

    def __iter__(self) -> Iterator[bytes]:
        return self._exchange.chunks()

    def close(self) -> None:
        self._exchange.close()
