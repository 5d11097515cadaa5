"""Atomic file writes: a reader sees the old file or the new one, never half of either.

The content goes to a temporary file in the target's own directory (a rename is atomic only
within one file system), which is renamed over the target. ``durable=True`` also fsyncs the file
before the rename and the directory after it, so the new content survives a power cut: the
fault ledger needs that, a sandbox's endpoints file does not.
"""

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any


def write_bytes_atomic(
    path: Path, data: bytes, *, mode: int = 0o644, durable: bool = False
) -> None:
    """Replace ``path`` with ``data``, its permission bits exactly ``mode`` (not the umask's)."""
    directory = path.parent
    # Hidden and ".tmp": directory scans (the ledger's, the watchdog's) skip it.
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), mode)
            handle.write(data)
            if durable:
                handle.flush()
                os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    if durable:
        # The rename is durable only once the directory itself is on disk.
        dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def write_text_atomic(path: Path, text: str, *, mode: int = 0o644, durable: bool = False) -> None:
    write_bytes_atomic(path, text.encode("utf-8"), mode=mode, durable=durable)


def write_json(
    path: Path,
    value: Any,
    *,
    mode: int = 0o644,
    sort_keys: bool = True,
    durable: bool = False,
) -> None:
    """Replace ``path`` with ``value`` as indented JSON and a final newline.

    Serialised before the disk is touched: a value that is not JSON (NaN included) raises
    ValueError or TypeError and leaves no file behind.
    """
    payload = json.dumps(value, indent=2, sort_keys=sort_keys, allow_nan=False) + "\n"
    write_text_atomic(path, payload, mode=mode, durable=durable)


def append_line(path: Path, line: str, *, mode: int = 0o644) -> None:
    """Append ``line`` and a newline to ``path`` (created with ``mode``) in one ``write``.

    O_APPEND puts each write at the end even with several writers, and one small write is not
    interleaved with another's: a reader sees whole lines, the last one possibly still missing.
    """
    if "\n" in line:
        raise ValueError("append_line takes one line, without a newline in it")
    data = (line + "\n").encode("utf-8")
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, mode)
    try:
        written = os.write(fd, data)
        if written != len(data):
            raise OSError(f"short append to {path}: {written} of {len(data)} bytes")
    finally:
        os.close(fd)
