"""Debian trixie base images for the sandbox, built with debootstrap and cached by content hash.

Each *kind* of lab host (``backup``, ``trainer``, ``slurm``) has an :class:`ImageSpec`: the
packages to install plus the container tweaks (systemd as init, journald to the console, empty
machine-id, masked units that cannot work in a container, trixie apt sources).  The image tag is
``opsctl/sandbox-<kind>:<hash12>`` where the hash covers every input of the build (suite, package
lists, masked units, files written, recipe version), so:

* an image with that tag already present -> reused, zero work;
* image deleted but ``<cache>/rootfs/<kind>-<hash12>.tar`` present -> ``docker import`` only;
* otherwise a cold build: debootstrap (``.deb`` files cached in ``<cache>/debs``) + apt in a
  chroot + tweaks, in a temporary directory, tagged atomically at the end.

Builds need root (debootstrap, chroot, mount) and network access to the default Debian mirror.

Example::

    from opsctl.sandbox.images import ensure_image
    tag = ensure_image("backup", progress=print)   # 'opsctl/sandbox-backup:3f2a...'
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import docker.errors

from opsctl.locks import file_lock
from opsctl.paths import cache_dir
from opsctl.progress import Progress, say
from opsctl.sandbox.errors import SandboxError
from opsctl.sandbox.rootfs import chroot_mounts, chroot_run, run_step, write_into
from opsctl.train.engine import apt_install, ensure_docker

#: Bump when the build steps below change in a way the hashed data does not capture.
RECIPE_VERSION = 2
SUITE = "trixie"
COMPONENTS = ("main", "contrib")
IMAGE_REPO = "opsctl/sandbox-{kind}"
LABEL = "opsctl.sandbox"
DEBIAN_KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"

#: Installed by debootstrap itself (minbase + these); everything else goes through apt.
BOOTSTRAP_INCLUDE = ("ca-certificates", "systemd", "systemd-sysv", "dbus")
#: In every image: init, Ansible's needs (python3, python3-apt, sudo) and basic tools.
COMMON_PACKAGES = (
    "systemd", "systemd-sysv", "dbus", "python3", "python3-apt", "sudo", "iproute2", "procps",
)

#: Units that fail or make no sense in a container; symlinked to /dev/null in every image.
MASKED_UNITS = (
    "systemd-udevd.service",
    "systemd-udevd-control.socket",
    "systemd-udevd-kernel.socket",
    "systemd-udev-trigger.service",
    "systemd-udev-settle.service",
    "systemd-hwdb-update.service",
    "getty@.service",
    "serial-getty@.service",
    "console-getty.service",
    "getty-static.service",
    "systemd-firstboot.service",
    "systemd-remount-fs.service",
    "systemd-modules-load.service",
    "systemd-sysctl.service",
    "systemd-binfmt.service",
    "proc-sys-fs-binfmt_misc.automount",
    "proc-sys-fs-binfmt_misc.mount",
    "sys-kernel-config.mount",
    "sys-kernel-debug.mount",
    "sys-kernel-tracing.mount",
    "sys-fs-fuse-connections.mount",
    "dev-hugepages.mount",
    "dev-mqueue.mount",
    "systemd-journald-audit.socket",
    "systemd-pcrphase.service",
    "systemd-pcrphase-sysinit.service",
    "apt-daily.timer",
    "apt-daily-upgrade.timer",
    "e2scrub_all.timer",
    "e2scrub_reap.service",
    "fstrim.timer",
    "tmp.mount",
)

#: Files written into every image (path -> content).  Part of the hash.
COMMON_FILES: dict[str, str] = {
    "/etc/systemd/journald.conf.d/10-opsctl-console.conf": (
        "# opsctl sandbox: journal to the container console (docker logs)\n"
        "[Journal]\nForwardToConsole=yes\nTTYPath=/dev/console\nMaxLevelConsole=info\n"
        "Storage=volatile\n"
    ),
    "/etc/dpkg/dpkg.cfg.d/10-opsctl-sandbox": "force-unsafe-io\n",
    "/etc/apt/apt.conf.d/10-opsctl-sandbox": (
        'APT::Install-Recommends "false";\nAPT::Install-Suggests "false";\n'
        'Acquire::Languages "none";\n'
    ),
}

#: Image config applied by ``docker import --change``.
#: (``docker import`` rejects STOPSIGNAL; :func:`~opsctl.sandbox.containers.start_host` sets it.)
IMAGE_CHANGES = (
    "ENV container=docker",
    'CMD ["/sbin/init"]',
)


#: LD_PRELOAD shim for the *sandbox* backup image only (see :data:`NOFILE_SHIM_DROPIN`).
#: Netatalk's cnid_metad raises RLIMIT_NOFILE to 65535 and exits on EPERM.  A container cannot
#: raise its hard limit above the Docker host's (``ulimit -Hn``, 20000 on some CI VMs) without
#: CAP_SYS_RESOURCE on the host, so there it would crash-loop.  The shim retries a refused raise
#: clamped to the current hard limit; when the raise is allowed it is a pure pass-through.
NOFILE_SHIM_PATH = "/usr/local/lib/opsctl-sandbox/nofile-clamp.so"
NOFILE_SHIM_SOURCE = r"""
/* opsctl sandbox only: clamp RLIMIT_NOFILE raises to the hard limit the container has.
 * Containers on hosts without CAP_SYS_RESOURCE cannot raise nofile above the Docker host's
 * hard limit; netatalk's cnid_metad exits when setrlimit(NOFILE, 65535) fails with EPERM.
 * On EPERM this retries with the request clamped to the current hard limit. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <sys/resource.h>

typedef int (*set64_fn)(__rlimit_resource_t, const struct rlimit64 *);
typedef int (*set_fn)(__rlimit_resource_t, const struct rlimit *);

static void note(unsigned long long cur, unsigned long long max) {
    static int said;
    if (!said) {
        said = 1;
        fprintf(stderr, "opsctl-sandbox: RLIMIT_NOFILE raise refused by host; clamped to %llu/%llu\n",
                cur, max);
    }
}

int setrlimit64(__rlimit_resource_t res, const struct rlimit64 *rl) {
    static set64_fn real;
    if (!real) real = (set64_fn)dlsym(RTLD_NEXT, "setrlimit64");
    int rc = real(res, rl);
    if (rc == 0 || errno != EPERM || res != RLIMIT_NOFILE ) return rc;
    struct rlimit64 have, want = *rl;
    if (getrlimit64(RLIMIT_NOFILE, &have) != 0) { errno = EPERM; return rc; }
    if (want.rlim_max == RLIM64_INFINITY || want.rlim_max > have.rlim_max) want.rlim_max = have.rlim_max;
    if (want.rlim_cur == RLIM64_INFINITY || want.rlim_cur > want.rlim_max) want.rlim_cur = want.rlim_max;
    rc = real(res, &want);
    if (rc == 0) note(want.rlim_cur, want.rlim_max);
    return rc;
}

int setrlimit(__rlimit_resource_t res, const struct rlimit *rl) {
    static set_fn real;
    if (!real) real = (set_fn)dlsym(RTLD_NEXT, "setrlimit");
    int rc = real(res, rl);
    if (rc == 0 || errno != EPERM || res != RLIMIT_NOFILE ) return rc;
    struct rlimit have, want = *rl;
    if (getrlimit(RLIMIT_NOFILE, &have) != 0) { errno = EPERM; return rc; }
    if (want.rlim_max == RLIM_INFINITY || want.rlim_max > have.rlim_max) want.rlim_max = have.rlim_max;
    if (want.rlim_cur == RLIM_INFINITY || want.rlim_cur > want.rlim_max) want.rlim_cur = want.rlim_max;
    rc = real(res, &want);
    if (rc == 0) note(want.rlim_cur, want.rlim_max);
    return rc;
}
"""
#: Scopes the shim to netatalk.service; a sandbox-only drop-in, production units are untouched.
NOFILE_SHIM_DROPIN = (
    "/etc/systemd/system/netatalk.service.d/50-opsctl-sandbox-nofile.conf",
    "# opsctl sandbox image only: cnid_metad needs nofile 65535, the Docker host may cap it lower\n"
    f"[Service]\nEnvironment=LD_PRELOAD={NOFILE_SHIM_PATH}\n",
)

#: Without /etc/slurm/slurm.conf, trixie's slurmd falls back to "configless" DNS SRV lookups and
#: retries until its start timeout (~90 s boot, then failed).  In the sandbox it is skipped until
#: a config exists, like slurmctld already is; remove this drop-in for a configless slurmd.
SLURMD_WAIT_FOR_CONF = (
    "/etc/systemd/system/slurmd.service.d/50-opsctl-sandbox-conf.conf",
    "# opsctl sandbox image: start slurmd only once slurm.conf is deployed\n"
    "[Unit]\nConditionPathExists=/etc/slurm/slurm.conf\n",
)


@dataclasses.dataclass(frozen=True)
class ImageSpec:
    """What goes into one kind of image.

    Attributes:
        kind: short name (``backup``), used in the tag ``opsctl/sandbox-<kind>:<hash12>``.
        packages: Debian packages installed with apt (on top of :data:`COMMON_PACKAGES`).
        optional_packages: installed only if trixie has them (e.g. ``netatalk-tests``).
        masked_units: extra units masked on top of :data:`MASKED_UNITS`.
        files: extra files written into the image (path -> content).
        nofile_shim: compile :data:`NOFILE_SHIM_SOURCE` into :data:`NOFILE_SHIM_PATH`.
    """

    kind: str
    packages: tuple[str, ...]
    optional_packages: tuple[str, ...] = ()
    masked_units: tuple[str, ...] = ()
    files: tuple[tuple[str, str], ...] = ()
    nofile_shim: bool = False


KINDS: dict[str, ImageSpec] = {
    "backup": ImageSpec(
        kind="backup",
        packages=(
            "samba", "smbclient", "netatalk", "netatalk-tools",
            "avahi-daemon", "avahi-utils", "libnss-mdns", "acl", "attr",
            # debootstrap/apt need these named explicitly for a consistent trixie netatalk set
            "perl-openssl-defaults", "dbus-user-session", "tracker-extract",
        ),
        optional_packages=("netatalk-tests",),
        files=(NOFILE_SHIM_DROPIN,),
        nofile_shim=True,
    ),
    # docker-cli: the trainer drives the machine's engine through the mounted socket (no network to apt from)
    "trainer": ImageSpec(kind="trainer", packages=("python3-venv", "docker-cli")),
    "slurm": ImageSpec(
        kind="slurm",
        packages=("slurmctld", "slurmd", "slurm-client", "munge"),
        files=(SLURMD_WAIT_FOR_CONF,),
    ),
}


def _spec(kind: str) -> ImageSpec:
    try:
        return KINDS[kind]
    except KeyError:
        raise SandboxError(
            f"unknown sandbox image kind {kind!r}", f"use one of: {', '.join(sorted(KINDS))}"
        ) from None


def _mirror_override() -> str | None:
    """``$OPSCTL_DEBIAN_MIRROR`` if set; otherwise debootstrap's default Debian mirror is used.

    With an override, trixie-security is only configured if ``$OPSCTL_DEBIAN_SECURITY_MIRROR``
    is also set (a local mirror often has no security archive).
    """
    return os.environ.get("OPSCTL_DEBIAN_MIRROR") or None


def _inputs(spec: ImageSpec) -> dict:
    inputs = {
        "recipe": RECIPE_VERSION,
        "suite": SUITE,
        "components": list(COMPONENTS),
        "bootstrap_include": list(BOOTSTRAP_INCLUDE),
        "packages": sorted(set(COMMON_PACKAGES) | set(spec.packages)),
        "optional_packages": sorted(spec.optional_packages),
        "masked_units": sorted(set(MASKED_UNITS) | set(spec.masked_units)),
        "files": sorted({**COMMON_FILES, **dict(spec.files)}.items()),
        "changes": list(IMAGE_CHANGES),
        "mirror": _mirror_override(),
        "nofile_shim": NOFILE_SHIM_SOURCE if spec.nofile_shim else None,
    }
    if os.environ.get("OPSCTL_DEBIAN_SECURITY_MIRROR"):
        inputs["security_mirror"] = os.environ["OPSCTL_DEBIAN_SECURITY_MIRROR"]
    return inputs


def image_inputs_hash(kind: str) -> str:
    """Content hash (sha256 hex) of everything that determines the image for ``kind``.

    Stable across runs and machines; changes whenever the suite, package lists, masked units,
    written files or :data:`RECIPE_VERSION` change.

    Args:
        kind: ``"backup"``, ``"trainer"`` or ``"slurm"`` (a key of :data:`KINDS`).

    Example::

        >>> image_inputs_hash("backup")[:12]
        '5c1e0d7f9a2b'
    """
    blob = json.dumps(_inputs(_spec(kind)), sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()


def image_tag(kind: str) -> str:
    """The tag ``opsctl/sandbox-<kind>:<hash12>`` that :func:`ensure_image` produces."""
    return f"{IMAGE_REPO.format(kind=kind)}:{image_inputs_hash(kind)[:12]}"


def _sources_from_debootstrap(root: Path) -> str:
    """Turn debootstrap's one-line sources.list into deb822 trixie sources (main contrib).

    The mirror URI is whatever debootstrap used (its default Debian mirror unless
    ``$OPSCTL_DEBIAN_MIRROR`` was given), so no mirror host is hard-coded here.
    """
    uri = _mirror_override()
    legacy = root / "etc/apt/sources.list"
    if not uri and legacy.exists():
        for line in legacy.read_text().splitlines():
            parts = line.split()
            if len(parts) >= 3 and parts[0] == "deb":
                uri = parts[1]
                break
    if not uri:
        raise SandboxError(
            "debootstrap wrote no apt source; cannot tell which Debian mirror it used",
            "set OPSCTL_DEBIAN_MIRROR to a Debian mirror URL",
        )
    security = os.environ.get("OPSCTL_DEBIAN_SECURITY_MIRROR") or None
    if security is None and not _mirror_override() and uri.endswith("/debian"):
        # debootstrap's default mirror also serves the security archive next to /debian
        security = uri[: -len("/debian")] + "/debian-security"
    text = (
        f"Types: deb\nURIs: {uri}\nSuites: {SUITE} {SUITE}-updates\nComponents: {' '.join(COMPONENTS)}\n"
        "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n"
    )
    if security:
        text += (
            f"\nTypes: deb\nURIs: {security}\nSuites: {SUITE}-security\n"
            f"Components: {' '.join(COMPONENTS)}\n"
            "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n"
        )
    return text


def _build_rootfs(spec: ImageSpec, root: Path, debs: Path, progress: Progress | None) -> None:
    """debootstrap + apt + container tweaks into ``root`` (an empty directory)."""
    for tool, pkg in (("debootstrap", "debootstrap"), ("chroot", "coreutils")):
        if not shutil.which(tool):
            apt_install([pkg], progress=progress)
    if not Path(DEBIAN_KEYRING).is_file():
        apt_install(["debian-archive-keyring"], progress=progress)
    mirror = _mirror_override()
    run_step(
        [
            "debootstrap", "--variant=minbase", f"--components={','.join(COMPONENTS)}",
            f"--include={','.join(BOOTSTRAP_INCLUDE)}", f"--cache-dir={debs}",
            f"--keyring={DEBIAN_KEYRING}",
            SUITE, str(root), *([mirror] if mirror else []),
        ],
        progress, what="debootstrap",
    )
    sources = _sources_from_debootstrap(root)
    # no services may start inside the chroot while packages are configured
    write_into(root, "/usr/sbin/policy-rc.d", "#!/bin/sh\nexit 101\n", 0o755)
    for path, content in {**COMMON_FILES, **dict(spec.files)}.items():
        write_into(root, path, content)
    (root / "etc/apt/sources.list").unlink(missing_ok=True)
    write_into(root, "/etc/apt/sources.list.d/debian.sources", sources)
    with chroot_mounts(root, debs):
        chroot_run(root, ["apt-get", "update", "-q"], progress, what="apt-get update")
        packages = sorted(set(COMMON_PACKAGES) | set(spec.packages))
        for opt in spec.optional_packages:
            res = subprocess.run(
                ["chroot", str(root), "apt-cache", "show", "--no-all-versions", opt],
                capture_output=True, text=True, check=False,
            )
            if res.returncode == 0 and res.stdout.strip():
                packages.append(opt)
            else:
                say(progress, f"optional package {opt} not in {SUITE}: skipped")
        chroot_run(
            root,
            ["apt-get", "install", "-y", "-q", "-o", "Dpkg::Options::=--force-confold", *packages],
            progress, what="apt-get install",
        )
        # no `apt-get clean`: the archives dir is the shared .deb cache, bind-mounted
    # container tweaks
    (root / "usr/sbin/policy-rc.d").unlink(missing_ok=True)
    for unit in sorted(set(MASKED_UNITS) | set(spec.masked_units)):
        link = root / "etc/systemd/system" / unit
        link.parent.mkdir(parents=True, exist_ok=True)
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to("/dev/null")
    if spec.nofile_shim:
        _compile_shim(root, progress)
    for cache_bin in (root / "var/cache/apt").glob("*.bin"):
        cache_bin.unlink()
    (root / "etc/machine-id").write_text("")
    (root / "var/lib/dbus/machine-id").unlink(missing_ok=True)
    (root / "etc/resolv.conf").unlink(missing_ok=True)
    (root / "etc/hostname").write_text("localhost\n")
    for d in ("tmp", "var/tmp", "run", "var/log/journal"):
        p = root / d
        if p.is_dir():
            for child in p.iterdir():
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child, ignore_errors=True)
                else:
                    child.unlink(missing_ok=True)


def _compile_shim(root: Path, progress: Progress | None) -> None:
    """Compile the nofile LD_PRELOAD shim with the build host's gcc into the rootfs."""
    if not shutil.which("gcc"):
        apt_install(["gcc", "libc6-dev"], progress=progress)
    target = root / NOFILE_SHIM_PATH.lstrip("/")
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="opsctl-shim-") as tmp:
        src = Path(tmp) / "nofile_clamp.c"
        src.write_text(NOFILE_SHIM_SOURCE)
        run_step(["gcc", "-O2", "-Wall", "-shared", "-fPIC", "-o", str(target), str(src), "-ldl"],
             progress, what="compiling the nofile shim")
    target.chmod(0o644)


def _tar_rootfs(root: Path, out: Path, progress: Progress | None) -> None:
    tmp = out.with_suffix(".tar.part")
    run_step(
        [
            "tar", "--numeric-owner", "--xattrs", "--xattrs-include=*", "--acls",
            "--exclude=./proc/*", "--exclude=./sys/*", "--exclude=./dev/*",
            "-C", str(root), "-cf", str(tmp), ".",
        ],
        progress, what="tar rootfs",
    )
    tmp.rename(out)


def _import(client, tarball: Path, kind: str, digest: str, progress: Progress | None) -> str:
    """``docker import`` the tarball under a temporary tag, then tag atomically and drop the temp."""
    repo = IMAGE_REPO.format(kind=kind)
    final = f"{repo}:{digest[:12]}"
    tmp_tag = f"building-{os.getpid()}-{int(time.time())}"
    changes = [*IMAGE_CHANGES, f"LABEL {LABEL}=1", f"LABEL {LABEL}.kind={kind}",
               f"LABEL {LABEL}.inputs-hash={digest}"]
    say(progress, f"importing {tarball.name} ({tarball.stat().st_size / 1e6:.0f} MB) as {final}")
    try:
        client.api.import_image_from_file(str(tarball), repository=repo, tag=tmp_tag, changes=changes)
        image = client.images.get(f"{repo}:{tmp_tag}")
        image.tag(repo, digest[:12])
    except docker.errors.DockerException as exc:
        raise SandboxError(f"docker import of {tarball} failed: {exc}",
                           f"delete {tarball} to force a rebuild, and check `docker info`") from exc
    finally:
        with contextlib.suppress(docker.errors.DockerException):
            client.images.remove(f"{repo}:{tmp_tag}", noprune=True)
    return final


def ensure_image(kind: str, *, progress: Progress | None = None, client=None) -> str:
    """Make sure the sandbox image for ``kind`` exists locally and return its tag.

    Reuses ``opsctl/sandbox-<kind>:<hash12>`` if present (no work at all); else imports the
    cached root-filesystem tarball ``<cache>/rootfs/<kind>-<hash12>.tar``; else builds it cold
    (debootstrap trixie + apt + container tweaks) in a temporary directory that is removed
    whatever happens.  Concurrent callers for the same kind serialise on a lock file.

    Args:
        kind: ``"backup"``, ``"trainer"`` or ``"slurm"``.
        progress: optional callback receiving human-readable progress lines (e.g. ``print``).
        client: a ``docker.DockerClient``; default :func:`~opsctl.train.engine.ensure_docker`.

    Returns:
        The image tag, e.g. ``"opsctl/sandbox-backup:5c1e0d7f9a2b"``.

    Raises:
        SandboxError: unknown kind, not root, debootstrap/apt/import failure (with output tail).

    Example::

        tag = ensure_image("trainer", progress=print)
        client.containers.run(tag, ...)
    """
    spec = _spec(kind)
    digest = image_inputs_hash(kind)
    tag = f"{IMAGE_REPO.format(kind=kind)}:{digest[:12]}"
    client = client or ensure_docker(progress=progress)
    if _has_image(client, tag):
        say(progress, f"image {tag} present: reusing")
        return tag
    cache = cache_dir(create=True)
    tarball = cache / "rootfs" / f"{kind}-{digest[:12]}.tar"
    with file_lock(cache / "locks" / f"image-{kind}.lock"):
        if _has_image(client, tag):  # built by someone else while we waited
            say(progress, f"image {tag} present: reusing")
            return tag
        if not tarball.exists():
            if os.geteuid() != 0:
                raise SandboxError(
                    f"building {tag} needs root (debootstrap, chroot, mount)",
                    "run the first `opsctl sandbox` as root, or build once with sudo",
                )
            start = time.monotonic()
            say(progress, f"building {tag} from debootstrap {SUITE} (cold build)")
            tarball.parent.mkdir(parents=True, exist_ok=True)
            debs = cache / "debs"
            debs.mkdir(parents=True, exist_ok=True)
            (debs / "partial").mkdir(exist_ok=True)
            workdir = Path(tempfile.mkdtemp(prefix=f"opsctl-image-{kind}-", dir=cache))
            try:
                root = workdir / "rootfs"
                root.mkdir()
                _build_rootfs(spec, root, debs, progress)
                _tar_rootfs(root, tarball, progress)
            finally:
                _cleanup_workdir(workdir)
                tarball.with_suffix(".tar.part").unlink(missing_ok=True)
            say(progress, f"root filesystem built in {time.monotonic() - start:.0f} s")
        else:
            say(progress, f"using cached root filesystem {tarball}")
        _import(client, tarball, kind, digest, progress)
        _prune_tarballs(tarball, kind, progress)
    say(progress, f"image {tag} ready")
    return tag


def _prune_tarballs(keep: Path, kind: str, progress: Progress | None) -> None:
    """Delete cached root filesystems of older inputs of ``kind`` (~0.7 GB each)."""
    for old in keep.parent.glob(f"{kind}-*.tar"):
        if old != keep and len(old.stem) == len(kind) + 13:
            say(progress, f"removing stale cached root filesystem {old.name}")
            old.unlink(missing_ok=True)


def _has_image(client, tag: str) -> bool:
    try:
        client.images.get(tag)
        return True
    except docker.errors.ImageNotFound:
        return False


def _cleanup_workdir(workdir: Path) -> None:
    """Remove a build directory, first unmounting anything still mounted below it."""
    try:
        mounts = Path("/proc/mounts").read_text().splitlines()
    except OSError:
        mounts = []
    below = [m.split()[1] for m in mounts if len(m.split()) > 1 and m.split()[1].startswith(str(workdir))]
    for mnt in sorted(below, key=len, reverse=True):
        subprocess.run(["umount", "-l", mnt], check=False, capture_output=True)
    shutil.rmtree(workdir, ignore_errors=True)


@dataclasses.dataclass(frozen=True)
class SandboxImage:
    """One sandbox container image as an image builder (:class:`opsctl.sandbox.builders.Builder`)."""

    kind: str

    @property
    def name(self) -> str:
        return f"sandbox-{self.kind}"

    def tag(self) -> str:
        return image_tag(self.kind)

    def inputs(self) -> dict:
        return _inputs(_spec(self.kind))

    def ensure(self, progress: Progress = None) -> str:
        return ensure_image(self.kind, progress=progress)
