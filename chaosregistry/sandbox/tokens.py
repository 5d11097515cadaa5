"""Registry bearer tokens: the signing key pair and the JWTs the token server issues.

Distribution 2.8 verifies a token's ``x5c`` header chain against its ``rootcertbundle``; we sign
with an EC P-256 key (ES256) whose self-signed certificate is both the chain and the bundle.
JWS wants the raw ``r || s`` signature, not the DER that ``cryptography`` produces.
"""

import base64
import datetime
import json
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID

from chaosregistry.errors import ConfigError

CERT_VALIDITY_DAYS = 3650
KNOWN_ACTIONS = frozenset({"pull", "push", "delete", "*"})


def ensure_signing_pair(key_file: Path, cert_file: Path) -> None:
    """Create the signing key (0600) and its self-signed certificate unless both exist."""
    if key_file.is_file() and cert_file.is_file():
        return
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "chaosregistry sandbox token")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        # Backdated so a registry whose clock is slightly behind still accepts the chain.
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=CERT_VALIDITY_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    pem_key = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem_key)
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


@dataclass(frozen=True)
class Signer:
    """Signs ES256 JWTs whose x5c header carries the signing certificate."""

    key: ec.EllipticCurvePrivateKey
    cert_der: bytes

    @classmethod
    def from_files(cls, key_file: Path, cert_file: Path) -> "Signer":
        key = serialization.load_pem_private_key(key_file.read_bytes(), password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ConfigError(f"{key_file} is not an EC private key")
        cert = x509.load_pem_x509_certificate(cert_file.read_bytes())
        return cls(key=key, cert_der=cert.public_bytes(serialization.Encoding.DER))

    def sign(self, claims: dict[str, Any]) -> str:
        header = {
            "typ": "JWT",
            "alg": "ES256",
            "x5c": [base64.b64encode(self.cert_der).decode()],
        }
        signing_input = f"{_b64url_json(header)}.{_b64url_json(claims)}"
        der = self.key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256()))
        r, s = decode_dss_signature(der)
        signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")
        return f"{signing_input}.{_b64url(signature)}"


def parse_scope(scope: str) -> dict[str, Any] | None:
    """``repository:shop/api:pull,push`` -> an access entry; None when malformed.

    The name sits between the first and the last colon because names may hold colons
    (``repository:host:5000/x:pull``) while types and actions never do.
    """
    kind, sep, rest = scope.partition(":")
    name, sep2, actions = rest.rpartition(":")
    if not (sep and sep2 and kind and name):
        return None
    wanted = [action for action in actions.split(",") if action in KNOWN_ACTIONS]
    return {"type": kind, "name": name, "actions": wanted}


def build_claims(
    *, issuer: str, subject: str, audience: str, scopes: list[str], ttl: int
) -> dict[str, Any]:
    now = int(time.time())
    access = [entry for entry in (parse_scope(scope) for scope in scopes) if entry is not None]
    return {
        "iss": issuer,
        "sub": subject,
        "aud": audience,
        "exp": now + ttl,
        "nbf": now - 1,
        "iat": now,
        "jti": secrets.token_hex(16),
        "access": access,
    }


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _b64url_json(data: dict[str, Any]) -> str:
    return _b64url(json.dumps(data, separators=(",", ":")).encode())
