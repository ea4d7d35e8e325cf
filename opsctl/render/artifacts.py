"""Which files each host gets, from which template, under what condition.

:func:`artifacts_for` is the single list of rendered files; ``opsctl render`` walks it, and the
Ansible roles use the same template paths (``templates/...``) for the files they install. Which of
the backup server's configuration files exist is not decided here: its desired state plans them
(:attr:`opsctl.state.backup.BackupState.files`), and the roles install exactly those files.
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


def _slurm_host(ctx: dict) -> bool:
    """The controller and the compute nodes (not a training host that only submits)."""
    return bool({"slurm_controller", "slurm_node"} & set(ctx["roles"]))


def _slurm_gpus(ctx: dict) -> bool:
    return _slurm_host(ctx) and any(n["gpus"] for n in ctx["slurm"]["nodes"])


ARTIFACTS: list[Artifact] = [
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


def artifacts_for(ctx: dict) -> list[Artifact]:
    """The files of the host whose template context is ``ctx``: the backup server's configuration
    files exactly as its desired state plans them (``ctx["state"]["files"]``, the list the roles
    install), then every entry of :data:`ARTIFACTS` whose role the host plays and whose condition holds."""
    planned = [Artifact("backup", f["template"], f["path"], mode=0o755 if f["path"].endswith(".sh") else 0o644)
               for f in (ctx["state"] or {}).get("files", [])]
    return planned + [a for a in ARTIFACTS if ctx.get(a.role) is not None and a.when(ctx)]
