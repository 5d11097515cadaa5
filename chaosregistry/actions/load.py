"""Concurrent image-pull load with Locust, on the same timeline as the faults.

``start_pull_load`` starts Locust headless as a background process group (never inside the
chaos process) and returns at once; the load stops by itself after ``duration`` seconds. Like a
fault, it is written to the fault ledger first: ``stop_pull_load`` (its undo partner, for the
rollbacks) ends it early, and the ledger's watchdog ends it at once if the process running the
experiment dies. ``chaosregistry.probes.load.pull_load_stats`` reads its exact figures.

Configuration keys: ``load_dir`` (where each load gets its stats directory; default
``<run_dir>/load`` when configuration ``run_dir`` or ``$CHAOSREGISTRY_RUN_DIR`` (a game day's)
is set, else ``./runs/load``), ``load_origin`` (the registry
cold mode pushes fresh images to; default ``registry``), ``registry_timeout`` (seconds per
connect and read), ``ledger_dir``, plus the registry settings of
``chaosregistry.experiment.settings``.
"""

from typing import Annotated, Any, List

from chaosregistry.experiment.activity import Configuration, Result, Secrets, activity
from chaosregistry.experiment.contracts import (
    POSITIVE,
    FaultSeconds,
    OneOf,
    PlatformName,
    Range,
    Target,
)
from chaosregistry.experiment.needs import TargetWhen
from chaosregistry.experiment.settings import settings_for
from chaosregistry.loadgen.launch import start_load
from chaosregistry.loadgen.pacing import (
    BACKOFF_SECONDS,
    DEFAULT_BASE,
    DEFAULT_CAP,
    DEFAULT_PULL_INTERVAL,
    PULL_INTERVAL_SECONDS,
)
from chaosregistry.loadgen.parameters import (
    DEFAULT_FRESH_IMAGES,
    MAX_BLOB_CONCURRENCY,
    MAX_FRESH_IMAGES,
    MAX_PROCESSES,
    MAX_USERS,
    MODES,
    LoadParameters,
)
from chaosregistry.loadgen.stop import stop_loads

__all__ = ["start_pull_load", "stop_pull_load"]

# A node's back-off after failed pulls and its pull interval (chaosregistry.loadgen.pacing).
BackoffSeconds = Annotated[float, BACKOFF_SECONDS]
PullInterval = Annotated[float, PULL_INTERVAL_SECONDS]


