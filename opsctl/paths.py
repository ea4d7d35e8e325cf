"""Where opsctl keeps its own files: the one reading of ``$OPSCTL_CACHE``.

Example::

    >>> cache_dir() / "sandbox" / "secrets.json"  # doctest: +SKIP
    PosixPath('/root/.cache/opsctl/sandbox/secrets.json')
"""

from __future__ import annotations

import os
from pathlib import Path

#: The environment variable that moves the cache; unset or empty means ``~/.cache/opsctl``.
CACHE_ENV = "OPSCTL_CACHE"


def cache_dir(*, create: bool = False) -> Path:
    """``$OPSCTL_CACHE`` (``~`` expanded), else ``~/.cache/opsctl``; an empty value counts as unset.

    With ``create`` the directory is made (with its parents) when missing.
    """
    env = os.environ.get(CACHE_ENV, "").strip()
    path = Path(env).expanduser() if env else Path.home() / ".cache" / "opsctl"
    if create:
        path.mkdir(parents=True, exist_ok=True)
    return path
