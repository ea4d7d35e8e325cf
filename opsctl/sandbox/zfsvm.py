"""The sandbox's ``backup`` host: a qemu VM running real OpenZFS, Samba, Netatalk and Avahi.

Containers on the development and CI machines cannot load the ZFS kernel module, so the
sandbox's backup server is a small Debian trixie VM booted under qemu (TCG: there is no usable
KVM).  The VM image is built once per recipe into ``$OPSCTL_CACHE/zfsvm/<hash>/``:

* ``rootfs.img``  - raw, sparse ext4 root file system made straight from a debootstrap chroot
* ``vmlinuz`` / ``initrd.img`` - booted directly by qemu (no bootloader)
* ``id_ed25519`` - the root ssh key whose public half is baked into the image
* ``manifest.json`` - hash inputs, guest package versions and build timings

Every boot runs on a throw-away qcow2 overlay plus blank raw data disks, so the cached image stays
pristine.  A running VM is described by ``$OPSCTL_CACHE/run/<name>.json`` which other processes
(the Ansible inventory, ``opsctl sandbox down``) read through :meth:`ZfsVM.load`.

Manual use::

    python -m opsctl.sandbox.zfsvm build          # build or reuse the image
    python -m opsctl.sandbox.zfsvm boot           # boot "backup", print its state
    python -m opsctl.sandbox.zfsvm ssh -- zpool status
    python -m opsctl.sandbox.zfsvm stop
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from opsctl.locks import file_lock
from opsctl.sandbox.errors import SandboxError

__all__ = [
    "GUEST_PACKAGES",
    "SandboxError",
    "ZfsVM",
    "ansible_host_vars",
    "cache_root",
    "ensure_vm_image",
    "vm_image_hash",
    "vm_image_inputs",
]

Progress = Callable[[str], None] | None

#: Bump when the recipe changes in a way the script text does not show.
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
# COMPONENTS, MIRROR.  The guest's root public key is at /tmp/opsctl/authorized_keys.
GUEST_RECIPE = r"""
set -euxo pipefail
export DEBIAN_FRONTEND=noninteractive DEBCONF_NONINTERACTIVE_SEEN=true LC_ALL=C.UTF-8
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

# No service may start inside the chroot.
printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
chmod 0755 /usr/sbin/policy-rc.d

rm -f /etc/apt/sources.list
cat > /etc/apt/sources.list.d/debian.sources <<EOF
Types: deb
URIs: ${MIRROR}
Suites: ${SUITE}
Components: ${COMPONENTS}
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
cat > /etc/apt/apt.conf.d/90opsctl <<'EOF'
// The package mirror may serve a dated snapshot whose Release files are past Valid-Until.
Acquire::Check-Valid-Until "false";
APT::Install-Recommends "false";
APT::Install-Suggests "false";
Dpkg::Options { "--force-confdef"; "--force-confold"; };
EOF
echo 'zfs-dkms zfs-dkms/note-incompatible-licenses note' | debconf-set-selections

apt-get update -q
# shellcheck disable=SC2086
apt-get install -y -q ${KERNEL_PACKAGES}
KVER=$(ls /usr/lib/modules | sort -V | tail -n 1)
test -e "/usr/src/linux-headers-${KVER}/Makefile"

for m in ${INITRD_MODULES}; do echo "$m"; done >> /etc/initramfs-tools/modules
# shellcheck disable=SC2086
apt-get install -y -q ${BUILD_PACKAGES}
ZVER=$(dpkg-query -W -f='${Version}' zfs-dkms | sed -e 's/-[^-]*$//')
if [ -z "$(dkms status -m zfs -v "${ZVER}" -k "${KVER}" | grep installed || true)" ]; then
    dkms install "zfs/${ZVER}" -k "${KVER}"
fi
dkms status
# Keep the compiled modules outside dkms' reach, then drop the compiler and headers.
mkdir -p "/usr/lib/modules/${KVER}/extra/opsctl-zfs"
find "/usr/lib/modules/${KVER}/updates/dkms" -name '*.ko*' \
    -exec cp -a {} "/usr/lib/modules/${KVER}/extra/opsctl-zfs/" \;
ls -l "/usr/lib/modules/${KVER}/extra/opsctl-zfs/"

