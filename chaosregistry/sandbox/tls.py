"""The sandbox's private CA and serving certificate, and the TLS context its own checks use.

Made with :mod:`chaosregistry.trust.pki` under ``run_dir/pki`` at the first ``up`` and kept across
restarts (``ensure_pki`` keeps existing files), so a client told to trust ``ca_file`` once
keeps trusting every later run of the same sandbox.
"""

import ssl
from pathlib import Path

from chaosregistry.sandbox.layout import CA_NAME, SERVER_CERT, Layout
from chaosregistry.trust.pki import ensure_pki, server_spec


def ensure_sandbox_pki(layout: Layout) -> None:
    """The CA and the 127.0.0.1 / localhost serving certificate; only missing files are made."""
    ensure_pki(layout.pki.directory, (server_spec(SERVER_CERT),), ca_name=CA_NAME)


def client_context(layout: Layout) -> ssl.SSLContext:
    """Verifies the sandbox's HTTPS endpoints against its CA (and nothing else)."""
    return ssl.create_default_context(cafile=str(layout.pki.ca_cert))


def server_context(cert_file: Path, key_file: Path, *, alpn: tuple[str, ...]) -> ssl.SSLContext:
    """Serves ``cert_file``, offering the ``alpn`` protocols (in order of preference)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(str(cert_file), str(key_file))
    context.set_alpn_protocols(list(alpn))
    return context
