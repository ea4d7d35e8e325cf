"""opsctl.apply.inventory: the inventory ``opsctl provision`` hands to Ansible.

Groups follow the roles each host plays plus its own ``groups``; every host carries its
connection, the ``opsctl`` template context, the templates folder and the caller's extra vars;
``limit`` builds only the named hosts. Every string that comes from the site file is written under
YAML's ``!unsafe`` tag: Ansible's own loader (run in a subprocess, as Ansible must never be
imported into the pytest process) reads each of them as data it will never template, and a
``{{ ... }}`` that got past validation reaches a task literally.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys

import yaml

import opsctl.sandbox  # noqa: F401  (registers how sandbox hosts are reached, as the CLI does)
from opsctl import TEMPLATES
from opsctl.apply.inventory import (
    ROLE_GROUPS,
    SANDBOX_VARS,
    build_inventory,
    host_vars,
    inventory_yaml,
    write_inventory,
)
from opsctl.render.context import context_for
from opsctl.site.models import Site
from tests.support.ci import require
from tests.support.paths import DATA

#: Host variables opsctl adds itself (not from the site file): trusted by Ansible, as they should be.
OWN_VARS = {"opsctl_templates", *(k for v in SANDBOX_VARS.values() for k in v)}

#: Loads an inventory file exactly as Ansible's YAML inventory plugin does and prints every scalar
#: with its path, its type and whether Ansible would template it (``is_trusted_as_template``).
ANSIBLE_LOADER = r"""
import json, sys
from ansible.parsing.dataloader import DataLoader
from ansible.template import is_trusted_as_template

data = DataLoader().load_from_file(sys.argv[1], cache="none", trusted_as_template=True)
out = []

def walk(value, path):
    if isinstance(value, dict):
        for key, item in value.items():
            walk(item, path + [str(key)])
    elif isinstance(value, list):
        for index, item in enumerate(value):
            walk(item, path + [index])
    else:
        kind = next((t.__name__ for t in (bool, int, float, str, type(None)) if isinstance(value, t)),
                    type(value).__name__)  # the native type under Ansible's tagged subclasses
        native = {"bool": bool, "int": int, "float": float, "str": str}.get(kind)
        out.append({"path": path, "value": native(value) if native else value, "type": kind,
                    "trusted": is_trusted_as_template(value)})

walk(data, [])
print(json.dumps(out))
"""


def _site(mutate=None) -> Site:
    data = yaml.safe_load((DATA / "full_site.yml").read_text())
    if mutate:
        mutate(data)
    return Site.model_validate(data)


def _ansible_scalars(path) -> list[dict]:
    proc = subprocess.run([sys.executable, "-c", ANSIBLE_LOADER, str(path)], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def _scalars(value, path=()):
    """(path, value) of every scalar of the inventory as opsctl built it."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _scalars(item, (*path, str(key)))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _scalars(item, (*path, index))
    else:
        yield path, value


def test_groups_are_the_roles_each_host_plays_plus_its_own_groups():
    inv = build_inventory(_site())
    assert list(inv["all"]["hosts"]) == ["tm1", "gpu1", "slurmctl", "node1", "node2"]
    children = {group: list(members["hosts"]) for group, members in inv["all"]["children"].items()}
    assert children == {
        ROLE_GROUPS["backup"]: ["tm1"], "macs": ["tm1"], ROLE_GROUPS["training"]: ["gpu1"],
        ROLE_GROUPS["slurm_controller"]: ["slurmctl"], ROLE_GROUPS["slurm_node"]: ["node1", "node2"],
    }
    assert ROLE_GROUPS == {"backup": "backup_servers", "training": "training_hosts",
                           "slurm_controller": "slurm_controllers", "slurm_node": "slurm_nodes"}
    # host variables live once, under all.hosts; group entries only name their members
    assert all(v == {} for members in inv["all"]["children"].values() for v in members["hosts"].values())


def test_a_host_without_a_role_is_in_no_role_group():
    inv = build_inventory(_site(lambda d: d["hosts"].append({"name": "spare", "groups": ["later"]})))
    assert "spare" in inv["all"]["hosts"]
    assert [g for g, members in inv["all"]["children"].items() if "spare" in members["hosts"]] == ["later"]


def test_limit_builds_only_the_named_hosts():
    inv = build_inventory(_site(), ["gpu1", "node2"])
    assert list(inv["all"]["hosts"]) == ["gpu1", "node2"]
    assert {g: list(m["hosts"]) for g, m in inv["all"]["children"].items()} == {
        "training_hosts": ["gpu1"], "slurm_nodes": ["node2"]}


