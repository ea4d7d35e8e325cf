"""Which Debian mirror this machine's apt already uses, so the VM image is built from the same one
(no mirror host is written in code).

Reads ``/etc/apt/sources.list``, ``/etc/apt/sources.list.d/*.list`` (one-line ``deb`` entries) and
``/etc/apt/sources.list.d/*.sources`` (deb822 stanzas); ``$OPSCTL_DEBIAN_MIRROR`` overrides them.
Security and disabled entries are skipped; the first remaining Debian archive URL wins, deb822
files first (Debian 12's default layout).

Example::

    >>> debian_mirror(Path("/"))  # doctest: +SKIP
    'http://deb.example.org/debian'
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from opsctl.sandbox.errors import SandboxError

__all__ = ["debian_mirror", "mirrors_in_deb822", "mirrors_in_one_line"]

_ONE_LINE = re.compile(r"^\s*deb\s+(?:\[[^]]*\]\s+)?(\S+)\s+(\S+)")


def mirrors_in_deb822(text: str) -> list[str]:
    """Debian archive URLs of the enabled, non-security ``Types: deb`` stanzas of a ``.sources`` file."""
    found: list[str] = []
    for stanza in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        key = None
        for line in stanza.splitlines():
            if line.lstrip().startswith("#"):
                continue
            if line[:1] in (" ", "\t") and key:  # a folded continuation line
                fields[key] += " " + line.strip()
                continue
            if ":" in line:
                key, _, value = line.partition(":")
                key = key.strip().lower()
                fields[key] = value.strip()
        suites = fields.get("suites", "").split()
        if fields.get("enabled", "yes").lower() == "no" or "deb" not in fields.get("types", "").split():
            continue
        if any(s.endswith("-security") for s in suites):
            continue
        uris = fields.get("uris", "").split()
        if "debian-archive-keyring" in fields.get("signed-by", "") or any("/debian" in u for u in uris):
            found.extend(uris)
    return found


def mirrors_in_one_line(text: str) -> list[str]:
    """Debian archive URLs (``.../debian``) of the non-security ``deb`` lines of a ``.list`` file."""
    found = []
    for line in text.splitlines():
        m = _ONE_LINE.match(line)
        if m and "security" not in m.group(2) and m.group(1).rstrip("/").endswith("/debian"):
            found.append(m.group(1))
    return found


def debian_mirror(root: Path = Path("/")) -> str:
    """The Debian mirror URL (no trailing ``/``) in the apt sources under ``root``.

    Raises:
        SandboxError: no http(s) Debian archive is named there (the fix: set ``OPSCTL_DEBIAN_MIRROR``).
    """
    env = os.environ.get("OPSCTL_DEBIAN_MIRROR", "").strip()
    if env:
        return env.rstrip("/")
    apt = root / "etc" / "apt"
    parts = apt / "sources.list.d"
    candidates: list[str] = []
    for f in sorted(parts.glob("*.sources")) if parts.is_dir() else []:
        candidates += mirrors_in_deb822(f.read_text(errors="replace"))
    for f in [apt / "sources.list", *(sorted(parts.glob("*.list")) if parts.is_dir() else [])]:
        if f.is_file():
            candidates += mirrors_in_one_line(f.read_text(errors="replace"))
    for uri in candidates:
        if uri.startswith(("http://", "https://")) and not uri.rstrip("/").endswith("-security"):
            return uri.rstrip("/")
    raise SandboxError(
        f"cannot tell which Debian mirror to build the ZFS VM image from: the apt sources in {apt} "
        "(sources.list, sources.list.d/*.list, sources.list.d/*.sources) name no http(s) Debian archive",
        "add one to this machine's apt sources, or set OPSCTL_DEBIAN_MIRROR to a Debian archive URL")
