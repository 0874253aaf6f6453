"""Atomic file writes shared by the store, the artifacts and the checkpoints, and the clean-up of temporary
files that a killed writer left behind."""
from __future__ import annotations

import errno
import os
import re
import socket
import tempfile
from pathlib import Path

#: ``<target>.zsad-<host>-<pid>-<random>.tmp``, the temporary names :func:`atomic_write_bytes` uses
_TEMPORARY = re.compile(r"\.zsad-(?P<host>.+)-(?P<pid>\d+)-[a-z0-9_]+\.tmp$")


_FULL_TEXT = ("no space left on device", "os error 28", "disk quota exceeded", "database or disk is full")


def out_of_space(exc: BaseException) -> bool:
    """Whether ``exc`` (or an exception it was raised from) says the disk is full: ``ENOSPC``/``EDQUOT``, or the
    messages of libraries that wrap it (SQLite, safetensors)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if any(text in str(current).lower() for text in _FULL_TEXT):
            return True
        current = current.__cause__ or current.__context__
    return False


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder, an fsync and a rename. The
    temporary name holds this host and process, so :func:`remove_stale_temporaries` can tell it is stale."""
    path.parent.mkdir(parents=True, exist_ok=True)
    prefix = f".{path.name}.zsad-{socket.gethostname()}-{os.getpid()}-"
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=prefix, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def remove_stale_temporaries(folder: Path) -> list[Path]:
    """Delete the temporary files of :func:`atomic_write_bytes` in ``folder`` whose writer, a process of this
    host, is no longer running; returns them. Files of live processes and of other hosts are left alone."""
    removed = []
    host = socket.gethostname()
    for tmp in sorted(folder.glob(".*.tmp")) if folder.is_dir() else ():
        match = _TEMPORARY.search(tmp.name)
        if match is None or match["host"] != host:
            continue
        try:
            os.kill(int(match["pid"]), 0)
        except ProcessLookupError:
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
        except PermissionError:  # alive, another user's
            continue
    return removed
