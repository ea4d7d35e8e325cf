"""Where the tests find the repository, their data files and the shared names file."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
#: Site files and other inputs shared by several test packages.
DATA = REPO / "tests" / "data"
#: The shared names dataset (charlm's training data): ``$CHARLM_NAMES``, else ``../shared/data/names.txt``
#: next to the repository. Tests that need it call ``need()`` when it is absent.
NAMES = Path(os.environ.get("CHARLM_NAMES") or REPO.parent / "shared" / "data" / "names.txt")


def avahi_dtd_dir() -> Path:
    """Folder holding avahi-service.dtd: the installed one, or extracted from Debian's .deb
    (installing avahi-daemon on the test machine would advertise on its real interfaces)."""
    installed = Path("/usr/share/avahi")
    if (installed / "avahi-service.dtd").exists():
        return installed
    cache = Path(os.environ.get("OPSCTL_CACHE", Path.home() / ".cache" / "opsctl")) / "avahi-dtd"
    dtd_dir = cache / "usr" / "share" / "avahi"
    if not (dtd_dir / "avahi-service.dtd").exists():
        cache.mkdir(parents=True, exist_ok=True)
        subprocess.run(["apt-get", "download", "avahi-daemon"], cwd=cache, check=True, capture_output=True)
        deb = next(cache.glob("avahi-daemon_*.deb"))
        subprocess.run(["dpkg-deb", "-x", str(deb), str(cache)], check=True)
    return dtd_dir
