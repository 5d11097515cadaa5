"""Real parts for the fault-ledger tests: a Toxiproxy server, a TCP echo server behind a proxy,
a child process that injects a fault it owns, and waiting helpers.

The ``test_faults_*`` modules load the fixtures with ``pytest_plugins`` and import the helpers;
their import comes first, so this module is not assertion-rewritten (PYTEST_DONT_REWRITE) and
checks with ``pytest.fail`` instead of ``assert``.
"""

import contextlib
import json
import os
import re
import select
import signal
import socket
import socketserver
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from chaosregistry.faults.watchdog import log_path, watchdog_pid
from chaosregistry.sandbox.toxiproxy import Toxiproxy
from support.polling import eventually
from support.ports import free_port

TOXIPROXY_BINARY = Path(
    os.environ.get(
        "CHAOSREGISTRY_TOXIPROXY",
        Path.home() / ".cache/chaostoolkit-registry/toxiproxy-2.5.0/server",
    )
)
# Short idle exit so every test can check that its watchdog went away by itself.
WATCHDOG_IDLE_EXIT = 1.0
# How long a test waits for the watchdog to act once it should: it ticks every few tenths of a
# second and typically acts within one (the tests print what they measured), but a 2-core
# machine running the whole suite at load 10 has taken over 2 s. A bound, not a figure: the
# figures are the printed measurements, the property is that it happens at all, and not early.
SETTLES_WITHIN = 10.0

# A fault that tests its own end: long enough that its apply (an nginx reload, restarts of the
# replicas) and a check of its effect fit inside it on a loaded machine, whose 2 cores the suite
# keeps busy. The ledger counts a fault's duration from its record, before the apply, and a
# read-only apply restarts three processes: a 2 s fault could be over before its effect was
# checked. Judged then by assert_reverted_at_expiry, from its expiry.
SHORT_FAULT = 6.0

# The safety net's promise (issue 12, item 9): a fault whose owner and watchdog were both killed
# outlives its expiry by at most this much (a guardian starts a new watchdog for the ledger).
OUTLIVES_AT_MOST = 5.0


def wait_until(
    predicate: Callable[[], bool], *, timeout: float, interval: float = 0.01, what: str = ""
) -> float:
    """``polling.eventually`` for a ``predicate`` that returns a bool; returns the seconds it
    took, fails the test on timeout."""
    started = time.monotonic()
    eventually(what or str(predicate), predicate, timeout=timeout, interval=interval)
    return time.monotonic() - started


class ToxiproxyServer:
    """A real ``toxiproxy-server`` on a loopback port that can be stopped and started again."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.api_url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        if not TOXIPROXY_BINARY.exists():
            pytest.fail(f"toxiproxy server not found at {TOXIPROXY_BINARY}; run `make setup`")
        self.process = subprocess.Popen(
            [str(TOXIPROXY_BINARY), "-host", "127.0.0.1", "-port", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

        def answers() -> bool:
            try:
                return httpx.get(f"{self.api_url}/version", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(answers, timeout=10, interval=0.05, what="toxiproxy to answer")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None


class EchoServer(socketserver.ThreadingTCPServer):
    """Echoes every byte back: the upstream behind the proxies."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _EchoHandler)
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)
        self.thread.start()

    @property
    def address(self) -> str:
        host, port = self.server_address[:2]
        return f"{host!s}:{port}"


class _EchoHandler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        while data := self.request.recv(65536):
            self.request.sendall(data)


@dataclass
class Proxy:
    api_url: str
    name: str
    listen: str

    def toxic_names(self) -> list[str]:
        with Toxiproxy(self.api_url) as client:
            return [toxic["name"] for toxic in client.toxics(self.name)]

    def round_trip(self) -> float:
        """Seconds for one small message to go through the proxy and back."""
        host, port = self.listen.rsplit(":", 1)
        started = time.monotonic()
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            sock.sendall(b"ping")
            received = b""
            while len(received) < 4:
                received += sock.recv(4)
        return time.monotonic() - started


def make_proxy(api_url: str, upstream: str) -> Proxy:
    name = f"hop-{uuid.uuid4().hex[:8]}"
    with Toxiproxy(api_url) as client:
        created = client.ensure_proxy(name, listen="127.0.0.1:0", upstream=upstream)
    return Proxy(api_url, name, created["listen"])


def delete_proxy(proxy: Proxy) -> None:
    with contextlib.suppress(httpx.HTTPError):
        httpx.delete(f"{proxy.api_url}/proxies/{proxy.name}", timeout=5)


