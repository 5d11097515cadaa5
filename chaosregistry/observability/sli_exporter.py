"""The SLI exporter: receives ``chaosregistry.observability.sli`` datagrams, serves them as
Prometheus metrics.

``python -m chaosregistry.observability.sli_exporter --listen 127.0.0.1:P --sink 127.0.0.1:Q
[--run-dir D]
[--target URL ...]`` (a sandbox process; ``--run-dir`` only marks its command line as the
sandbox's; each ``--target``'s total-time series of successful pulls exist at 0 from the
start). Metrics, with
``prometheus_client`` and Prometheus' naming conventions:

- ``chaosregistry_pull_duration_seconds`` histogram {target, phase, outcome}: phase ``total``,
  ``auth``, ``manifest``, ``blobs``; buckets in ``PULL_BUCKETS`` (1.5x to 2x apart, so a
  ``histogram_quantile`` is within one bucket of the exact quantile).
- ``chaosregistry_pulls_total`` {outcome, error_class}
- ``chaosregistry_deploys_total`` {outcome}: rollouts the Kubernetes probes watched to an end.
- ``chaosregistry_sli_messages_total`` {kind} and ``chaosregistry_sli_malformed_total``: what
  arrived, so a test can show that no datagram was lost.

Why a separate process that feeders send datagrams to: see ``chaosregistry.observability.sli``.
"""

import argparse
import signal
import socket
import sys
import threading
from types import FrameType

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    start_http_server,
)

from chaosregistry.errors import ConfigError, ErrorClass
from chaosregistry.observability.sli import (
    DEPLOY,
    FAILURE,
    NO_ERROR,
    PHASES,
    PULL,
    SUCCESS,
    parse_address,
    parse_message,
)

# 1.5x to 2x apart: every series costs the exporter's scrape (prometheus_client renders text
# in Python, about 40 us a line), and 4 phases x 2 outcomes x targets multiply them.
PULL_BUCKETS = (
    0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0,
    5.0, 10.0, 30.0, 60.0,
)  # fmt: skip
RECEIVE_BUFFER = 4 * 1024 * 1024


class SliMetrics:
    """The exporter's metrics in their own registry (no process or platform collectors)."""

    def __init__(self, registry: CollectorRegistry, targets: tuple[str, ...] = ()) -> None:
        self.duration = Histogram(
            "chaosregistry_pull_duration_seconds",
            "Image pull time seen by the client, by phase",
            ["target", "phase", "outcome"],
            buckets=PULL_BUCKETS,
            registry=registry,
        )
        self.pulls = Counter(
            "chaosregistry_pulls",
            "Image pulls that finished, by outcome and error class",
            ["outcome", "error_class"],
            registry=registry,
        )
        self.deploys = Counter(
            "chaosregistry_deploys",
            "Rollouts watched to an outcome",
            ["outcome"],
            registry=registry,
        )
        self.messages = Counter(
            "chaosregistry_sli_messages", "SLI datagrams received", ["kind"], registry=registry
        )
        self.malformed = Counter(
            "chaosregistry_sli_malformed", "Datagrams that were not SLI messages", registry=registry
        )
        # Present (at 0) from the first scrape, so rate() and ratios have a zero to start from:
        # a series born with its first pull hides that pull from rate() (Prometheus' "initialise
        # your metrics"). ``targets``: the registries whose pulls are expected.
        for outcome in (SUCCESS, FAILURE):
            self.deploys.labels(outcome)
        for target in targets:  # what the p99 SLI reads; the other phases appear when used
            self.duration.labels(target, PHASES[0], SUCCESS)
        self.pulls.labels(SUCCESS, NO_ERROR)
        for error_class in ErrorClass:
            self.pulls.labels(FAILURE, str(error_class))
        for kind in (PULL, DEPLOY):
            self.messages.labels(kind)

    def apply(self, data: bytes) -> None:
        try:
            kind, labels, numbers = parse_message(data)
        except (ValueError, UnicodeDecodeError):
            self.malformed.inc()
            return
        if kind == PULL:
            target, outcome, error = labels
            for phase, seconds in zip(PHASES, numbers, strict=True):
                self.duration.labels(target, phase, outcome).observe(seconds)
            self.pulls.labels(outcome, error).inc()
        else:
            self.deploys.labels(labels[0]).inc()
        self.messages.labels(kind).inc()


def serve(listen: str, sink: str, targets: tuple[str, ...] = ()) -> None:
    """Bind the sink, then serve /metrics (so "ready" means both), receive until signalled."""
    disable_created_metrics()  # type: ignore[no-untyped-call]  # no *_created gauges
    registry = CollectorRegistry()
    metrics = SliMetrics(registry, targets)
    sink_host, sink_port = parse_address(sink)
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
    receiver.bind((sink_host, sink_port))
    host, port = parse_address(listen)
    start_http_server(port, addr=host, registry=registry)

    def receive() -> None:
        while True:
            metrics.apply(receiver.recv(65536))

    threading.Thread(target=receive, name="sli-receiver", daemon=True).start()
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    stop.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m chaosregistry.observability.sli_exporter")
    parser.add_argument("--listen", required=True, help="host:port of /metrics")
    parser.add_argument("--sink", required=True, help="host:port (UDP) feeders send to")
    parser.add_argument("--run-dir", default="", help="the sandbox this runs for (a marker)")
    parser.add_argument(
        "--target", action="append", default=[], help="a registry URL to export zeros for"
    )
    args = parser.parse_args(argv)
    try:
        serve(args.listen, args.sink, tuple(args.target))
    except (ConfigError, OSError) as exc:
        print(f"sli_exporter: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
