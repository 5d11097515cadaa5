"""What a pull load is asked to do, validated once at the door (``start_pull_load``'s arguments).

Also the fixed allowances around a load's ``duration``: Locust needs a moment to import, fork
its workers and connect them before its run time counts, and a moment to stop; the ledger
entry's expiry and the supervisor's own deadline both allow for them.
"""

from dataclasses import dataclass
from typing import Any

from chaosregistry.errors import ConfigError
from chaosregistry.experiment.activity import require_positive_int, require_positive_number
from chaosregistry.faults.injection import check_duration
from chaosregistry.oci.reference import Platform

from .pacing import DEFAULT_BACKOFF, DEFAULT_PULL_INTERVAL, Backoff, check_pull_interval

MODES = ("warm", "cold")
MAX_PROCESSES = 64
MAX_USERS = 100_000
MAX_BLOB_CONCURRENCY = 32
MAX_FRESH_IMAGES = 10_000
DEFAULT_FRESH_IMAGES = 100
# Seconds a load may run past its duration while Locust starts up, and seconds between
# SIGTERM and SIGKILL when it is stopped.
STARTUP_ALLOWANCE = 30.0
STOP_GRACE = 10.0


@dataclass(frozen=True)
class LoadParameters:
    users: int
    spawn_rate: float
    duration: float
    processes: int
    target: str
    mode: str
    platform: Platform
    verify: bool
    blob_concurrency: int
    fresh_images: int
    backoff: Backoff = DEFAULT_BACKOFF
    pull_interval: float = DEFAULT_PULL_INTERVAL

    @classmethod
    def check(
        cls,
        *,
        users: Any,
        spawn_rate: Any,
        duration: Any,
        processes: Any,
        target: Any,
        mode: Any,
        platform: Any,
        verify: Any,
        blob_concurrency: Any,
        fresh_images: Any,
        backoff: Any = True,
        backoff_base: Any = Backoff.base,
        backoff_cap: Any = Backoff.cap,
        pull_interval: Any = DEFAULT_PULL_INTERVAL,
    ) -> "LoadParameters":
        """Validated parameters; ConfigError names the first bad one."""
        users = require_positive_int("users", users)
        if users > MAX_USERS:
            raise ConfigError(f"users {users} is over the limit of {MAX_USERS}")
        processes = require_positive_int("processes", processes)
        if processes > MAX_PROCESSES:
            raise ConfigError(f"processes {processes} is over the limit of {MAX_PROCESSES}")
        blob_concurrency = require_positive_int("blob_concurrency", blob_concurrency)
        if blob_concurrency > MAX_BLOB_CONCURRENCY:
            raise ConfigError(f"blob_concurrency is at most {MAX_BLOB_CONCURRENCY}")
        fresh_images = require_positive_int("fresh_images", fresh_images)
        if fresh_images > MAX_FRESH_IMAGES:
            raise ConfigError(f"fresh_images is at most {MAX_FRESH_IMAGES}")
        if mode not in MODES:
            raise ConfigError(f"mode must be warm or cold, got {mode!r}")
        if not isinstance(verify, bool):
            raise ConfigError(f"verify must be true or false, got {verify!r}")
        if not isinstance(target, str) or not target:
            raise ConfigError("target must name a registry (registry, mirror) or be a URL")
        if not isinstance(platform, str):
            raise ConfigError(f"platform must be os/arch[/variant], got {platform!r}")
        return cls(
            users=users,
            spawn_rate=require_positive_number("spawn_rate", spawn_rate),
            duration=check_duration(duration),
            processes=processes,
            target=target,
            mode=mode,
            platform=Platform.parse(platform),
            verify=verify,
            blob_concurrency=blob_concurrency,
            fresh_images=fresh_images,
            backoff=Backoff.check(enabled=backoff, base=backoff_base, cap=backoff_cap),
            pull_interval=check_pull_interval(pull_interval),
        )
