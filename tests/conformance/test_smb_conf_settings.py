"""The macOS / Time Machine settings of templates/samba/smb.conf.j2, as testparm reads the rendered file.

Each setting here is one that smbtorture's vfs.fruit suites (tests/conformance/test_fruit_torture.py)
or Samba's Time Machine guidance needs; docs/macos-conformance.md says which test proves which.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from opsctl.render.engine import render_host
from opsctl.site import load
from tests.support.ci import require
from tests.support.paths import REPO

TEMPLATE = REPO / "templates" / "samba" / "smb.conf.j2"
SITES = {"sandbox": REPO / "inventory" / "sandbox.yml",
         "fruit": REPO / "tests" / "conformance" / "fruit_site.yml"}

GLOBAL = {
    "durable handles": "Yes",
    "kernel oplocks": "No",
    "kernel share modes": "No",
    "posix locking": "No",
    "smb2 leases": "Yes",
    "spotlight": "No",
    "fruit:aapl": "yes",
    "fruit:model": "MacSamba",
    "fruit:copyfile": "yes",
    "fruit:nfs_aces": "yes",
    "fruit:zero_file_id": "yes",
    "fruit:posix_opens": "yes",
    "fruit:metadata": "stream",
    "fruit:resource": "file",
    "fruit:veto_appledouble": "no",
    "fruit:wipe_intentionally_left_blank_rfork": "yes",
    "fruit:delete_empty_adfiles": "yes",
}
TM_SHARE = {
    "create mask": "0700",
    "directory mask": "0700",
    "vfs objects": "catia fruit streams_xattr",
    "fruit:time machine": "yes",
}


def _testparm(tmp_path: Path, site_path: Path) -> dict[str, dict[str, str]]:
    """section -> {parameter: value} of the rendered smb.conf, as ``testparm -sv`` prints it (defaults included)."""
    testparm = require("testparm")
    doc = load(site_path)
    host = doc.site.backup.host
    conf = next(f for f in render_host(doc.site, host) if f.path.endswith("smb.conf"))
    path = tmp_path / "smb.conf"
    path.write_text(conf.content)
    proc = subprocess.run([testparm, "-sv", str(path)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "Unknown parameter" not in proc.stderr and "Ignoring unknown" not in proc.stderr, proc.stderr
    sections: dict[str, dict[str, str]] = {}
    current = None
    for line in proc.stdout.splitlines():
        if m := re.match(r"^\[(.+)\]$", line.strip()):
            current = sections.setdefault(m.group(1), {})
        elif current is not None and "=" in line:
            key, _, value = line.strip().partition("=")
            current[key.strip()] = value.strip()
    return sections


@pytest.mark.parametrize("site", sorted(SITES))
def test_time_machine_settings_reach_testparm(tmp_path, site):
    sections = _testparm(tmp_path, SITES[site])
    glob = sections["global"]
    for key, value in GLOBAL.items():
        assert glob.get(key, "").lower() == value.lower(), f"[global] {key}: {glob.get(key)!r}, want {value}"
    # removed in Samba 4.22 (fruit:posix_opens replaces it): must not come back
    assert "fruit:posix_rename" not in glob
    doc = load(SITES[site])
    for user in doc.site.backup.users:
        if "smb" not in user.protocols:
            continue
        share = sections[user.name]
        for key, value in TM_SHARE.items():
            assert share.get(key) == value, f"[{user.name}] {key}: {share.get(key)!r}, want {value}"
        # the Time Machine volume size is the user's tm_size, exactly as the site gives it
        assert share["fruit:time machine max size"] == user.tm_size_zfs


def test_fruit_site_volume_size_is_selftests():
    """smbtorture's Timemachine-volsize expects selftest's 32K share; the gate site must keep it."""
    user = next(u for u in load(SITES["fruit"]).site.backup.users if u.name == "alice")
    assert user.tm_size_bytes == 32 * 1024


def test_every_setting_has_a_reason_comment():
    """In the global block and each share block, every setting line follows a comment line (its reason)."""
    text = TEMPLATE.read_text()
    start = text.index("# Time Machine and macOS over SMB")
    block = text[start:text.index("{% for share in st.shares if share.time_machine")]
    tm_share = text[text.index("   browseable = yes", text.index("{% for share in st.shares if share.time_machine")):]
    tm_share = tm_share[:tm_share.index("{% endfor %}")]
    for part in (block, tm_share.split("\n", 1)[1]):
        lines = [line.strip() for line in part.splitlines() if line.strip()]
        for prev, line in zip(lines, lines[1:], strict=False):
            if not line.startswith("#") and not line.startswith("{%"):
                assert prev.startswith("#"), f"smb.conf.j2: {line!r} has no reason comment above it"
    for key in [*GLOBAL, *TM_SHARE, "fruit:time machine max size"]:
        assert re.search(rf"^\s+{re.escape(key)} = ", text, re.M), f"smb.conf.j2 lacks {key}"
