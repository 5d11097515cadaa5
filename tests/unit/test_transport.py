"""The http.client transport against real loopback sockets: keep-alive, retries, short bodies."""

import socket
import threading
from collections.abc import Callable, Iterator

import httpx
import pytest

from chaosregistry.oci.transport import CHUNK_SIZE, StdlibTransport

RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"


@pytest.fixture
def server() -> Iterator[Callable[[Callable[[socket.socket, int], None]], str]]:
    """Start a one-thread loopback server running ``handler(conn, index)`` per connection."""
    listeners: list[socket.socket] = []

    def start(handler: Callable[[socket.socket, int], None]) -> str:
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
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


def test_keep_alive_reuses_one_connection(server: Callable[..., str]) -> None:
    connections = []

    def handler(conn: socket.socket, index: int) -> None:
        connections.append(index)
        while read_request(conn):
            conn.sendall(RESPONSE)

    url = server(handler)
    with httpx.Client(transport=StdlibTransport()) as client:
        assert [client.get(url).text for _ in range(3)] == ["hello"] * 3
    assert connections == [0]


def test_a_stale_kept_alive_connection_is_retried_on_a_new_one(server: Callable[..., str]) -> None:
    def handler(conn: socket.socket, index: int) -> None:
        read_request(conn)
        conn.sendall(RESPONSE)  # keep-alive response, then the server closes it anyway

    url = server(handler)
    with httpx.Client(transport=StdlibTransport()) as client:
        assert client.get(url).text == "hello"
        assert client.get(url).text == "hello"


def test_a_body_shorter_than_its_length_raises_remote_protocol_error(
    server: Callable[..., str],
) -> None:
    def handler(conn: socket.socket, index: int) -> None:
        read_request(conn)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly-ten!!")

    url = server(handler)
    with (
        httpx.Client(transport=StdlibTransport()) as client,
        pytest.raises(httpx.RemoteProtocolError, match="complete message body"),
    ):
        client.get(url)


def test_a_server_that_never_answers_times_out(server: Callable[..., str]) -> None:
    done = threading.Event()

    def handler(conn: socket.socket, index: int) -> None:
        read_request(conn)
        done.wait(5)

    url = server(handler)
    try:
        with (
            httpx.Client(transport=StdlibTransport(), timeout=0.3) as client,
            pytest.raises(httpx.ReadTimeout),
        ):
            client.get(url)
    finally:
        done.set()


def test_a_closed_port_is_a_connect_error() -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    listener.close()
    with (
        httpx.Client(transport=StdlibTransport()) as client,
        pytest.raises(httpx.ConnectError),
    ):
        client.get(f"http://127.0.0.1:{port}/")


def test_pool_limit_makes_a_waiting_request_time_out(server: Callable[..., str]) -> None:
    def handler(conn: socket.socket, index: int) -> None:
        while read_request(conn):
            conn.sendall(RESPONSE)

    url = server(handler)
    transport = StdlibTransport(max_connections=1)
    with httpx.Client(transport=transport, timeout=httpx.Timeout(5, pool=0.2)) as client:
        with client.stream("GET", url), pytest.raises(httpx.PoolTimeout):
            client.get(url)  # the open stream holds the only connection
        assert client.get(url).text == "hello"  # released once the stream closed


def test_a_body_with_a_length_comes_in_full_chunks_however_the_server_sends_it(
    server: Callable[..., str],
) -> None:
    # TLS hands a body over in 16 KiB records; the transport must not yield them one by one.
    body = bytes(range(256)) * (CHUNK_SIZE * 3 // 256 + 10)

    def handler(conn: socket.socket, index: int) -> None:
        read_request(conn)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body))
        for start in range(0, len(body), 16384):
            conn.sendall(body[start : start + 16384])

    url = server(handler)
    with (
        httpx.Client(transport=StdlibTransport()) as client,
        client.stream("GET", url) as response,
    ):
        chunks = list(response.iter_raw())
    assert [len(c) for c in chunks] == [CHUNK_SIZE] * 3 + [len(body) - 3 * CHUNK_SIZE]
    assert b"".join(chunks) == body