def test_host_vars_connection_context_templates_and_extra_vars():
    own = {"ansible_python_interpreter": "/usr/bin/python3.11", "ansible_timeout": 30}
    site = _site(lambda d: d["hosts"][1].update(user="deploy", vars=own))
    hv = host_vars(site, "gpu1", {"zfs_force_disks": True})
    assert (hv["ansible_host"], hv["ansible_port"], hv["ansible_user"]) == ("gpu1.lab.example", 2222, "deploy")
    assert hv["ansible_become"] is True  # not root: become for the tasks
    assert hv["ansible_host_key_checking"] is True  # a real host's key is checked
    assert hv["ansible_python_interpreter"] == "/usr/bin/python3.11" and hv["ansible_timeout"] == 30
    assert hv["opsctl"] == context_for(site, "gpu1")
    assert hv["opsctl_templates"] == str(TEMPLATES)
    assert hv["zfs_force_disks"] is True
    assert "docker_engine" not in hv  # production hosts never get the sandbox switches
    # the caller's extra vars win over the host's own
    assert host_vars(site, "gpu1", {"ansible_timeout": 5})["ansible_timeout"] == 5


def test_sandbox_container_gets_the_sandbox_switches():
    site = _site(lambda d: d["hosts"][1].update(sandbox="container", connection="docker"))
    hv = host_vars(site, "gpu1")
    assert hv["ansible_connection"] == "community.docker.docker"
    for key, value in SANDBOX_VARS["container"].items():
        assert hv[key] == value
    assert SANDBOX_VARS["container"] == {"docker_engine": "external"}


def test_written_inventory_is_owner_only_and_reads_back_equal(tmp_path):
    inv = build_inventory(_site())
    path = write_inventory(tmp_path / "inventory.yml", inv)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert path.read_text() == inventory_yaml(inv)
    assert "!unsafe" in path.read_text()


def test_ansible_reads_every_site_string_as_data(tmp_path):
    """Through Ansible's own loader: every string opsctl took from the site file is untrusted
    (never templated), every value keeps its type (``'on'`` stays a string), and only what opsctl
    adds itself is trusted."""
    site = _site(lambda d: d["hosts"][0].update(vars={"ansible_python_interpreter": "/usr/bin/python3"}))
    inv = build_inventory(site, extra={"opsctl_run": "provision"})
    path = write_inventory(tmp_path / "inventory.yml", inv)
    loaded = {tuple(s["path"]): s for s in _ansible_scalars(path)}
    mine = dict(_scalars(inv))
    assert set(loaded) == set(mine)

    strings = {p: v for p, v in mine.items() if isinstance(v, str)}
    assert len(strings) > 200  # the whole context of five hosts, not a handful
    for p, value in mine.items():
        got = loaded[p]
        kind = next(t.__name__ for t in (bool, int, float, str, type(None)) if isinstance(value, t))
        assert got["value"] == value and got["type"] == kind, (p, value, got)
    trusted = sorted({p[3] for p, v in strings.items() if loaded[p]["trusted"]})
    # all.hosts.<host>.<var>: only opsctl's own variables and the caller's extra vars may be templates
    assert set(trusted) <= OWN_VARS | {"opsctl_run"}, trusted
    untrusted_context = [p for p in strings if p[3] == "opsctl" and not loaded[p]["trusted"]]
    assert len(untrusted_context) == len([p for p in strings if p[3] == "opsctl"])
    # strings that read as YAML booleans/numbers/null stay strings
    on = [p for p, v in strings.items() if v in ("on", "off", "yes", "no", "")]
    assert on and all(loaded[p]["type"] == "str" for p in on)


def test_a_template_marker_past_validation_reaches_ansible_literally(tmp_path):
    """Validation refuses ``{{`` anywhere in a site file; if one got past it anyway (here: set on the
    validated model), Ansible prints it literally instead of evaluating it."""
    site = _site()
    site.backup.samba.workgroup = "{{ 6 * 7 }}"
    site.host("tm1").vars = {"ansible_python_interpreter": "{{ 'x' ~ 'y' }}"}
    path = write_inventory(tmp_path / "inventory.yml", build_inventory(site, ["tm1"]))
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_LOCALHOST_WARNING="0", ANSIBLE_INVENTORY_UNPARSED_WARNING="0")
    ansible = shutil.which("ansible", path=os.path.dirname(sys.executable)) or require("ansible")
    proc = subprocess.run([ansible, "-i", str(path), "tm1", "-o", "-m", "ansible.builtin.debug",
                           "-a", "msg={{ opsctl.backup.samba.workgroup }}|{{ ansible_python_interpreter }}"],
                          capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "{{ 6 * 7 }}|{{ 'x' ~ 'y' }}" in proc.stdout, proc.stdout
    assert "42" not in proc.stdout and "xy" not in proc.stdout
