"""The project's cache directory, shared by every user of the machine's builds and templates:
the test cluster's Go builds (``cluster.build``) and the sandbox's seeded-storage templates
(``sandbox.seed_template``)."""

import os
from pathlib import Path


def cache_root() -> Path:
    """``$CHAOSREGISTRY_CACHE``, else ``$XDG_CACHE_HOME``/``~/.cache`` + chaostoolkit-registry."""
    explicit = os.environ.get("CHAOSREGISTRY_CACHE")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "chaostoolkit-registry"
