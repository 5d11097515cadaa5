"""How long a load node waits before its next pull: nothing while pulls succeed; after failures
in a row, a back-off that doubles from ``FAILURE_BACKOFF`` to ``FAILURE_BACKOFF_CAP`` seconds.

A fault that fails pulls at once (an expired certificate, a refused port) would otherwise have
every node retry as fast as the CPU allows: hundreds of pulls a second that no real node makes
(kubelet backs off too), which starve the load of CPU and drown the records. The cap keeps
recovery visible within a second. Its own module, free of gevent and Locust, so that the tests
and the docs can import it (``locustfile`` may only be imported inside Locust).
"""

FAILURE_BACKOFF = 0.05
FAILURE_BACKOFF_CAP = 1.0


def wait_after(failures_in_a_row: int) -> float:
    """Seconds to wait before the next pull after ``failures_in_a_row`` failed pulls."""
    if failures_in_a_row <= 0:
        return 0.0
    return min(FAILURE_BACKOFF_CAP, FAILURE_BACKOFF * 2.0 ** (failures_in_a_row - 1))
