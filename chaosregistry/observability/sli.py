"""Client-side SLIs: what our pulls and the rollouts we watch report to the SLI exporter.

Scraped while running, not pushed at the end. The SLOs this feeds are judged *during* a fault
window (p99 breached during the latency, met after; an alert that fires and resolves), so
Prometheus must see the series move on the run's timeline: one push at the end of a game day
would put every pull at one instant. So every feeder (each Locust process, the probes inside
``chaos run``, the rollout probes) sends one small UDP datagram per pull or per rollout outcome
to the exporter (``python -m chaosregistry.observability.sli_exporter``, a sandbox process), which
keeps the
``prometheus_client`` metrics and is scraped every second. Why not a ``/metrics`` server in each
feeder: Locust processes and ``chaos run`` come and go within seconds (the last observations of
a short-lived process would never be scraped), and Prometheus would need to discover each one;
the exporter outlives them all and counts every pull, whichever process made it.

Cost per pull in the Locust user (gevent): one string format and one non-blocking ``sendto`` on
loopback, no lock, no HTTP, no ``prometheus_client`` import in the feeder (bench/README.md has
the figure). A datagram the exporter cannot take is dropped (UDP), never waited for: the load
and the probes never slow down for their telemetry; ``chaosregistry_sli_messages_total`` on the
exporter counts what arrived, so a test can prove nothing was lost.

Wire format (UTF-8, tab-separated, one message per datagram)::

    pull  <target> <outcome> <error_class> <total s> <auth s> <manifest s> <blobs s>
    deploy <outcome>

``outcome`` is ``success`` or ``failure``; ``error_class`` one of ``ErrorClass`` or ``none``.
"""

import socket
from collections.abc import Mapping
from typing import Any

from chaosregistry.errors import ConfigError

SUCCESS = "success"
FAILURE = "failure"
NO_ERROR = "none"
PULL = "pull"
DEPLOY = "deploy"
PHASES = ("total", "auth", "manifest", "blobs")


def parse_address(address: str) -> tuple[str, int]:
    """``host:port`` -> (host, port); ConfigError naming the value otherwise."""
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"sli_sink must be host:port, not {address!r}")
    return host, int(port)


class SliSink:
    """Sends SLI observations to the exporter at ``address`` (``host:port``); a sink without an
    address (no exporter configured) does nothing."""

    def __init__(self, address: str | None) -> None:
        self.address = parse_address(address) if address else None
        self._socket: socket.socket | None = None
        self.dropped = 0

    def _send(self, message: str) -> None:
        if self.address is None:
            return
        if self._socket is None:
            self._socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self._socket.setblocking(False)
        try:
            self._socket.sendto(message.encode(), self.address)
        except OSError:  # no exporter listening (ICMP refused), or a full buffer: never wait
            self.dropped += 1

    def pull(
        self,
        target: str,
        ok: bool,
        error_class: str | None,
        total: float,
        auth: float = 0.0,
        manifest: float = 0.0,
        blobs: float = 0.0,
    ) -> None:
        """One finished pull (an interrupted one is neither a success nor a failure: skip it)."""
        outcome = SUCCESS if ok else FAILURE
        error = error_class or NO_ERROR
        self._send(
            f"{PULL}\t{target}\t{outcome}\t{error}\t{total:.6f}\t{auth:.6f}\t"
            f"{manifest:.6f}\t{blobs:.6f}"
        )

    def deploy(self, ok: bool) -> None:
        """One rollout that reached an outcome (rolled out, or declared failed)."""
        self._send(f"{DEPLOY}\t{SUCCESS if ok else FAILURE}")

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None


def parse_message(data: bytes) -> tuple[str, tuple[str, ...], tuple[float, ...]]:
    """(kind, labels, numbers) of one datagram; ValueError when it is not one of ours."""
    fields = data.decode().split("\t")
    if fields[0] == PULL and len(fields) == 8:
        target, outcome, error = fields[1:4]
        if outcome not in (SUCCESS, FAILURE):
            raise ValueError(f"bad outcome {outcome!r}")
        return PULL, (target, outcome, error), tuple(float(f) for f in fields[4:])
    if fields[0] == DEPLOY and len(fields) == 2 and fields[1] in (SUCCESS, FAILURE):
        return DEPLOY, (fields[1],), ()
    raise ValueError(f"not an SLI message: {data[:40]!r}")


def sink_for(configuration: Mapping[str, Any] | None) -> SliSink:
    """The sink the probes of this configuration feed (the settings' ``prometheus.sli_sink``)."""
    from chaosregistry.experiment.settings import settings_for

    return SliSink(settings_for(configuration).prometheus.sli_sink)
