"""The libcurl transport (HTTP/2's, chaosregistry.oci.curl) against loopback sockets that answer
what a registry seldom does: an interim 1xx head, no answer at all, a short body, a request body
to receive; and the one failure no local server here can make (an HTTP/2 stream reset)."""

import socket
import threading
from collections.abc import Callable, Iterator

import httpx
import pycurl
import pytest

from chaosregistry.errors import ErrorClass
from chaosregistry.oci import failures
from chaosregistry.oci.curl import CurlTransport, _Exchange, _Thread

Handler = Callable[[socket.socket, int], None]


@pytest.fixture
def server() -> Iterator[Callable[[Handler], str]]:
    """A one-thread loopback server running ``handler(conn, index)`` per connection."""
    listeners: list[socket.socket] = []

    def start(handler: Handler) -> str:
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        listeners.append(listener)

        def serve() -> None:
            index = 0
            while True:
                try:
                    conn, _ = listener.accept()
                except OSError:
                    return
                with conn:
                    handler(conn, index)
                index += 1

        threading.Thread(target=serve, daemon=True).start()
        return f"http://127.0.0.1:{listener.getsockname()[1]}"

    yield start
    for listener in listeners:
        listener.close()


def read_request(conn: socket.socket) -> bytes:
    """The request's head and its body (by Content-Length)."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += conn.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        (
            int(line.split(b":")[1])
            for line in head.lower().split(b"\r\n")
            if b"content-length" in line
        ),
        0,
    )
    while len(body) < length:
        body += conn.recv(65536)
    return head + b"\r\n\r\n" + body


def client(url: str, timeout: float = 5.0) -> httpx.Client:
    return httpx.Client(base_url=url, transport=CurlTransport(), timeout=timeout)


def test_an_interim_100_head_is_dropped_and_the_final_answer_kept(
    server: Callable[[Handler], str],
) -> None:
    def answer(conn: socket.socket, _: int) -> None:
        read_request(conn)
        conn.sendall(
            b"HTTP/1.1 100 Continue\r\n\r\n"
            b"HTTP/1.1 201 Created\r\nLocation: /v2/x\r\nContent-Length: 2\r\n\r\nok"
        )

    with client(server(answer)) as http:
        response = http.put("/v2/upload", content=b"data")
    assert response.status_code == 201
    assert response.headers["location"] == "/v2/x"
    assert response.content == b"ok"
    assert response.http_version == "HTTP/1.1"


def test_a_push_body_arrives_whole_without_an_expect_wait(
    server: Callable[[Handler], str],
) -> None:
    received: list[bytes] = []

    def answer(conn: socket.socket, _: int) -> None:
        received.append(read_request(conn))
        conn.sendall(b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n")

    body = bytes(range(256)) * 4096  # 1 MiB: libcurl would ask "Expect: 100-continue"
    with client(server(answer)) as http:
        response = http.put("/v2/upload", content=body, headers={"X-Check": "1"})
    assert response.status_code == 201
    head, _, sent = received[0].partition(b"\r\n\r\n")
    assert head.startswith(b"PUT /v2/upload HTTP/1.1")
    assert b"expect:" not in head.lower()
    assert b"x-check: 1" in head.lower()
    assert sent == body


def test_two_requests_of_one_thread_share_one_connection(
    server: Callable[[Handler], str],
) -> None:
    connections: list[int] = []

    def answer(conn: socket.socket, index: int) -> None:
        connections.append(index)
        for _ in range(2):
            read_request(conn)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello")

    with client(server(answer)) as http:
        assert [http.get("/v2/").content for _ in range(2)] == [b"hello", b"hello"]
    assert connections == [0]


def test_no_answer_at_all_is_a_reset(server: Callable[[Handler], str]) -> None:
    def hang_up(conn: socket.socket, _: int) -> None:
        read_request(conn)

    with client(server(hang_up)) as http, pytest.raises(httpx.TransportError) as raised:
        http.get("/v2/")
    assert failures.from_exception(raised.value, "ping").error_class is ErrorClass.RESET


def test_a_body_short_of_its_length_is_truncated(server: Callable[[Handler], str]) -> None:
    def short(conn: socket.socket, _: int) -> None:
        read_request(conn)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this")

    with client(server(short)) as http, http.stream("GET", "/v2/blob") as response:
        assert response.status_code == 200
        with pytest.raises(httpx.TransportError) as raised:
            response.read()
    error = failures.from_exception(raised.value, "blob", in_body=True)
    assert error.error_class is ErrorClass.TRUNCATED


def test_silence_after_the_head_is_a_read_timeout(server: Callable[[Handler], str]) -> None:
    gate = threading.Event()

    def stall(conn: socket.socket, _: int) -> None:
        read_request(conn)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nfirst")
        gate.wait(10)

    try:
        with (
            client(server(stall), timeout=0.5) as http,
            http.stream("GET", "/b") as response,
            pytest.raises(httpx.ReadTimeout),
        ):
            response.read()
    finally:
        gate.set()


def test_an_http2_stream_reset_is_a_reset() -> None:
    # A server that resets one stream (RST_STREAM) while the connection lives is no test here:
    # the failure is fed as libcurl reports it (CURLE_HTTP2_STREAM) after the answer's head.
    exchange = _Exchange(_Thread(), pycurl.Curl(), {})
    exchange._on_header(b"HTTP/2 200\r\n")
    exchange._on_header(b"\r\n")
    error = exchange._failure(92, "HTTP/2 stream 1 was reset")
    classified = failures.from_exception(error, "blob", in_body=True)
    assert classified.error_class is ErrorClass.RESET
    assert exchange.http_version == b"HTTP/2"
