"""The sandbox Slurm cluster: a bookworm image with Slurm + munge + the charlm job environment,
and helpers that start/stop a controller and compute nodes on an internal Docker network.

Why bookworm (not the trixie ``slurm`` kind of :mod:`opsctl.sandbox.images`): the only offline
torch is the CPU wheel for Python 3.11, and bookworm ships Python 3.11 (with slurm-wlm 22.05).

The image (``opsctl/sandbox-slurm-bookworm:<hash12>``, cached by a hash of every input: package
list, unit tweaks, the wheel set and the charlm source) holds:

* debootstrap bookworm (minbase) + systemd + ``slurmctld slurmd slurm-client munge`` + python3
  (``python3-apt`` and ``sudo`` for Ansible);
* a venv ``/opt/charlm`` with torch 2.13.0 (CPU) from :func:`opsctl.train.image.wheel_dir`
  (``pip --no-index``); ``torchrun`` and ``charlm`` are linked into ``/usr/local/bin`` so a
  ``container: none`` job finds them on ``PATH``. charlm itself is not in the image (its source
  changes often): :func:`install_charlm` copies ``ml/`` to the shared directory and installs it
  into the venv of every node in seconds;
* no munge key and no slurm.conf: the ``slurm`` role distributes them (munge, slurmd and
  slurmctld start only once their file exists).

The cluster: ``docker network create --internal opsctl-slurm`` (no route out), one systemd
container per host (``opsctl-<name>``, hostname and DNS alias ``<name>``), the same systemd flags as
:func:`opsctl.sandbox.containers.start_host`, plus a host directory bind-mounted at the spec's
``shared_dir`` on every host (the cluster's shared storage).

Example::

    tag = ensure_slurm_image(progress=print)
    hosts = start_cluster(["slurmctl", "node1", "node2"], shared=Path("/tmp/shared"))
    ...
    stop_cluster(["slurmctl", "node1", "node2"])
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

from opsctl import ROOT
from opsctl.paths import cache_dir
from opsctl.progress import Progress, say
from opsctl.sandbox.errors import SandboxError
from opsctl.train.engine import apt_install, ensure_docker

REPO = "opsctl/sandbox-slurm-bookworm"
SUITE = "bookworm"
NETWORK = "opsctl-slurm"
LABEL = "opsctl.sandbox"
#: Bump when the build steps change in a way the hashed inputs do not capture.
RECIPE = 1
BOOTSTRAP_INCLUDE = ("ca-certificates", "systemd", "systemd-sysv", "dbus", "python3")
PACKAGES = ("slurmctld", "slurmd", "slurm-client", "munge", "python3-venv", "python3-apt", "sudo",
            "iproute2", "procps")
VENV = "/opt/charlm"
#: Daemons start only once the role has put their file in place (otherwise they fail at boot).
DROPINS = {
    "/etc/systemd/system/slurmd.service.d/50-opsctl-sandbox.conf":
        "# opsctl sandbox image: start once slurm.conf is deployed\n"
        "[Unit]\nConditionPathExists=/etc/slurm/slurm.conf\n",
    "/etc/systemd/system/slurmctld.service.d/50-opsctl-sandbox.conf":
        "# opsctl sandbox image: start once slurm.conf is deployed\n"
        "[Unit]\nConditionPathExists=/etc/slurm/slurm.conf\n",
    "/etc/systemd/system/munge.service.d/50-opsctl-sandbox.conf":
        "# opsctl sandbox image: start once the munge key is deployed\n"
        "[Unit]\nConditionPathExists=/etc/munge/munge.key\n",
}
ML_IGNORE = ("__pycache__", "*.pyc", "*.egg-info", "build", ".pytest_cache")


def image_inputs() -> dict:
    from opsctl.sandbox.images import COMMON_FILES, MASKED_UNITS

    return {"recipe": RECIPE, "suite": SUITE, "include": list(BOOTSTRAP_INCLUDE), "packages": sorted(PACKAGES),
            "masked": sorted(MASKED_UNITS), "files": sorted({**COMMON_FILES, **DROPINS}.items()),
            "torch": "2.13.0", "mirror": os.environ.get("OPSCTL_DEBIAN_MIRROR")}


def image_hash() -> str:
    return hashlib.sha256(json.dumps(image_inputs(), sort_keys=True).encode()).hexdigest()


def image_tag() -> str:
    return f"{REPO}:{image_hash()[:12]}"



def _build_rootfs(root: Path, progress: Progress | None) -> None:
    from opsctl.sandbox.images import COMMON_FILES, DEBIAN_KEYRING, MASKED_UNITS
    from opsctl.sandbox.rootfs import chroot_mounts, run_step, write_into
    from opsctl.train.wheels import wheel_dir

    if not shutil.which("debootstrap"):
        apt_install(["debootstrap"], progress=progress)
    debs = cache_dir() / "debs-bookworm"
    (debs / "partial").mkdir(parents=True, exist_ok=True)
    mirror = os.environ.get("OPSCTL_DEBIAN_MIRROR")
    keyring = [f"--keyring={DEBIAN_KEYRING}"] if Path(DEBIAN_KEYRING).is_file() else []
    run_step(["debootstrap", "--variant=minbase", f"--include={','.join(BOOTSTRAP_INCLUDE)}", f"--cache-dir={debs}",
          *keyring, SUITE, str(root), *([mirror] if mirror else [])], progress, what="debootstrap bookworm")
    write_into(root, "/usr/sbin/policy-rc.d", "#!/bin/sh\nexit 101\n", 0o755)
    for path, content in {**COMMON_FILES, **DROPINS}.items():
        write_into(root, path, content)
    wheels = wheel_dir(progress)
    (root / "tmp/wheels").mkdir(parents=True, exist_ok=True)
    with chroot_mounts(root, debs):
        subprocess.run(["mount", "--bind", str(wheels), str(root / "tmp/wheels")], check=True)
        try:
            run_step(["chroot", str(root), "apt-get", "update", "-q"], progress, what="apt-get update")
            run_step(["chroot", str(root), "apt-get", "install", "-y", "-q", "-o", "Dpkg::Options::=--force-confold",
                  *PACKAGES], progress, what="apt-get install")
            run_step(["chroot", str(root), "python3", "-m", "venv", VENV], progress, what="venv")
            run_step(["chroot", str(root), f"{VENV}/bin/pip", "install", "-q", "--no-index", "--find-links",
                  "/tmp/wheels", "torch==2.13.0", "numpy", "setuptools>=61"], progress, what="pip install torch")
        finally:
            subprocess.run(["umount", "-l", str(root / "tmp/wheels")], check=False)
    for tool in ("torchrun", "charlm"):  # charlm: see install_charlm
        link = root / "usr/local/bin" / tool
        link.unlink(missing_ok=True)
        link.symlink_to(f"{VENV}/bin/{tool}")
    (root / "usr/sbin/policy-rc.d").unlink(missing_ok=True)
    for unit in MASKED_UNITS:
        link = root / "etc/systemd/system" / unit
        link.parent.mkdir(parents=True, exist_ok=True)
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to("/dev/null")
    # the key must come from the role (one key per cluster), never from the image
    (root / "etc/munge/munge.key").unlink(missing_ok=True)
    for cache_bin in (root / "var/cache/apt").glob("*.bin"):
        cache_bin.unlink()
    (root / "etc/machine-id").write_text("")
    (root / "var/lib/dbus/machine-id").unlink(missing_ok=True)
    (root / "etc/resolv.conf").unlink(missing_ok=True)
    (root / "etc/hostname").write_text("localhost\n")
    for d in ("tmp", "var/tmp", "run"):
        for child in (root / d).iterdir() if (root / d).is_dir() else ():
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child, ignore_errors=True)
            else:
                child.unlink(missing_ok=True)


def ensure_slurm_image(progress: Progress | None = None, client=None) -> str:
    """Build (once; cached by :func:`image_hash`) and return the bookworm Slurm image tag."""
    import docker.errors

    from opsctl.locks import file_lock

    client = client or ensure_docker(progress=progress)
    tag = image_tag()
    with contextlib.suppress(docker.errors.ImageNotFound):
        client.images.get(tag)
        say(progress, f"image {tag} present: reusing")
        return tag
    with file_lock(cache_dir() / "locks" / "image-slurm-bookworm.lock"):
        with contextlib.suppress(docker.errors.ImageNotFound):
            client.images.get(tag)
            return tag
        if os.geteuid() != 0:
            raise SandboxError(f"building {tag} needs root (debootstrap, chroot, mount)", "run it as root once")
        start = time.monotonic()
        say(progress, f"building {tag} (debootstrap bookworm + slurm + torch venv)")
        with tempfile.TemporaryDirectory(prefix="opsctl-slurmimg-", dir=cache_dir(create=True)) as tmp:
            root = Path(tmp) / "rootfs"
            root.mkdir()
            try:
                _build_rootfs(root, progress)
            finally:
                mounts = [ln.split()[1] for ln in Path("/proc/mounts").read_text().splitlines()]
                for m in sorted((m for m in mounts if m.startswith(str(root))), reverse=True):
                    subprocess.run(["umount", "-l", m], check=False)
            tar = subprocess.Popen(["tar", "--numeric-owner", "-C", str(root), "-c", "."], stdout=subprocess.PIPE)
            imp = subprocess.run(["docker", "import", "-c", "ENV container=docker", "-c", 'CMD ["/sbin/init"]',
                                  "-c", f"LABEL {LABEL}.kind=slurm-bookworm", "-", tag],
                                 stdin=tar.stdout, capture_output=True, text=True)
            tar.wait()
            if imp.returncode != 0:
                raise SandboxError(f"docker import failed: {imp.stderr}", "see the dockerd log")
        say(progress, f"image {tag} built in {time.monotonic() - start:.0f} s")
    return tag


# --------------------------------------------------------------------------- cluster


def ensure_network(client, name: str = NETWORK):
    """The user-defined ``--internal`` network (created once): DNS between hosts, no way out."""
    import docker.errors

    try:
        net = client.networks.get(name)
    except docker.errors.NotFound:
        return client.networks.create(name, driver="bridge", internal=True, labels={LABEL: "1"})
    if not net.attrs.get("Internal"):
        raise SandboxError(f"docker network {name} exists but is not internal", f"remove it: docker network rm {name}")
    return net


def start_node(name: str, *, shared: Path, shared_dir: str, image: str, client=None,
               network: str = NETWORK, progress: Progress | None = None):
    """Start (or recreate) ``opsctl-<name>`` on ``network`` with ``shared`` mounted at ``shared_dir``."""
    import docker.errors

    from opsctl.sandbox.containers import container_name, default_ulimits

    client = client or ensure_docker(progress=progress)
    cname = container_name(name)
    with contextlib.suppress(docker.errors.NotFound):
        client.containers.get(cname).remove(force=True, v=True)
    say(progress, f"starting {cname} on {network}")
    container = client.containers.create(
        image, command=["/sbin/init"], name=cname, hostname=name,
        labels={LABEL: "1", f"{LABEL}.kind": "slurm-bookworm", f"{LABEL}.host": name},
        detach=True, tty=True, cap_add=["SYS_ADMIN"], security_opt=["seccomp=unconfined"], cgroupns="host",
        volumes={"/sys/fs/cgroup": {"bind": "/sys/fs/cgroup", "mode": "rw"},
                 str(shared): {"bind": shared_dir, "mode": "rw"}},
        tmpfs={"/run": "rw,nosuid,nodev,mode=755", "/run/lock": "rw,nosuid,nodev,noexec"},
        stop_signal="SIGRTMIN+3", ulimits=default_ulimits(),
        # `docker import` images carry no PATH; `docker exec` (sbatch, squeue...) and the jobs need one
        environment={"container": "docker", "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
        network=network, shm_size="256m")
    # the DNS alias <name> (containers are opsctl-<name>): slurm and torchrun resolve node names
    client.networks.get(network).disconnect(container)
    client.networks.get(network).connect(container, aliases=[name])
    container.start()
    container.reload()
    return container


def start_cluster(names: Iterable[str], *, shared: Path, shared_dir: str = "/shared", client=None,
                  progress: Progress | None = None, timeout: float = 240) -> dict:
    """Build/reuse the image, create the internal network and boot every host; returns name -> container."""
    from opsctl.sandbox.containers import wait_running

    client = client or ensure_docker(progress=progress)
    image = ensure_slurm_image(progress, client)
    ensure_network(client)
    shared.mkdir(parents=True, exist_ok=True)
    hosts = {n: start_node(n, shared=shared, shared_dir=shared_dir, image=image, client=client, progress=progress)
             for n in names}
    for name, c in hosts.items():
        st = wait_running(c, timeout=timeout)
        say(progress, f"{name}: {st.state} after {st.seconds:.0f} s (failed: {st.failed_units})")
    return hosts


def install_charlm(hosts: dict, *, shared: Path, shared_dir: str = "/shared") -> None:
    """Copy this checkout's ``ml/`` to ``<shared>/src/ml`` and install it into every host's venv."""
    from opsctl.sandbox.containers import exec as cexec

    src = shared / "src" / "ml"
    shutil.rmtree(src, ignore_errors=True)
    shutil.copytree(ROOT / "ml", src, ignore=shutil.ignore_patterns(*ML_IGNORE))
    for name, c in hosts.items():
        rc, out = cexec(c, f"cp -r {shared_dir}/src/ml /tmp/charlm-src && {VENV}/bin/pip install -q --no-deps "
                           f"--no-build-isolation --no-index /tmp/charlm-src && rm -rf /tmp/charlm-src",
                        environment={"PIP_FIND_LINKS": ""})
        if rc != 0:
            raise SandboxError(f"installing charlm on {name} failed: {out[-1500:]}", "see the pip output")


def stop_cluster(names: Iterable[str], *, client=None, remove_network: bool = True) -> None:
    """Stop and remove the hosts (and the network when no container uses it any more)."""
    import docker.errors

    from opsctl.sandbox.containers import stop_host

    client = client or ensure_docker()
    for name in names:
        stop_host(name, client=client, timeout=10)
    if remove_network:
        with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
            client.networks.get(NETWORK).remove()


class SlurmImage:
    """The Slurm node image as an image builder (:class:`opsctl.sandbox.builders.Builder`)."""

    name = "slurm-bookworm"

    def tag(self) -> str:
        return image_tag()

    def inputs(self) -> dict:
        return image_inputs()

    def ensure(self, progress: Progress = None) -> str:
        return ensure_slurm_image(progress)
