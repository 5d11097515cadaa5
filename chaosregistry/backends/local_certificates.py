"""The local backend's certificate faults: one of the sandbox nginx's TLS servers serves an
expired, wrong-host or untrusted certificate, then its own again.

The fault issues a fresh leaf with :mod:`chaosregistry.trust.pki` into the sandbox's run dir, writes
``nginx/tls-overrides/<server>.conf`` naming it, and reloads nginx (SIGHUP to its master). The
sandbox's own pair (``pki/sandbox-server.crt`` / ``.key``) and its CA are never written, so a
crash at any moment leaves them intact: undoing is removing the snippet and reloading. Both
directions are proven by TLS handshakes: the served leaf's SHA-256 fingerprint must become the
fault's (applied) or the sandbox's own (reverted) within ``RELOAD_TIMEOUT`` seconds.

=========================  =======================================  ============================
server (``target``)        endpoint the handshakes go to            who is hurt
=========================  =======================================  ============================
``registry``               ``registry_direct`` (behind the          pullers via the
                           client-registry hop)                     client-registry hop
``registry-ratelimited``   ``registry_ratelimited``                 pullers of the 429 twin
``mirror-upstream``        ``token_registry`` (behind the           the mirror's pull-through
                           mirror-upstream hop)
=========================  =======================================  ============================

Leaves: ``expired`` (sandbox CA, valid until a day ago), ``wrong-host`` (sandbox CA, SANs that
name another host), ``untrusted`` (valid for 127.0.0.1, signed by a CA of its own under
``pki/untrusted`` that no client is told to trust).
"""

import datetime
import os
import secrets as _random
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from cryptography import x509

from chaosregistry.backends.plan import CERTIFICATE_KINDS, FaultPlan, confirmed
from chaosregistry.errors import ConfigError
from chaosregistry.faults.undo import UndoError, string_param, undo_handler
from chaosregistry.sandbox import SandboxError, load_endpoints, reload_nginx
from chaosregistry.sandbox.layout import CA_NAME, SERVER_CERT, Layout
from chaosregistry.trust.pki import Pki, issue, load_cert, server_spec
from chaosregistry.trust.tlsinspect import Endpoint, describe_leaf, fingerprint, served_certificate

RESTORE = "sandbox.tls-restore"
# nginx server -> the endpoints.json key of the URL that reaches it without a Toxiproxy hop, so
# a network fault on the hop cannot hide which certificate is served.
TLS_SERVERS: dict[str, str] = {
    "registry": "registry_direct",
    "registry-ratelimited": "registry_ratelimited",
    "mirror-upstream": "token_registry",
}
UNTRUSTED_CA_DIR = "untrusted"
UNTRUSTED_CA_NAME = "chaosregistry-untrusted-ca"
LEAF_PREFIX = "fault-"
# A reload takes nginx well under a second on the sandbox; 10 s covers a machine under load.
RELOAD_TIMEOUT = 10.0
# A wrong host: a name under the reserved .invalid TLD and a TEST-NET-1 address (RFC 5737).
WRONG_HOST_DNS = ("wrong-host.invalid",)
WRONG_HOST_IPS = ("192.0.2.10",)


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _endpoint(url: str) -> Endpoint:
    parts = urlsplit(url)
    return Endpoint(parts.hostname or "", parts.port or 443)


def _override(layout: Layout, server: str) -> Path:
    return layout.tls_overrides_dir / f"{server}.conf"


def _issue_leaf(layout: Layout, kind: str, leaf: str) -> Path:
    """Issue the fault's leaf; its cert path (the key is next to it)."""
    if kind == "expired":
        now = _now()
        spec = server_spec(
            leaf,
            not_before=now - datetime.timedelta(days=31),
            not_after=now - datetime.timedelta(days=1),
        )
        return issue(layout.pki, spec, ca_name=_sandbox_ca_name(layout))
    if kind == "wrong-host":
        spec = server_spec(leaf, dns_names=WRONG_HOST_DNS, ip_addresses=WRONG_HOST_IPS)
        return issue(layout.pki, spec, ca_name=_sandbox_ca_name(layout))
    other = Pki(layout.pki.directory / UNTRUSTED_CA_DIR)
    return issue(other, server_spec(leaf), ca_name=UNTRUSTED_CA_NAME)


def _sandbox_ca_name(layout: Layout) -> str:
    # issue() makes a CA when none exists; never mint a sandbox CA no client was told to trust.
    if not (layout.pki.ca_cert.is_file() and layout.pki.ca_key.is_file()):
        raise ConfigError(f"the sandbox in {layout.run_dir} has no CA (pki/ca.crt): run it up")
    return CA_NAME


def _write_exclusive(path: Path, text: str) -> None:
    """Create ``path`` with ``text`` atomically, failing if it exists: one fault per server."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    try:
        os.link(tmp, path)  # link(2) fails with EEXIST, never replaces another fault's file
    except FileExistsError as exc:
        raise ConfigError(
            f"a certificate fault is already active on {path.stem!r}: restore it first"
        ) from exc
    finally:
        tmp.unlink(missing_ok=True)


def wait_served(
    endpoint: Endpoint, wanted: str, *, timeout: float = RELOAD_TIMEOUT
) -> x509.Certificate:
    """Handshake until ``endpoint`` serves the certificate whose fingerprint is ``wanted``;
    returns it. Raises UndoError naming what is served instead after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    seen = "nothing"
    while True:
        try:
            cert = served_certificate(endpoint, timeout=2.0)
            if fingerprint(cert) == wanted:
                return cert
            seen = f"certificate {fingerprint(cert)[:16]}"
        except Exception as exc:  # a handshake during the reload may fail; keep looking
            seen = f"{type(exc).__name__}: {exc}"
        if time.monotonic() > deadline:
            raise UndoError(
                f"{endpoint.host}:{endpoint.port} does not serve certificate {wanted[:16]} "
                f"{timeout:g}s after the nginx reload (it serves {seen}; see logs/nginx-error.log)"
            )
        time.sleep(0.1)


