"""Old home of :mod:`opsctl.train.engine` (this machine's Docker engine), kept for imports that still use it."""

from opsctl.paths import cache_dir
from opsctl.train.engine import apt_install, ensure_docker

__all__ = ["apt_install", "cache_dir", "ensure_docker"]
