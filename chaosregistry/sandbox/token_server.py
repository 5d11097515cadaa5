"""The sandbox's bearer-token server (Distribution token spec), run as a subprocess.

    python -m chaosregistry.sandbox.token_server --listen 127.0.0.1:15040 \\
        --credentials run/secrets/credentials.json --key ... --cert ... \\
        --issuer ISS --service SVC --tls-cert run/pki/sandbox-server.crt --tls-key ...

HTTPS only (``--tls-cert`` / ``--tls-key``, the sandbox's serving pair): the realm a registry
sends clients to is ``https://``. ALPN offers ``http/1.1`` only, because ``http.server``
speaks nothing else; nginx and the mirror are the HTTP/2 endpoints.

Routes:
- ``GET /token?service=S&scope=repository:NAME:pull`` with HTTP basic auth: 200
  ``{"token", "access_token", "expires_in", "issued_at"}``; 401 when anonymous or wrong.
- ``POST /token`` (OAuth2 password grant, form body) as containerd sends it: same answer.
- ``GET /stats`` -> ``{"tokens_issued": n, "refused": m}`` so tests can prove a client reuses
  its token instead of fetching one per request.
- ``GET /healthz`` -> 200 (readiness).

Only paths come on the command line; the password is read from the credentials file and
never logged.
"""

import argparse
import base64
import binascii
import datetime
import json
import socket
import ssl
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from chaosregistry.sandbox.credentials import Credentials, check_password, read_credentials_file
from chaosregistry.sandbox.tls import server_context
from chaosregistry.sandbox.tokens import Signer, build_claims

DEFAULT_TTL = 300
# A client that connects and never finishes its handshake frees its thread after this long.
HANDSHAKE_TIMEOUT = 30.0


class TokenService:
    """What the handler needs: credentials, signer, claims settings and counters."""

    def __init__(
        self, *, creds: Credentials, signer: Signer, issuer: str, service: str, ttl: int
    ) -> None:
        self.creds = creds
        self.signer = signer
        self.issuer = issuer
        self.service = service
        self.ttl = ttl
        self._lock = threading.Lock()
        self.tokens_issued = 0
        self.refused = 0

    def count(self, *, issued: bool) -> None:
        with self._lock:
            if issued:
                self.tokens_issued += 1
            else:
                self.refused += 1

    def stats(self) -> dict[str, int]:
        with self._lock:
            return {"tokens_issued": self.tokens_issued, "refused": self.refused}

    def issue(self, username: str, password: str, scopes: list[str]) -> dict[str, Any] | None:
        """A token response for valid credentials, else None."""
        if not check_password(self.creds, username, password):
            self.count(issued=False)
            return None
        claims = build_claims(
            issuer=self.issuer,
            subject=username,
            audience=self.service,
            scopes=scopes,
            ttl=self.ttl,
        )
        token = self.signer.sign(claims)
        self.count(issued=True)
        issued_at = datetime.datetime.fromtimestamp(claims["iat"], datetime.UTC)
        return {
            "token": token,
            "access_token": token,
            "expires_in": self.ttl,
            "issued_at": issued_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        }


