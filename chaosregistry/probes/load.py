"""Exact figures of a running or finished pull load (see ``chaosregistry.actions.load``).

Computed from the load's per-pull records, not from Locust's rounded histogram, so p99 never
exceeds max and anyone can recompute them (numpy's default percentile definition).
"""

from typing import Annotated

from chaosregistry.experiment.activity import Configuration, Result, Secrets, activity
from chaosregistry.experiment.contracts import ResultKind, Returns
from chaosregistry.experiment.settings import settings_for
from chaosregistry.loadgen.stats import load_stats

__all__ = ["pull_load_stats"]


@activity
def pull_load_stats(
    load_id: str = "",
    since: float = 0.0,
    until: float = 0.0,
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> Annotated[
    Result,
    Returns(
        "pulls failed interrupted attempts started pulls_per_second failure_ratio p50 p95",
        "p99 max min mean bytes bytes_per_second fresh_pulls window_start window_end",
        "window_seconds failures_by_class load_id running state mode users target_url",
        "stats_dir",
        kind=ResultKind.LOAD_STATISTICS,
    ),
]:
    """Report a pull load's pulls per second, exact latency percentiles and failures.

    Counts the pulls that ended inside the window ``[since, until)``. Each bound is: 0 for the
    default (``since``: the load's first pull; ``until``: now, or the load's end), a negative
    number for seconds before now (``since: -10`` is "the last 10 seconds"), a number below
    1e9 for seconds after the load started, or an epoch timestamp.

    Arguments:
      load_id: the ``load_id`` from ``start_pull_load``; empty for the newest load.
      since: where the window opens (see above).
      until: where the window closes (see above).

    Returns a mapping with top-level numbers for tolerances: ``pulls`` (successful),
    ``failed``, ``interrupted`` (cut short by the load stopping), ``attempts``, ``started``,
    ``pulls_per_second``, ``failure_ratio`` (failed / attempts, null without attempts),
    ``p50``, ``p95``, ``p99``, ``max``, ``min``, ``mean`` (seconds, successful pulls, null when
    none), ``bytes``, ``bytes_per_second``, ``fresh_pulls`` (cold mode), ``window_start``,
    ``window_end`` (epoch seconds), ``window_seconds``; and ``failures_by_class`` {class:
    count} (the classes of ``chaosregistry.errors.ErrorClass``: timeout, refused, dns, reset,
    auth, not-found, rate-limited, server-error, digest-mismatch, truncated, ...),
    ``load_id``, ``running``, ``state``, ``mode``, ``users``, ``target_url``, ``stats_dir``.

    Raises ActivityFailed when there is no such load or the window is malformed.
    """
    result: Result = load_stats(load_id, since, until, settings_for(configuration))
    return result
