"""How long a load node waits before its next pull: nothing while pulls succeed; after failures
in a row, a capped exponential back-off with jitter (:class:`Backoff`).

A fault that fails pulls at once (an expired certificate, a refused port, a refused password)
would otherwise have every node retry as fast as the CPU allows: hundreds of pulls (and TLS
handshakes) a second that no real node makes (kubelet backs off too), which starve the load of
CPU, drown the records and multiply the load on the very part under test. After ``n`` failures
in a row the ceiling is ``min(cap, base * 2 ** (n - 1))`` and the wait is drawn uniformly from
``[ceiling / 2, ceiling]`` ("equal jitter"): nodes that failed together spread their retries
instead of returning in step at each doubling, and the floor still bounds each node's attempt
rate (at most ``2 / cap`` a second once capped). A success resets the count. The default cap
keeps recovery visible within a second; ``enabled=False`` retries at once (a flood test).

Its own module, free of gevent and Locust, so that the tests, the load's parameters and the docs
can import it (``locustfile`` may only be imported inside Locust).
"""

import math
import random
from dataclasses import dataclass
from typing import Any

from chaosregistry.errors import ConfigError

DEFAULT_BASE = 0.05
DEFAULT_CAP = 1.0
# Longest wait a load may be given: kubelet's own image-pull back-off stops doubling at 300 s.
MAX_WAIT = 300.0
# Past this many doublings every base <= MAX_WAIT has reached any cap (and 2.0 ** n overflows
# long before a failure count can).
_MAX_DOUBLINGS = 64


@dataclass(frozen=True)
class Backoff:
    """A node's wait after failed pulls: ``base`` seconds doubling to ``cap``, jittered."""

    enabled: bool = True
    base: float = DEFAULT_BASE
    cap: float = DEFAULT_CAP

    @classmethod
    def check(cls, *, enabled: Any, base: Any, cap: Any) -> "Backoff":
        """A validated back-off; ConfigError names the first bad value."""
        if not isinstance(enabled, bool):
            raise ConfigError(f"backoff must be true or false, got {enabled!r}")
        values = {}
        for name, value in (("backoff_base", base), ("backoff_cap", cap)):
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ConfigError(f"{name} must be seconds, got {value!r}")
            if not (math.isfinite(value) and 0 < value <= MAX_WAIT):
                raise ConfigError(f"{name} must be > 0 and <= {MAX_WAIT:g} seconds, got {value}")
            values[name] = float(value)
        if values["backoff_base"] > values["backoff_cap"]:
            raise ConfigError(f"backoff_base ({base:g} s) must not exceed backoff_cap ({cap:g} s)")
        return cls(enabled, values["backoff_base"], values["backoff_cap"])

    def ceiling(self, failures_in_a_row: int) -> float:
        """The longest wait after ``failures_in_a_row`` failed pulls (0 without failures)."""
        if not self.enabled or failures_in_a_row <= 0:
            return 0.0
        doublings = min(failures_in_a_row - 1, _MAX_DOUBLINGS)
        return min(self.cap, self.base * 2.0**doublings)

    def floor(self, failures_in_a_row: int) -> float:
        """The shortest wait after ``failures_in_a_row`` failed pulls: half the ceiling."""
        return self.ceiling(failures_in_a_row) / 2.0

    def wait(self, failures_in_a_row: int, rng: random.Random) -> float:
        """Seconds to wait before the next pull, drawn from ``[floor, ceiling]`` with ``rng``."""
        ceiling = self.ceiling(failures_in_a_row)
        return rng.uniform(ceiling / 2.0, ceiling) if ceiling > 0 else 0.0

    def describe(self) -> dict[str, Any]:
        """The back-off as a load's description reports it."""
        return {"backoff": self.enabled, "backoff_base": self.base, "backoff_cap": self.cap}


# What a load does unless told otherwise.
DEFAULT_BACKOFF = Backoff()
