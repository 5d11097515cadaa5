"""Starting detached processes, and the one-line handshake pipes they answer on.

A detached process runs in its own session (its own process group, no controlling terminal),
so a Ctrl-C or a SIGKILL sent to the caller's process group does not reach it, and a whole
group can be signalled at once. Its stdin is /dev/null, its output appended to a log file.

The handshake: the caller makes a pipe and passes the write end to the child, which writes one
line ("ready <pid>", "started <pid>", ...) once it is ready. Only the child holds the write end
after the spawn, so a child that dies reads as EOF instead of a wait until the deadline.
"""

import contextlib
import os
import select
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import chaosregistry


def spawn_detached(
    argv: Sequence[str],
    *,
    log: Path,
    cwd: str | os.PathLike[str],
    env: Mapping[str, str] | None = None,
    pass_fds: Sequence[int] = (),
    header: str | None = None,
) -> "subprocess.Popen[bytes]":
    """Start ``argv`` in a new session, output appended to ``log`` (after ``header``, a line
    that marks where this run's output starts). Raises OSError when it cannot be started."""
    with open(log, "ab") as out:
        if header is not None:
            out.write(header.encode() + b"\n")
            out.flush()
        return subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            pass_fds=tuple(pass_fds),
            cwd=cwd,
            env=None if env is None else dict(env),
        )


def env_with_this_package(env: Mapping[str, str]) -> dict[str, str]:
    """``env`` with this very copy of the package first on PYTHONPATH, so ``python -m
    chaosregistry...`` finds it from any working directory even when it is not installed."""
    source_root = str(Path(chaosregistry.__file__).resolve().parent.parent)
    result = dict(env)
    result["PYTHONPATH"] = os.pathsep.join(filter(None, [source_root, env.get("PYTHONPATH")]))
    return result


def read_line(fd: int, deadline: float) -> str:
    """Read from ``fd`` until a newline, EOF or ``deadline`` (``time.monotonic()``); stripped."""
    data = b""
    while b"\n" not in data:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        readable, _, _ = select.select([fd], [], [], remaining)
        if not readable:
            break
        chunk = os.read(fd, 256)
        if not chunk:
            break
        data += chunk
    return data.decode(errors="replace").strip()


def send_line(fd: int | None, message: str) -> None:
    """The child's side: write ``message`` as one line to ``fd`` and close it. A caller that
    gave up waiting (closed pipe) is no reason to fail; nothing happens for ``fd`` None."""
    if fd is None:
        return
    with contextlib.suppress(OSError):
        os.write(fd, message.encode() + b"\n")
        os.close(fd)