@activity
def start_pull_load(
    users: Annotated[int, Range(1, MAX_USERS)] = 10,
    spawn_rate: Annotated[float, POSITIVE] = 10.0,
    duration: FaultSeconds = 60.0,
    processes: Annotated[int, Range(1, MAX_PROCESSES)] = 1,
    target: Target = "registry",
    images: List[Any] = None,
    # A cold load pushes its fresh images to configuration load_origin's registry.
    mode: Annotated[str, OneOf(MODES), TargetWhen("cold", "load_origin")] = "warm",
    platform: PlatformName = "linux/amd64",
    verify: bool = True,
    blob_concurrency: Annotated[int, Range(1, MAX_BLOB_CONCURRENCY)] = 3,
    fresh_images: Annotated[int, Range(1, MAX_FRESH_IMAGES)] = DEFAULT_FRESH_IMAGES,
    backoff: bool = True,
    backoff_base: BackoffSeconds = DEFAULT_BASE,
    backoff_cap: BackoffSeconds = DEFAULT_CAP,
    pull_interval: PullInterval = DEFAULT_PULL_INTERVAL,
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> Result:
    """Start ``users`` simulated nodes pulling images back to back for ``duration`` seconds.

    Each user pulls like a container runtime: auth (basic, or bearer tokens reused until they
    expire), the manifest or index (picking ``platform``), then config and layers
    ``blob_concurrency`` at a time, checking sizes and (``verify``) sha256 while streaming.
    Returns as soon as Locust is started; nothing is started when an argument is wrong.

    Arguments:
      users: simulated nodes (1..100000).
      spawn_rate: users started per second until all run.
      duration: seconds the load runs, then stops by itself (at most 3600).
      processes: Locust worker processes on this machine, one core each (1..64).
      target: ``registry`` or ``mirror`` (resolved from configuration) or a URL.
      images: warm mode: the weighted mix, a list of ``"repository:tag"`` strings or
        ``{"image": "repository:tag", "weight": 3}`` mappings; every image is checked with a
        manifest GET first. Cold mode: leave empty.
      mode: ``warm`` pulls the mix again and again (caches hit); ``cold`` first pushes
        ``fresh_images`` never-seen small images to the origin registry (configuration
        ``load_origin``, default ``registry``) and pulls each once through ``target``, so a
        pull-through mirror misses every time until the pool is used up.
      platform: ``os/arch[/variant]`` picked from multi-platform indexes.
      verify: check each blob's size and sha256 while it streams.
      blob_concurrency: blobs fetched at once per pull (dockerd: 3).
      fresh_images: cold mode: how many fresh images to push (1..10000).
      backoff: after a failed pull a node waits before its next one, as kubelet does: the
        wait starts at ``backoff_base`` seconds and doubles with each further failure up to
        ``backoff_cap``, drawn at random between half of that and all of it (so nodes that
        failed together do not retry in step); a success resets it. ``false`` retries at once:
        a flood test, where a fault that fails pulls at once makes every node retry as fast as
        the CPU allows (a hundred times a second or more per process), all handshakes.
      backoff_base: seconds waited after the first failure in a row (0 < s <= 300, at most
        ``backoff_cap``).
      backoff_cap: longest wait in seconds (0 < s <= 300; default 1, so recovery shows within
        a second).
      pull_interval: seconds from the start of one of a node's pulls to the start of its next
        (0 <= s <= 300); 0, the default, pulls back to back. An interval makes the load a
        steady rate of at most ``users / pull_interval`` pulls a second, as nodes pulling when
        pods land on them, instead of a flood that takes every core it can; a pull longer than
        the interval is followed at once. After failures the back-off applies if it is longer.

    Returns a mapping: ``load_id``, ``fault_id`` (its fault-ledger entry), ``pid`` (the load's
    supervisor, leader of its process group), ``locust_pid``, ``pgid``, ``stats_dir`` (Locust
    CSVs, per-pull records in ``records_dir``, ``timeseries.json`` once it ends), ``users``,
    ``spawn_rate``, ``duration``, ``processes``, ``target``, ``target_url``, ``mode``,
    ``platform``, ``verify``, ``blob_concurrency``, ``backoff``, ``backoff_base``,
    ``backoff_cap``, ``pull_interval``, ``images`` [{image, weight}],
    ``fresh_images`` and ``fresh_repository`` (cold mode), ``started_at`` and ``expires_at``
    (epoch seconds; the ledger ends the load at ``expires_at`` at the latest).

    Raises ActivityFailed with one line for a bad argument (zero users, negative duration,
    unknown mode or platform, a ``backoff_base`` over ``backoff_cap``), an image the target
    cannot serve, an unreachable target, or a Locust that does not start.
    """
    parameters = LoadParameters.check(
        users=users,
        spawn_rate=spawn_rate,
        duration=duration,
        processes=processes,
        target=target,
        mode=mode,
        platform=platform,
        verify=verify,
        blob_concurrency=blob_concurrency,
        fresh_images=fresh_images,
        backoff=backoff,
        backoff_base=backoff_base,
        backoff_cap=backoff_cap,
        pull_interval=pull_interval,
    )
    settings = settings_for(configuration)
    sink = settings.prometheus.sli_sink  # each pull reports there (if any)
    result: Result = start_load(parameters, images, settings, secrets, sink)
    return result


@activity
def stop_pull_load(
    load_id: str = "",
    wait: bool = False,
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> Result:
    """Stop a pull load (every running one when ``load_id`` is empty) and write its time series.

    The undo partner of ``start_pull_load``, safe in rollbacks: stopping a load that already
    ended only settles its files. Sends SIGTERM to the load's process group, SIGKILL after 10
    seconds, and returns once no process of the load is left.

    Arguments:
      load_id: the ``load_id`` that ``start_pull_load`` returned; empty for all active loads.
      wait: first let the load run its whole ``duration`` and end by itself, however long
        Locust took to start (a pause of ``duration`` after ``start_pull_load`` cuts it short
        by that much); at its ledger expiry at the latest it is stopped. The end of a storm
        whose length matters; rollbacks leave it false.

    Returns a mapping: ``count`` and ``stopped``, one entry per load with ``load_id``,
    ``stats_dir``, ``state`` (finished, stopped, overran), ``timeseries_file``, ``seconds``
    (length of the series) and the whole-load figures of ``pull_load_stats`` (``pulls``,
    ``failed``, ``pulls_per_second``, ``p50``, ``p95``, ``p99``, ``max``, ``failure_ratio``,
    ``failures_by_class``...).

    Raises ActivityFailed with one line for an unknown ``load_id`` or when a process of the
    load survives SIGKILL.
    """
    result: Result = stop_loads(load_id, settings_for(configuration), wait=wait)
    return result