def certificate_plan(run_dir: Path, kind: str, server: str, allowed: list[str] | None) -> FaultPlan:
    """The plan for ``certificate.<kind>`` on nginx server ``server`` of the sandbox."""
    if kind not in CERTIFICATE_KINDS:
        raise ConfigError(f"kind must be one of {', '.join(CERTIFICATE_KINDS)}, got {kind!r}")
    if server not in TLS_SERVERS:
        raise ConfigError(
            f"unknown certificate target {server!r} (known: {', '.join(sorted(TLS_SERVERS))})"
        )
    if allowed is not None and server not in allowed:
        raise ConfigError(
            f"certificate target {server!r} is outside the blast radius "
            f"(configuration.allowed_certificate_targets: {', '.join(allowed) or 'none'})"
        )
    layout = Layout.at(run_dir)
    url = str(load_endpoints(run_dir)[TLS_SERVERS[server]])
    override = _override(layout, server)
    if override.exists():
        raise ConfigError(f"a certificate fault is already active on {server!r}: restore it first")
    leaf = f"{LEAF_PREFIX}{server}-{kind}-{_random.token_hex(4)}"
    leaf_dir = (
        layout.pki.directory / UNTRUSTED_CA_DIR if kind == "untrusted" else layout.pki.directory
    )
    endpoint = _endpoint(url)

    def apply() -> dict[str, Any]:
        original = fingerprint(load_cert(layout.pki.cert(SERVER_CERT)))
        cert_path = _issue_leaf(layout, kind, leaf)
        key_path = Pki(leaf_dir).key(leaf)
        layout.tls_overrides_dir.mkdir(parents=True, exist_ok=True)
        _write_exclusive(
            override,
            f"# certificate fault {leaf}: removed by its undo\n"
            f"ssl_certificate {cert_path};\nssl_certificate_key {key_path};\n",
        )
        started = time.monotonic()
        nginx_pid = reload_nginx(run_dir)
        served = wait_served(endpoint, fingerprint(load_cert(cert_path)))
        return {
            "server": server,
            "url": url,
            "certificate": {**describe_leaf(served, _now()), "fingerprint": fingerprint(served)},
            "original_fingerprint": original,
            "nginx_pid": nginx_pid,
            "seconds_to_serve": time.monotonic() - started,
            **confirmed(f"{url} serves the {kind} certificate {fingerprint(served)}"),
        }

    return FaultPlan(
        kind=f"certificate.{kind}",
        target=f"tls:{server}",
        parameters={"kind": kind, "target": server},
        apply=apply,
        undo={
            "kind": RESTORE,
            "params": {
                "run_dir": str(layout.run_dir),
                "server": server,
                "url": url,
                "leaf": leaf,
                "leaf_dir": str(leaf_dir),
            },
        },
    )


@undo_handler(RESTORE)
def restore_served_certificate(params: Mapping[str, Any]) -> None:
    """Remove the fault's nginx snippet, reload, verify the sandbox's own certificate is served
    again, then delete the fault's leaf. Idempotent.

    When another fault's snippet is in place (this one never got to write its own), that fault
    owns the server and its undo restores it: nothing of ours is served, nothing is touched.
    With nginx not running, removing the snippet is enough: nginx reads it only when it starts.
    """
    run_dir, server, url = (string_param(params, key) for key in ("run_dir", "server", "url"))
    leaf, leaf_dir = string_param(params, "leaf"), Path(string_param(params, "leaf_dir"))
    layout = Layout.at(run_dir)
    if not layout.run_dir.is_dir():
        return  # the sandbox is gone, and with it whatever it served
    # Only our own files are ever deleted, whatever a ledger file says.
    if server not in TLS_SERVERS or not leaf.startswith(LEAF_PREFIX) or "/" in leaf:
        raise UndoError(f"undo params name no certificate fault of ours: {server!r} {leaf!r}")
    pki_dir = layout.pki.directory
    if leaf_dir not in (pki_dir, pki_dir / UNTRUSTED_CA_DIR):
        raise UndoError(f"undo params: {leaf_dir} is not the sandbox's pki directory")
    override = _override(layout, server)
    try:
        text = override.read_text(encoding="utf-8")
    except FileNotFoundError:
        text = None
    if text is not None and leaf not in text:
        _remove_leaf(leaf_dir, leaf)
        return
    original = fingerprint(load_cert(layout.pki.cert(SERVER_CERT)))
    endpoint = _endpoint(url)
    if text is None and _serves(endpoint, original):
        _remove_leaf(leaf_dir, leaf)  # never applied, or already reverted: no reload needed
        return
    if text is not None:
        override.unlink()
    try:
        reload_nginx(run_dir)
    except SandboxError:
        _remove_leaf(leaf_dir, leaf)
        return
    wait_served(endpoint, original)
    _remove_leaf(leaf_dir, leaf)


def _serves(endpoint: Endpoint, wanted: str) -> bool:
    try:
        return fingerprint(served_certificate(endpoint, timeout=2.0)) == wanted
    except Exception:  # not answering now: the reload and wait below decide
        return False


def _remove_leaf(directory: Path, leaf: str) -> None:
    for suffix in (".crt", ".key"):
        (directory / f"{leaf}{suffix}").unlink(missing_ok=True)
