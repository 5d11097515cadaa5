"""Ports for the servers the tests start. Every test picks them here, never with
``find_free_base_port`` directly (tests/unit/test_tiers_unit.py checks): each pytest-xdist
worker has a range of its own, so two workers can never race for the same "free" base port
(found free by one, bound by the other before the first's server starts)."""

import os

from chaosregistry.sandbox import find_free_base_port
from chaosregistry.sandbox.layout import PORT_SPAN

# Below the kernel's ephemeral range (32768 and up by default): a port found free there can be
# taken by some outgoing connection before our server binds it (seen on a busy machine).
LOW, HIGH = 20000, 32000


def worker_range() -> tuple[int, int]:
    """``(low, high)`` of this process's ports: the whole range without xdist, else worker
    ``gw<i>``'s share of it."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")  # gw0, gw1... set by xdist in workers
    count = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    index = int(worker.removeprefix("gw")) if worker else 0
    size = (HIGH - LOW) // count
    return LOW + index * size, LOW + (index + 1) * size


def free_base_port(span: int = PORT_SPAN, *, part: int = 0, parts: int = 1) -> int:
    """A base port whose ``span`` ports are free, in this worker's range; with ``parts`` > 1 in
    part ``part`` of it (a cluster's ports and its sandbox's, which must never overlap)."""
    low, high = worker_range()
    size = (high - low) // parts
    return find_free_base_port(low=low + part * size, high=low + (part + 1) * size, span=span)


def free_port() -> int:
    """One free port in this worker's range (a server the test starts on it next)."""
    return free_base_port(span=1)


def free_ports(count: int) -> list[int]:
    """``count`` distinct free ports (consecutive), for servers that are all started later:
    ``free_port()`` twice can return the same port, since it binds nothing."""
    base = free_base_port(span=count)
    return list(range(base, base + count))
