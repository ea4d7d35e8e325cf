"""The OpenZFS VM of a test session, shared by every module that needs real ZFS.

Booting the qemu VM costs about a minute under TCG and provisioning it several more, so a test
session boots it once per pytest-xdist worker that needs it, and each module starts from a known
state with :func:`reset_vm` instead of a reboot: no pools, blank data disks, no Time Machine users.

``pytest_xdist_make_scheduler`` below sends the files that use the VM to one worker, one after
another from the front, so one VM serves most of them. The *other* worker, once its own files are
done, takes VM files from the back of that queue and runs them on a second session VM: the first
worker is busy for most of the run (the image build, the integration modules), and otherwise the
other worker idles for the last ~7-15 minutes of CI (timelines of 2026-12-02). A file with the line
``VM_TAIL = True`` goes to the back, so it is the first the other worker takes. No VM file may
depend on what another one left on the VM; none does, since each starts with :func:`reset_vm`.

A module whose site names its backup host differently reaches the same VM through
:func:`alias_vm`, which makes ``opsctl`` (``ZfsVM.load(name)``) find it under that name.

Fixtures:

* ``session_vm``: the booted :class:`opsctl.sandbox.vm.ZfsVM` (named by :func:`session_vm_name`,
  three 1 GiB disks).

Example::

    @pytest.fixture(scope="module")
    def vm(session_vm):
        reset_vm(session_vm)
        alias_vm(session_vm, "opsbackup")
        return session_vm
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from pathlib import Path

import pytest

from tests.support.ci import need

SESSION_VM = "pytest-backup"
#: Data disks of the session VM: 0 and 1 make the sandbox sites' mirror, 2 is spare for tests.
DISKS = 3
HOST_TOOLS = ("qemu-system-x86_64", "qemu-img", "ssh", "ssh-keygen", "debootstrap", "mkfs.ext4")
#: The kind of every test file that uses the session VM (dealt by the scheduler below) ...
GROUP = "zfs-vm"
#: ... and of those with the line ``VM_TAIL = True`` (at the back of the VM files: see the module docstring).
TAIL_GROUP = "zfs-vm-tail"
TAIL_LINE = re.compile(r"^VM_TAIL = True\b", re.M)

#: Reset steps, one shell script: every pool goes (destroyed, so it is not importable either),
#: every data disk is blank, every account of a Time Machine user (uid 1000-59999) and its Samba
#: entry is gone, and so is every other group of that id range (the extra shares' groups); the
#: Samba/Netatalk/Avahi configuration of the last module is removed, and containers mode undone.
_RESET = r"""
set -u
for p in $(zpool list -H -o name 2>/dev/null); do zpool destroy -f "$p"; done
disks=$(ls -d /dev/disk/by-id/virtio-opsctl-disk-* | grep -v -- -part)
for d in $disks; do
    # The last pool's labels live on its partition, not on the whole disk: clear them there first,
    # or a new partition table at the same offsets brings the old labels back.
    for p in "$d"-part*; do
        [ -e "$p" ] || continue
        zpool labelclear -f "$p" >/dev/null 2>&1 || true
        wipefs -q -a "$p" >/dev/null 2>&1 || true
    done
    zpool labelclear -f "$d" >/dev/null 2>&1 || true
    wipefs -q -a "$d" >/dev/null 2>&1 || true
    blockdev --rereadpt "$d" >/dev/null 2>&1 || true
done
udevadm settle --timeout=60 || true
for d in $disks; do
    dev=$(basename "$(readlink -f "$d")")
    if ls -d /sys/class/block/"$dev"/"$dev"* >/dev/null 2>&1 || ls "$d"-part* >/dev/null 2>&1; then
        echo "$d still has partitions:"; lsblk "$d"; ls -l "$d"-part* 2>&1; exit 1
    fi
    [ -z "$(wipefs -n "$d")" ] || { echo "$d still has signatures:"; wipefs -n "$d"; exit 1; }
done
for u in $(awk -F: '$3 >= 1000 && $3 < 60000 {print $1}' /etc/passwd); do
    pdbedit -x "$u" >/dev/null 2>&1 || true
    userdel "$u" >/dev/null 2>&1 || true
    groupdel "$u" >/dev/null 2>&1 || true
