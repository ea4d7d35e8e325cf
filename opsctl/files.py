"""Writing files so a reader never sees half of one: :func:`atomic_write`.

Example::

    atomic_write(Path("site.yml"), text)            # keeps site.yml's mode (new file: 0644)
    atomic_write(store, json.dumps(data), mode=0o600)  # never readable by others, not even briefly
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


def atomic_write(path: Path | str, data: str | bytes, mode: int | None = None) -> Path:
    """Write ``data`` to ``path`` atomically: a temp file in the same directory, fsync, rename.

    The file keeps its current permission bits unless ``mode`` is given (a new file: 0644). The temp
    file is created 0600 and only gets ``mode`` before the rename, so secrets are never exposed; on
    any failure it is removed and the old file is left as it was. Returns ``path``.
    """
    path = Path(path)
    if mode is None:
        try:
            mode = path.stat().st_mode & 0o7777
        except FileNotFoundError:
            mode = 0o644
    raw = data.encode("utf-8") if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(raw)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError):  # make the rename itself durable
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    return path
