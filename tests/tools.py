"""Helpers for tests that use real tools (testparm, xmllint, shellcheck, docker, qemu).

A missing tool is a skip on a developer machine but a failure in CI (``CI=true``):
CI installs everything through ``scripts/test.sh``, so a missing tool there is a bug.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
REPO = Path(__file__).resolve().parent.parent
NAMES = Path(os.environ.get("OPSCTL_NAMES", REPO.parent / "shared" / "data" / "names.txt"))


def need(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"required in CI: {reason}")
    pytest.skip(reason)


def require(tool: str) -> str:
    path = shutil.which(tool)
    if not path:
        need(f"{tool} is not installed (scripts/test.sh installs it)")
    return path


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
