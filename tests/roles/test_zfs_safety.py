"""No command, flag, typo or half-finished run loses a backup: the guards of the zfs role's modules,
on real OpenZFS (the session VM, tests/support/vm.py, reset for this module).

Each test names the guard it proves; removing that guard from roles/zfs/library makes it fail:

* an exported pool (an OS reinstall, a hostid change) is imported, never recreated, even with
  --force-disks (opsctl_zpool: ``importable`` + ``import_pool``);
* a ``zpool create`` that fails the way a busy udev makes it fail is retried on disks cleared of its
  own partition table, and one that fails for good leaves the disks blank, as it found them, so the
  next run is not refused for that run's leftovers (opsctl_zpool: ``RETRYABLE`` +
  ``clear_own_partitions``);
* a disk of another pool that can still be imported is never overwritten, not even forced;
* a pool whose layout differs from the site file is reported, never reshaped;
* a quota below what a dataset uses is refused from the site file + provision, and nothing of
  that run is applied (opsctl_zfs: the refusals are collected before any change);
* an existing system account is never adopted as a Time Machine user (opsctl_users);
* ``opsctl user remove --purge`` destroys only a dataset opsctl tagged for that user, without
  children of anybody else, that the site no longer uses (opsctl_purge).
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys

import pytest
import yaml

from opsctl.render.context import context_for
from opsctl.site.types import parse_size
from tests.roles._roletest import make_site, molecule_playbook, run_playbook, sandbox_site_data, vm_inventory
from tests.support.vm import alias_vm, reset_vm

pytestmark = [pytest.mark.vm, pytest.mark.slow]

HOST = "safety-backup"
PLAYBOOK = molecule_playbook("zfs")
ALICE = "tank/timemachine/alice"
BOB = "tank/timemachine/bob"


def _inventory(path, vm, data: dict, *, mutate=None):
    # mutate: what validation would refuse, to prove the module refuses it too
    return vm_inventory(path, vm, data, HOST, mutate=mutate)


def _get(vm, prop: str, dataset: str) -> str:
    return vm.ssh(["zfs", "get", "-Hp", "-o", "value", prop, dataset], check=True).stdout.strip()


def _flat(output: str) -> str:
    return " ".join(output.split())


@pytest.fixture(scope="module")
def vm(session_vm, tmp_path_factory):
    reset_vm(session_vm)
    tmp = tmp_path_factory.mktemp("safety")
    run = run_playbook(PLAYBOOK, _inventory(tmp / "inventory.yml", session_vm, sandbox_site_data()))
    assert run.rc == 0 and run.changed(HOST) > 0, run.output[-4000:]
    # a backup in alice's share
    session_vm.ssh(f"head -c 3000000 /dev/urandom > /{ALICE}/band && chown alice:alice /{ALICE}/band && "
                   "zpool sync tank", check=True)
    return session_vm


def _sha(vm, path: str) -> str:
    return vm.ssh(["sha256sum", path], check=True).stdout.split()[0]


def test_exported_pool_is_imported_not_recreated_even_with_force_disks(vm, tmp_path):
    before = _sha(vm, f"/{ALICE}/band")
    vm.ssh("zpool export tank", check=True)
    assert vm.ssh("zpool list -H tank").returncode != 0
    inventory = _inventory(tmp_path / "inventory.yml", vm, sandbox_site_data())

    dry = run_playbook(PLAYBOOK, inventory, check=True, diff=True, extra_vars={"zfs_force_disks": True})
    assert dry.rc == 0, dry.output[-4000:]
    assert "pool tank: imported" in dry.output
    assert vm.ssh("zpool list -H tank").returncode != 0  # check mode imported nothing

    run = run_playbook(PLAYBOOK, inventory, extra_vars={"zfs_force_disks": True})
    assert run.rc == 0, run.output[-4000:]
    assert run.changed(HOST) == 1, run.output[-4000:]  # the import, nothing else
    assert vm.ssh("zpool list -H -o health tank", check=True).stdout.strip() == "ONLINE"
    assert _sha(vm, f"/{ALICE}/band") == before
    history = vm.ssh("zpool history tank", check=True).stdout
    assert history.count("zpool create") == 1 and "zpool import" in history, history
    assert _get(vm, "opsctl:user", ALICE) == "alice"

    again = run_playbook(PLAYBOOK, inventory)
    assert again.rc == 0 and again.changed(HOST) == 0, again.output[-4000:]


SPARE = "/dev/disk/by-id/virtio-opsctl-disk-2"
#: A fault in front of the real zpool (/usr/local/sbin comes first in root's PATH): ``zpool create``
#: partitions the disk and writes real ZFS labels (a pool it creates and destroys), then fails as it
#: does when udev has not linked the new partition in time (CI, 2026-11-30). Mode ``once``: only the
#: first create of the run fails; ``always``: every one does. Everything else is the real zpool.
FAULT = r"""#!/bin/sh
real=/usr/sbin/zpool
if [ "$1" = create ] && [ ! -e /run/opsctl-fault-done ]; then
    [ "$(cat /run/opsctl-fault-mode)" = once ] && touch /run/opsctl-fault-done
    for disk; do :; done
    $real create -f opsctl-fault "$disk" && $real destroy opsctl-fault
    echo "cannot create 'scratch': one or more devices is currently unavailable" >&2
    exit 1
