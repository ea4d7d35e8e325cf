"""The template context of one host: the same dict ``opsctl render`` passes to Jinja and
``opsctl provision`` puts into the Ansible inventory as the host variable ``opsctl``.
"""

from __future__ import annotations

from opsctl.site.models import Site
from opsctl.state.backup import backup_state


def context_for(site: Site, host: str) -> dict:
    """Everything the templates may read for ``host``, as plain JSON-able data.

    Keys: ``site`` (name), ``host`` (the host entry), ``roles``, and ``backup``, ``training``,
    ``slurm`` (their sections, or ``None`` when the host does not play that role), and ``state``: the
    backup server's desired state (:func:`opsctl.state.backup.backup_state`) on the backup host.
    """
    roles = site.roles_of(host)
    state = backup_state(site) if "backup" in roles else None
    return {
        "site": site.site,
        "host": site.host(host).model_dump(mode="json"),
        "roles": roles,
        "backup": site.backup.model_dump(mode="json") if "backup" in roles else None,
        "state": state.as_dict() if state else None,
        "training": site.training.model_dump(mode="json") if "training" in roles else None,
        "slurm": site.slurm.model_dump(mode="json")
        if site.slurm and ({"slurm_controller", "slurm_node"} & set(roles) or "training" in roles) else None,
    }
