"""How long a load node waits before its next pull (:func:`next_wait`): by default nothing while
pulls succeed; after failures in a row, a capped exponential back-off with jitter
(:class:`Backoff`); and with a pull interval, never less than what is left of it.

The interval (``pull_interval`` seconds from the start of one of a node's pulls to the start of
its next) turns the flood into a steady rate, ``users / pull_interval`` pulls a second at most:
real nodes pull when pods land on them, not back to back, and a flood of two users takes both
cores of a small machine (registry, proxy and load together), leaving little for the fault
under test. A pull that takes longer than the interval is followed at once, as a node behind
its schedule would.

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

import random
from dataclasses import dataclass
from typing import Any

from chaosregistry.errors import ConfigError
from chaosregistry.experiment.contracts import Range

DEFAULT_BASE = 0.05
DEFAULT_CAP = 1.0
# Longest wait a load may be given: kubelet's own image-pull back-off stops doubling at 300 s.
MAX_WAIT = 300.0
# Past this many doublings every base <= MAX_WAIT has reached any cap (and 2.0 ** n overflows
# long before a failure count can).
_MAX_DOUBLINGS = 64
# The domains of a load's waits, declared once: the action's signature reads them (validate,
# discovery, the reference) and so do the load's own checks (its parameters, Locust's flags).
BACKOFF_SECONDS = Range(0, MAX_WAIT, above=True, unit="seconds")
# From the start of one of a node's pulls to the start of its next; 0: back to back.
PULL_INTERVAL_SECONDS = Range(0, MAX_WAIT, unit="seconds")


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
            values[name] = _checked(name, value, BACKOFF_SECONDS)
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
# Back to back unless told otherwise.
DEFAULT_PULL_INTERVAL = 0.0


def check_pull_interval(value: Any) -> float:
    """A validated ``pull_interval``; ConfigError names a bad value."""
    return _checked("pull_interval", value, PULL_INTERVAL_SECONDS)


def _checked(name: str, value: Any, domain: Range) -> float:
    problem = domain.problem(value)
    if problem is not None:
        raise ConfigError(f"{name} {problem}")
    return float(value)


def next_wait(
    backoff: Backoff,
    failures_in_a_row: int,
    rng: random.Random,
    *,
    pull_interval: float = DEFAULT_PULL_INTERVAL,
    pull_seconds: float = 0.0,
) -> float:
    """Seconds a node waits after a pull that took ``pull_seconds``: the back-off after failures
    (``Backoff.wait``), and never less than what is left of ``pull_interval``."""
    return max(backoff.wait(failures_in_a_row, rng), pull_interval - pull_seconds, 0.0)
