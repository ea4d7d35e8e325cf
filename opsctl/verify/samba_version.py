"""Samba releases known to break Time Machine, from the output of ``smbd --version``.

Samba 4.22.0 broke Time Machine backups over SMB (Samba bug 15926: macOS renames a folder of
the backup while files in it are still open, and 4.22 refused the rename, so the backup fails).
The fix shipped in 4.22.6 and 4.23.3; 4.21 and older never had the bug, 4.24 and later have the fix.

The samba role's ``tasks/version_guard.yml`` makes the same decision on the host (and warns);
``tests/conformance/test_samba_version.py`` checks that both agree.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

#: The Samba bug behind the guard.
BUG = "https://bugzilla.samba.org/show_bug.cgi?id=15926"

#: Each affected release series, mapped to the first release of that series with the fix.
BROKEN_SERIES: dict[tuple[int, int], tuple[int, int, int]] = {
    (4, 22): (4, 22, 6),
    (4, 23): (4, 23, 3),
}

_VERSION = re.compile(r"(?<![\d.])(\d+)\.(\d+)\.(\d+)(?:(rc|pre)(\d+))?")


class SambaVersionError(ValueError):
    """The text does not hold a Samba version."""


@dataclass(frozen=True)
class SambaVersion:
    major: int
    minor: int
    patch: int
    #: 0 for a release; n for the n-th release candidate (rcN/preN), which sorts before the release.
    rc: int = 0

    @property
    def is_release(self) -> bool:
        return self.rc == 0

    def __str__(self) -> str:
        base = f"{self.major}.{self.minor}.{self.patch}"
        return base if self.is_release else f"{base}rc{self.rc}"

    def _key(self) -> tuple[int, int, int, int, int]:
        # a release candidate of x.y.z comes before x.y.z itself
        return (self.major, self.minor, self.patch, 0 if self.rc else 1, self.rc)


def parse(text: str) -> SambaVersion:
    """The version in ``smbd --version`` output ("Version 4.22.11-Debian-4.22.11+dfsg-1") or a bare "4.22.6"."""
    if not isinstance(text, str):
        raise SambaVersionError(f"Samba version: expected text such as 'Version 4.22.6', got {text!r}")
    match = _VERSION.search(text)
    if match is None:
        shown = text.strip()[:80] or "(empty)"
        raise SambaVersionError(f"Samba version: no version number (like 4.22.6) in {shown!r}; "
                                "pass the output of `smbd --version`")
    major, minor, patch = (int(match.group(i)) for i in (1, 2, 3))
    rc = int(match.group(5)) if match.group(5) else 0
    return SambaVersion(major, minor, patch, rc)


def fixed_in(version: SambaVersion) -> tuple[int, int, int] | None:
    """The first fixed release of ``version``'s series when that series is affected, else None."""
    return BROKEN_SERIES.get((version.major, version.minor))


def breaks_time_machine(version: SambaVersion | str) -> bool:
    """True for the releases known to break Time Machine renames (4.22.0-4.22.5, 4.23.0-4.23.2, their rcs)."""
    if isinstance(version, str):
        version = parse(version)
    fix = fixed_in(version)
    if fix is None:
        return False
    return version._key() < (*fix, 1, 0)


def advice(version: SambaVersion | str) -> str | None:
    """A one-line warning naming the fix for an affected release; None for a good one."""
    if isinstance(version, str):
        version = parse(version)
    if not breaks_time_machine(version):
        return None
    fix = ".".join(str(n) for n in fixed_in(version))  # type: ignore[union-attr]
    return (f"Samba {version} breaks Time Machine backups (renames of folders with open files fail, "
            f"Samba bug 15926, {BUG}); upgrade Samba to {fix} or later")
