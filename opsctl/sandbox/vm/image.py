"""The sandbox VM's image: a Debian trixie root file system with a dkms-built OpenZFS, Samba,
Netatalk and Avahi, built once per recipe into ``$OPSCTL_CACHE/zfsvm/<hash>/``:

* ``rootfs.img``  - raw, sparse ext4 root file system made straight from a debootstrap chroot
* ``vmlinuz`` / ``initrd.img`` - booted directly by qemu (no bootloader)
* ``id_ed25519`` - the root ssh key whose public half is baked into the image
* ``manifest.json`` - hash inputs, guest package versions and build timings

The guest recipe is the shell file ``guest-setup.sh`` next to this module; the package lists are
below. The hash of both (:func:`vm_image_hash`) names the cache directory. The Debian mirror comes
from this machine's apt sources (:mod:`.apt_sources`) and is not part of the hash.

Build or reuse it with ``opsctl sandbox build-image`` (``--hash`` prints the hash only).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shlex
import shutil
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from opsctl.locks import file_lock
from opsctl.sandbox.errors import SandboxError
from opsctl.sandbox.vm.apt_sources import debian_mirror
from opsctl.sandbox.vm.common import Progress, cache_root, emit, require_tools, tail

__all__ = [
    "GUEST_PACKAGES",
    "GUEST_RECIPE",
    "IMAGE_FILES",
    "KERNEL_CMDLINE",
    "VmImage",
    "ensure_vm_image",
    "image_dir",
    "vm_image_hash",
    "vm_image_inputs",
]

RECIPE_VERSION = 1
SUITE = "trixie"
COMPONENTS = ("main", "contrib")
ROOTFS_SIZE = "4G"
ROOTFS_LABEL = "opsctl-root"
IMAGE_FILES = ("rootfs.img", "vmlinuz", "initrd.img", "id_ed25519", "manifest.json")

#: Installed first, so the dkms build has a kernel and matching headers to build against.
KERNEL_PACKAGES = ("linux-image-amd64", "linux-headers-amd64", "initramfs-tools")
#: Only needed to compile the zfs module; purged again once the module is built.
BUILD_PACKAGES = ("zfs-dkms", "dkms", "gcc", "make", "libc6-dev")
#: What the running backup host carries.
GUEST_PACKAGES = (
    "linux-image-amd64",
    "zfsutils-linux",
    "systemd-sysv",
    "udev",
    "openssh-server",
    "python3",
    "python3-apt",
    "sudo",
    "samba",
    "samba-vfs-modules",
    "smbclient",
    "netatalk",
    "avahi-daemon",
    "avahi-utils",
    "libnss-mdns",
    "dbus",
    "iproute2",
    "procps",
    "acl",
    "attr",
    "ca-certificates",
    "kmod",
    "initramfs-tools",
    # backup.mode containers (tests/integration/test_containers_mode.py): Docker with compose v2 (and
    # PyYAML, which Ansible's compose module needs for inline definitions); off at boot, the
    # backup_containers role starts it.
    "docker.io",
    "docker-cli",
    "docker-compose",
    "python3-yaml",
)
#: Installed when the suite has them (checked with apt-cache inside the chroot).
OPTIONAL_PACKAGES = ("netatalk-tools", "netatalk-tests")
#: Versions recorded in manifest.json.
VERSION_PACKAGES = (
    "linux-image-amd64",
    "zfsutils-linux",
    "samba",
    "netatalk",
    "avahi-daemon",
    "openssh-server",
    "python3",
)
INITRD_MODULES = ("virtio_pci", "virtio_blk", "virtio_net", "virtio_rng", "ext4")
#: Not part of the image hash.  The blacklist skips probing hardware the VM does not have or need
#: (floppy controller, nested KVM, wireless regulatory db, PC speaker): each probe costs seconds
#: under TCG.
KERNEL_CMDLINE = (
    "root=/dev/vda rw console=ttyS0 no_timer_check mitigations=off net.ifnames=0 "
    "modprobe.blacklist=floppy,kvm,kvm_amd,kvm_intel,cfg80211,pcspkr,parport_pc,ppdev,bochs,vga16fb"
)

# Runs inside the chroot (bash, as root).  Inputs come from the environment: KERNEL_PACKAGES,
# BUILD_PACKAGES, GUEST_PACKAGES, OPTIONAL_PACKAGES, INITRD_MODULES, VERSION_PACKAGES, SUITE,

#: The guest recipe file; only the part below its marker line is the recipe (and hashed).
RECIPE_FILE = Path(__file__).with_name("guest-setup.sh")
RECIPE_MARKER = "# ---- recipe (hashed) ----\n"


def _read_recipe(path: Path = RECIPE_FILE) -> str:
    text = path.read_text()
    if RECIPE_MARKER not in text:
        raise SandboxError(f"{path} has no {RECIPE_MARKER.strip()!r} line",
                           "restore the marker line above the recipe")
    return text.split(RECIPE_MARKER, 1)[1]


#: The shell recipe run inside the chroot (bash, as root); see ``guest-setup.sh``.
GUEST_RECIPE = _read_recipe()


def vm_image_inputs() -> dict[str, Any]:
    """Return everything that determines the VM image; its hash names the cache directory.

    Example::

        >>> vm_image_inputs()["suite"]
        'trixie'
    """
    return {
        "recipe_version": RECIPE_VERSION,
        "suite": SUITE,
        "components": list(COMPONENTS),
        "kernel_packages": list(KERNEL_PACKAGES),
        "build_packages": list(BUILD_PACKAGES),
        "guest_packages": list(GUEST_PACKAGES),
        "optional_packages": list(OPTIONAL_PACKAGES),
        "initrd_modules": list(INITRD_MODULES),
        "rootfs_size": ROOTFS_SIZE,
        "rootfs_label": ROOTFS_LABEL,
        "recipe": GUEST_RECIPE,
    }


def vm_image_hash() -> str:
    """Return the 16-hex-digit hash of :func:`vm_image_inputs` (the image's cache key).

    Example::

        >>> len(vm_image_hash())
        16
    """
    blob = json.dumps(vm_image_inputs(), sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def image_dir() -> Path:
    """Return where the image for the current recipe lives (it may not be built yet).

    Example::

        >>> image_dir().name == vm_image_hash()
        True
    """
    return cache_root() / "zfsvm" / vm_image_hash()


def _image_complete(path: Path) -> bool:
    return all((path / f).is_file() for f in IMAGE_FILES)


def _mounts_under(path: Path) -> list[str]:
    prefix = str(path.resolve()).rstrip("/") + "/"
    found = []
    with contextlib.suppress(OSError), open("/proc/self/mountinfo") as fh:
        for line in fh:
            mnt = line.split()[4].replace("\\040", " ")
            if (mnt + "/").startswith(prefix):
                found.append(mnt)
    return found


def _safe_rmtree(path: Path) -> None:
    """rmtree that refuses to descend into a chroot with /dev or /proc still mounted."""
    mounted = _mounts_under(path)
    if mounted:
        raise SandboxError(f"refusing to delete {path}: still mounted there: {', '.join(mounted)}")
    shutil.rmtree(path, ignore_errors=True)


def _logged(cmd: Sequence[str], log: Path, *, env: dict[str, str] | None = None, what: str) -> None:
    with open(log, "a") as fh:
        fh.write(f"\n### {what}: {shlex.join(cmd)}\n")
        fh.flush()
        rc = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env,
                            stdin=subprocess.DEVNULL).returncode
    if rc != 0:
        raise SandboxError(f"ZFS VM image build failed at '{what}' (exit {rc}); log {log}:\n{tail(log)}")

def ensure_vm_image(*, progress: Progress = None) -> Path:
    """Build the ZFS VM image once and return its directory; reuse it when already built.

    The build (debootstrap of Debian trixie, kernel, dkms-compiled OpenZFS, Samba, Netatalk,
    Avahi; about 12-15 minutes on 2 cores) runs in a temporary directory next to the final one
    and is renamed into place only when complete, so an interrupted build leaves no half image.
    Concurrent callers serialise on a lock file.  Needs root and the host tools ``debootstrap``,
    ``mkfs.ext4``, ``ssh-keygen``, ``unshare``.

    Args:
        progress: optional callable receiving one-line human-readable status messages.

    Returns:
        The directory holding ``rootfs.img``, ``vmlinuz``, ``initrd.img``, ``id_ed25519`` and
        ``manifest.json``.

    Raises:
        SandboxError: the build cannot run or fails; the message carries the log tail.

    Example::

        >>> d = ensure_vm_image(progress=print)  # doctest: +SKIP
        >>> sorted(p.name for p in d.iterdir())  # doctest: +SKIP
        ['id_ed25519', 'id_ed25519.pub', 'initrd.img', 'manifest.json', 'rootfs.img', 'vmlinuz']
    """
    final = image_dir()
    if _image_complete(final):
        return final
    with file_lock(final.parent / f".{final.name}.lock"):
        if _image_complete(final):
            return final
        _remove_stale_builds(final.parent)
        return _build_image(final, progress)


def _remove_stale_builds(parent: Path) -> None:
    """Delete ``.build-<hash>-<pid>`` directories left by builds whose process is gone."""
    for d in parent.glob(".build-*-*"):
        pid = d.name.rsplit("-", 1)[-1]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            with contextlib.suppress(SandboxError):
                _safe_rmtree(d)


def _build_image(final: Path, progress: Progress) -> Path:
    if os.geteuid() != 0:
        raise SandboxError("building the ZFS VM image needs root (debootstrap, chroot); run as root")
    require_tools("debootstrap", "mkfs.ext4", "ssh-keygen", "unshare", "chroot", "truncate")
    mirror = debian_mirror()
    started = time.monotonic()
    tmp = final.parent / f".build-{final.name}-{os.getpid()}"
    _safe_rmtree(tmp)
    tmp.mkdir(parents=True)
    log = tmp / "build.log"
    rootfs = tmp / "rootfs"
    timings: dict[str, float] = {}
    ok = False
    try:
        emit(progress, f"zfsvm: building image {final.name} in {tmp} (log {log})")
        t = time.monotonic()
        _logged(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "opsctl-zfsvm",
                 "-f", str(tmp / "id_ed25519")], log, what="ssh-keygen")
        (tmp / "id_ed25519").chmod(0o600)

        emit(progress, f"zfsvm: debootstrap {SUITE} ({mirror})")
        _logged(["debootstrap", "--variant=minbase", f"--components={','.join(COMPONENTS)}",
                 "--include=ca-certificates", SUITE, str(rootfs), mirror], log, what="debootstrap")
        timings["debootstrap_s"] = round(time.monotonic() - t, 1)

        t = time.monotonic()
        work = rootfs / "tmp" / "opsctl"
        work.mkdir(parents=True, exist_ok=True)
        shutil.copy2(tmp / "id_ed25519.pub", work / "authorized_keys")
        (work / "setup.sh").write_text(GUEST_RECIPE)
        shutil.copy2("/etc/resolv.conf", rootfs / "etc" / "resolv.conf", follow_symlinks=True)
        env = {
            "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "HOME": "/root",
            "MIRROR": mirror,
            "SUITE": SUITE,
            "COMPONENTS": " ".join(COMPONENTS),
            "KERNEL_PACKAGES": " ".join(KERNEL_PACKAGES),
            "BUILD_PACKAGES": " ".join(BUILD_PACKAGES),
            "GUEST_PACKAGES": " ".join(GUEST_PACKAGES),
            "OPTIONAL_PACKAGES": " ".join(OPTIONAL_PACKAGES),
            "INITRD_MODULES": " ".join(INITRD_MODULES),
            "VERSION_PACKAGES": " ".join(VERSION_PACKAGES),
        }
        # A private mount namespace: /proc, /sys and /dev vanish with it, even on a crash.
        inner = (
            'set -e; R="$1"; mount -t proc proc "$R/proc"; mount -t sysfs sysfs "$R/sys"; '
            'mount --rbind /dev "$R/dev"; mount -t tmpfs tmpfs "$R/run"; '
            'exec chroot "$R" /bin/bash /tmp/opsctl/setup.sh'
        )
        emit(progress, "zfsvm: installing kernel, compiling OpenZFS with dkms, installing services "
                        "(the long part)")
        _logged(["unshare", "--mount", "--propagation", "private", "--fork", "bash", "-c", inner,
                 "opsctl-chroot", str(rootfs)], log, env=env, what="chroot recipe")
        timings["chroot_recipe_s"] = round(time.monotonic() - t, 1)

        kver = (work / "kver").read_text().strip()
        versions = dict(
            line.split(" ", 1) for line in (work / "versions").read_text().splitlines() if " " in line
        )
        shutil.copy2(rootfs / "boot" / f"vmlinuz-{kver}", tmp / "vmlinuz")
        shutil.copy2(rootfs / "boot" / f"initrd.img-{kver}", tmp / "initrd.img")
        shutil.rmtree(work)

        t = time.monotonic()
        if _mounts_under(rootfs):
            raise SandboxError(f"{rootfs} still has mounts: {_mounts_under(rootfs)}")
        emit(progress, "zfsvm: writing the ext4 root image")
        img = tmp / "rootfs.img"
        _logged(["truncate", "-s", ROOTFS_SIZE, str(img)], log, what="truncate")
        _logged(["mkfs.ext4", "-q", "-F", "-L", ROOTFS_LABEL, "-d", str(rootfs), str(img)], log,
                what="mkfs.ext4 -d")
        timings["mkfs_s"] = round(time.monotonic() - t, 1)
        _safe_rmtree(rootfs)
        timings["total_s"] = round(time.monotonic() - started, 1)

        manifest = {
            "hash": final.name,
            "inputs": {k: v for k, v in vm_image_inputs().items() if k != "recipe"},
            "kernel": kver,
            "kernel_cmdline": KERNEL_CMDLINE,
            "versions": versions,
            "timings": timings,
            "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
        shutil.copy2(log, final.parent / f"{final.name}.build.log")
        os.replace(tmp, final)
        ok = True
        emit(progress, f"zfsvm: image ready in {timings['total_s']:.0f}s: {final}")
        return final
    finally:
        if not ok:
            with contextlib.suppress(OSError):
                shutil.copy2(log, final.parent / f"{final.name}.failed.log")
            if not os.environ.get("OPSCTL_KEEP_FAILED_BUILD"):
                _safe_rmtree(tmp)


class VmImage:
    """The VM image as an image builder (:class:`opsctl.sandbox.builders.Builder`)."""

    name = "zfsvm"

    def tag(self) -> str:
        return vm_image_hash()

    def inputs(self) -> dict[str, Any]:
        return vm_image_inputs()

    def ensure(self, progress: Progress = None) -> str:
        return str(ensure_vm_image(progress=progress))
