"""Which files each role gets, from which template, under what condition.

This table is the single list of rendered artifacts: ``opsctl render`` walks it, and the
Ansible roles use the same template paths (``templates/...``) for the files they install.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Artifact:
    role: str  # backup | training | slurm
    template: str  # path under templates/
    output: str  # path under the host's render folder
    when: Callable[[dict], bool] = lambda ctx: True
    extra: dict = field(default_factory=dict)  # extra template variables
    mode: int = 0o644


def _b(ctx: dict) -> dict:
    return ctx["backup"]


def _slurm_host(ctx: dict) -> bool:
    """The controller and the compute nodes (not a training host that only submits)."""
    return bool({"slurm_controller", "slurm_node"} & set(ctx["roles"]))


def _slurm_gpus(ctx: dict) -> bool:
    return _slurm_host(ctx) and any(n["gpus"] for n in ctx["slurm"]["nodes"])


def _netatalk(versions: tuple[int, ...]) -> Callable[[dict], bool]:
    return lambda ctx: _b(ctx)["netatalk"]["enabled"] and _b(ctx)["netatalk"]["version"] in versions


ARTIFACTS: list[Artifact] = [
    Artifact("backup", "zfs/plan.sh.j2", "zfs/plan.sh", mode=0o755),
    Artifact("backup", "samba/smb.conf.j2", "samba/smb.conf", lambda ctx: _b(ctx)["samba"]["enabled"]),
    Artifact("backup", "netatalk/afp.conf.j2", "netatalk/afp.conf", _netatalk((3, 4))),
    Artifact("backup", "netatalk/AppleVolumes.default.j2", "netatalk/AppleVolumes.default", _netatalk((2,))),
    Artifact("backup", "netatalk/afpd.conf.j2", "netatalk/afpd.conf", _netatalk((2,))),
    Artifact("backup", "netatalk/netatalk.default.j2", "netatalk/default-netatalk", _netatalk((2,))),
    Artifact("backup", "avahi/smb.service.j2", "avahi/services/smb.service", lambda ctx: _b(ctx)["advertise_smb"]),
    Artifact("backup", "avahi/afpd.service.j2", "avahi/services/afpd.service", lambda ctx: _b(ctx)["advertise_afp"]),
    Artifact("backup", "avahi/adisk.service.j2", "avahi/services/adisk.service",
             lambda ctx: _b(ctx)["avahi"]["enabled"] and bool(_b(ctx)["time_machine_shares"])),
    Artifact("backup", "avahi/device-info.service.j2", "avahi/services/device-info.service",
             lambda ctx: _b(ctx)["avahi"]["enabled"]),
    Artifact("backup", "avahi/nsswitch-hosts.j2", "avahi/nsswitch.hosts", lambda ctx: _b(ctx)["avahi"]["enabled"]),
    Artifact("backup", "containers/backup-compose.yml.j2", "containers/backup-compose.yml"),
    Artifact("training", "containers/Dockerfile.j2", "containers/Dockerfile.cpu", extra={"variant": "cpu"}),
    Artifact("training", "containers/Dockerfile.j2", "containers/Dockerfile.cuda", extra={"variant": "cuda"}),
    Artifact("training", "containers/docker-run.sh.j2", "containers/docker-run.sh", mode=0o755),
    Artifact("training", "containers/compose.yml.j2", "containers/compose.yml"),
    Artifact("training", "containers/charlm.def.j2", "containers/charlm.def"),
    Artifact("training", "containers/apptainer-run.sh.j2", "containers/apptainer-run.sh", mode=0o755),
    Artifact("training", "slurm/job.sbatch.j2", "slurm/job.sbatch", lambda ctx: ctx["slurm"] is not None,
             mode=0o755),
    Artifact("slurm", "slurm/slurm.conf.j2", "slurm/slurm.conf", _slurm_host),
    Artifact("slurm", "slurm/cgroup.conf.j2", "slurm/cgroup.conf", _slurm_host),
    Artifact("slurm", "slurm/gres.conf.j2", "slurm/gres.conf", _slurm_gpus),
]
