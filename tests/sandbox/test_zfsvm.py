"""The sandbox's backup host: a qemu VM with real OpenZFS, Samba, Netatalk and Avahi.

The VM tests build the image on first use (12-15 minutes on 2 cores, cached under
``$OPSCTL_CACHE/zfsvm``) and use the session VM (tests/support/vm.py), reset for this module; only
the stop test boots (and stops) a VM of its own.
Outside CI they skip when the host cannot run the VM (not root, no qemu); in CI (``CI=true``)
they fail instead, so a broken VM path cannot pass unnoticed.
"""

from __future__ import annotations

import os
import shutil
import stat
import time
from pathlib import Path

import pytest

from opsctl.sandbox import vm as zfsvm
from opsctl.sandbox.errors import SandboxError
from opsctl.sandbox.vm import image as vm_image
from opsctl.sandbox.vm.common import run_dir
from tests.support.ci import need
from tests.support.vm import DISKS, reset_vm

STOP_VM = "pytest-zfsvm-stop"
PANIC_VM = "pytest-zfsvm-panic"
BOOT_TOOLS = ("qemu-system-x86_64", "qemu-img", "ssh")
BUILD_TOOLS = ("ssh-keygen", "debootstrap", "mkfs.ext4", "unshare")


@pytest.fixture(scope="module")
def image() -> Path:
    built = all((zfsvm.image_dir() / f).is_file() for f in zfsvm.IMAGE_FILES)
    missing = [t for t in BOOT_TOOLS + (() if built else BUILD_TOOLS) if shutil.which(t) is None]
    if missing:
        need(f"missing host tools {missing}: apt-get install -y debootstrap qemu-system-x86 "
             "qemu-utils e2fsprogs openssh-client")
    if not built and os.geteuid() != 0:
        need("building the ZFS VM image needs root")
    return zfsvm.ensure_vm_image(progress=print)


@pytest.fixture(scope="module")
def vm(image: Path, session_vm):
    reset_vm(session_vm)
    return session_vm


# ------------------------------------------------------------------------------ no VM needed


def test_image_hash_is_stable_and_tracks_the_recipe(monkeypatch):
    h = zfsvm.vm_image_hash()
    assert h == zfsvm.vm_image_hash() and len(h) == 16
    monkeypatch.setattr(vm_image, "GUEST_PACKAGES", (*vm_image.GUEST_PACKAGES, "htop"))
    assert zfsvm.vm_image_hash() != h


def test_ansible_host_vars_reach_the_forwarded_port():
    vm = zfsvm.ZfsVM({"name": "backup", "pid": 1, "ssh_port": 40222, "key": "/k/id_ed25519", "user": "root"})
    hv = zfsvm.ansible_host_vars(vm)
    assert hv["ansible_host"] == "127.0.0.1"
    assert hv["ansible_port"] == 40222
    assert hv["ansible_user"] == "root"
    assert hv["ansible_ssh_private_key_file"] == "/k/id_ed25519"
    assert "StrictHostKeyChecking=no" in hv["ansible_ssh_common_args"]
    assert "UserKnownHostsFile=/dev/null" in hv["ansible_ssh_common_args"]
    assert hv["ansible_python_interpreter"] == "/usr/bin/python3"


def test_load_of_unknown_vm_says_how_to_start_it(tmp_path, monkeypatch):
    monkeypatch.setenv("OPSCTL_CACHE", str(tmp_path))
    with pytest.raises(SandboxError, match="opsctl sandbox up"):
        zfsvm.ZfsVM.load("nope")


# ------------------------------------------------------------------------------------ the VM


@pytest.mark.vm
def test_image_is_cached_and_reused(image: Path):
    for name in ("rootfs.img", "vmlinuz", "initrd.img", "id_ed25519", "manifest.json"):
        assert (image / name).is_file(), name
    assert stat.S_IMODE((image / "id_ed25519").stat().st_mode) == 0o600
    t = time.monotonic()
    assert zfsvm.ensure_vm_image() == image
    assert time.monotonic() - t < 1.0