OPTIONAL=""
for p in ${OPTIONAL_PACKAGES}; do
    if apt-cache show "$p" > /dev/null 2>&1; then OPTIONAL="$OPTIONAL $p"; fi
done
# shellcheck disable=SC2086
apt-get install -y -q ${GUEST_PACKAGES} ${OPTIONAL}
# shellcheck disable=SC2086
apt-mark auto ${BUILD_PACKAGES} > /dev/null
# shellcheck disable=SC2086
apt-mark manual ${GUEST_PACKAGES} ${OPTIONAL} > /dev/null
apt-get purge -y -q zfs-dkms dkms 'linux-headers-*'
apt-get autoremove --purge -y -q
depmod -a "${KVER}"
modinfo -k "${KVER}" zfs | grep -E '^(filename|version):'
echo zfs > /etc/modules-load.d/zfs.conf

# Identity, network, console, ssh.
echo backup > /etc/hostname
cat > /etc/hosts <<'EOF'
127.0.0.1   localhost
127.0.1.1   backup
::1         localhost ip6-localhost ip6-loopback
EOF
cat > /etc/fstab <<'EOF'
/dev/vda  /  ext4  defaults,errors=remount-ro  0  0
EOF
mkdir -p /etc/systemd/network
cat > /etc/systemd/network/20-virtio.network <<'EOF'
[Match]
Name=eth* en*

[Network]
DHCP=ipv4
EOF
systemctl enable systemd-networkd.service serial-getty@ttyS0.service
systemctl mask systemd-networkd-wait-online.service systemd-firstboot.service \
    apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer fstrim.timer 2> /dev/null || true
rm -f /etc/machine-id /var/lib/dbus/machine-id
systemd-machine-id-setup
echo 'nameserver 10.0.2.3' > /etc/resolv.conf

mkdir -p /etc/ssh/sshd_config.d /root/.ssh
cat > /etc/ssh/sshd_config.d/opsctl.conf <<'EOF'
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UseDNS no
EOF
install -m 0600 /tmp/opsctl/authorized_keys /root/.ssh/authorized_keys
chmod 0700 /root/.ssh
passwd -l root

update-initramfs -u -k "${KVER}"
lsinitramfs "/boot/initrd.img-${KVER}" > /tmp/opsctl/initrd.list
for m in virtio_blk virtio_net ext4; do grep -E "/${m}\.ko" /tmp/opsctl/initrd.list; done

: > /tmp/opsctl/versions
for p in ${VERSION_PACKAGES} ${OPTIONAL}; do
    printf '%s %s\n' "$p" "$(dpkg-query -W -f='${Version}' "$p")" >> /tmp/opsctl/versions
done
printf 'zfs-module %s\n' "$(modinfo -k "${KVER}" -F version zfs)" >> /tmp/opsctl/versions
printf 'kernel %s\n' "${KVER}" >> /tmp/opsctl/versions
printf '%s\n' "${KVER}" > /tmp/opsctl/kver

