"""backup.mode containers on the real OpenZFS VM: Samba and Avahi as Docker containers next to the
host's pool, then back to host mode, without losing a file.

The session VM (tests/support/vm.py), reset for this module and reached as ``ctr-backup``, carries
Docker and compose v2 in its image but has no network, like a site without a registry: the site says
``offline_build``, so `opsctl provision` builds the Samba and Avahi images here from a local Debian
base and the backup_containers role loads them into the VM's Docker. In order:

* provision in containers mode: the host's smbd/avahi-daemon are stopped and masked (and provision
  says so), the two containers run, the same smb.conf and service files as host mode are bound in;
  a second provision changes nothing;
* smbclient writes into alice's share as alice (the file is hers on the host's dataset) and is
  refused on bob's; both write into the extra share ``Lab`` (its group exists in the container with
  the host's gid);
* avahi-browse on the host sees ``_adisk._tcp`` with alice's and bob's ``dkN`` records (the Avahi
  container registers on the host's D-Bus); `opsctl verify` and `opsctl status` pass unchanged;
* back to host mode: the containers are gone (provision says so), the host daemons serve, and the
  file written in containers mode is intact, read over SMB again.

Outside CI the module skips when the VM or Docker cannot run here; in CI it fails.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import subprocess
import sys
import time

import pytest
import yaml

from opsctl.connections import connection_for
from opsctl.site import load
from tests.support import hostcmd
from tests.support.paths import REPO
from tests.support.vm import alias_vm, reset_vm

pytestmark = [pytest.mark.vm, pytest.mark.docker, pytest.mark.slow, pytest.mark.timeout(3600)]

HOST = "ctr-backup"
PASSWORDS = {"alice": secrets.token_urlsafe(12), "bob": secrets.token_urlsafe(12)}  # stdin/env only
TIMINGS: dict[str, float] = {}
COMPOSE = "/etc/opsctl/backup/containers/backup-compose.yml"


def _site_text(mode: str) -> str:
    data = yaml.safe_load((REPO / "inventory" / "sandbox.yml").read_text())
    data["hosts"] = [{"name": HOST, "sandbox": "vm", "groups": ["backup_servers"]}]
    data.pop("training")
    data["backup"].update(host=HOST, mode=mode, offline_build=True,
                          shares=[{"name": "Lab", "dataset": "lab", "quota": "50M", "valid_users": ["alice", "bob"]}])
    return yaml.safe_dump(data, sort_keys=False)


def opsctl(*args: str, timeout: float = 2400) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "200", **{f"OPSCTL_SMB_PASSWORD_{u.upper()}": p for u, p in PASSWORDS.items()}}
    started = time.monotonic()
    res = subprocess.run([sys.executable, "-m", "opsctl", *args], cwd=REPO, capture_output=True, text=True,
                         timeout=timeout, env=env, stdin=subprocess.DEVNULL)
    key = " ".join(args[:1])
    key = next(k for k in (key, *(f"{key} #{i}" for i in range(2, 99))) if k not in TIMINGS)
    TIMINGS[key] = round(time.monotonic() - started, 1)
    return res


def provision(site, mode: str) -> dict:
    site.write_text(_site_text(mode))
    res = opsctl("provision", "--site", str(site), "--playbook", "backup_server.yml", "--json")
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-4000:]
    return json.loads(res.stdout)


def _warnings(summary: dict) -> str:
    return " ".join(w["text"] for w in summary.get("warnings", []))


def _clean_containers_mode(vm) -> None:
    """Whatever happened above: no containers, no masked host daemons, Docker off (later modules
    expect the VM as host mode leaves it)."""
    vm.ssh(f"[ -e {COMPOSE} ] && docker compose -f {COMPOSE} down --remove-orphans --volumes; "
           "rm -rf /etc/opsctl/backup; systemctl unmask smbd nmbd avahi-daemon avahi-daemon.socket; "
           "systemctl disable --now docker.service docker.socket containerd.service; true", timeout=300)


@pytest.fixture(scope="module")
def ctr(session_vm, tmp_path_factory):
    site = tmp_path_factory.mktemp("ctr") / "site.yml"
    reset_vm(session_vm)
    alias_vm(session_vm, HOST)
    try:
        summary = provision(site, "containers")
        TIMINGS["first provision (containers)"] = TIMINGS.pop("provision")
        conn = connection_for(load(site).site.host(HOST))
        yield {"site": site, "conn": conn, "vm": session_vm, "first": summary}
    finally:
        _clean_containers_mode(session_vm)
        print("timings (s):", json.dumps(TIMINGS))


def sh(ctr, command: str, check: bool = True):
    return hostcmd.sh(ctr["conn"], command, check)


def smb(ctr, user: str, commands: str, share: str | None = None):
    """smbclient on the host (the Samba container listens on the host's network) as ``user``."""
    return hostcmd.smbclient(ctr["conn"], user, PASSWORDS[user], commands, share)


# ------------------------------------------------------------------------------------------ tests


def test_containers_serve_and_the_host_daemons_are_stopped(ctr):
    names = sh(ctr, "docker ps --format '{{.Names}} {{.Image}} {{.State}}'").stdout.split("\n")
    assert sorted(n for n in names if n) == ["opsctl-avahi opsctl/avahi:trixie running",
                                             "opsctl-samba opsctl/samba:trixie running"], names
    for unit in ("smbd", "avahi-daemon"):
        assert sh(ctr, f"systemctl is-enabled {unit}", check=False).stdout.strip() == "masked", unit
        assert sh(ctr, f"systemctl is-active {unit}", check=False).stdout.strip() != "active", unit
    assert sh(ctr, "systemctl is-active netatalk").stdout.strip() == "active"  # Netatalk stays on the host
    warned = _warnings(ctr["first"])
    assert "backup.mode containers:" in warned and "stop smbd" in warned, ctr["first"].get("warnings")
    # the same file as `opsctl render` writes: one template, one truth
    from opsctl.render.engine import render_host

    rendered = {r.path: r.content for r in render_host(load(ctr["site"]).site, HOST)}
    for path, there in (("containers/backup-compose.yml", COMPOSE),
                        ("samba/smb.conf", "/etc/opsctl/backup/samba/smb.conf")):
        assert sh(ctr, f"sha256sum {there}").stdout.split()[0] == hashlib.sha256(rendered[path].encode()).hexdigest()


def test_second_provision_changes_nothing(ctr):
    summary = provision(ctr["site"], "containers")
    assert summary["changed"] == 0, summary


def test_smb_writes_as_the_user_and_refuses_another_users_share(ctr):
    sh(ctr, "head -c 300000 /dev/urandom > /root/band && sha256sum /root/band > /root/band.sha")
    res = smb(ctr, "alice", "mkdir tm.sparsebundle; put /root/band tm.sparsebundle/band0")
    assert res.rc == 0 and "NT_STATUS" not in res.stdout, res.stdout + res.stderr
    owner = sh(ctr, "stat -c '%U %G' /tank/timemachine/alice/tm.sparsebundle/band0").stdout.strip()
    assert owner == "alice alice"  # the container's alice is the host's uid
    res = smb(ctr, "alice", "ls", share="bob")
    assert res.rc != 0 and "NT_STATUS_ACCESS_DENIED" in res.stdout + res.stderr, res.stdout + res.stderr
    sh(ctr, "echo from-alice > /root/a.txt && echo from-bob > /root/b.txt")
    res = smb(ctr, "alice", "put /root/a.txt notes.txt", share="Lab")
    assert res.rc == 0 and "NT_STATUS" not in res.stdout, res.stdout + res.stderr
    res = smb(ctr, "bob", "put /root/b.txt notes.txt", share="Lab")  # bob changes alice's file: one group
    assert res.rc == 0 and "NT_STATUS" not in res.stdout, res.stdout + res.stderr
    assert sh(ctr, "stat -c '%U %G' /tank/lab/notes.txt; cat /tank/lab/notes.txt").stdout.split() == [
        "alice", "share-lab", "from-bob"]


def test_avahi_container_advertises_time_machine_on_the_hosts_bus(ctr):
    out = sh(ctr, "avahi-browse -rtpk _adisk._tcp --terminate").stdout
    records = [line for line in out.splitlines() if line.startswith("=")]
    assert records, out
    assert "dk0=adVN=alice,adVF=0x82" in records[0] and "dk1=adVN=bob,adVF=0x82" in records[0], records


def test_verify_and_status_pass_unchanged(ctr):
    res = opsctl("verify", "--site", str(ctr["site"]), "--json")
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-2000:]
    names = [c["name"] for c in json.loads(res.stdout)["checks"]]
    assert "smbd running (container opsctl-samba)" in names and "smb login alice@alice" in names, names
    assert "avahi-daemon running (container opsctl-avahi)" in names
    assert "_adisk._tcp has dk0=adVN=alice,adVF=0x82" in names
    res = opsctl("status", "--site", str(ctr["site"]), "--json")
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]
    facts = json.loads(res.stdout)["hosts"][0]
    assert facts["services"] == {"smbd": "active", "netatalk": "active", "avahi-daemon": "active"}, facts["services"]
    assert {u["user"]: u["advertised"] for u in facts["users"]} == {"alice": True, "bob": True}


def test_back_to_host_mode_keeps_every_file(ctr):
    summary = provision(ctr["site"], "host")
    warned = _warnings(summary)
    assert "stopped and removed the Samba and Avahi containers" in warned, summary.get("warnings")
    assert sh(ctr, "docker ps -aq --filter name=opsctl-").stdout.strip() == ""
    assert sh(ctr, "systemctl is-active smbd avahi-daemon").stdout.split() == ["active", "active"]
    res = smb(ctr, "alice", "get tm.sparsebundle/band0 /root/band.back")
    assert res.rc == 0 and "NT_STATUS" not in res.stdout, res.stdout + res.stderr
    want = sh(ctr, "cut -d' ' -f1 /root/band.sha").stdout.strip()
    assert sh(ctr, "sha256sum /root/band.back").stdout.split()[0] == want
    assert sh(ctr, "cat /tank/lab/notes.txt").stdout.strip() == "from-bob"
    assert provision(ctr["site"], "host")["changed"] == 0
