"""The stdlib probe, run exactly as `opsctl status` runs it (``python3 - --config-b64`` with the source on
stdin), against fake zpool/zfs/systemctl/avahi-browse commands: parsing, sizes, bundle times."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time

from opsctl.status import PROBE_FILE, probe


def run_probe(config: dict) -> dict:
    b64 = base64.b64encode(json.dumps(config).encode()).decode()
    res = subprocess.run([sys.executable, "-", "--config-b64", b64], input=PROBE_FILE.read_text(),
                         capture_output=True, text=True, timeout=60, env={**os.environ, "PYTHONPATH": ""})
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


def test_probe_is_stdlib_only():
    imports = [line.split()[1].split(".")[0] for line in PROBE_FILE.read_text().splitlines()
               if line.startswith(("import ", "from "))]
    assert set(imports) <= {"__future__", "argparse", "base64", "json", "os", "re", "subprocess", "sys", "time"}


def test_healthy_pool_users_services_and_mdns(fake_host):
    facts = run_probe(fake_host())
    pool = facts["pool"]
    assert pool["healthy"] is True and pool["health"] == "ONLINE"
    assert pool["size_bytes"] == 1069547520 and pool["capacity_percent"] == 5
    assert pool["errors"] == {"read": 0, "write": 0, "cksum": 0}
    assert pool["scrub_time"] == time.mktime((2026, 11, 22, 3, 24, 1, 0, 0, -1))
    users = {u["user"]: u for u in facts["users"]}
    assert users["alice"]["used_bytes"] == 50 << 20 and users["alice"]["quota_bytes"] == 100 << 20
    assert users["alice"]["percent"] == 50.0
    assert users["bob"]["quota_bytes"] is None and users["bob"]["percent"] is None  # quota 0 = none
    assert users["carol"]["exists"] is False
    assert any("carol" in e for e in facts["errors"])
    assert users["alice"]["last_backup"] is None and users["alice"]["last_backup_source"] == "no bundle"
    assert facts["services"] == {"smbd": "active", "netatalk": "inactive", "avahi-daemon": "active"}
    assert facts["mdns"]["types"] == ["_adisk._tcp", "_device-info._tcp", "_smb._tcp"]
    assert facts["mdns"]["adisk_volumes"] == ["alice"]
    assert users["alice"]["advertised"] is True and users["bob"]["advertised"] is False
    names = {s["name"] for s in facts["mdns"]["services"]}
    assert "backup TM" in names  # \032 unescaped
    adisk = [s for s in facts["mdns"]["services"] if s["type"] == "_adisk._tcp"]
    assert len(adisk) == 1 and adisk[0]["addresses"] == ["10.0.2.15", "fe80::1"]


def test_last_backup_is_the_newest_change_inside_the_bundle(fake_host):
    config = fake_host()
    bundle = fake_host.root / "alice" / "Alice MacBook.sparsebundle"
    (bundle / "bands").mkdir(parents=True)
    (bundle / "Info.plist").write_bytes(b"x" * 500)
    (bundle / "bands" / "0").write_bytes(b"y" * 8192)
    (bundle / "bands" / "1").write_bytes(b"z" * 100)
    (fake_host.root / "alice" / "not-a-bundle").write_text("ignored")
    t0 = 1_790_000_000
    for i, path in enumerate([bundle / "Info.plist", bundle / "bands" / "1", bundle / "bands", bundle]):
        os.utime(path, (t0 + i, t0 + i))
    os.utime(bundle / "bands" / "0", (t0 + 500, t0 + 500))
    alice = next(u for u in run_probe(config)["users"] if u["user"] == "alice")
    assert alice["last_backup"] == t0 + 500
    assert alice["last_backup_source"] == "newest change in bundle"
    assert alice["bundles"] == [{"name": "Alice MacBook.sparsebundle", "bytes": 8792, "files": 3,
                                 "newest_change": t0 + 500, "completed": None}]
    # a completion marker written by macOS wins over later (in-progress) band writes
    marker = bundle / "com.apple.TimeMachine.SnapshotHistory.plist"
    marker.write_text("<plist/>")
    os.utime(marker, (t0 + 100, t0 + 100))
    alice = next(u for u in run_probe(config)["users"] if u["user"] == "alice")
    assert alice["last_backup"] == t0 + 100 and alice["last_backup_source"] == "completion marker"


def test_degraded_pool_counts_errors(fake_host):
    facts = run_probe(fake_host(degraded=True))
    pool = facts["pool"]
    assert pool["healthy"] is False and pool["health"] == "DEGRADED" and pool["state"] == "DEGRADED"
    assert pool["errors"] == {"read": 3, "write": 0, "cksum": 7}
    bad = [d for d in pool["devices"] if d["state"] == "FAULTED"]
    assert bad == [{"name": "virtio-opsctl-disk-1", "state": "FAULTED", "read": 3, "write": 0, "cksum": 7}]


def test_missing_tools_are_reported_not_raised(fake_host, monkeypatch, tmp_path):
    config = fake_host()
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setattr(probe, "_ENV", {"PATH": str(empty), "LC_ALL": "C"})
    facts = probe.collect(config)
    assert facts["pool"]["exists"] is False and "not found" in facts["pool"]["error"]
    assert facts["mdns"]["ok"] is False
    assert facts["errors"]


def test_scan_line_variants():
    assert probe.parse_zpool_status("  scan: none requested\n")["scrub_time"] is None
    s = probe.parse_zpool_status("  scan: scrub in progress since Mon Nov 23 10:00:00 2026\n")
    assert s["scrub_in_progress"] is True
    s = probe.parse_zpool_status("  scan: resilvered 1M in 00:00:01 with 0 errors on Mon Nov 23 10:00:00 2026\n")
    assert s["scan_kind"] == "resilvered" and s["scrub_time"] is None


def test_containers_mode_services_are_their_containers(fake_host):
    """backup.mode containers: smbd and avahi-daemon are read from their containers (running = active),
    not from systemctl (whose masked units say nothing about what serves); netatalk stays a unit."""
    from tests.support.opsdata import write_tool

    config = fake_host()
    bindir = fake_host.root.parent.parent / "bin"  # the fake host's tools (root: <tmp>/tank/timemachine)
    write_tool(bindir, "docker", 'case "$4" in opsctl-samba) echo running ;; opsctl-avahi) echo exited ;; '
                                       '*) echo "Error: No such object: $4" >&2; exit 1 ;; esac\n')
    config["state"]["in_containers"] = {"smbd": "opsctl-samba", "avahi-daemon": "opsctl-avahi"}
    facts = run_probe(config)
    assert facts["services"] == {"smbd": "active", "netatalk": "inactive", "avahi-daemon": "exited"}
    config["state"]["in_containers"] = {"smbd": "opsctl-other"}
    assert run_probe(config)["services"]["smbd"] == "inactive"