fi
exec $real "$@"
"""


def _spare_site() -> dict:
    data = sandbox_site_data()
    data["backup"]["pool"] = {"name": "scratch", "vdevs": [{"type": "stripe", "disks": [SPARE]}]}
    return data


def _blank(vm, disk: str) -> None:
    """``disk`` carries nothing: no partition, no signature, no ZFS label (not even a destroyed pool's)."""
    assert vm.ssh(["lsblk", "-rn", "-o", "TYPE", disk], check=True).stdout.split() == ["disk"]
    assert vm.ssh(["wipefs", "-n", disk], check=True).stdout.strip() == ""
    assert "opsctl-fault" not in vm.ssh("zpool import -D -d /dev/disk/by-id 2>&1").stdout


def _fault(vm, mode: str | None) -> None:
    if mode is None:
        vm.ssh("rm -f /usr/local/sbin/zpool /run/opsctl-fault-mode /run/opsctl-fault-done", check=True)
        return
    vm.ssh(f"cat > /usr/local/sbin/zpool && chmod 755 /usr/local/sbin/zpool && echo {mode} > /run/opsctl-fault-mode"
           " && rm -f /run/opsctl-fault-done", input=FAULT, check=True)


def _drop_scratch(vm) -> None:
    vm.ssh(f"zpool destroy scratch; for p in {SPARE}-part*; do [ -e $p ] && zpool labelclear -f $p; "
           f"[ -e $p ] && wipefs -q -a $p; done; wipefs -q -a {SPARE}; blockdev --rereadpt {SPARE}; "
           "udevadm settle; true", check=True)


def _run_with_fault(vm, tmp_path, mode: str):
    """The zfs role on the spare-disk site with the ``FAULT`` zpool in ``mode``; the fault is removed after."""
    inventory = _inventory(tmp_path / "inventory.yml", vm, _spare_site())
    _fault(vm, mode)
    try:
        return inventory, run_playbook(PLAYBOOK, inventory)
    finally:
        _fault(vm, None)


def test_create_failing_like_a_busy_udev_is_retried_on_cleared_disks(vm, tmp_path):
    _inventory_file, run = _run_with_fault(vm, tmp_path, "once")
    try:
        assert run.rc == 0, run.output[-4000:]
        out = _flat(run.output)
        assert "`zpool create` failed at first (cannot create 'scratch': one or more devices is currently " \
               "unavailable); the partition table it had just written was cleared and the create run once more" \
               in out, out[-3000:]
        assert vm.ssh("zpool list -H -o health scratch", check=True).stdout.strip() == "ONLINE"
        assert vm.ssh("zpool history scratch", check=True).stdout.count("zpool create") == 1
        assert "opsctl-fault" not in vm.ssh("zpool import -D -d /dev/disk/by-id 2>&1").stdout
    finally:
        _drop_scratch(vm)
    _blank(vm, SPARE)


def test_create_that_keeps_failing_leaves_the_disks_blank_for_the_next_run(vm, tmp_path):
    inventory, run = _run_with_fault(vm, tmp_path, "always")
    assert run.rc != 0
    out = _flat(run.output)
    assert "one or more devices is currently unavailable. The disks were left blank, as they were found; run " \
           "provision again" in out, out[-3000:]
    assert vm.ssh("zpool list -H scratch").returncode != 0
    _blank(vm, SPARE)
    try:  # so the next run is not refused ("disks are not blank") for the failed run's leftovers
        again = run_playbook(PLAYBOOK, inventory)
        assert again.rc == 0, again.output[-4000:]
        assert vm.ssh("zpool list -H -o health scratch", check=True).stdout.strip() == "ONLINE"
    finally:
        _drop_scratch(vm)
    _blank(vm, SPARE)


def test_disk_of_another_importable_pool_is_never_overwritten(vm, tmp_path):
    disk = "/dev/disk/by-id/virtio-opsctl-disk-2"
    vm.ssh(f"zpool create -f other {disk} && echo precious > /other/file && zpool export other", check=True)
    data = sandbox_site_data()
    data["backup"]["pool"] = {"name": "scratch", "vdevs": [{"type": "stripe", "disks": [disk]}]}
    run = run_playbook(PLAYBOOK, _inventory(tmp_path / "inventory.yml", vm, data),
                       extra_vars={"zfs_force_disks": True})
    assert run.rc != 0
    out = _flat(run.output)
    assert "refusing to create pool scratch" in out and "pool other" in out and "not even with --force-disks" in out
    assert vm.ssh("zpool list -H scratch").returncode != 0
    listed = vm.ssh(f"zpool import -d {os.path.dirname(disk)}", check=True).stdout
    assert "pool: other" in listed
    vm.ssh("zpool import -d /dev/disk/by-id other", check=True)
    assert vm.ssh("cat /other/file", check=True).stdout.strip() == "precious"
    vm.ssh("zpool export other", check=True)


def test_pool_layout_that_differs_from_the_site_is_reported_not_reshaped(vm, tmp_path):
    data = sandbox_site_data()
    data["backup"]["pool"]["vdevs"] = [{"type": "stripe", "disks": ["/dev/disk/by-id/virtio-opsctl-disk-0"]}]
    run = run_playbook(PLAYBOOK, _inventory(tmp_path / "inventory.yml", vm, data))
    assert run.rc != 0
    out = _flat(run.output)
    assert "pool tank does not match the site file" in out
    assert "its vdevs are [mirror virtio-opsctl-disk-0 virtio-opsctl-disk-1]" in out
    assert "the spec says [virtio-opsctl-disk-0]" in out
    assert "mirror-0" in vm.ssh("zpool status tank", check=True).stdout


def test_quota_below_usage_from_the_site_file_is_refused_and_nothing_applied(vm, tmp_path):
    used = int(_get(vm, "used", ALICE))
    assert used > 2_000_000
    data = sandbox_site_data()
    data["backup"]["users"][0].update(quota="2M", tm_size="1M")  # alice uses ~3 MB
    data["backup"]["users"][1]["quota"] = "300M"  # bob: a valid change in the same run
    run = run_playbook(PLAYBOOK, _inventory(tmp_path / "inventory.yml", vm, data))
    assert run.rc != 0
    out = _flat(run.output)
    assert f"dataset {ALICE} already uses" in out and "a quota of 2M below that" in out
    assert "refused, nothing was changed" in out
    assert int(_get(vm, "quota", ALICE)) == 200 << 20
    assert int(_get(vm, "quota", BOB)) == 100 << 20  # not applied either


def test_system_account_is_never_adopted(vm, tmp_path):
    def add_system_names(ctx):
        for name in ("lp", "staff"):  # Debian's printer account; the group staff (gid 50, no such account)
            ctx["state"]["users"].append({"name": name, "uid": None, "full_name": "", "home": f"/tank/{name}"})

    inventory = _inventory(tmp_path / "inventory.yml", vm, sandbox_site_data(), mutate=add_system_names)
    run = run_playbook(PLAYBOOK, inventory)
    assert run.rc != 0
    out = _flat(run.output)
    assert "account 'lp' exists with uid 7 (a system account); it is never adopted" in out
    assert "group 'staff' exists with gid 50 (a system group)" in out
    assert vm.ssh("getent passwd staff").returncode != 0  # nothing was created for either
    # untouched: still Debian's printer spool account
    assert vm.ssh("getent passwd lp", check=True).stdout.strip().split(":")[5] == "/var/spool/lpd"


# ------------------------------------------------------------------------- purge, through the CLI


@pytest.fixture(scope="module")
def site_file(vm, tmp_path_factory):
    """The sandbox site under this module's host name, reached through the session VM."""
    alias_vm(vm, HOST)
    data = copy.deepcopy(sandbox_site_data())
    data["hosts"] = [{"name": HOST, "sandbox": "vm"}]
    data["backup"]["host"] = HOST
    data.pop("training", None)
    data["backup"]["shares"] = [{"name": "Zed", "dataset": "timemachine/zed", "valid_users": ["bob"]}]
    path = tmp_path_factory.mktemp("safety-site") / "site.yml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def opsctl(*args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "opsctl", *args], capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL, env={**os.environ, "COLUMNS": "250"})


def _purge(site_file, user: str, dataset: str) -> subprocess.CompletedProcess:
    return opsctl("user", "remove", user, "--purge", "--confirm", dataset, "--site", str(site_file), "--json")


def test_purge_refuses_a_dataset_opsctl_did_not_tag_for_the_user(vm, site_file):
    vm.ssh("zfs create tank/timemachine/mallory && touch /tank/timemachine/mallory/data", check=True)
    res = _purge(site_file, "mallory", "tank/timemachine/mallory")
    assert res.returncode == 2, res.stdout + res.stderr
    assert "is not tagged opsctl:user=mallory (no tag)" in _flat(res.stderr), res.stderr
    assert "Traceback" not in res.stderr
    vm.ssh("test -e /tank/timemachine/mallory/data", check=True)


def test_purge_refuses_a_dataset_the_site_still_uses(vm, site_file):
    vm.ssh("zfs create -p -o opsctl:user=zed tank/timemachine/zed", check=True)
    res = _purge(site_file, "zed", "tank/timemachine/zed")
    assert res.returncode == 2, res.stdout + res.stderr
    assert "the site file still uses it" in _flat(res.stderr), res.stderr
    vm.ssh("zfs list tank/timemachine/zed", check=True)


def test_purge_refuses_a_dataset_with_a_child_of_somebody_else(vm, site_file):
    vm.ssh("zfs create -o opsctl:user=carol tank/timemachine/carol && "
           "zfs create -o opsctl:user=dave tank/timemachine/carol/dave", check=True)
    res = _purge(site_file, "carol", "tank/timemachine/carol")
    assert res.returncode == 2, res.stdout + res.stderr
    assert "child dataset(s) tank/timemachine/carol/dave are not carol's" in _flat(res.stderr), res.stderr
    vm.ssh("zfs list tank/timemachine/carol/dave", check=True)

    vm.ssh("zfs destroy tank/timemachine/carol/dave", check=True)
    res = _purge(site_file, "carol", "tank/timemachine/carol")
    assert res.returncode == 0, res.stdout + res.stderr
    assert json.loads(res.stdout)["purged"] is True
    assert vm.ssh("zfs list tank/timemachine/carol").returncode != 0
    for ds in (ALICE, BOB, "tank/timemachine/mallory", "tank/timemachine/zed"):
        vm.ssh(f"zfs list {ds}", check=True)


def test_context_state_is_what_the_role_applied(vm):
    """The role applied exactly the planned state: every planned property is on the host."""
    state = context_for(make_site(), "backup")["state"]
    for ds in state["datasets"]:
        for prop, value in ds["properties"].items():
            have = _get(vm, prop, ds["name"])
            want = str(parse_size(value)) if prop == "quota" else value
            assert have == want, (ds["name"], prop, have, want)
