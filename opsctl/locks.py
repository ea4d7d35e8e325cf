"""One process at a time: the file lock behind every build, start and store that parallel
opsctl runs (two commands, pytest workers) could otherwise race on.

Example::

    with file_lock(cache_dir() / "locks" / "image-backup.lock"):
        build_image()
"""

from __future__ import annotations

import contextlib
import fcntl
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (created with its parent directories) for the block.

    The lock is released when the block ends or the process dies, so a crash never leaves a
    stale lock behind.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def folder_lock(folder: Path):
    """The lock of a folder that several processes share (``<folder>.lock`` beside it), e.g. the
    ``.deb`` cache that image builds bind into their chroots as apt's archives, where apt in a
    second chroot fails at once on the cache's own lock instead of waiting."""
    return file_lock(folder.with_name(folder.name + ".lock"))
