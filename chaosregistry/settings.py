"""Where activities find their registry, credentials and TLS settings.

Everything backend-specific lives in the experiment's ``configuration`` (usually from
``experiments/vars/<backend>.yaml``) and ``secrets``, never in activity arguments. Keys:

configuration
    ``registry_url``        the registry to measure, ``http(s)://host[:port]``
    ``mirror_url``          a pull-through mirror of it (activities pick one with ``target``)
    ``registry_ca_bundle``  path to a PEM CA bundle for HTTPS registries with a private CA
    ``registry_verify_tls`` ``false`` to skip certificate checks (never the default)
    ``registry_timeout``    seconds per request (default 30)
    ``sandbox_dir``         an embedded sandbox's run directory: its endpoints and credentials
                            are used for whatever the keys above leave unset, and its CA
                            (endpoints' ``ca_file``) verifies any of its HTTPS endpoints when
                            neither ``registry_ca_bundle`` nor ``registry_verify_tls`` is set
secrets (any scope the activity declares)
    ``registry_username`` / ``registry_password``

Environment fallbacks: ``CHAOSREGISTRY_URL``, ``CHAOSREGISTRY_USERNAME``,
``CHAOSREGISTRY_PASSWORD``, ``CHAOSREGISTRY_SANDBOX_DIR``. Credentials never leave this module
except inside a :class:`~chaosregistry.oci.auth.Credentials`, whose repr hides the password.
"""

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from chaosregistry.errors import ConfigError
from chaosregistry.oci.auth import Credentials
from chaosregistry.oci.client import DEFAULT_TIMEOUT, RegistryClient, validate_registry_url


@dataclass(frozen=True)
class RegistryTarget:
    url: str
    credentials: Credentials | None
    verify: bool | str
    timeout: float

    def client(
        self, *, max_connections: int = 16, timeout: float | None = None, http2: bool = False
    ) -> RegistryClient:
        """A client for this registry; ``timeout`` overrides the configured one (both phases);
        ``http2`` speaks HTTP/2 where the server offers it (ALPN)."""
        return RegistryClient(
            self.url,
            credentials=self.credentials,
            verify=self.verify,
            timeout=timeout or self.timeout,
            connect_timeout=min(timeout or self.timeout, 5.0),
            max_connections=max_connections,
            http2=http2,
        )


# Where `chaosregistry sandbox up` puts the sandbox by default (relative to the working dir).
DEFAULT_SANDBOX_DIR = Path("runs/sandbox")


def sandbox_dir(configuration: dict[str, Any] | None) -> Path | None:
    """configuration ``sandbox_dir``, else ``CHAOSREGISTRY_SANDBOX_DIR``, else ./runs/sandbox."""
    value = (configuration or {}).get("sandbox_dir") or os.environ.get("CHAOSREGISTRY_SANDBOX_DIR")
    if value:
        return Path(str(value))
    if (DEFAULT_SANDBOX_DIR / "endpoints.json").is_file():
        return DEFAULT_SANDBOX_DIR.absolute()
    return None


def sandbox_endpoints(run_dir: Path) -> dict[str, Any]:
    """The endpoints of the sandbox in ``run_dir`` (ConfigError when it holds none)."""
    from chaosregistry.sandbox.layout import load_endpoints

    return load_endpoints(run_dir)


def _sandbox_credentials(endpoints: dict[str, Any]) -> Credentials | None:
    from chaosregistry.sandbox.credentials import read_credentials_file

    path = endpoints.get("credentials_file")
    return read_credentials_file(Path(path)) if path else None


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    host = parts.hostname or ""
    # The sandbox's certificate names both; its endpoints are published as 127.0.0.1.
    return parts.scheme, "127.0.0.1" if host == "localhost" else host, parts.port


def _sandbox_origins(endpoints: dict[str, Any]) -> set[tuple[str, str, int | None]]:
    """scheme, host and port of every URL the sandbox publishes (replicas' included)."""
    values: list[Any] = list(endpoints.values())
    values += [value for replica in endpoints.get("replicas") or [] for value in replica.values()]
    return {_origin(value) for value in values if isinstance(value, str) and "://" in value}


def _sandbox_ca(endpoints: dict[str, Any], url: str) -> str | None:
    """The sandbox's CA file when ``url`` is one of its endpoints (else the system's CAs)."""
    ca_file = endpoints.get("ca_file")
    if ca_file and _origin(url) in _sandbox_origins(endpoints):
        return str(ca_file)
    return None


def resolve_target(
    configuration: dict[str, Any] | None,
    secrets: dict[str, Any] | None,
    target: str = "registry",
) -> RegistryTarget:
    """The registry an activity talks to.

    ``target`` is a URL, or the name of a configured registry: ``registry``, ``mirror``... For a
    name, ``configuration['<name>_url']`` wins, then the sandbox's endpoint of that name, then
    (for ``registry``) ``CHAOSREGISTRY_URL``. TLS: ``registry_ca_bundle``, else
    ``registry_verify_tls``, else the sandbox's CA for a URL of the sandbox, else the system CAs.
    """
    if not isinstance(target, str) or not target:
        raise ConfigError("target must name a registry (registry, mirror) or be a URL")
    configuration = configuration or {}
    secrets = secrets or {}
    endpoints: dict[str, Any] = {}
    run_dir = sandbox_dir(configuration)
    if run_dir is not None:
        endpoints = sandbox_endpoints(run_dir)

    if "://" in target:
        url = target
    else:
        url = configuration.get(f"{target}_url") or endpoints.get(target) or ""
        if not url and target == "registry":
            url = os.environ.get("CHAOSREGISTRY_URL", "")
    if not url:
        raise ConfigError(
            f"no {target!r} registry: set configuration '{target}_url' or 'sandbox_dir'"
        )
    url = validate_registry_url(str(url))

    username = secrets.get("registry_username") or os.environ.get("CHAOSREGISTRY_USERNAME")
    password = secrets.get("registry_password") or os.environ.get("CHAOSREGISTRY_PASSWORD")
    credentials: Credentials | None = None
    if username and password:
        credentials = Credentials(str(username), str(password))
    elif username or password:
        raise ConfigError("secrets: registry_username and registry_password go together")
    elif endpoints and _origin(url) in _sandbox_origins(endpoints):
        # Only the sandbox's own endpoints get its credentials: a registry_url elsewhere, named
        # without secrets while a sandbox is around, must never be sent the sandbox's password.
        credentials = _sandbox_credentials(endpoints)

    verify: bool | str = True
    if configuration.get("registry_ca_bundle"):
        verify = str(configuration["registry_ca_bundle"])
    elif "registry_verify_tls" in configuration:
        flag = configuration["registry_verify_tls"]
        if not isinstance(flag, bool):
            raise ConfigError(
                f"configuration: registry_verify_tls must be true or false, not {flag!r}"
            )
        verify = flag
    else:
        verify = _sandbox_ca(endpoints, url) or True

    timeout = configuration.get("registry_timeout", DEFAULT_TIMEOUT)
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0:
        raise ConfigError(
            f"configuration: registry_timeout must be positive seconds, not {timeout!r}"
        )
    return RegistryTarget(url, credentials, verify, float(timeout))
