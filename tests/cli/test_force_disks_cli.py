"""`opsctl provision --force-disks` asks an operator at a terminal to type the pool name after
showing each disk it may erase; without a terminal, or with another answer, nothing is applied."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
import time

import yaml

DISKS = ["/dev/disk/by-id/opsctl-test-missing-0", "/dev/disk/by-id/opsctl-test-missing-1"]


def _site(tmp_path):
    path = tmp_path / "site.yml"
    path.write_text(yaml.safe_dump({
        "site": "t",
        "hosts": [{"name": "ctl", "connection": "local"}],
        "backup": {"host": "ctl", "pool": {"name": "tank", "vdevs": [{"type": "mirror", "disks": DISKS}]},
                   "users": [{"name": "alice", "quota": "10M"}]},
    }))
    return path


def test_force_disks_without_a_terminal_is_refused(tmp_path):
    res = subprocess.run([sys.executable, "-m", "opsctl", "provision", "--force-disks", "--site", str(_site(tmp_path))],
                         capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=120,
                         env={**os.environ, "COLUMNS": "200"})
    assert res.returncode == 2, res.stdout + res.stderr
    assert "needs an operator at a terminal to type the pool name" in " ".join(res.stderr.split())
    assert "Traceback" not in res.stderr and "PLAY" not in res.stdout


def test_force_disks_lists_the_disks_and_needs_the_pool_name_typed(tmp_path):
    primary, replica = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "opsctl", "provision", "--force-disks", "--site",
                             str(_site(tmp_path))], stdin=replica, stdout=subprocess.PIPE, stderr=replica,
                            env={**os.environ, "COLUMNS": "200", "OPSCTL_SMB_PASSWORD_ALICE": "pw-alice1"})
    os.close(replica)
    seen = b""
    deadline = time.monotonic() + 120
    while b"Type the pool name" not in seen and time.monotonic() < deadline:
        try:
            seen += os.read(primary, 4096)
        except OSError:
            break
    text = seen.decode(errors="replace")
    assert "Type the pool name (tank)" in text, text
    for disk in DISKS:
        assert disk in text
    os.write(primary, b"yes\n")
    assert proc.wait(timeout=60) == 2
    try:
        while chunk := os.read(primary, 4096):
            seen += chunk
    except OSError:
        pass
    os.close(primary)
    assert "you typed 'yes', not 'tank'; nothing was applied" in " ".join(seen.decode(errors="replace").split())
