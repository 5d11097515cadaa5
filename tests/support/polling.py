"""Waiting for a state in tests: one poller, ``eventually``.

A test that waits asks for the state it needs (a file written, a fault reverted, a pod
pulling) and polls it; a fixed sleep would be too short on a loaded machine and too long on
a quiet one.
"""

import time
from collections.abc import Callable
from typing import TypeVar

import pytest

T = TypeVar("T")


def eventually(what: str, check: Callable[[], T], *, timeout: float, interval: float = 0.2) -> T:
    """Call ``check`` every ``interval`` seconds until it returns something truthy, and return
    that; fail the test with ``what: not within <timeout> s`` when ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {timeout:g} s")
        time.sleep(interval)
