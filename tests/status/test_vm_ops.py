"""Day-2 operations end to end on the sandbox's qemu OpenZFS VM (real ZFS, Samba, Netatalk, Avahi).

The session VM (tests/support/vm.py), reset for this module and reached as ``opsbackup`` (the host of
tests/data/ops_site.yml), provisioned once with the backup playbook (which includes the monitor role). Then, in
order: add a user, write a fake sparsebundle as that user over SMB, see it in ``opsctl status``, push the user
above 90 % of the quota with ``set-quota`` and get exactly one webhook alert, run the host's monitor
timer once, remove the user (data kept), and purge (refused without the typed dataset name).

Outside CI the module skips when the VM cannot run here (no root, no qemu); in CI it fails.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
import time

import pytest

from opsctl.connections import connection_for
from opsctl.site import load
from tests.support import hostcmd
from tests.support.opsdata import OPS_SITE
from tests.support.vm import alias_vm, reset_vm
from tests.support.webhook import Webhook

pytestmark = [pytest.mark.vm, pytest.mark.slow, pytest.mark.timeout(3600)]

HOST = "opsbackup"
#: Run last, on the other xdist worker's own session VM (tests/support/vm.py). This module alone: with
#: test_zfsvm as well (its two extra VM boots), that worker ended 280 s after the VM worker (2026-12-02).
VM_TAIL = True
USER = "carol"
DATASET = f"tank/timemachine/{USER}"
PASSWORD = secrets.token_urlsafe(12)  # fresh per run; travels on stdin only
ALICE_PASSWORD = secrets.token_urlsafe(12)
DAN_PASSWORD = secrets.token_urlsafe(12)
TIMINGS: dict[str, float] = {}


def opsctl(*args: str, input: str | None = None, env: dict | None = None, timeout: float = 1800):
    """The CLI as an admin runs it: a separate process without a terminal."""
    started = time.monotonic()
    res = subprocess.run([sys.executable, "-m", "opsctl", *args], input=input, capture_output=True, text=True,
                         timeout=timeout, env={**os.environ, "COLUMNS": "200", **(env or {})},
                         stdin=None if input is not None else subprocess.DEVNULL)
    key = " ".join(args[:2])
    key = next(k for k in (key, *(f"{key} #{i}" for i in range(2, 99))) if k not in TIMINGS)
    TIMINGS[key] = round(time.monotonic() - started, 1)
    return res


@pytest.fixture(scope="module")
def lab(session_vm, tmp_path_factory):
    site = tmp_path_factory.mktemp("ops") / "site.yml"
    site.write_text(OPS_SITE.read_text())
    started = time.monotonic()
    reset_vm(session_vm)
    alias_vm(session_vm, HOST)
    TIMINGS["reset"] = round(time.monotonic() - started, 1)
    env = {"OPSCTL_SMB_PASSWORD_ALICE": ALICE_PASSWORD, "OPSCTL_SMB_PASSWORD_DAN": DAN_PASSWORD}
    res = opsctl("provision", "--site", str(site), "--playbook", "backup_server.yml", "--json", env=env)
    TIMINGS["first provision"] = TIMINGS.pop("provision --site")
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    provision = json.loads(res.stdout)
    conn = connection_for(load(site).site.host(HOST))
    yield {"site": site, "conn": conn, "vm": session_vm, "provision": provision}
    print("timings (s):", json.dumps(TIMINGS))


def sh(lab, command: str, check: bool = True):
    return hostcmd.sh(lab["conn"], command, check)


def smb(lab, user: str, password: str, commands: str, share: str | None = None):
    """smbclient on the host as ``user`` (on the user's own share unless ``share``)."""
    return hostcmd.smbclient(lab["conn"], user, password, commands, share)


def status_json(lab, *extra: str, env: dict | None = None):
    res = opsctl("status", "--site", str(lab["site"]), "--json", *extra, env=env)
    assert res.returncode in (0, 1), res.stderr
    return res.returncode, json.loads(res.stdout)


def user_facts(data: dict, user: str) -> dict:
    return next(u for u in data["hosts"][0]["users"] if u["user"] == user)


# ------------------------------------------------------------------------------------------ tests


def test_provision_installs_the_monitor_timer(lab):
    assert sh(lab, "systemctl is-enabled opsctl-monitor.timer").stdout.strip() == "enabled"
    assert sh(lab, "systemctl is-active opsctl-monitor.timer").stdout.strip() == "active"
    assert sh(lab, "stat -c '%a %U' /etc/opsctl/notify.env").stdout.strip() == "600 root"
    assert sh(lab, "stat -c '%a' /var/lib/opsctl").stdout.strip() == "700"
    for name in ("probe.py", "alerts.py", "notify.py"):
        sh(lab, f"test -s /usr/local/lib/opsctl/{name}")
    timer = sh(lab, "systemctl show -p TimersCalendar opsctl-monitor.timer").stdout
    assert "*:0/10" in timer or "*-*-* *:00/10:00" in timer, timer


def test_status_of_the_fresh_host(lab):
    code, data = status_json(lab)
    facts = data["hosts"][0]
    assert code == 0, facts
    assert facts["pool"]["healthy"] and facts["pool"]["health"] == "ONLINE"
    assert facts["pool"]["errors"] == {"read": 0, "write": 0, "cksum": 0}
    assert facts["services"] == {"smbd": "active", "netatalk": "active", "avahi-daemon": "active"}
    alice = user_facts(data, "alice")
    assert alice["quota_bytes"] == 100 << 20 and alice["last_backup"] is None and alice["advertised"]
    assert "_adisk._tcp" in facts["mdns"]["types"] and "_smb._tcp" in facts["mdns"]["types"]


def test_failing_disk_is_seen_then_healthy_again(lab, tmp_path):
    """A disk of the mirror goes offline: status shows the pool DEGRADED naming the disk, exits non-zero,
    the Prometheus gauge flips and --alert notifies once; back online and resilvered, it is healthy and
    says so once."""
    disk = "/dev/disk/by-id/virtio-opsctl-disk-1"
    hook = Webhook()
    env = {"CHARLM_WEBHOOK_URL": hook.url}
    state = ["--state-dir", str(tmp_path)]
    prom = tmp_path / "opsctl.prom"
    gauge = f'opsctl_pool_healthy{{host="{HOST}",pool="tank"}}'
    try:
        sh(lab, f"zpool offline tank {disk}")
        code, data = status_json(lab, "--alert", *state, env=env)
        pool = data["hosts"][0]["pool"]
        assert code == 1 and pool["health"] == "DEGRADED" and not pool["healthy"], pool
        assert any(d["state"] == "OFFLINE" and d["name"].startswith("virtio-opsctl-disk-1")
                   for d in pool["devices"]), pool["devices"]
        assert [b["alert"] for b in hook.bodies] == ["pool:tank"] and "DEGRADED" in hook.bodies[0]["text"]
        code, _ = status_json(lab, "--alert", *state, env=env)
        assert code == 1 and len(hook.bodies) == 1  # told once, not on every run
        res = opsctl("status", "--site", str(lab["site"]), "--prometheus", str(prom))
        assert res.returncode == 1, res.stderr  # a degraded pool fails the command, like an unreachable host
        assert "DEGRADED" in res.stdout and "virtio-opsctl-disk-1" in res.stdout, res.stdout
        assert f"{gauge} 0" in prom.read_text()

        sh(lab, f"zpool online tank {disk} && zpool wait -t resilver tank")
        code, data = status_json(lab, "--alert", *state, env=env)
        assert code == 0 and data["hosts"][0]["pool"]["health"] == "ONLINE", data["hosts"][0]["pool"]
        assert len(hook.bodies) == 2 and "ONLINE again" in hook.bodies[1]["text"], hook.bodies
        code, _ = status_json(lab, "--alert", *state, env=env)
        assert code == 0 and len(hook.bodies) == 2
        res = opsctl("status", "--site", str(lab["site"]), "--prometheus", str(prom))
        assert res.returncode == 0 and f"{gauge} 1" in prom.read_text(), res.stdout + res.stderr
    finally:
        hook.close()
        sh(lab, f"zpool online tank {disk}", check=False)


def test_extra_share_is_written_and_changed_by_each_of_its_members(lab):
    """An extra share's folder belongs to a group of exactly its valid users (root:share-projects 2770):
    what alice writes there over SMB, dan may change and add to, and the other way round; dan's own Time
    Machine share stays closed to alice."""
    assert sh(lab, "stat -c '%a %U %G' /tank/projects").stdout.strip() == "2770 root share-projects"
    assert sh(lab, "getent group share-projects").stdout.strip().split(":")[3] == "alice,dan"
    sh(lab, "echo from-alice > /root/a.txt && echo from-dan > /root/d.txt")
    res = smb(lab, "alice", ALICE_PASSWORD, "mkdir plans; put /root/a.txt plans/notes.txt", share="Projects")
    assert res.rc == 0 and "NT_STATUS" not in res.stdout, res.stdout + res.stderr
    res = smb(lab, "dan", DAN_PASSWORD, "put /root/d.txt plans/notes.txt; mkdir plans/dan; "
                                        "put /root/d.txt plans/dan/d.txt", share="Projects")
    assert res.rc == 0 and "NT_STATUS" not in res.stdout, res.stdout + res.stderr
    res = smb(lab, "alice", ALICE_PASSWORD, "put /root/a.txt plans/dan/a.txt", share="Projects")
    assert res.rc == 0 and "NT_STATUS" not in res.stdout, res.stdout + res.stderr
    assert sh(lab, "cat /tank/projects/plans/notes.txt").stdout.strip() == "from-dan"
    owners = sh(lab, "cd /tank/projects/plans && stat -c '%n %U %G' notes.txt dan dan/a.txt").stdout
    owners = owners.strip().splitlines()
    assert owners == ["notes.txt alice share-projects", "dan dan share-projects", "dan/a.txt alice share-projects"]
    res = smb(lab, "alice", ALICE_PASSWORD, "ls", share="dan")  # dan's Time Machine share stays dan's
    assert res.rc != 0 and "NT_STATUS_ACCESS_DENIED" in res.stdout + res.stderr, res.stdout + res.stderr


def test_user_add(lab):
    res = opsctl("user", "add", USER, "--quota", "40M", "--password-stdin", "--site", str(lab["site"]), "--json",
                 input=PASSWORD + "\n")
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    out = json.loads(res.stdout)
    assert any(f'tmutil setdestination -p "smb://{USER}@{HOST}.local/{USER}"' in line for line in out["onboarding"])
    assert f"name: {USER}" in lab["site"].read_text() and "# the first user" in lab["site"].read_text()
    assert PASSWORD not in res.stdout + res.stderr
    sh(lab, f"id {USER}")
    props = sh(lab, f"zfs get -Hp -o property,value quota,casesensitivity,compression {DATASET}").stdout
    assert "quota\t41943040" in props and "casesensitivity\tinsensitive" in props and "compression\tlz4" in props
    assert sh(lab, f"stat -c '%a %U' /tank/timemachine/{USER}").stdout.strip() == f"700 {USER}"
    assert f"[{USER}]" in sh(lab, "testparm -s 2>/dev/null").stdout
    assert f"adVN={USER}" in sh(lab, "cat /etc/avahi/services/*.service").stdout
    assert USER in sh(lab, "pdbedit -L").stdout
    assert smb(lab, USER, PASSWORD, "ls").rc == 0


def test_sparsebundle_written_over_smb_shows_in_status(lab):
    sh(lab, "head -c 5242880 /dev/urandom > /root/band0 && head -c 2000 /dev/urandom > /root/info")
    before = float(sh(lab, "date +%s.%N").stdout)
    res = smb(lab, USER, PASSWORD, "mkdir Carols-Mac.sparsebundle; cd Carols-Mac.sparsebundle; "
                                   "put /root/info Info.plist; mkdir bands; cd bands; put /root/band0 0")
    assert res.rc == 0 and "NT_STATUS" not in res.stdout, res.stdout + res.stderr
    after = float(sh(lab, "date +%s.%N").stdout)
    sh(lab, "zpool sync tank")
    time.sleep(1)
    code, data = status_json(lab)
    carol = user_facts(data, USER)
    assert carol["bundles"][0]["name"] == "Carols-Mac.sparsebundle"
    assert carol["bundles"][0]["bytes"] == 5242880 + 2000 and carol["bundles"][0]["files"] == 2
    assert before - 2 <= carol["last_backup"] <= after + 2, (before, carol["last_backup"], after)
    assert carol["used_bytes"] >= 5242880 and carol["quota_bytes"] == 40 << 20
    assert carol["advertised"] is True
    assert code == 0
    lab["used"] = carol["used_bytes"]


def test_set_quota_refuses_below_usage(lab):
    res = opsctl("user", "set-quota", USER, "1M", "--site", str(lab["site"]))
    assert res.returncode == 2 and "already uses" in res.stderr + res.stdout
    assert "quota: 40M" in lab["site"].read_text()


def test_usage_read_tells_missing_from_unreadable(lab):
    """The quota guard's usage read: a dataset that does not exist yet (a user added with --no-apply)
    has no usage to protect, so set-quota may go on; any other failed read is an error, never a pass."""
    from opsctl.users import UserError, check_quota_not_below_usage, dataset_used

    site = load(lab["site"]).site
    assert dataset_used(site, "nobody-yet") is None
    assert check_quota_not_below_usage(site, "nobody-yet", "1M") == 0
    assert dataset_used(site, USER) >= 5 << 20  # carol's sparsebundle
    with pytest.raises(UserError, match="cannot read how much") as refused:
        check_quota_not_below_usage(site, "bad*name", "1G")  # zfs: invalid character in the name
    assert "invalid character" in str(refused.value)


def test_quota_above_90_percent_alerts_exactly_once(lab, tmp_path):
    # fill the 40M quota to ~95 % over SMB, as a growing backup would
    sh(lab, "head -c 34603008 /dev/urandom > /root/band1")
    res = smb(lab, USER, PASSWORD, "cd Carols-Mac.sparsebundle/bands; put /root/band1 1")
    assert res.rc == 0 and "NT_STATUS" not in res.stdout, res.stdout + res.stderr
    sh(lab, "zpool sync tank")
    time.sleep(1)
    hook = Webhook()
    try:
        env = {"CHARLM_WEBHOOK_URL": hook.url}
        code, data = status_json(lab, "--alert", "--state-dir", str(tmp_path), env=env)
        assert code == 1
        assert [b["alert"] for b in hook.bodies] == [f"quota:{USER}"], hook.bodies
        assert f"user {USER} uses" in hook.bodies[0]["text"]
        code, data = status_json(lab, "--alert", "--state-dir", str(tmp_path), env=env)
        assert code == 1 and data["alerts"][0]["events"] == [] and len(hook.bodies) == 1
        assert [f["key"] for f in data["alerts"][0]["firing"]] == [f"quota:{USER}"]
    finally:
        hook.close()
    prom = tmp_path / "opsctl.prom"
    html = tmp_path / "status.html"
    res = opsctl("status", "--site", str(lab["site"]), "--prometheus", str(prom), "--html", str(html))
    assert res.returncode == 0, res.stderr  # without --alert, firing alerts do not change the exit status
    assert f'opsctl_user_quota_bytes{{host="{HOST}",pool="tank",user="{USER}"}} {40 << 20}' in prom.read_text()
    assert f'data-user="{USER}"' in html.read_text()


def test_host_timer_runs_the_probe_and_alerts(lab):
    started = time.monotonic()
    sh(lab, "systemctl start opsctl-monitor.service")  # oneshot: returns when the run is over
    TIMINGS["host monitor run"] = round(time.monotonic() - started, 1)
    show = sh(lab, "systemctl show -p Result -p ExecMainStatus opsctl-monitor.service").stdout
    assert "Result=success" in show and "ExecMainStatus=1" in show, show  # 1 = alerts firing, not a failure
    state = json.loads(sh(lab, "cat /var/lib/opsctl/alerts.json").stdout)["alerts"]
    assert state[f"quota:{USER}"]["firing"] is True
    assert state["pool:tank"]["firing"] is False
    facts = json.loads(sh(lab, "cat /var/lib/opsctl/facts.json").stdout)
    assert user_facts({"hosts": [facts]}, USER)["bundles"][0]["name"] == "Carols-Mac.sparsebundle"
    log = sh(lab, "journalctl -u opsctl-monitor.service --no-pager -n 20").stdout
    assert f"opsctl ALERT: {HOST}: user {USER}" in log


def test_remove_keeps_the_data(lab):
    res = opsctl("user", "remove", USER, "--site", str(lab["site"]), "--json")
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    assert json.loads(res.stdout)["samba"] == "removed from the Samba database"
    assert json.loads(res.stdout)["login"] == "system password locked"
    assert sh(lab, f"passwd -S {USER}").stdout.split()[1] == "L"  # AFP (system password) cannot log in either
    assert f"name: {USER}" not in lab["site"].read_text()
    assert f"[{USER}]" not in sh(lab, "testparm -s 2>/dev/null").stdout
    assert f"adVN={USER}" not in sh(lab, "cat /etc/avahi/services/*.service").stdout
    assert USER not in sh(lab, "pdbedit -L").stdout
    assert smb(lab, USER, PASSWORD, "ls").rc != 0
    sh(lab, f"zfs list {DATASET}")
    assert sh(lab, f"stat -c %s /tank/timemachine/{USER}/Carols-Mac.sparsebundle/bands/0").stdout.strip() == "5242880"


def test_purge_needs_the_dataset_name_typed_back(lab):
    res = opsctl("user", "remove", USER, "--purge", "--site", str(lab["site"]))
    assert res.returncode == 2 and f"--confirm {DATASET}" in res.stderr
    sh(lab, f"zfs list {DATASET}")
    res = opsctl("user", "remove", USER, "--purge", "--confirm", "tank/timemachine/alice", "--site",
                 str(lab["site"]))
    assert res.returncode == 2
    sh(lab, "zfs list tank/timemachine/alice")
    res = opsctl("user", "remove", USER, "--purge", "--confirm", DATASET, "--site", str(lab["site"]), "--json")
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["purged"] is True
    assert sh(lab, f"zfs list {DATASET}", check=False).rc != 0
    sh(lab, "zfs list tank/timemachine/alice")


def _smb_sizes(lab, user: str, password: str) -> tuple[int, int]:
    """(total, free) bytes of the share as an SMB client (a Mac) sees them."""
    res = smb(lab, user, password, "du")
    match = re.search(r"(\d+) blocks of size (\d+)\. (\d+) blocks available", res.stdout)
    assert res.rc == 0 and match, res.stdout + res.stderr
    blocks, size, free = (int(g) for g in match.groups())
    return blocks * size, free * size


def test_time_machine_sees_the_share_full_before_zfs_does(lab):
    """Headroom: the advertised Time Machine size (90 % of the quota by default) is the disk size the
    Mac sees; filled to it over SMB, the share reports no free space while ZFS still has the rest of
    the quota free, so Time Machine prunes old backups instead of hitting EDQUOT (which macOS reports
    as a failed backup)."""
    dataset = "tank/timemachine/alice"
    quota = int(sh(lab, f"zfs get -Hp -o value quota {dataset}").stdout)
    total, free = _smb_sizes(lab, "alice", ALICE_PASSWORD)
    assert quota == 100 << 20 and total == 90 << 20, (quota, total)  # tm_size defaults to 90 % of the quota
    sh(lab, "head -c 10485760 /dev/urandom > /root/band10")
    # Samba's vfs_fruit counts a bundle's bands times the band-size of its Info.plist, as macOS writes it
    plist = ('<?xml version="1.0" encoding="UTF-8"?>\n<plist version="1.0">\n<dict>\n'
             '\t<key>band-size</key>\n\t<integer>10485760</integer>\n'
             '\t<key>diskimage-bundle-type</key>\n\t<string>com.apple.diskimage.sparsebundle</string>\n'
             '\t<key>size</key>\n\t<integer>1099511627776</integer>\n</dict>\n</plist>\n')
    lab["conn"].run_stdin("cat > /root/Info.plist", plist)
    res = smb(lab, "alice", ALICE_PASSWORD, "mkdir Alices-Mac.sparsebundle; mkdir Alices-Mac.sparsebundle/bands; "
                                            "put /root/Info.plist Alices-Mac.sparsebundle/Info.plist")
    assert res.rc == 0, res.stdout + res.stderr
    band = 0
    while free >= 10 << 20:
        res = smb(lab, "alice", ALICE_PASSWORD, f"put /root/band10 Alices-Mac.sparsebundle/bands/{band:x}")
        assert res.rc == 0 and "NT_STATUS" not in res.stdout, (band, res.stdout + res.stderr)
        band += 1
        total, free = _smb_sizes(lab, "alice", ALICE_PASSWORD)
        assert band <= 9, f"the share never reported itself full: {free} bytes free after {band} bands"
    sh(lab, "zpool sync tank")
    available = int(sh(lab, f"zfs get -Hp -o value available {dataset}").stdout)
    used = int(sh(lab, f"zfs get -Hp -o value used {dataset}").stdout)
    print(f"advertised {total} B, {free} B free after {band} bands; ZFS used {used} B, available {available} B")
    assert free < 10 << 20 and total == 90 << 20
    assert available >= 8 << 20, (used, available)  # the 10 % headroom is still there: no EDQUOT yet