apt-get clean
rm -f /usr/sbin/policy-rc.d
rm -rf /var/log/*.log /var/log/apt/* /var/cache/debconf/*-old /usr/share/doc/* /usr/share/man/*
"""


# --------------------------------------------------------------------------------------- paths


def cache_root() -> Path:
    """Return the opsctl cache directory: ``$OPSCTL_CACHE``, else ``~/.cache/opsctl``.

    Example::

        >>> cache_root()  # doctest: +SKIP
        PosixPath('/root/.cache/opsctl')
    """
    env = os.environ.get("OPSCTL_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "opsctl"


def _run_dir() -> Path:
    return cache_root() / "run"


def _emit(progress: Progress, message: str) -> None:
    if progress is not None:
        progress(message)


# -------------------------------------------------------------------------------------- image


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


def _debian_mirror() -> str:
    """The Debian mirror the host's apt already uses (so no host name is written in code).

    ``$OPSCTL_DEBIAN_MIRROR`` overrides it.
    """
    env = os.environ.get("OPSCTL_DEBIAN_MIRROR")
    if env:
        return env.rstrip("/")
    candidates: list[str] = []
    sources = Path("/etc/apt/sources.list.d")
    for f in sorted(sources.glob("*.sources")) if sources.is_dir() else []:
        for stanza in f.read_text(errors="replace").split("\n\n"):
            fields: dict[str, str] = {}
            for line in stanza.splitlines():
                if ":" in line and not line.lstrip().startswith("#"):
                    key, _, value = line.partition(":")
                    fields[key.strip().lower()] = value.strip()
            suites = fields.get("suites", "").split()
            if fields.get("enabled", "yes").lower() == "no" or "deb" not in fields.get("types", ""):
                continue
            if any(s.endswith("-security") for s in suites):
                continue
            if "debian-archive-keyring" in fields.get("signed-by", "") or "/debian" in fields.get("uris", ""):
                candidates.extend(fields.get("uris", "").split())
    for f in [Path("/etc/apt/sources.list"), *sorted(sources.glob("*.list"))]:
        if not f.is_file():
            continue
        for line in f.read_text(errors="replace").splitlines():
            m = re.match(r"^\s*deb\s+(?:\[[^]]*\]\s+)?(\S+)\s+(\S+)", line)
            if m and "security" not in m.group(2) and m.group(1).rstrip("/").endswith("/debian"):
                candidates.append(m.group(1))
    for uri in candidates:
        if uri.startswith(("http://", "https://")) and not uri.rstrip("/").endswith("-security"):
            return uri.rstrip("/")
    raise SandboxError(
        "cannot tell which Debian mirror to build the ZFS VM image from: the host's apt sources "
        "name none; set OPSCTL_DEBIAN_MIRROR to a Debian archive URL"
    )


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


def _require_tools(*tools: str) -> None:
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        raise SandboxError(
            f"missing host tools for the ZFS VM: {', '.join(missing)}; install them with "
            "`apt-get install -y debootstrap qemu-system-x86 qemu-utils e2fsprogs openssh-client`"
        )


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _logged(cmd: Sequence[str], log: Path, *, env: dict[str, str] | None = None, what: str) -> None:
    with open(log, "a") as fh:
        fh.write(f"\n### {what}: {shlex.join(cmd)}\n")
        fh.flush()
        rc = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env,
                            stdin=subprocess.DEVNULL).returncode
    if rc != 0:
        raise SandboxError(f"ZFS VM image build failed at '{what}' (exit {rc}); log {log}:\n{_tail(log)}")


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
    _require_tools("debootstrap", "mkfs.ext4", "ssh-keygen", "unshare", "chroot", "truncate")
    mirror = _debian_mirror()
    started = time.monotonic()
    tmp = final.parent / f".build-{final.name}-{os.getpid()}"
    _safe_rmtree(tmp)
    tmp.mkdir(parents=True)
    log = tmp / "build.log"
    rootfs = tmp / "rootfs"
    timings: dict[str, float] = {}
    ok = False
    try:
        _emit(progress, f"zfsvm: building image {final.name} in {tmp} (log {log})")
        t = time.monotonic()
        _logged(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "opsctl-zfsvm",
                 "-f", str(tmp / "id_ed25519")], log, what="ssh-keygen")
        (tmp / "id_ed25519").chmod(0o600)

        _emit(progress, f"zfsvm: debootstrap {SUITE} ({mirror})")
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
        _emit(progress, "zfsvm: installing kernel, compiling OpenZFS with dkms, installing services "
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
        _emit(progress, "zfsvm: writing the ext4 root image")
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
        _emit(progress, f"zfsvm: image ready in {timings['total_s']:.0f}s: {final}")
        return final
    finally:
        if not ok:
            with contextlib.suppress(OSError):
                shutil.copy2(log, final.parent / f"{final.name}.failed.log")
            if not os.environ.get("OPSCTL_KEEP_FAILED_BUILD"):
                _safe_rmtree(tmp)


# ----------------------------------------------------------------------------------------- VM


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pid_alive(pid: int | None, marker: str | None = None) -> bool:
    if not pid:
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return False
    if "qemu-system" not in cmdline:
        return False
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        if re.search(r"^State:\s+Z", status, re.M):
            return False
    except OSError:
        return False
    return marker is None or marker in cmdline


def _ssh_base(key: str, port: int, user: str = "root", *, connect_timeout: int = 10) -> list[str]:
    return [
        "ssh", "-i", key, "-p", str(port),
        "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
        "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-o", "LogLevel=ERROR",
        "-o", f"ConnectTimeout={connect_timeout}",
        "-o", "ServerAliveInterval=15", "-o", "ServerAliveCountMax=8",
        f"{user}@127.0.0.1",
    ]


class ZfsVM:
    """A running (or stopped) sandbox VM with OpenZFS, described by ``$OPSCTL_CACHE/run/<name>.json``.

    Use :meth:`boot` to start one (or get the one already running) and :meth:`load` to attach to
    one another process started.

    Example::

        vm = ZfsVM.boot("backup", disks=2)
        print(vm.ssh("zfs version").stdout)
        vm.stop()
    """

    def __init__(self, state: dict[str, Any]):
        self.state = state

    # -- state ------------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.state["name"]

    @property
    def pid(self) -> int:
        return int(self.state["pid"])

    @property
    def ssh_port(self) -> int:
        return int(self.state["ssh_port"])

    @property
    def key(self) -> str:
        return self.state["key"]

    @property
    def disk_ids(self) -> list[str]:
        """``/dev/disk/by-id`` paths of the blank data disks as the guest sees them."""
        return [d["by_id"] for d in self.state["disks"]]

    @property
    def forwards(self) -> dict[int, int]:
        """Extra port forwards: guest TCP port -> host port on 127.0.0.1."""
        return {int(k): int(v) for k, v in self.state.get("forwards", {}).items()}

    @staticmethod
    def state_path(name: str) -> Path:
        """Return the state file path for VM ``name``.

        Example::

            >>> ZfsVM.state_path("backup").name
            'backup.json'
        """
        return _run_dir() / f"{name}.json"

    def _save(self) -> None:
        path = self.state_path(self.name)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(self.state, indent=2) + "\n")
        os.replace(tmp, path)

    @classmethod
    def load(cls, name: str = "backup") -> ZfsVM:
        """Attach to the VM ``name`` from its state file (it may have died since).

        Args:
            name: the VM name given to :meth:`boot`.

        Raises:
            SandboxError: there is no state file for ``name``.

        Example::

            vm = ZfsVM.load("backup")
            if vm.is_running():
                vm.ssh("zpool list")
        """
        path = cls.state_path(name)
        try:
            return cls(json.loads(path.read_text()))
        except FileNotFoundError:
            raise SandboxError(
                f"no sandbox VM named {name!r} ({path} is missing); start it with "
                f"`python -m opsctl.sandbox.zfsvm boot --name {name}`"
            ) from None
        except (OSError, ValueError) as exc:
            raise SandboxError(f"cannot read sandbox VM state {path}: {exc}") from exc

    def is_running(self) -> bool:
        """Return True when this VM's qemu process is alive.

        Example::

            ZfsVM.load("backup").is_running()
        """
        return _pid_alive(self.state.get("pid"), self.state.get("overlay"))

    # -- boot -------------------------------------------------------------------------------
    @classmethod
    def boot(
        cls,
        name: str = "backup",
        *,
        disks: int = 2,
        disk_size: str = "1G",
        ssh_port: int | None = None,
        memory: str = "2G",
        smp: int = 2,
        timeout: float = 600,
        forwards: Sequence[int] = (),
        internet: bool = False,
        progress: Progress = None,
    ) -> ZfsVM:
        """Boot the VM ``name`` (building the image first if needed) and wait until it is up.

        Idempotent: when ``name`` is already running it is returned as is.  Each boot gets a
        fresh qcow2 overlay over the cached image and fresh blank data disks, seen by the guest
        as ``/dev/disk/by-id/virtio-opsctl-disk-N``.

        Args:
            name: VM name; state goes to ``$OPSCTL_CACHE/run/<name>.json``.
            disks: number of blank raw data disks.
            disk_size: size of each data disk (``qemu-img`` syntax, e.g. ``"1G"``).
            ssh_port: host port for ssh on 127.0.0.1; a free one is picked when None.
            memory: guest memory (qemu ``-m`` syntax).
            smp: guest CPUs.
            timeout: seconds to wait for ssh and ``systemctl is-system-running``.  Boot takes
                about 35-60 s on an idle 2-core host but 4-5 minutes when other builds or VMs
                share the CPUs (TCG), hence the generous default.
            forwards: extra guest TCP ports (e.g. 445, 548) to forward to free host ports.
            internet: let the guest reach the outside network (package mirror); default off.
            progress: optional callable receiving status lines.

        Returns:
            The running VM.

        Raises:
            SandboxError: qemu cannot start or the guest does not come up within ``timeout``.

        Example::

            vm = ZfsVM.boot("backup", disks=2, disk_size="1G")
            vm.ssh("zpool create tank mirror " + " ".join(vm.disk_ids), check=True)
        """
        _require_tools("qemu-system-x86_64", "qemu-img", "ssh")
        with file_lock(_run_dir() / f".{name}.lock"):
            with contextlib.suppress(SandboxError):
                existing = cls.load(name)
                if existing.is_running():
                    _emit(progress, f"zfsvm: {name} already running (pid {existing.pid}, "
                                    f"ssh port {existing.ssh_port})")
                    return existing
                existing._cleanup()
            image = ensure_vm_image(progress=progress)
            last: SandboxError | None = None
            for _attempt in range(3):
                try:
                    vm = cls._start(name, image, disks=disks, disk_size=disk_size, ssh_port=ssh_port,
                                    memory=memory, smp=smp, forwards=forwards, internet=internet,
                                    progress=progress)
                    break
                except _PortTaken as exc:
                    last = SandboxError(str(exc))
                    if ssh_port is not None:
                        raise last from None
            else:
                assert last is not None
                raise last
            try:
                vm._wait_ready(timeout, progress)
            except BaseException:
                vm.stop(timeout=5)
                raise
            return vm

    @classmethod
    def _start(cls, name: str, image: Path, *, disks: int, disk_size: str, ssh_port: int | None,
               memory: str, smp: int, forwards: Sequence[int], internet: bool,
               progress: Progress) -> ZfsVM:
        run = _run_dir() / name
        shutil.rmtree(run, ignore_errors=True)
        run.mkdir(parents=True)
        overlay = run / "overlay.qcow2"
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", str(image / "rootfs.img"),
                        "-F", "raw", str(overlay)], check=True, capture_output=True, text=True)
        disk_list = []
        for i in range(disks):
            path = run / f"disk{i}.img"
            subprocess.run(["qemu-img", "create", "-q", "-f", "raw", str(path), disk_size],
                           check=True, capture_output=True, text=True)
            serial = f"opsctl-disk-{i}"
            by_id = f"/dev/disk/by-id/virtio-{serial}"
            disk_list.append({"serial": serial, "path": str(path), "by_id": by_id})
        port = ssh_port or _free_port()
        fwd = {g: _free_port() for g in forwards}
        hostfwd = f",hostfwd=tcp:127.0.0.1:{port}-:22" + "".join(
            f",hostfwd=tcp:127.0.0.1:{h}-:{g}" for g, h in fwd.items())
        pidfile = run / "qemu.pid"
        console = run / "console.log"
        accel = os.environ.get("OPSCTL_QEMU_ACCEL", "tcg,thread=multi")
        cmd = [
            "qemu-system-x86_64", "-name", f"opsctl-{name}",
            "-accel", accel, "-cpu", "max", "-m", memory, "-smp", str(smp),
            "-nodefaults", "-display", "none", "-vga", "none", "-monitor", "none",
            "-serial", f"file:{console}",
            "-daemonize", "-pidfile", str(pidfile),
            "-kernel", str(image / "vmlinuz"), "-initrd", str(image / "initrd.img"),
            "-append", KERNEL_CMDLINE,
            "-drive", f"file={overlay},if=none,id=root,format=qcow2,cache=unsafe",
            "-device", "virtio-blk-pci,drive=root,serial=opsctl-root",
            "-netdev", f"user,id=n0,restrict={'off' if internet else 'on'}{hostfwd}",
            "-device", "virtio-net-pci,netdev=n0",
            "-device", "virtio-rng-pci",
        ]
        for i, d in enumerate(disk_list):
            cmd += ["-drive", f"file={d['path']},if=none,id=data{i},format=raw,cache=unsafe",
                    "-device", f"virtio-blk-pci,drive=data{i},serial={d['serial']}"]
        _emit(progress, f"zfsvm: starting qemu for {name} (ssh on 127.0.0.1:{port})")
        started = time.time()
        proc = subprocess.run(cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=120)
        if proc.returncode != 0:
            err = (proc.stderr or proc.stdout).strip()
            shutil.rmtree(run, ignore_errors=True)
            if "hostfwd" in err or "host forwarding" in err or "Address already in use" in err:
                raise _PortTaken(f"qemu could not forward port {port}: {err}")
            raise SandboxError(f"qemu failed to start the {name} VM (exit {proc.returncode}): {err}\n"
                               f"command: {shlex.join(cmd)}")
        pid = int(pidfile.read_text().strip())
        vm = cls({
            "name": name,
            "kind": "zfsvm",
            "pid": pid,
            "ssh_port": port,
            "user": "root",
            "key": str(image / "id_ed25519"),
            "image": str(image),
            "run_dir": str(run),
            "overlay": str(overlay),
            "console_log": str(console),
            "disks": disk_list,
            "forwards": {str(g): h for g, h in fwd.items()},
            "memory": memory,
            "smp": smp,
            "started_at": started,
            "timings": {},
            "command": cmd,
        })
        vm._save()
        return vm

    def _wait_ready(self, timeout: float, progress: Progress) -> None:
        t0 = self.state["started_at"]
        deadline = time.monotonic() + timeout
        while True:
            if not self.is_running():
                raise SandboxError(f"the {self.name} VM's qemu exited during boot; console log "
                                   f"{self.state['console_log']}:\n{_tail(Path(self.state['console_log']))}")
            try:
                r = self.ssh("true", timeout=30, connect_timeout=5)
                if r.returncode == 0:
                    break
            except subprocess.TimeoutExpired:
                pass
            if time.monotonic() > deadline:
                raise SandboxError(
                    f"the {self.name} VM did not answer ssh on 127.0.0.1:{self.ssh_port} within "
                    f"{timeout:.0f}s (TCG is slow on a busy host: raise timeout); console log "
                    f"{self.state['console_log']}:\n{_tail(Path(self.state['console_log']))}")
            time.sleep(2)
        self.state["timings"]["boot_to_ssh_s"] = round(time.time() - t0, 1)
        _emit(progress, f"zfsvm: ssh up after {self.state['timings']['boot_to_ssh_s']}s; waiting for systemd")
        left = max(10.0, deadline - time.monotonic())
        try:
            r = self.ssh("systemctl is-system-running --wait", timeout=left)
        except subprocess.TimeoutExpired:
            raise SandboxError(f"the {self.name} VM's systemd did not finish starting within "
                               f"{timeout:.0f}s; see `systemctl list-jobs` in the guest") from None
        status = r.stdout.strip()
        if status not in ("running", "degraded"):
            failed = self.ssh("systemctl --failed --no-legend --plain").stdout
            raise SandboxError(f"the {self.name} VM came up as {status!r}; failed units:\n{failed}")
        self.state["timings"]["boot_to_running_s"] = round(time.time() - t0, 1)
        self.state["system_state"] = status
        self._save()
        _emit(progress, f"zfsvm: {self.name} {status} after {self.state['timings']['boot_to_running_s']}s")

    # -- use --------------------------------------------------------------------------------
    def ssh(self, cmd: str | Sequence[str], *, check: bool = False, timeout: float | None = 600,
            input: str | None = None, connect_timeout: int = 10) -> subprocess.CompletedProcess[str]:
        """Run ``cmd`` in the guest as root over ssh and return the completed process.

        Args:
            cmd: a shell command line (str) or an argument list (quoted for the remote shell).
            check: raise :class:`SandboxError` on a non-zero exit.
            timeout: seconds before :class:`subprocess.TimeoutExpired`; None waits forever.
            input: text fed to the command's standard input.
            connect_timeout: ssh ConnectTimeout in seconds.

        Example::

            r = vm.ssh(["zpool", "get", "-H", "-o", "value", "ashift", "tank"], check=True)
            assert r.stdout.strip() == "12"
        """
        line = cmd if isinstance(cmd, str) else shlex.join(cmd)
        argv = _ssh_base(self.key, self.ssh_port, self.state.get("user", "root"),
                         connect_timeout=connect_timeout) + [line]
        r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, input=input,
                           stdin=None if input is not None else subprocess.DEVNULL)
        if check and r.returncode != 0:
            raise SandboxError(f"`{line}` failed in the {self.name} VM (exit {r.returncode}):\n"
                               f"{r.stdout}{r.stderr}")
        return r

    def reinstall(self, *, timeout: float = 900, progress: Progress = None) -> None:
        """Simulate an OS reinstall: power off, give the VM a fresh root disk from the image (a new
        overlay), keep its data disks, and boot it again on the same ssh port.

        What the data disks hold (a pool, its datasets, the backups) is untouched; everything on
        the root disk (accounts, Samba's database, config files, the pool's import state) is gone,
        as on a host whose operating system was reinstalled.

        Example::

            vm.reinstall()
            vm.ssh("zpool import")   # the pool is there, not imported
        """
        self.stop(timeout=60, keep_files=True)
        overlay = Path(self.state["overlay"])
        overlay.unlink(missing_ok=True)
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", str(Path(self.state["image"]) / "rootfs.img"),
                        "-F", "raw", str(overlay)], check=True, capture_output=True, text=True)
        pidfile = Path(self.state["run_dir"]) / "qemu.pid"
        pidfile.unlink(missing_ok=True)
        _emit(progress, f"zfsvm: {self.name}: booting a fresh root disk with the same data disks")
        self.state["started_at"] = time.time()
        proc = subprocess.run(self.state["command"], capture_output=True, text=True, stdin=subprocess.DEVNULL,
                              timeout=120)
        if proc.returncode != 0:
            raise SandboxError(f"qemu failed to restart the {self.name} VM (exit {proc.returncode}): "
                               f"{(proc.stderr or proc.stdout).strip()}")
        self.state["pid"] = int(pidfile.read_text().strip())
        self.state["timings"] = {}
        self._save()
        self._wait_ready(timeout, progress)

    def ssh_command(self) -> list[str]:
        """Return the ssh argv (without a remote command) that logs into this VM as root.

        Example::

            subprocess.run(vm.ssh_command() + ["uptime"])
        """
        return _ssh_base(self.key, self.ssh_port, self.state.get("user", "root"))

    # -- stop -------------------------------------------------------------------------------
    def stop(self, *, timeout: float = 60, keep_files: bool = False) -> None:
        """Power the VM off cleanly (``systemctl poweroff``), killing qemu after ``timeout``.

        Removes the overlay, data disks and state file unless ``keep_files``.  Safe to call
        on a VM that is already gone.

        Args:
            timeout: seconds to wait for a clean poweroff before SIGTERM, then SIGKILL.
            keep_files: keep the run directory (overlay, disks, console.log) for inspection.

        Example::

            ZfsVM.load("backup").stop()
        """
        if self.is_running():
            with contextlib.suppress(subprocess.TimeoutExpired, OSError):
                self.ssh("systemctl --no-block poweroff", timeout=20, connect_timeout=5)
            if not self._wait_exit(timeout):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.pid, signal.SIGTERM)
                if not self._wait_exit(10):
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(self.pid, signal.SIGKILL)
                    self._wait_exit(10)
        if not keep_files:
            self._cleanup()

    def _wait_exit(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.is_running():
                return True
            time.sleep(0.5)
        return not self.is_running()

    def _cleanup(self) -> None:
        run = self.state.get("run_dir")
        # only this VM's own run folder: a state file written under another name for the same VM
        # (the tests' aliases) never removes the files of the VM it points at
        if run and Path(run).parent == _run_dir() and Path(run).name == self.name:
            shutil.rmtree(run, ignore_errors=True)
        path = self.state_path(self.name)
        with contextlib.suppress(FileNotFoundError):
            current = json.loads(path.read_text())
            if current.get("pid") == self.state.get("pid"):
                path.unlink()

    def __repr__(self) -> str:
        return (f"ZfsVM(name={self.name!r}, pid={self.state.get('pid')}, "
                f"ssh_port={self.state.get('ssh_port')})")


class _PortTaken(SandboxError):
    pass


def ansible_host_vars(vm: ZfsVM) -> dict[str, Any]:
    """Return the Ansible inventory variables that reach ``vm`` over its forwarded ssh port.

    Args:
        vm: a booted (or loaded) :class:`ZfsVM`.

    Example::

        >>> ansible_host_vars(ZfsVM.load("backup"))  # doctest: +SKIP
        {'ansible_host': '127.0.0.1', 'ansible_port': 40123, 'ansible_user': 'root', ...}
    """
    return {
        "ansible_host": "127.0.0.1",
        "ansible_port": vm.ssh_port,
        "ansible_user": vm.state.get("user", "root"),
        "ansible_ssh_private_key_file": vm.key,
        "ansible_ssh_common_args": "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null "
                                   "-o IdentitiesOnly=yes",
        "ansible_python_interpreter": "/usr/bin/python3",
    }


# ---------------------------------------------------------------------------------------- CLI


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``python -m opsctl.sandbox.zfsvm build|boot|stop|ssh|status``.

    Args:
        argv: arguments (default ``sys.argv[1:]``).

    Example::

        python -m opsctl.sandbox.zfsvm boot --name backup --disks 2 --forward 445
        python -m opsctl.sandbox.zfsvm ssh --name backup -- zpool status
    """
    p = argparse.ArgumentParser(prog="python -m opsctl.sandbox.zfsvm", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("build", help="build or reuse the VM image; print its directory")
    sub.add_parser("hash", help="print the image hash")
    b = sub.add_parser("boot", help="boot a VM (or return the running one); print its state")
    b.add_argument("--name", default="backup")
    b.add_argument("--disks", type=int, default=2)
    b.add_argument("--disk-size", default="1G")
    b.add_argument("--port", type=int, default=None, help="host ssh port (default: a free one)")
    b.add_argument("--memory", default="2G")
    b.add_argument("--smp", type=int, default=2)
    b.add_argument("--timeout", type=float, default=600)
    b.add_argument("--forward", type=int, action="append", default=[], help="extra guest TCP port")
    b.add_argument("--internet", action="store_true", help="let the guest reach the network")
    s = sub.add_parser("stop", help="power a VM off and remove its run files")
    s.add_argument("--name", default="backup")
    s.add_argument("--keep-files", action="store_true")
    st = sub.add_parser("status", help="print a VM's state and whether it runs")
    st.add_argument("--name", default="backup")
    sh = sub.add_parser("ssh", help="run a command in the VM (interactive shell without one)")
    sh.add_argument("--name", default="backup")
    sh.add_argument("command", nargs=argparse.REMAINDER)
    args = p.parse_args(argv)

    def say(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    try:
        if args.cmd == "build":
            t = time.monotonic()
            d = ensure_vm_image(progress=say)
            say(f"zfsvm: ensure_vm_image took {time.monotonic() - t:.2f}s")
            print(d)
        elif args.cmd == "hash":
            print(vm_image_hash())
        elif args.cmd == "boot":
            vm = ZfsVM.boot(args.name, disks=args.disks, disk_size=args.disk_size, ssh_port=args.port,
                            memory=args.memory, smp=args.smp, timeout=args.timeout,
                            forwards=args.forward, internet=args.internet, progress=say)
            print(json.dumps({k: v for k, v in vm.state.items() if k != "command"}, indent=2))
        elif args.cmd == "stop":
            try:
                vm = ZfsVM.load(args.name)
            except SandboxError:
                say(f"zfsvm: {args.name} is not running")
                return 0
            vm.stop(keep_files=args.keep_files)
            say(f"zfsvm: {args.name} stopped")
        elif args.cmd == "status":
            vm = ZfsVM.load(args.name)
            print(json.dumps({**vm.state, "running": vm.is_running()}, indent=2))
            return 0 if vm.is_running() else 3
        elif args.cmd == "ssh":
            vm = ZfsVM.load(args.name)
            command = args.command[1:] if args.command[:1] == ["--"] else args.command
            if not command:
                argv = vm.ssh_command()
                return subprocess.call([argv[0], "-t", *argv[1:]])
            # Like ssh itself: the words are joined by spaces and run by the guest's shell.
            return subprocess.call(vm.ssh_command() + [" ".join(command)])
    except SandboxError as exc:
        say(f"zfsvm: error: {exc}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