# -- fixtures (prefixed: pytest_plugins makes them visible to every test module) -------------
@pytest.fixture(scope="session")
def faults_toxiproxy() -> Iterator[ToxiproxyServer]:
    server = ToxiproxyServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def faults_echo() -> Iterator[EchoServer]:
    server = EchoServer()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def faults_proxy(faults_toxiproxy: ToxiproxyServer, faults_echo: EchoServer) -> Iterator[Proxy]:
    """A proxy of its own on the session's Toxiproxy, to the echo server."""
    created = make_proxy(faults_toxiproxy.api_url, faults_echo.address)
    yield created
    delete_proxy(created)


@pytest.fixture
def faults_ledger_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh ledger directory; at the end, its watchdog must have exited by itself."""
    monkeypatch.setenv("CHAOSREGISTRY_WATCHDOG_IDLE_EXIT", str(WATCHDOG_IDLE_EXIT))
    directory = tmp_path / "ledger"
    yield directory
    assert_watchdog_exits(directory)


@contextlib.contextmanager
def own_ledger(
    run_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[dict[str, Any]]:
    """The configuration of a fault test on the sandbox in ``run_dir``, with a ledger of its
    own. The caller's fixture undoes its faults before this ends; then no fault may be active
    in that ledger, and its watchdog must have exited by itself."""
    from chaosregistry.faults.ledger import Ledger

    monkeypatch.setenv("CHAOSREGISTRY_WATCHDOG_IDLE_EXIT", str(WATCHDOG_IDLE_EXIT))
    ledger_dir = tmp_path / "ledger"
    yield {"sandbox_dir": str(run_dir), "ledger_dir": str(ledger_dir)}
    active = Ledger(ledger_dir).active()
    if active:
        pytest.fail(f"faults still active in {ledger_dir}: {[e.id for e in active]}")
    assert_watchdog_exits(ledger_dir)


def assert_watchdog_exits(
    directory: Path, timeout: float = WATCHDOG_IDLE_EXIT + SETTLES_WITHIN
) -> None:
    """Fail unless no watchdog runs for ``directory`` within ``timeout`` (kill it if one does).

    It exits ``WATCHDOG_IDLE_EXIT`` after its last active fault, and this returns as soon as it
    has; the bound is for a machine whose 2 cores the suite keeps 95-99% busy, where 6 s was
    once not enough (a watchdog started 0.7 s before its fault was reverted, at load 10)."""
    deadline = time.monotonic() + timeout
    while (pid := watchdog_pid(directory)) is not None:
        if time.monotonic() > deadline:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            pytest.fail(f"watchdog {pid} for {directory} still running after {timeout}s")
        time.sleep(0.05)


# -- a child process that owns a fault -------------------------------------------------------
CHILD_SCRIPT = r"""
import json, os, sys, time
from chaosregistry.faults import Ledger, inject
from chaosregistry.faults.toxiproxy_undo import toxic_undo
from chaosregistry.sandbox.toxiproxy import Toxiproxy

cfg = json.loads(sys.argv[1])
client = Toxiproxy(cfg["api_url"])

def apply():
    time.sleep(cfg["sleep_before"])
    toxic = client.add_toxic(
        cfg["proxy"], name=cfg["toxic"], type="latency", attributes={"latency": cfg["latency"]}
    )
    time.sleep(cfg["sleep_after"])
    return {"toxic": toxic}

