"""Where the sandbox finds the programs it runs: an environment variable, PATH, or the build cache.

``make setup`` builds the Go programs with ``go install`` into ``CACHE/<name>-<version>/`` and
exports their paths in ``CHAOSREGISTRY_*`` variables; a user outside make gets the same cache.
"""

import os
import shutil
from pathlib import Path

from chaosregistry.errors import ConfigError

CACHE = Path.home() / ".cache/chaostoolkit-registry"


def require_executable(path: str, what: str) -> str:
    if not os.access(path, os.X_OK):
        raise ConfigError(f"{what} not found at {path}: run `make setup`")
    return path


def find_binary(what: str, *, env: str, cached: Path, on_path: str = "") -> str:
    """``$env`` when set (it must be executable), else ``on_path`` on PATH, else ``cached``.

    Raises ConfigError naming every place looked at and the fix (`make setup`).
    """
    configured = os.environ.get(env)
    if configured:
        return require_executable(configured, f"{what} (${env})")
    found = shutil.which(on_path) if on_path else None
    if found:
        return found
    if os.access(cached, os.X_OK):
        return str(cached)
    looked = f"${env}, {on_path} on PATH, {cached}" if on_path else f"${env}, {cached}"
    raise ConfigError(f"{what} not found ({looked}): run `make setup`")


COSIGN_ENV = "CHAOSREGISTRY_COSIGN"
COSIGN_CACHED = CACHE / "cosign-3.1.3/cosign"


def cosign_binary() -> str:
    """sigstore's cosign (``make setup`` builds it): the tests' and benchmarks' reference
    verifier for the ``image_signature`` probe. The product itself never runs it."""
    return find_binary("sigstore's cosign", env=COSIGN_ENV, cached=COSIGN_CACHED, on_path="")
