"""Build the Ansible inventory from the validated spec.

Each host gets its connection variables (:mod:`opsctl.connections`), the single template
context ``opsctl`` (:func:`opsctl.render.context.context_for`) and is put in the groups of
the roles it plays. Example::

    inv = build_inventory(load().site)
    inv["all"]["children"]["backup_servers"]["hosts"]  # {"backup": {...}}
"""

from __future__ import annotations

from opsctl import TEMPLATES
from opsctl.connections import connection_for
from opsctl.render.context import context_for
from opsctl.spec.models import Site

ROLE_GROUPS = {"backup": "backup_servers", "training": "training_hosts", "slurm_controller": "slurm_controllers",
               "slurm_node": "slurm_nodes"}

#: Role switches for sandbox hosts (documented in each role's defaults/main.yml). Production
#: hosts never get these.
SANDBOX_VARS = {
    "vm": {},
    "container": {"docker_engine": "external"},
}


def host_vars(site: Site, name: str, extra: dict | None = None) -> dict:
    host = site.host(name)
    hv = dict(connection_for(host).ansible)
    if host.sandbox:
        hv.update(SANDBOX_VARS[host.sandbox])
    hv.update(host.vars)
    hv["opsctl"] = context_for(site, name)
    hv["opsctl_templates"] = str(TEMPLATES)
    hv.update(extra or {})
    return hv


def build_inventory(site: Site, hosts: list[str] | None = None, extra: dict | None = None) -> dict:
    """The inventory as a YAML-able dict (``all: {hosts, children}``)."""
    names = hosts or [h.name for h in site.hosts]
    children: dict[str, dict] = {}
    all_hosts: dict[str, dict] = {}
    for name in names:
        all_hosts[name] = host_vars(site, name, extra)
        groups = [ROLE_GROUPS[r] for r in site.roles_of(name)] + list(site.host(name).groups)
        for group in groups:
            children.setdefault(group, {"hosts": {}})["hosts"][name] = {}
    return {"all": {"hosts": all_hosts, "children": children}}