print("ready", flush=True)
sys.stdin.readline()
entry = inject(
    Ledger(cfg["ledger_dir"]),
    kind="network.latency",
    target="hop:" + cfg["proxy"],
    parameters={"latency_ms": cfg["latency"]},
    duration=cfg["duration"],
    apply=apply,
    undo=toxic_undo(cfg["api_url"], cfg["proxy"], cfg["toxic"]),
    owner_pid=os.getpid(),
)
print("injected " + entry.id, flush=True)
time.sleep(3600)
"""


def signal_state(pid: int) -> str:
    """What the kernel says of ``pid``'s state and signals (``/proc/<pid>/status``): for the
    message of a test whose signalled process did not end."""
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return f"process {pid} is gone"
    keep = ("State", "Threads", "SigPnd", "ShdPnd", "SigBlk", "SigIgn", "SigCgt")
    return f"process {pid}: " + ", ".join(
        line.replace("\t", " ") for line in lines if line.split(":", 1)[0] in keep
    )


class FaultOwner:
    """A child Python process that injects a latency toxic it owns, when told to."""

    def __init__(
        self,
        ledger_dir: Path,
        proxy: Proxy,
        *,
        duration: float = 60.0,
        latency: int = 200,
        sleep_before: float = 0.0,
        sleep_after: float = 0.0,
        new_session: bool = False,
        quiet: bool = False,
    ) -> None:
        self.toxic = f"latency-{uuid.uuid4().hex[:8]}"
        config: dict[str, Any] = {
            "ledger_dir": str(ledger_dir),
            "api_url": proxy.api_url,
            "proxy": proxy.name,
            "toxic": self.toxic,
            "duration": duration,
            "latency": latency,
            "sleep_before": sleep_before,
            "sleep_after": sleep_after,
        }
        self.process = subprocess.Popen(
            [sys.executable, "-c", CHILD_SCRIPT, json.dumps(config)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL if quiet else None,
            text=True,
            start_new_session=new_session,
        )
        line = self._stdout().readline().strip()
        if line != "ready":
            pytest.fail(f"fault owner did not start: {line!r}")

    def _stdout(self) -> Any:
        if self.process.stdout is None:
            pytest.fail("fault owner has no stdout")
        return self.process.stdout

    def go(self) -> None:
        if self.process.stdin is None:
            pytest.fail("fault owner has no stdin")
        self.process.stdin.write("go\n")
        self.process.stdin.flush()

    def wait_injected(self, timeout: float = 10.0) -> str:
        """The entry id once the child has injected (its stdout says so)."""
        ready, _, _ = select.select([self._stdout()], [], [], timeout)
        if not ready:
            pytest.fail("fault owner did not inject in time")
        line = self._stdout().readline().strip()
        if not line.startswith("injected "):
            pytest.fail(f"fault owner said {line!r}")
        return str(line.split()[1])

    def kill(self, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.process.send_signal(signum)

    def reap(self) -> None:
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()


def entry_files(directory: Path) -> list[dict[str, Any]]:
    """The ledger's entries as stored on disk (not through the Ledger class)."""
    return [json.loads(path.read_text()) for path in sorted(directory.glob("*.json"))]


def reverted_by(ledger_dir: Path, entry_id: str, timeout: float = 5.0) -> int | None:
    """The pid of the watchdog whose log says it reverted ``entry_id`` (None: none did within
    ``timeout``: the watchdog logs the revert just after the ledger says so, so a caller that
    saw the entry reverted may read the log a moment before that line is written)."""
    deadline = time.monotonic() + timeout
    pattern = re.compile(rf"watchdog\[(\d+)\] INFO reverted {entry_id} ")
    while True:
        found = pattern.search(log_path(ledger_dir).read_text())
        if found or time.monotonic() > deadline:
            return int(found[1]) if found else None
        time.sleep(0.05)


# -- what every fault action promises ---------------------------------------------------------
def assert_refused_before_recording(
    call: Callable[[], Any], fragment: str, ledger_dir: Path
) -> None:
    """``call`` (a fault action on bad input) fails with one line that contains ``fragment``,
    and the ledger in ``ledger_dir`` records nothing: the input was refused before anything
    was applied. The caller checks that the target itself is as before."""
    from chaoslib.exceptions import ActivityFailed

    from chaosregistry.faults.ledger import Ledger

    try:
        call()
    except ActivityFailed as error:
        message = str(error)
    else:
        pytest.fail(f"bad input accepted; expected a refusal naming {fragment!r}")
    if fragment not in message or "\n" in message:
        pytest.fail(f"expected one line containing {fragment!r}, got {message!r}")
    if recorded := Ledger(ledger_dir).all():
        pytest.fail(f"the ledger recorded {len(recorded)} fault(s) for refused input")


def assert_reverted_at_expiry(
    ledger_dir: Path, fault_id: str, timeout: float = SETTLES_WITHIN
) -> None:
    """The ledger's entry ``fault_id`` becomes reverted within ``timeout`` seconds of its
    expiry, for the reason ``expired`` (the watchdog ended it at its duration, not a rollback)
    and not before the time it was to expire."""
    from chaosregistry.faults.ledger import FaultState, Ledger

    ledger = Ledger(ledger_dir)
    until_expiry = max(0.0, ledger.get(fault_id).expires_at - time.time())
    eventually(
        f"fault {fault_id} reverted",
        lambda: ledger.get(fault_id).reverted_at,
        timeout=until_expiry + timeout,
    )
    entry = ledger.get(fault_id)
    if entry.state is not FaultState.REVERTED or entry.revert_reason != "expired":
        pytest.fail(f"fault {fault_id}: {entry.state} for {entry.revert_reason!r}, not expired")
    if entry.reverted_at is None or entry.reverted_at < entry.expires_at:
        pytest.fail(f"fault {fault_id} reverted at {entry.reverted_at}, before {entry.expires_at}")