done
for g in $(awk -F: '$3 >= 1000 && $3 < 60000 {print $1}' /etc/group); do groupdel "$g" >/dev/null 2>&1 || true; done
rm -f /etc/avahi/services/*.service
rm -rf /var/lib/opsctl
# backup.mode containers (tests/integration/test_containers_mode.py): back to what host mode expects
f=/etc/opsctl/backup/containers/backup-compose.yml
[ ! -e "$f" ] || docker compose -f "$f" down --remove-orphans --volumes >/dev/null 2>&1 || true
rm -rf /etc/opsctl/backup
systemctl unmask smbd nmbd avahi-daemon avahi-daemon.socket >/dev/null 2>&1 || true
exit 0
"""


def _tools_or_skip() -> None:
    missing = [t for t in HOST_TOOLS if shutil.which(t) is None]
    if missing:
        need(f"the ZFS VM needs host tools {missing} (scripts/install.sh installs them)")
    if os.geteuid() != 0:
        need("the ZFS VM needs root")


@pytest.fixture(scope="session")
def session_vm():
    """The session's OpenZFS VM, booted once; powered off when the session ends."""
    from opsctl.sandbox import vm as zfsvm

    _tools_or_skip()
    started = time.monotonic()
    zfsvm.ensure_vm_image(progress=print)
    vm = zfsvm.ZfsVM.boot(session_vm_name(), disks=DISKS, disk_size="1G", timeout=1500, progress=print)
    print(f"session VM {vm.name} up in {time.monotonic() - started:.1f}s")
    aliases: list[str] = []
    vm.aliases = aliases  # names alias_vm wrote, removed at the end
    yield vm
    for name in aliases:
        zfsvm.ZfsVM.state_path(name).unlink(missing_ok=True)
    vm.stop(timeout=60)


def session_vm_name() -> str:
    """``pytest-backup``, or ``pytest-backup-gwN`` under pytest-xdist (each worker's own VM)."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    return f"{SESSION_VM}-{worker}" if worker else SESSION_VM


def reset_vm(vm) -> None:
    """Bring the VM back to a known state: no pools, blank data disks, no Time Machine users."""
    started = time.monotonic()
    res = vm.ssh(_RESET, timeout=300)
    assert res.returncode == 0, f"resetting the session VM failed:\n{res.stdout}{res.stderr}"
    left = vm.ssh("zpool list -H -o name", timeout=60).stdout.strip()
    assert left == "", f"pools left after the reset: {left}"
    print(f"session VM reset in {time.monotonic() - started:.1f}s")


def alias_vm(vm, name: str) -> None:
    """Let ``ZfsVM.load(name)`` (so every opsctl command for a site host ``name``) find ``vm``."""
    from opsctl.sandbox import vm as zfsvm

    if name == vm.name:
        return
    path = zfsvm.ZfsVM.state_path(name)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({**vm.state, "name": name, "alias_of": vm.name}, indent=2) + "\n")
    aliases = getattr(vm, "aliases", None)
    if aliases is not None and name not in aliases:
        aliases.append(name)


def _text(path: str, rootdir: Path) -> str:
    try:
        return (rootdir / path).read_text(errors="replace")
    except OSError:
        return ""


def vm_module(path: str, rootdir: Path) -> bool:
    """Whether the test file ``path`` (relative to ``rootdir``) uses the session VM."""
    return "session_vm" in _text(path, rootdir)


def vm_group(path: str, rootdir: Path) -> str | None:
    """The kind of a session-VM file (:data:`GROUP` or :data:`TAIL_GROUP`), else None."""
    text = _text(path, rootdir)
    if "session_vm" not in text:
        return None
    return TAIL_GROUP if TAIL_LINE.search(text) else GROUP


def pytest_xdist_make_scheduler(config, log):
    """Under pytest-xdist every test file is a unit of its own, as with ``--dist loadfile``, but
    the session-VM files are dealt so that one VM serves most of them:

    * the VM worker (the first to ask) takes them from the front, one after another, in xdist's
      order (files with the most tests first, then collection order) with the ``VM_TAIL`` files
      last, then plain files when none is left;
    * every other worker takes plain files; once none is left, it takes VM files from the back
      (booting its own session VM for the first one) instead of idling while the VM worker still
      has a queue.

    (xdist's own ``loadgroup`` does not group here: with pytest 9 the ``@group`` suffix it writes
    into node ids is lost, so its groups spread over the workers.)"""
    from xdist.scheduler import LoadScopeScheduling

    rootdir = Path(str(config.rootpath))
    seen: dict[str, str | None] = {}

    class SessionVMScheduling(LoadScopeScheduling):
        vm_worker = None

        def _split_scope(self, nodeid: str) -> str:
            path = nodeid.split("::", 1)[0]
            if path not in seen:
                seen[path] = vm_group(path, rootdir)
            return path

        def _assign_work_unit(self, node) -> None:
            queue = self.workqueue  # scope -> tests, popped from the front
            vm_files = sorted((s for s in queue if seen.get(s)), key=lambda s: seen[s] == TAIL_GROUP)
            if vm_files and self.vm_worker in (None, node):
                self.vm_worker, pick = node, vm_files[0]
            elif len(vm_files) < len(queue):
                pick = next(s for s in queue if not seen.get(s))
            else:
                pick = vm_files[-1]
            queue.move_to_end(pick, last=False)
            super()._assign_work_unit(node)

    return SessionVMScheduling(config, log)
