"""The sandbox: every host of a site marked ``sandbox:`` made real on this machine.

- ``sandbox: vm`` -> a qemu VM with real OpenZFS (:mod:`opsctl.sandbox.vm`), one blank data
  disk per ``/dev/disk/by-id/virtio-opsctl-disk-N`` the pool names;
- ``sandbox: container`` -> a Debian trixie systemd container (:mod:`opsctl.sandbox.containers`),
  ``--network none``, reached by Ansible through ``community.docker.docker``. A training host's
  container gets the machine's Docker socket (its ``docker`` CLI drives the local engine: the
  sandbox has no registry, images are built locally) and its data/checkpoint dirs bound at the
  same paths on both sides, so the job container's bind mounts resolve on the engine's host.

Example::

    up(load().site, progress=print)   # idempotent: running hosts are left alone
    down(load().site)
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from opsctl.progress import Progress
from opsctl.sandbox.errors import SandboxError
from opsctl.site.models import Site

_VM_DISK = re.compile(r"/dev/disk/by-id/virtio-opsctl-disk-(\d+)")
KIND_OF_ROLE = {"backup": "backup", "training": "trainer", "slurm_controller": "slurm", "slurm_node": "slurm"}


@dataclass
class HostState:
    name: str
    kind: str  # vm | container
    running: bool
    detail: str


def sandbox_hosts(site: Site) -> list[str]:
    return [h.name for h in site.hosts if h.sandbox]


def _vm_disks(site: Site, name: str) -> int:
    if not site.backup or site.backup.host != name:
        return 0
    numbers = []
    for vdev in site.backup.pool.vdevs:
        for disk in vdev.disks:
            match = _VM_DISK.fullmatch(disk)
            if not match:
                raise SandboxError(f"sandbox VM pool disk {disk!r} is not a sandbox disk",
                                   "name sandbox VM disks /dev/disk/by-id/virtio-opsctl-disk-0, -1, ...")
            numbers.append(int(match.group(1)))
    return max(numbers) + 1 if numbers else 0


def _container_kind(site: Site, name: str) -> str:
    roles = site.roles_of(name)
    return KIND_OF_ROLE[roles[0]] if roles else "trainer"


def _container_volumes(site: Site, name: str) -> dict:
    volumes: dict[str, dict] = {}
    if site.training and site.training.host == name:
        from pathlib import Path

        volumes["/var/run/docker.sock"] = {"bind": "/var/run/docker.sock", "mode": "rw"}
        for path in (site.training.data_dir, site.training.checkpoint_dir):
            Path(path).mkdir(parents=True, exist_ok=True)
            volumes[path] = {"bind": path, "mode": "rw"}
    return volumes


def _drop_if_stale(name: str, kind: str, volumes: dict, progress: Progress) -> None:
    """A container of that name from an older image or made for something else (other binds) is
    replaced, not reused."""
    from opsctl.sandbox.containers import container_name, list_hosts, stop_host
    from opsctl.sandbox.images import image_tag

    for container in list_hosts():
        if container.name != container_name(name):
            continue
        have = {m.get("Source"): m.get("Destination") for m in container.attrs.get("Mounts", [])}
        other_mounts = any(have.get(src) != spec["bind"] for src, spec in volumes.items())
        old_image = image_tag(kind) not in container.image.tags
        if other_mounts or old_image:
            if progress:
                progress(f"{container.name} runs {'an older image' if old_image else 'with other mounts'}: "
                         "recreating it")
            stop_host(name)


def up(site: Site, *, progress: Progress = None) -> list[HostState]:
    """Start every sandbox host of ``site`` (containers first: they boot in seconds)."""
    from opsctl.sandbox.containers import start_host, wait_running
    from opsctl.sandbox.vm import ZfsVM

    states = []
    hosts = [site.host(n) for n in sandbox_hosts(site)]
    for host in sorted(hosts, key=lambda h: h.sandbox != "container"):
        if host.sandbox == "container":
            _drop_if_stale(host.name, _container_kind(site, host.name), _container_volumes(site, host.name),
                           progress)
            container = start_host(host.name, _container_kind(site, host.name),
                                   extra_args=["systemd.mask=nmbd.service"],
                                   volumes=_container_volumes(site, host.name), progress=progress)
            status = wait_running(container)
            if not status.ok:
                raise SandboxError(f"{container.name} did not boot: {status}", "see `docker logs " + container.name
                                   + "`")
            states.append(HostState(host.name, "container", True, f"{container.name} ({status.state})"))
        else:
            disks = _vm_disks(site, host.name)
            # TCG on a busy 2-core machine can take minutes to reach ssh; the boot waits, never hangs.
            vm = ZfsVM.boot(host.name, disks=disks, disk_size="1G", timeout=900, progress=progress)
            states.append(HostState(host.name, "vm", True, f"qemu pid {vm.pid}, ssh 127.0.0.1:{vm.ssh_port}, "
                                                           f"{disks} data disk(s)"))
    return states


def down(site: Site, *, progress: Progress = None) -> list[str]:
    """Stop and remove every sandbox host of ``site``; returns the names stopped."""
    from opsctl.sandbox.containers import stop_host
    from opsctl.sandbox.vm import ZfsVM

    stopped = []
    for name in sandbox_hosts(site):
        host = site.host(name)
        if host.sandbox == "container":
            if stop_host(name):
                stopped.append(name)
        else:
            try:
                vm = ZfsVM.load(name)
            except (SandboxError, FileNotFoundError):
                continue
            if progress:
                progress(f"stopping VM {name}")
            vm.stop()
            stopped.append(name)
    return stopped


def status(site: Site) -> list[HostState]:
    from opsctl.sandbox.containers import container_name, list_hosts
    from opsctl.sandbox.vm import ZfsVM

    running = {c.name: c.status for c in list_hosts()}
    out = []
    for name in sandbox_hosts(site):
        if site.host(name).sandbox == "container":
            state = running.get(container_name(name))
            out.append(HostState(name, "container", state == "running", state or "absent"))
        else:
            try:
                vm = ZfsVM.load(name)
                alive = vm.is_running()
                out.append(HostState(name, "vm", alive, f"pid {vm.pid}, ssh port {vm.ssh_port}" if alive else "dead"))
            except (SandboxError, FileNotFoundError):
                out.append(HostState(name, "vm", False, "absent"))
    return out
