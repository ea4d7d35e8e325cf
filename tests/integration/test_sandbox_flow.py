"""The main job end to end on the embedded default site: sandbox up, provision, provision again
(zero changes), verify with testinfra. Its training step (`opsctl train` on the trainer) is in
test_train_flow.py, which needs no VM and so runs on the other xdist worker, beside this one.

This is what `scripts/sandbox.sh` does, driven through the real CLI. The backup host is the
session VM (tests/support/vm.py), reset and reached as ``itest-backup``: `opsctl sandbox up` finds
it running and leaves it alone; the trainer container is started fresh and removed at the end.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from tests.support.ci import need
from tests.support.paths import NAMES, REPO
from tests.support.vm import alias_vm, reset_vm

pytestmark = [pytest.mark.vm, pytest.mark.docker]


# The embedded default site with its hosts renamed, so the test never touches a developer's own
# sandbox (`backup`, `trainer`) and always starts from a reset VM and a fresh trainer container.
SITE = REPO / "inventory" / "sandbox.yml"
RENAMED = SITE.read_text().replace("name: backup", "name: itest-backup").replace(
    "host: backup", "host: itest-backup").replace("name: trainer", "name: itest-trainer").replace(
    "host: trainer", "host: itest-trainer")


def opsctl(*args: str, timeout: float = 1800) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "200", "OPSCTL_SITE": os.environ["_ITEST_SITE"]}
    return subprocess.run([sys.executable, "-m", "opsctl", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout, env=env)


@pytest.fixture(scope="module")
def sandbox(session_vm, tmp_path_factory):
    from opsctl.sandbox.containers import stop_host

    if not NAMES.exists():
        need(f"names file {NAMES} missing")
    site = tmp_path_factory.mktemp("itest") / "site.yml"
    site.write_text(RENAMED)
    os.environ["_ITEST_SITE"] = str(site)
    reset_vm(session_vm)
    alias_vm(session_vm, "itest-backup")
    stop_host("itest-trainer")
    proc = opsctl("sandbox", "up", "--json", timeout=3600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    yield json.loads(proc.stdout)
    stop_host("itest-trainer")
    os.environ.pop("_ITEST_SITE", None)


def test_interrupted_provision_stops_cleanly(sandbox, session_vm, tmp_path):
    """SIGTERM mid-provision: ansible-playbook is stopped, the temporary secrets file removed, exit 143
    with a clear line; the next provision (below) converges and the one after changes nothing."""
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    env = {**os.environ, "COLUMNS": "200", "OPSCTL_SITE": os.environ["_ITEST_SITE"], "TMPDIR": str(tmpdir)}
    proc = subprocess.Popen([sys.executable, "-m", "opsctl", "provision", "--limit", "itest-backup"], cwd=REPO,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + 900
    while session_vm.ssh("zpool list -H tank", timeout=60).returncode != 0:  # wait until it is applying
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "provision did not create the pool in 15 minutes"
        time.sleep(2)
    secrets = list(tmpdir.glob("opsctl-*/secrets.json"))
    assert len(secrets) == 1 and (secrets[0].stat().st_mode & 0o077) == 0, secrets  # there while it runs
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, (out, err)
    assert "interrupted (SIGTERM)" in err and "run `opsctl provision` again" in " ".join(err.split()), err
    assert "Traceback" not in err
    assert list(tmpdir.iterdir()) == []  # inventory, vars and secrets files are gone
    left = subprocess.run(["pgrep", "-f", str(tmpdir)], capture_output=True, text=True).stdout.split()
    assert left == [], f"ansible processes of the interrupted run still alive: {left}"


def test_provision_then_idempotent(sandbox):
    first = opsctl("provision", "--json")
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    report = json.loads(first.stdout)
    assert set(report["hosts"]) == {"itest-backup", "itest-trainer"}
    assert report["changed"] > 0
    second = opsctl("provision", "--json")
    assert second.returncode == 0, second.stderr[-2000:]
    again = json.loads(second.stdout)
    assert again["changed"] == 0, [c["task"] for c in again["changes"]]
    assert all(h["failures"] == 0 and h["unreachable"] == 0 for h in again["hosts"].values())


def test_verify_passes(sandbox):
    proc = opsctl("verify", "--json")
    result = json.loads(proc.stdout)
    failed = [c for c in result["checks"] if not c["ok"]]
    assert proc.returncode == 0 and not failed, failed
    names = {c["name"] for c in result["checks"]}
    assert "pool tank ONLINE" in names
    assert "smb login alice@alice" in names and "afp volume alice opens" in names
    assert "_adisk._tcp has dk1=adVN=bob,adVF=0x82" in names


def test_verify_catches_drift(sandbox):
    """verify is not a rubber stamp: a changed quota fails it (and only that check).

    Provision putting a drifted quota back (changed=1) is covered by tests/roles/test_zfs.py;
    here the quota is restored by hand to keep this suite's playbook runs few.
    """
    from opsctl.connections import connection_for
    from opsctl.site import load

    site = load(os.environ["_ITEST_SITE"]).site
    conn = connection_for(site.host("itest-backup"))
    assert conn.run_stdin("zfs set quota=300M tank/timemachine/bob", "").returncode == 0
    try:
        proc = opsctl("verify", "--json")
        assert proc.returncode == 1
        failed = [c for c in json.loads(proc.stdout)["checks"] if not c["ok"]]
        assert [c["name"] for c in failed] == ["dataset tank/timemachine/bob properties"]
        assert "quota=314572800 (want 104857600)" in failed[0]["detail"]
    finally:
        assert conn.run_stdin("zfs set quota=100M tank/timemachine/bob", "").returncode == 0
    assert opsctl("verify").returncode == 0


def test_reinstalled_host_gets_its_pool_back(sandbox, session_vm):
    """Disaster recovery: the backup host's OS is reinstalled (a fresh root disk from the image, the
    same data disks), `opsctl provision` gets the pool back (imports it; never creates one), the
    backup written over SMB is intact, and verify (SMB login included) passes."""
    from opsctl.apply.secrets import samba_passwords
    from opsctl.connections import connection_for
    from opsctl.site import load

    site = load(os.environ["_ITEST_SITE"]).site
    password = samba_passwords(site)["bob"]
    conn = connection_for(site.host("itest-backup"))
    band = os.urandom(1 << 20)
    assert conn.run_stdin("cat > /root/band", band).returncode == 0
    put = conn.run_stdin("smbclient //127.0.0.1/bob -A /dev/stdin -m SMB3 -c 'mkdir Mac.sparsebundle; "
                         "put /root/band Mac.sparsebundle/band'", f"username = bob\npassword = {password}\n")
    assert put.returncode == 0 and "NT_STATUS" not in put.stdout, put.stdout + put.stderr
    path = "/tank/timemachine/bob/Mac.sparsebundle/band"
    digest = hashlib.sha256(band).hexdigest()

    session_vm.reinstall(progress=print)
    alias_vm(session_vm, "itest-backup")  # the same VM, a new qemu process
    assert session_vm.ssh("id bob").returncode != 0  # the accounts went with the old root disk

    proc = opsctl("provision", "--limit", "itest-backup", "--json")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    history = session_vm.ssh("zpool history tank", check=True).stdout
    assert history.count("zpool create") == 1 and "zpool import" in history, history
    assert session_vm.ssh(f"sha256sum {path}", check=True).stdout.split()[0] == digest
    proc = opsctl("verify", "--json")
    failed = [c for c in json.loads(proc.stdout)["checks"] if not c["ok"]]
    assert proc.returncode == 0 and not failed, failed