class TokenHandler(BaseHTTPRequestHandler):
    server_version = "chaosregistry-token/1"
    protocol_version = "HTTP/1.1"
    service: TokenService  # set on the subclass built by make_server

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        query = parse_qs(parts.query)
        if parts.path == "/healthz":
            self._json(200, {"ok": True})
        elif parts.path == "/stats":
            self._json(200, self.service.stats())
        elif parts.path == "/token":
            user_pass = self._basic_auth()
            if user_pass is None:
                self._unauthorized()
                return
            self._answer(*user_pass, query.get("scope", []))
        else:
            self._json(404, {"error": "not found"})

    def do_POST(self) -> None:
        parts = urlsplit(self.path)
        if parts.path != "/token":
            self._json(404, {"error": "not found"})
            return
        length = int(self.headers.get("Content-Length") or 0)
        form = parse_qs(self.rfile.read(length).decode("utf-8", "replace"))
        if form.get("grant_type", [""])[0] != "password":
            self._json(400, {"error": "unsupported_grant_type"})
            return
        username = form.get("username", [""])[0]
        password = form.get("password", [""])[0]
        scopes = " ".join(form.get("scope", [])).split()
        self._answer(username, password, scopes)

    def _answer(self, username: str, password: str, scopes: list[str]) -> None:
        body = self.service.issue(username, password, scopes)
        if body is None:
            self._unauthorized()
            return
        self._json(200, body)

    def _basic_auth(self) -> tuple[str, str] | None:
        header = self.headers.get("Authorization", "")
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "basic" or not value:
            return None
        try:
            decoded = base64.b64decode(value, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
        username, sep, password = decoded.partition(":")
        return (username, password) if sep else None

    def _unauthorized(self) -> None:
        self._json(
            401,
            {"errors": [{"code": "UNAUTHORIZED", "message": "authentication required"}]},
            headers={"WWW-Authenticate": 'Basic realm="chaosregistry-token"'},
        )

    def _json(self, status: int, body: Any, *, headers: dict[str, str] | None = None) -> None:
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        # The request line holds service and scope only; headers (Authorization) are never logged.
        sys.stderr.write(f"{self.log_date_time_string()} token-server {format % args}\n")


class TLSThreadingHTTPServer(ThreadingHTTPServer):
    """Each accepted connection's TLS handshake runs in its own handler thread.

    Wrapping the listening socket instead would handshake inside ``accept``, on the one
    serving thread: a client that stalls mid-handshake (a Toxiproxy hop holding bytes) would
    block every other client.
    """

    daemon_threads = True

    def __init__(
        self, address: tuple[str, int], handler: type[TokenHandler], tls: ssl.SSLContext
    ) -> None:
        super().__init__(address, handler)
        self.tls = tls

    def finish_request(self, request: Any, client_address: Any) -> None:
        request.settimeout(HANDSHAKE_TIMEOUT)
        with self.tls.wrap_socket(request, server_side=True) as secure:
            secure.settimeout(None)
            super().finish_request(secure, client_address)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that does not trust our CA aborts its handshake: one line, no traceback.
        error = sys.exc_info()[1]
        if isinstance(error, ssl.SSLError | socket.timeout | ConnectionError):
            sys.stderr.write(f"token-server: TLS from {client_address[0]} failed: {error}\n")
            return
        super().handle_error(request, client_address)


def make_server(
    host: str, port: int, service: TokenService, tls: ssl.SSLContext
) -> ThreadingHTTPServer:
    handler = type("BoundTokenHandler", (TokenHandler,), {"service": service})
    return TLSThreadingHTTPServer((host, port), handler, tls)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", required=True, help="HOST:PORT")
    parser.add_argument("--credentials", required=True, type=Path)
    parser.add_argument("--key", required=True, type=Path)
    parser.add_argument("--cert", required=True, type=Path)
    parser.add_argument("--issuer", required=True)
    parser.add_argument("--service", required=True)
    parser.add_argument("--ttl", type=int, default=DEFAULT_TTL)
    parser.add_argument("--tls-cert", required=True, type=Path, help="serving certificate (PEM)")
    parser.add_argument("--tls-key", required=True, type=Path, help="its private key (PEM)")
    args = parser.parse_args(argv)
    host, _, port = args.listen.rpartition(":")
    service = TokenService(
        creds=read_credentials_file(args.credentials),
        signer=Signer.from_files(args.key, args.cert),
        issuer=args.issuer,
        service=args.service,
        ttl=args.ttl,
    )
    tls = server_context(args.tls_cert, args.tls_key, alpn=("http/1.1",))
    server = make_server(host, int(port), service, tls)
    sys.stderr.write(f"token-server listening on {args.listen}\n")
    sys.stderr.flush()
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
