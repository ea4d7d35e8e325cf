"""Role zfs against the sandbox's qemu OpenZFS VM (a container cannot load the ZFS module).

The session VM (tests/support/vm.py), reset for this module, with three blank 1 GiB disks: disk-0
and disk-1 make the sandbox site's mirror; disk-2 gets an ext4 file system to prove a disk with a
signature is refused.

* create pool + datasets + users, second run changed=0;
* change alice's quota in the spec -> check mode reports it without touching the dataset, the real
  run reports changed=1 and the new quota is set;
* a create-only property that differs (normalization) -> failure naming dataset, property, values;
* a pool on a disk with a file system -> refused without zfs_force_disks, created with it.
"""

from __future__ import annotations

import subprocess

import pytest

from tests.roles._roletest import (
    converge_twice,
    make_site,
    molecule_playbook,
    run_playbook,
    sandbox_site_data,
    vm_inventory,
)
from tests.support.vm import reset_vm

pytestmark = [pytest.mark.vm, pytest.mark.slow]

HOST = "rt-zfs"
PLAYBOOK = molecule_playbook("zfs")


@pytest.fixture(scope="module")
def vm(session_vm):
    reset_vm(session_vm)
    return session_vm


def _inventory(path, vm, data: dict, **extra):
    return vm_inventory(path, vm, data, HOST, **extra)


def _zfs_get(vm, prop: str, dataset: str) -> str:
    return vm.ssh(["zfs", "get", "-Hp", "-o", "value", prop, dataset], check=True).stdout.strip()


@pytest.fixture(scope="module")
def converged(vm, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("zfs")
    data = sandbox_site_data()
    inventory = _inventory(tmp / "inventory.yml", vm, data)
    first, second = converge_twice(PLAYBOOK, inventory, HOST, tmp)
    return {"data": data, "tmp": tmp, "inventory": inventory, "first": first, "second": second}


def test_pool_datasets_and_users_created_then_idempotent(vm, converged):
    assert converged["first"].changed(HOST) > 0
    assert converged["second"].changed(HOST) == 0
    status = vm.ssh("zpool status tank", check=True).stdout
    assert "mirror-0" in status and "virtio-opsctl-disk-0" in status and "virtio-opsctl-disk-1" in status
    assert vm.ssh("zpool get -Hp -o value ashift tank", check=True).stdout.strip() == "12"
    site = make_site(converged["data"])
    for share in site.backup.time_machine_shares:
        ds = share["dataset"]
        assert _zfs_get(vm, "normalization", ds) == "formD"
        assert _zfs_get(vm, "utf8only", ds) == "on"
        assert _zfs_get(vm, "casesensitivity", ds) == "insensitive"
        assert _zfs_get(vm, "compression", ds) == "lz4"
        assert _zfs_get(vm, "atime", ds) == "off"
        assert int(_zfs_get(vm, "quota", ds)) == next(u.quota_bytes for u in site.backup.users
                                                      if u.name == share["user"])
        assert _zfs_get(vm, "mountpoint", ds) == share["path"]
        owner = vm.ssh(["stat", "-c", "%U:%G %a", share["path"]], check=True).stdout.strip()
        assert owner == f"{share['user']}:{share['user']} 700"
        shell = vm.ssh(["getent", "passwd", share["user"]], check=True).stdout.strip().split(":")[-1]
        assert shell == "/usr/sbin/nologin"


def test_molecule_verify_playbook_passes(vm, converged):
    run = run_playbook(molecule_playbook("zfs", "verify.yml"), converged["inventory"])
    assert run.rc == 0, run.output[-4000:]


def test_quota_change_reports_changed_once_and_is_set(vm, converged):
    data = sandbox_site_data()
    data["backup"]["users"][0]["quota"] = "300M"
    inventory = _inventory(converged["tmp"] / "inventory-quota.yml", vm, data)
    dataset = "tank/timemachine/alice"
    before = _zfs_get(vm, "quota", dataset)

    dry = run_playbook(PLAYBOOK, inventory, check=True, diff=True)
    assert dry.rc == 0 and dry.changed(HOST) == 1, dry.output[-4000:]
    assert "quota=209715200" in dry.output and "quota=300M" in dry.output  # the diff
    assert _zfs_get(vm, "quota", dataset) == before  # check mode touched nothing

    run = run_playbook(PLAYBOOK, inventory)
    assert run.rc == 0 and run.changed(HOST) == 1, run.output[-4000:]
    assert int(_zfs_get(vm, "quota", dataset)) == 300 << 20

    again = run_playbook(PLAYBOOK, inventory)
    assert again.rc == 0 and again.changed(HOST) == 0, again.output[-4000:]


def test_create_only_property_mismatch_fails_clearly(vm, converged):
    data = sandbox_site_data()
    data["backup"]["users"][0]["properties"] = {"normalization": "formC"}
    run = run_playbook(PLAYBOOK, _inventory(converged["tmp"] / "inventory-formc.yml", vm, data))
    assert run.rc != 0
    out = " ".join(run.output.split())
    assert "dataset tank/timemachine/alice" in out
    assert "normalization is 'formD', the spec wants 'formC'" in out
    assert "creating a new dataset" in out and "migrating the data" in out
    assert _zfs_get(vm, "normalization", "tank/timemachine/alice") == "formD"  # never recreated


def test_disk_with_a_file_system_is_refused_unless_forced(vm, tmp_path):
    disk = "/dev/disk/by-id/virtio-opsctl-disk-2"
    # The guest has no e2fsprogs: make the file system on the host side of the raw disk image,
    # then drop the guest's cached view of the disk.
    image = next(d["path"] for d in vm.state["disks"] if d["by_id"] == disk)
    subprocess.run(["mkfs.ext4", "-q", "-F", image], check=True)
    vm.ssh(f"blockdev --flushbufs {disk} && sync && echo 3 > /proc/sys/vm/drop_caches", check=True)
    assert "ext4" in vm.ssh(["wipefs", "-n", disk], check=True).stdout
    data = sandbox_site_data()
    data["backup"]["pool"] = {"name": "scratch", "vdevs": [{"type": "stripe", "disks": [disk]}]}
    inventory = _inventory(tmp_path / "inventory-ext4.yml", vm, data)

    refused = run_playbook(PLAYBOOK, inventory)
    assert refused.rc != 0
    out = " ".join(refused.output.split())
    assert "refusing to create pool scratch" in out and "ext4" in out and "--force-disks" in out
    assert vm.ssh("zpool list -H scratch").returncode != 0
    assert "ext4" in vm.ssh(["wipefs", "-n", disk]).stdout  # the disk was not touched

    forced = run_playbook(PLAYBOOK, inventory, extra_vars={"zfs_force_disks": True})
    assert forced.rc == 0, forced.output[-4000:]
    assert vm.ssh("zpool list -H -o name scratch", check=True).stdout.strip() == "scratch"