@pytest.mark.vm
def test_state_file_describes_the_running_vm(vm):
    loaded = zfsvm.ZfsVM.load(vm.name)
    assert loaded.is_running()
    assert loaded.pid == vm.pid and loaded.ssh_port == vm.ssh_port
    assert loaded.disk_ids == [f"/dev/disk/by-id/virtio-opsctl-disk-{i}" for i in range(DISKS)]
    assert zfsvm.ZfsVM.boot(vm.name).pid == vm.pid  # idempotent
    assert vm.ssh("hostname", check=True).stdout.strip() == "backup"


@pytest.mark.vm
def test_openzfs_2_is_loaded(vm):
    out = vm.ssh("zfs version", check=True).stdout
    assert "zfs-2." in out and "zfs-kmod-2." in out, out


@pytest.mark.vm
def test_mirror_pool_with_mac_friendly_properties(vm):
    disks = " ".join(vm.disk_ids[:2])
    vm.ssh(f"ls -l {disks}", check=True)
    vm.ssh("zpool create -o ashift=12 -O compression=lz4 -O normalization=formD -O utf8only=on "
           f"-O casesensitivity=insensitive -O atime=off tank mirror {disks}", check=True, timeout=300)

    def prop(cmd: str) -> str:
        return vm.ssh(cmd, check=True).stdout.strip()

    assert prop("zpool get -H -o value ashift tank") == "12"
    assert prop("zfs get -H -o value compression tank") == "lz4"
    assert prop("zfs get -H -o value casesensitivity tank") == "insensitive"
    assert prop("zfs get -H -o value normalization tank") == "formD"
    assert "mirror" in prop("zpool status tank")
    assert prop("zpool list -H -o health tank") == "ONLINE"


@pytest.mark.vm
def test_dataset_quota_is_enforced(vm):
    vm.ssh("zfs create -o quota=8M tank/timemachine", check=True)
    assert vm.ssh("zfs get -H -o value quota tank/timemachine", check=True).stdout.strip() == "8M"
    r = vm.ssh("head -c 16M /dev/urandom > /tank/timemachine/big && sync", timeout=300)
    assert r.returncode != 0 and "quota" in (r.stdout + r.stderr).lower(), r


@pytest.mark.vm
def test_backup_services_run(vm):
    assert vm.ssh("systemctl is-active smbd").stdout.strip() == "active"
    for unit in ("netatalk", "avahi-daemon"):
        state = vm.ssh(f"systemctl is-active {unit}").stdout.strip()
        assert state == "active", f"{unit}: {state}"


@pytest.mark.vm
def test_stop_cleans_up(image: Path, session_vm):
    # its own VM (the session's keeps running); session_vm keeps it on the session VM's worker
    own = zfsvm.ZfsVM.boot(STOP_VM, disks=0, timeout=1200, progress=print)
    run_dir = Path(own.state["run_dir"])
    own.stop(timeout=60)
    assert not own.is_running()
    assert not zfsvm.ZfsVM.state_path(STOP_VM).exists()
    assert not run_dir.exists()
    assert session_vm.is_running()


@pytest.mark.vm
def test_a_kernel_panic_during_boot_is_seen_at_once_and_booted_again(image: Path):
    # A real panic: the kernel's init exits (init=/bin/false), as CI once saw a TCG boot panic.
    # Without the console check boot() waits out its whole timeout and says "did not answer ssh".
    lines: list[str] = []
    started = time.monotonic()
    with pytest.raises(SandboxError, match=r"kernel panicked during boot 2 time\(s\) in a row") as err:
        zfsvm.ZfsVM.boot(PANIC_VM, disks=0, timeout=900, attempts=2, kernel_args="init=/bin/false",
                         progress=lines.append)
    took = time.monotonic() - started
    assert "Kernel panic - not syncing" in str(err.value)
    assert any("panicked during boot (attempt 1 of 2); booting it again" in line for line in lines), lines
    assert took < 400, f"{took:.0f}s: the panic was not noticed before the 900s timeout"
    assert not zfsvm.ZfsVM.state_path(PANIC_VM).exists()
    assert not (run_dir() / PANIC_VM).exists()
