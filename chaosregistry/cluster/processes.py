"""Start and stop the cluster's processes: one process group each, pid files, logs.

Starting, recording and stopping are ``osutil.supervise``'s: a pid file holds the process's
record (pid, start time, boot id), so a reused pid is never taken for ours. ``strays`` finds
any process of our executables whose command line names our state directory (containerd's
shims carry our socket path), so ``down`` can end what a crash left behind.
"""

import contextlib
import os
import signal
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from chaosregistry.cluster.layout import Layout
from chaosregistry.errors import ChaosRegistryError
from chaosregistry.osutil.identity import (
    command_line,
    environment_text,
    executable_name,
    is_alive,
)
from chaosregistry.osutil.supervise import (
    read_record,
    running,
    signal_pids,
    start_recorded,
    stop_group,
    wait_gone,
)


class ClusterError(ChaosRegistryError):
    """A cluster piece failed to build, start, become ready or stop; the message says which."""


@dataclass(frozen=True)
class ProcessSpec:
    name: str
    argv: tuple[str, ...]
    env: dict[str, str] = field(default_factory=dict)


def _settled_command_line(pid: int) -> str:
    """The command line of ``pid``, "" for a zombie, a kernel thread or a gone process.

    Right after exec the kernel may briefly report an empty command line (the new image's
    argument area is not set up yet): an empty answer from a live process is re-read for up to
    half a second.
    """
    for _ in range(50):
        text = command_line(pid)
        if text or not is_alive(pid):
            return text
        time.sleep(0.01)
    return ""


def _names_state_dir(layout: Layout, pid: int) -> bool:
    marker = str(layout.state_dir)
    # Chaos Mesh's controller takes no arguments: its environment names the state dir.
    return is_alive(pid) and (
        marker in _settled_command_line(pid) or marker in environment_text(pid)
    )


def running_pid(layout: Layout, name: str) -> int | None:
    """The pid of our ``name`` process if it runs (its pid file's record)."""
    # A bare pid (a cluster started before pid files held records) is ours while it names the
    # state dir, the check pid files had then.
    record = running(layout.pid_file(name), adopt=lambda pid: _names_state_dir(layout, pid))
    return None if record is None else record.pid


def start(layout: Layout, spec: ProcessSpec) -> int:
    """Start ``spec`` in its own session, output appended to its log; returns the pid."""
    log = layout.log_file(spec.name)
    env = dict(os.environ)
    env.update(spec.env)
    try:
        process = start_recorded(
            spec.argv,
            record=layout.pid_file(spec.name),
            log=log,
            cwd=layout.state_dir,
            env=env,
            header=f"--- {time.strftime('%Y-%m-%dT%H:%M:%S')} {' '.join(spec.argv)}",
        )
    except OSError as exc:
        raise ClusterError(f"{spec.name}: cannot start {spec.argv[0]} ({exc})") from None
    return process.pid


def exited_early(layout: Layout, name: str) -> str | None:
    """If ``name`` is not running, a one-line reason with the tail of its log."""
    if running_pid(layout, name) is not None:
        return None
    return (
        f"{name} exited; last log line: {last_log_line(layout, name)} (log {layout.log_file(name)})"
    )


def last_log_line(layout: Layout, name: str) -> str:
    try:
        lines = layout.log_file(name).read_text(errors="replace").strip().splitlines()
    except OSError:
        return "(no log)"
    return lines[-1][:400] if lines else "(empty log)"


def stop(layout: Layout, name: str, *, timeout: float = 15.0) -> bool:
    """SIGTERM ``name`` (its process group), SIGKILL after ``timeout``; True if it was running.

    What survives even SIGKILL is left to ``down``'s check for strays.
    """
    record = read_record(layout.pid_file(name), adopt=lambda pid: _names_state_dir(layout, pid))
    layout.pid_file(name).unlink(missing_ok=True)
    if record is None or not record.runs():
        return False
    stop_group(record, signal.SIGTERM, grace=timeout)
    return True


# Executables that may run on behalf of a cluster. A shell or a CLI whose arguments name the
# state dir (``chaosregistry cluster down --state-dir ...``) is never a stray.
OUR_EXECUTABLES = frozenset(
    {
        "etcd",
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
        "kubelet",
        "containerd",
        "containerd-shim-runc-v2",
        "runc",
        "chaos-controller-manager",
    }
)


def strays(layout: Layout) -> list[int]:
    """Live processes of our executables whose command line names the state directory."""
    marker = str(layout.state_dir)
    # nginx is ours only as the registry's balancer: the sandbox's own nginx may run from a
    # folder inside the state dir too, and its lifecycle stops it.
    lb_marker = str(layout.registry_lb_dir)
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        if pid == os.getpid():
            continue
        executable = executable_name(pid)
        if executable in OUR_EXECUTABLES:
            wanted = marker
        elif executable == "nginx":
            wanted = lb_marker
        else:
            continue
        # Chaos Mesh's controller takes no arguments: its environment names the state dir.
        text = (
            environment_text(pid) if executable == "chaos-controller-manager" else command_line(pid)
        )
        if wanted in text and is_alive(pid):
            found.append(pid)
    return sorted(found)


def _signal(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, sig)


def kill_pids(pids: Sequence[int], *, grace: float = 5.0) -> list[int]:
    """SIGTERM then SIGKILL ``pids``; returns those still alive after that."""

    def alive(among: Sequence[int]) -> list[int]:
        return [pid for pid in among if is_alive(pid)]

    for pid in pids:
        _signal(pid, signal.SIGTERM)
    wait_gone(lambda: alive(pids), grace)
    left = alive(pids)
    signal_pids(left, signal.SIGKILL)
    wait_gone(lambda: alive(left), 5.0)
    return alive(left)


def other_cluster_kubelet(layout: Layout) -> str | None:
    """The command line of a kubelet on the layout's instance run from another state dir, if any.

    Two test clusters on one instance would share the node address, bridges and cgroup root.
    """
    node_ips = {f"--node-ip={address}" for address in layout.instance.node_ips}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or executable_name(int(entry.name)) != "kubelet":
            continue
        cmdline = command_line(int(entry.name))
        ours = node_ips.intersection(cmdline.split())
        if ours and str(layout.state_dir) not in cmdline:
            return cmdline
    return None
