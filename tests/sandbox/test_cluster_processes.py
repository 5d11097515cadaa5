"""The test bed's process start: a piece that exits while starting gets one more start."""

from pathlib import Path

from chaosregistry.cluster.layout import Layout
from chaosregistry.cluster.processes import ProcessSpec

# It starts (small) processes of ours.


def _flaky_then_serving(tmp_path: Path) -> ProcessSpec:
    """A piece that exits at its first start (as the kubelet does when the rename of its
    pod-resources socket fails) and runs at the second."""
    marker = tmp_path / "started-once"
    script = f'if [ ! -e "{marker}" ]; then touch "{marker}"; echo failed to move; exit 1; fi; '
    script += f'touch "{tmp_path}/serving"; while true; do sleep 1; done'
    return ProcessSpec("flaky", ("/bin/sh", "-c", script))


def test_a_piece_that_exits_while_starting_is_started_once_more(tmp_path: Path) -> None:
    from chaosregistry.cluster.lifecycle import _start_processes
    from chaosregistry.cluster.processes import running_pid, stop

    layout = Layout.at(tmp_path)  # the command line names it: how our pids are told apart
    layout.make_dirs()
    said: list[str] = []
    checks = {"flaky": lambda: None if (tmp_path / "serving").exists() else "not serving"}
    try:
        _start_processes(layout, [_flaky_then_serving(tmp_path)], checks, said.append)
        assert running_pid(layout, "flaky") is not None
        assert any("exited while starting" in line for line in said), said
        assert any(line.startswith("flaky: ready in") for line in said), said
    finally:
        stop(layout, "flaky")
