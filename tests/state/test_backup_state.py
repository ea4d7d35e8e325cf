"""The backup server's desired state is computed once (opsctl/state/backup.py) and everybody reads it:
the zfs role (as ``opsctl.state``), the rendered plan, verify and the user commands."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import yaml

from opsctl.render.context import context_for
from opsctl.render.engine import render_host
from opsctl.site.loader import DEFAULT_SITE
from opsctl.site.models import Site
from opsctl.state.backup import USER_TAG, backup_state, dataset_of
from opsctl.users import dataset_of as users_dataset_of

REPO = Path(__file__).resolve().parents[2]


def _site(**changes) -> Site:
    data = yaml.safe_load(DEFAULT_SITE.read_text())
    data["backup"].update(changes)
    return Site.model_validate(data)


def test_datasets_in_creation_order_with_every_property():
    state = backup_state(_site())
    assert [d.name for d in state.datasets] == ["tank/timemachine", "tank/timemachine/alice", "tank/timemachine/bob"]
    alice = state.dataset("tank/timemachine/alice")
    assert alice.kind == "user" and alice.user == "alice" and alice.owner == "alice" and alice.mode == "0700"
    assert alice.properties == {"normalization": "formD", "utf8only": "on", "casesensitivity": "insensitive",
                                "aclinherit": "passthrough", "nbmand": "off", "compression": "lz4", "atime": "off",
                                "quota": "200M", "mountpoint": "/tank/timemachine/alice"}
    assert alice.quota_bytes == 200 << 20
    parent = state.dataset("tank/timemachine")
    assert parent.kind == "parent" and parent.user is None and parent.properties == {"mountpoint": "/tank/timemachine"}
    assert state.pool.root_properties["mountpoint"] == "/tank" and state.pool.ashift == 12
    assert state.pool.disks == ["/dev/disk/by-id/virtio-opsctl-disk-0", "/dev/disk/by-id/virtio-opsctl-disk-1"]
    assert state.pool.disk_dirs == ["/dev/disk/by-id"]
    assert [u.name for u in state.users] == ["alice", "bob"]
    assert state.users[0].home == "/tank/timemachine/alice"


def test_extra_shares_and_nested_roots(full_yaml):
    site = Site.model_validate(yaml.safe_load(full_yaml))
    state = backup_state(site)
    kinds = {d.name: d.kind for d in state.datasets}
    assert "share" in kinds.values() and "user" in kinds.values()
    shares = [d for d in state.datasets if d.kind == "share"]
    assert all(d.parents and d.user is None for d in shares)
    # an extra share's folder belongs to a group of exactly its valid users (members can write there)
    projects = state.dataset("backup/projects")
    assert (projects.owner, projects.group, projects.mode) == ("root", "share-projects", "2770")
    assert [(g.name, g.members) for g in state.groups] == [("share-projects", ["alice", "bob_2"])]
    assert next(s for s in state.shares if s.name == "Projects").group == "share-projects"
    # parents come before their children
    names = [d.name for d in state.datasets]
    for i, name in enumerate(names):
        assert all(not name.startswith(other + "/") for other in names[i + 1:]), names


def test_the_context_carries_the_state_only_on_the_backup_host():
    site = _site()
    assert context_for(site, "backup")["state"] == backup_state(site).as_dict()
    assert context_for(site, "trainer")["state"] is None


def test_referenced_lists_every_dataset_and_the_pool():
    state = backup_state(_site())
    assert state.referenced() == ["tank", "tank/timemachine", "tank/timemachine/alice", "tank/timemachine/bob"]
    assert dataset_of(_site(), "carol") == "tank/timemachine/carol" == users_dataset_of(_site(), "carol")


def test_rendered_plan_is_the_state_and_its_steps():
    site = _site()
    files = {r.path: r.content for r in render_host(site, "backup")}
    doc = json.loads(files["zfs/plan.json"])
    assert doc["state"] == backup_state(site).as_dict()
    script = files["zfs/plan.sh"]
    # every planned dataset is created in plan.sh with every planned property, user datasets tagged
    for ds in backup_state(site).datasets:
        line = next(ln for ln in script.splitlines() if ln.strip().startswith("zfs create") and
                    ln.rstrip().endswith(" " + ds.name))
        for prop, value in ds.properties.items():
            assert f"-o {prop}={value}" in line, (prop, line)
        assert (f"-o {USER_TAG}={ds.user}" in line) == bool(ds.user)
    assert re.search(r"useradd -M -g alice -d /tank/timemachine/alice -s /usr/sbin/nologin", script)
    assert "zpool import -d /dev/disk/by-id" in script  # stops instead of creating over an importable pool
    assert not re.search(r"^\s*(zfs|zpool) (destroy|labelclear)|wipefs", script, re.M)


def test_plan_sh_stops_when_a_pool_is_importable(tmp_path):
    """plan.sh run against fake zpool/zfs tools: an importable pool stops it before any create."""
    files = {r.path: r.content for r in render_host(_site(), "backup")}
    script = tmp_path / "plan.sh"
    script.write_text(files["zfs/plan.sh"])
    bindir = tmp_path / "bin"
    bindir.mkdir()
    log = tmp_path / "calls"
    fake = ("#!/bin/sh\necho \"$(basename \"$0\") $*\" >> " + str(log) + "\n"
            "case \"$1\" in list) exit 1;; import) echo '   pool: tank'; echo '     id: 42'; exit 0;; esac\nexit 0\n")
    for tool in ("zpool", "zfs", "getent", "groupadd", "useradd", "chown", "chmod"):
        (bindir / tool).write_text(fake)
        (bindir / tool).chmod(0o755)
    res = subprocess.run(["sh", str(script)], capture_output=True, text=True,
                         env={"PATH": f"{bindir}:/usr/bin:/bin"})
    assert res.returncode == 1 and "a pool can be imported from /dev/disk/by-id" in res.stderr
    calls = log.read_text()
    assert "zpool import -d /dev/disk/by-id" in calls and "create" not in calls
