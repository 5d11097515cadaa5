"""Reading a child process's handshake line from a pipe, with a deadline."""

import os
import select
import time


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
