"""The sandbox's secrets: the user's password, its htpasswd entry and the registries' http secret.

Generated once, at the first ``up``, and kept in ``run_dir/secrets`` (mode 0700, files 0600).
They never go into endpoints.json, argv or a log line.
"""

import hmac
import os
import secrets
from pathlib import Path

import bcrypt

from chaosregistry.errors import ConfigError
from chaosregistry.oci.auth import Credentials as Credentials  # re-exported; repr hides password
from chaosregistry.osutil.files import write_json, write_text_atomic
from chaosregistry.sandbox.layout import USERNAME, Layout, read_json

# Distribution re-checks the bcrypt hash on every request (no cache in 2.8), so the cost factor
# is paid by every pull. The password is random and local, so bcrypt's lowest cost is enough
# and keeps benchmarks measuring the registry rather than bcrypt. Measured 2026-12-07, two Locust
# users for 10 s, a Distribution 2.8 replica's CPU per pull: 17.7-19.7 ms at cost 5, 15.3-16.2 ms
# at cost 4 (each step down halves bcrypt's share).
BCRYPT_ROUNDS = 4


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.chmod(path, 0o600)


def load_credentials(run_dir: Path | str) -> Credentials:
    """The sandbox user's credentials (from run_dir/secrets/credentials.json)."""
    return read_credentials_file(Layout.at(run_dir).credentials_file)


def read_credentials_file(path: Path) -> Credentials:
    if not path.is_file():
        raise ConfigError(f"{path} not found: run `chaosregistry sandbox up` first")
    data = read_json(path)
    try:
        return Credentials(username=str(data["username"]), password=str(data["password"]))
    except (KeyError, TypeError) as exc:
        raise ConfigError(f"{path} lacks a username or password") from exc


def ensure_credentials(layout: Layout) -> Credentials:
    """Load the credentials, generating user + password + htpasswd on first use."""
    if layout.credentials_file.is_file():
        creds = load_credentials(layout.run_dir)
    else:
        creds = Credentials(username=USERNAME, password=secrets.token_urlsafe(24))
        write_json(
            layout.credentials_file,
            {"username": creds.username, "password": creds.password},
            mode=0o600,
        )
    _ensure_htpasswd(layout.htpasswd_file, creds)
    return creds


def htpasswd_accepts(path: Path, creds: Credentials) -> bool:
    """Whether the htpasswd file at ``path`` holds ``creds`` (False when there is none)."""
    if not path.is_file():
        return False
    for line in path.read_text(encoding="utf-8").splitlines():
        user, _, hashed = line.partition(":")
        if user == creds.username and bcrypt.checkpw(creds.password.encode(), hashed.encode()):
            return True
    return False


def write_htpasswd(path: Path, creds: Credentials) -> None:
    """Replace the htpasswd file with one entry for ``creds``, atomically (mode 0600): a
    registry that re-reads it on change never sees half a file."""
    entry = bcrypt.hashpw(creds.password.encode(), bcrypt.gensalt(rounds=BCRYPT_ROUNDS))
    write_text_atomic(path, f"{creds.username}:{entry.decode()}\n", mode=0o600)


def _ensure_htpasswd(path: Path, creds: Credentials) -> None:
    # bcrypt salts differ per hash: rewrite only when the file does not match, so repeated
    # `up` calls leave a running registry's file alone.
    if not htpasswd_accepts(path, creds):
        write_htpasswd(path, creds)


def ensure_http_secret(layout: Layout) -> str:
    """The ``http.secret`` every registry on the shared storage must agree on."""
    path = layout.http_secret_file
    if path.is_file():
        return path.read_text(encoding="utf-8").strip()
    value = secrets.token_hex(32)
    _write_private(path, value + "\n")
    return value


def check_password(creds: Credentials, username: str, password: str) -> bool:
    """Constant-time comparison of a presented username/password."""
    user_ok = hmac.compare_digest(username.encode(), creds.username.encode())
    password_ok = hmac.compare_digest(password.encode(), creds.password.encode())
    return user_ok and password_ok
