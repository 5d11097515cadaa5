"""A load's registry credentials, handed to Locust only as a private file.

The copy is mode 0600 in a 0700 temporary directory, never on a command line or in the load's
stats directory, and it is deleted when the load ends, whichever way it ends: by the supervisor
when Locust exits, by the launch when the start fails, or by the ``process.terminate`` undo
(its ``remove`` parameter) when the load is stopped from the ledger.
"""

import json
import os
import shutil
import tempfile
from pathlib import Path

from chaosregistry.experiment.settings import RegistryTarget

CREDENTIALS_FILE = "credentials.json"


def write_private_credentials(registry: RegistryTarget) -> Path | None:
    """A new private directory holding ``credentials.json``; None without credentials."""
    if registry.credentials is None:
        return None
    directory = Path(tempfile.mkdtemp(prefix="chaosregistry-load-"))  # mode 0700
    path = directory / CREDENTIALS_FILE
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(
            {"username": registry.credentials.username, "password": registry.credentials.password},
            handle,
        )
    return directory


def remove_private_credentials(directory: Path) -> None:
    """Delete the directory ``write_private_credentials`` made (gone already is fine)."""
    shutil.rmtree(directory, ignore_errors=True)
