"""Build the Ansible inventory from the validated spec.

Each host gets its connection variables (:mod:`opsctl.connections`), the single template
context ``opsctl`` (:func:`opsctl.render.context.context_for`) and is put in the groups of
the roles it plays. Example::

    inv = build_inventory(load().site)
    inv["all"]["children"]["backup_servers"]["hosts"]  # {"backup": {...}}
    write_inventory(Path("inventory.yml"), inv)

Every string that comes from the spec (the ``opsctl`` context, the host vars and the connection
settings built from the spec) is an
:class:`Unsafe` string, written with YAML's ``!unsafe`` tag: Ansible then treats it as data and
never evaluates Jinja in it, even if a ``{{ ... }}`` slipped past validation.
"""

from __future__ import annotations

import os
from pathlib import Path

import yaml

from opsctl import TEMPLATES
from opsctl.connections import connection_for
from opsctl.render.context import context_for
from opsctl.site.models import Site

ROLE_GROUPS = {"backup": "backup_servers", "training": "training_hosts", "slurm_controller": "slurm_controllers",
               "slurm_node": "slurm_nodes"}

#: Role switches for sandbox hosts (documented in each role's defaults/main.yml). Production
#: hosts never get these.
SANDBOX_VARS = {
    "vm": {},
    "container": {"docker_engine": "external"},
}


class Unsafe(str):
    """A string from the spec: Ansible must treat it as data (written under ``!unsafe``)."""

    __slots__ = ()


class UnsafeMap(dict):
    """A mapping from the spec, written as one ``!unsafe`` mapping (everything inside is data)."""


class UnsafeList(list):
    """A list from the spec, written as one ``!unsafe`` sequence."""


def unsafe(value):
    """``value`` with every string, mapping and list inside (recursively) marked unsafe."""
    if isinstance(value, str):
        return Unsafe(value)
    if isinstance(value, dict):
        return UnsafeMap({key: unsafe(item) for key, item in value.items()})
    if isinstance(value, (list, tuple)):
        return UnsafeList(unsafe(item) for item in value)
    return value


def host_vars(site: Site, name: str, extra: dict | None = None) -> dict:
    host = site.host(name)
    # Connection settings carry the spec's address and user: data too, like everything below.
    hv = dict(unsafe(connection_for(host).ansible))
    if host.sandbox:
        hv.update(SANDBOX_VARS[host.sandbox])
    hv.update(unsafe(host.vars))
    hv["opsctl"] = unsafe(context_for(site, name))
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


class _Dumper(yaml.SafeDumper):
    """YAML for Ansible: the outermost unsafe value of each variable gets the ``!unsafe`` tag.

    ansible-core marks everything constructed below an ``!unsafe`` node as untrusted (never a
    template) and, since 2.19, re-resolves the node's type from its text: ``!unsafe 'on'`` would
    load as ``True``. So containers carry the tag (their quoted strings stay strings) and a bare
    string is tagged only when it reads back as a string; one that reads as a bool, number or
    null (``'on'``, ``'12'``, ``''``) cannot hold a Jinja marker and is written quoted, untagged.
    """

    _unsafe_depth = 0

    def _inside(self, represent, value):
        self._unsafe_depth += 1
        try:
            return represent(value)
        finally:
            self._unsafe_depth -= 1

    def represent_unsafe_str(self, value: Unsafe):
        text = str(value)
        resolved = self.resolve(yaml.ScalarNode, text, (True, False))
        if self._unsafe_depth or resolved != "tag:yaml.org,2002:str":
            return self.represent_scalar("tag:yaml.org,2002:str", text, style="'")
        return self.represent_scalar("!unsafe", text, style="'")

    def represent_unsafe_map(self, value: UnsafeMap):
        node = self._inside(lambda v: self.represent_mapping("tag:yaml.org,2002:map", dict(v)), value)
        if not self._unsafe_depth:
            node.tag = "!unsafe"
        return node

    def represent_unsafe_list(self, value: UnsafeList):
        node = self._inside(lambda v: self.represent_sequence("tag:yaml.org,2002:seq", list(v)), value)
        if not self._unsafe_depth:
            node.tag = "!unsafe"
        return node


_Dumper.add_representer(Unsafe, _Dumper.represent_unsafe_str)
_Dumper.add_representer(UnsafeMap, _Dumper.represent_unsafe_map)
_Dumper.add_representer(UnsafeList, _Dumper.represent_unsafe_list)


def inventory_yaml(inventory: dict) -> str:
    return yaml.dump(inventory, Dumper=_Dumper, sort_keys=False, allow_unicode=False, width=1 << 16)


def write_inventory(path: Path, inventory: dict) -> Path:
    """Write the inventory as YAML readable by the owner only (``ansible-playbook -i path``)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(inventory_yaml(inventory))
    return path
