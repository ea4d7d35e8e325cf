# ruff: noqa: E501 (canned command output is kept verbatim)
"""Helpers of the day-2 tests (status, users, cli): fake host tools for the probe, sample facts, the test site."""

from __future__ import annotations

import textwrap
from pathlib import Path

from tests.support.paths import DATA

#: Site of the day-2 tests: only the sandbox backup VM, named ``opsbackup``.
OPS_SITE = DATA / "ops_site.yml"

ZPOOL_STATUS = textwrap.dedent("""\
      pool: tank
     state: {state}
      scan: scrub repaired 0B in 00:00:02 with 0 errors on Sun Nov 22 03:24:01 2026
    config:

    \tNAME                       STATE     READ WRITE CKSUM
    \ttank                       {state}        0     0     0
    \t  mirror-0                 {state}        0     0     0
    \t    virtio-opsctl-disk-0   ONLINE       0     0     0
    \t    virtio-opsctl-disk-1   {disk1}       {r}     0     {c}

    errors: No known data errors
    """)


def write_tool(bindir: Path, name: str, body: str) -> None:
    path = bindir / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)


def make_fake_host(tmp_path, monkeypatch):
    """A PATH with fake zpool/zfs/systemctl/avahi-browse and a pool root with two users' folders.

    Returns a function ``make(degraded=False, alice_used=..., quota=...) -> config`` for the probe.
    """
    bindir = tmp_path / "bin"
    bindir.mkdir()
    root = tmp_path / "tank" / "timemachine"

    def make(*, degraded: bool = False, alice_used: int = 50 << 20, quota: int = 100 << 20) -> dict:
        state = "DEGRADED" if degraded else "ONLINE"
        status = ZPOOL_STATUS.format(state=state, disk1="FAULTED" if degraded else "ONLINE",
                                     r=3 if degraded else 0, c=7 if degraded else 0)
        (tmp_path / "zpool-status.txt").write_text(status)
        write_tool(bindir, "zpool", textwrap.dedent(f"""\
            case "$1 $2" in
              "list -Hp") printf 'tank\\t{state}\\t1069547520\\t{alice_used + 4096}\\t{1069547520 - alice_used}\\t5\\n' ;;
              "status -x") {'echo "  pool: tank"; echo " state: DEGRADED"' if degraded
                             else 'echo "pool '"'"'tank'"'"' is healthy"'} ;;
              "status -p") cat {tmp_path}/zpool-status.txt ;;
              *) echo "unexpected zpool $*" >&2; exit 2 ;;
            esac
            """))
        write_tool(bindir, "zfs", textwrap.dedent(f"""\
            shift 4  # get -Hp -o name,property,value
            props="$1"; shift
            for ds in "$@"; do
              case "$ds" in
                tank/timemachine/alice) u={alice_used}; q={quota} ;;
                tank/timemachine/bob) u=1048576; q=0 ;;
                *) echo "cannot open '$ds': dataset does not exist" >&2; rc=1; continue ;;
              esac
              printf '%s\\tused\\t%s\\n%s\\tquota\\t%s\\n%s\\tavailable\\t%s\\n%s\\tcreation\\t%s\\n' \\
                "$ds" $u "$ds" $q "$ds" 1000 "$ds" "$(date +%s)"
            done
            exit ${{rc:-0}}
            """))
        write_tool(bindir, "systemctl", 'case "$2" in netatalk) echo inactive; exit 3 ;; *) echo active ;; esac\n')
        write_tool(bindir, "avahi-browse", textwrap.dedent("""\
            cat <<'EOF'
            +;eth0;IPv4;backup;_smb._tcp;local
            =;eth0;IPv4;backup;_smb._tcp;local;backup.local;10.0.2.15;445;
            =;eth0;IPv4;backup;_adisk._tcp;local;backup.local;10.0.2.15;9;"dk0=adVN=alice,adVF=0x82" "sys=waMa=0,adVF=0x100"
            =;eth0;IPv6;backup;_adisk._tcp;local;backup.local;fe80::1;9;"dk0=adVN=alice,adVF=0x82" "sys=waMa=0,adVF=0x100"
            =;eth0;IPv4;backup\\032TM;_device-info._tcp;local;backup.local;10.0.2.15;0;"model=TimeCapsule8,119"
            EOF
            """))
        monkeypatch.setenv("PATH", f"{bindir}:/usr/bin:/bin")
        for user in ("alice", "bob"):
            (root / user).mkdir(parents=True, exist_ok=True)
        return {"host": "backup", "mdns": True, "state": {
            "pool": {"name": "tank"},
            "services": ["smbd", "netatalk", "avahi-daemon"],
            "shares": [
                {"user": "alice", "name": "alice", "dataset": "tank/timemachine/alice", "path": str(root / "alice"),
                 "protocols": ["smb", "afp"], "time_machine": True},
                {"user": "bob", "name": "bob", "dataset": "tank/timemachine/bob", "path": str(root / "bob"),
                 "protocols": ["smb"], "time_machine": True},
                {"user": "carol", "name": "carol", "dataset": "tank/timemachine/carol",
                 "path": str(root / "carol"), "protocols": ["smb"], "time_machine": True},
            ]}}

    make.root = root
    return make


def sample_facts(now: float = 1_800_000_000.0) -> dict:
    """Facts as the probe prints them, for report and alert tests."""
    return {
        "host": "backup", "probe_version": 1, "probed_at": now, "duration_seconds": 0.42, "errors": [],
        "pool": {"name": "tank", "exists": True, "health": "ONLINE", "healthy": True,
                 "status_x": "pool 'tank' is healthy", "size_bytes": 1 << 30, "allocated_bytes": 300 << 20,
                 "free_bytes": 724 << 20, "capacity_percent": 29, "scrub_time": now - 3 * 86400,
                 "errors": {"read": 0, "write": 0, "cksum": 0}},
        "users": [
            {"user": "alice", "share": "alice", "dataset": "tank/timemachine/alice", "path": "/tank/timemachine/alice",
             "exists": True, "used_bytes": 95 << 20, "quota_bytes": 100 << 20, "percent": 95.0,
             "created": now - 30 * 86400, "last_backup": now - 3600, "last_backup_source": "newest change in bundle",
             "bundles": [{"name": "Alice's MacBook.sparsebundle", "bytes": 90 << 20, "files": 12,
                          "newest_change": now - 3600, "completed": None}], "advertised": True},
            {"user": "bob", "share": "bob", "dataset": "tank/timemachine/bob", "path": "/tank/timemachine/bob",
             "exists": True, "used_bytes": 10 << 20, "quota_bytes": 100 << 20, "percent": 10.0,
             "created": now - 30 * 86400, "last_backup": now - 10 * 86400,
             "last_backup_source": "newest change in bundle",
             "bundles": [{"name": "bob-<mac>.backupbundle", "bytes": 9 << 20, "files": 3,
                          "newest_change": now - 10 * 86400, "completed": None}], "advertised": True},
        ],
        "services": {"smbd": "active", "netatalk": "active", "avahi-daemon": "active"},
        "mdns": {"ok": True, "services": [], "types": ["_adisk._tcp", "_smb._tcp"], "adisk_volumes": ["alice", "bob"]},
    }
