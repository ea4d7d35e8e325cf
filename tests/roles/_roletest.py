"""Shared helpers of the role tests: throwaway inventories, ansible-playbook runs, recap parsing.

Every role test builds a site in Python, writes a small YAML inventory into ``tmp_path`` whose
hosts carry the one variable ``opsctl`` = :func:`opsctl.render.context.context_for` (exactly what
``opsctl provision`` puts there), runs the role's ``molecule/default/converge.yml`` twice with
``ansible-playbook`` (the second run must report ``changed=0``) and verifies with testinfra.

Outside CI a test skips when its sandbox (Docker engine, images, the ZFS VM) cannot run here; in
CI (``CI=true``) it fails instead, so a broken path cannot pass unnoticed.
"""

from __future__ import annotations

import copy
import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from opsctl.render.context import context_for
from opsctl.spec.loader import DEFAULT_SITE
from opsctl.spec.models import Site
from tests.support.ci import need
from tests.support.paths import REPO

ROLES = REPO / "roles"
#: Passwords used by the role tests (never real ones).
TEST_PASSWORDS = {"alice": "alice-Secret-1", "bob": "bob-Secret-2"}

_RECAP = re.compile(
    r"^(?P<host>\S+)\s*:\s*ok=(?P<ok>\d+)\s+changed=(?P<changed>\d+)\s+unreachable=(?P<unreachable>\d+)\s+"
    r"failed=(?P<failed>\d+)\s+skipped=(?P<skipped>\d+)\s+rescued=(?P<rescued>\d+)\s+ignored=(?P<ignored>\d+)",
    re.M)


def sandbox_site_data() -> dict:
    """The embedded default site (inventory/sandbox.yml) as plain data, to modify in a test."""
    return yaml.safe_load(DEFAULT_SITE.read_text())


def make_site(data: dict | None = None) -> Site:
    return Site.model_validate(copy.deepcopy(data) if data is not None else sandbox_site_data())


def docker_host_vars(container: str) -> dict:
    return {"ansible_connection": "community.docker.docker", "ansible_host": container,
            "ansible_python_interpreter": "/usr/bin/python3"}


#: The inventory group of each sandbox site host.
GROUPS = {"backup": "backup_servers", "trainer": "training_hosts"}


def write_inventory(path: Path, site: Site, hosts: dict[str, dict]) -> Path:
    """Write an inventory: ``hosts`` maps inventory name -> {"site_host", "groups", "vars"}.

    Each host gets ``opsctl = context_for(site, site_host)`` plus its ``vars``.
    """
    groups: dict[str, dict] = {}
    for name, spec in hosts.items():
        hostvars = {"opsctl": context_for(site, spec["site_host"]), **spec.get("vars", {})}
        for group in spec.get("groups", ["ungrouped"]):
            groups.setdefault(group, {"hosts": {}})["hosts"][name] = hostvars
    path.write_text(yaml.safe_dump({"all": {"children": groups}}, sort_keys=False))
    return path


def container_inventory(path: Path, site: Site, name: str, site_host: str, **hostvars) -> Path:
    """Inventory of the one sandbox container ``opsctl-<name>`` standing in for ``site_host``."""
    return write_inventory(path, site, {
        name: {"site_host": site_host, "groups": [GROUPS[site_host]],
               "vars": {**docker_host_vars(f"opsctl-{name}"), **hostvars}},
    })


@dataclass
class Run:
    rc: int
    output: str
    recap: dict[str, dict[str, int]]
    seconds: float

    def changed(self, host: str) -> int:
        return self.recap[host]["changed"]

    def failed(self, host: str) -> int:
        return self.recap[host]["failed"]


def ansible_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0",
               ANSIBLE_RETRY_FILES_ENABLED="0", ANSIBLE_HOST_KEY_CHECKING="0",
               ANSIBLE_LOCAL_TEMP="/tmp/opsctl-ansible-local", PYTHONUNBUFFERED="1")
    return env


def run_playbook(playbook: Path, inventory: Path, *, extra_vars: dict | None = None, check: bool = False,
                 diff: bool = False, timeout: float = 1200, log: Path | None = None) -> Run:
    """Run ``ansible-playbook`` from the repo root (so ansible.cfg's roles/filter paths apply)."""
    if shutil.which("ansible-playbook") is None:
        need("ansible-playbook is not installed (pip install ansible)")
    argv = ["ansible-playbook", "-i", str(inventory), str(playbook)]
    if extra_vars:
        import json

        argv += ["-e", json.dumps(extra_vars)]
    if check:
        argv.append("--check")
    if diff:
        argv.append("--diff")
    start = time.monotonic()
    proc = subprocess.run(argv, cwd=REPO, env=ansible_env(), capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)
    seconds = time.monotonic() - start
    output = proc.stdout + proc.stderr
    if log is not None:
        log.write_text(output)
    recap = {m["host"]: {k: int(v) for k, v in m.groupdict().items() if k != "host"}
             for m in _RECAP.finditer(output)}
    print(f"ansible-playbook {playbook.relative_to(REPO)}: rc={proc.returncode} in {seconds:.1f}s; "
          f"recap {recap}")
    return Run(proc.returncode, output, recap, seconds)


def converge_twice(playbook: Path, inventory: Path, host: str, tmp_path: Path, **kw) -> tuple[Run, Run]:
    """Converge, then converge again: the first must succeed, the second must change nothing."""
    first = run_playbook(playbook, inventory, log=tmp_path / "converge-1.log", **kw)
    assert first.rc == 0 and host in first.recap, f"first converge failed:\n{first.output[-6000:]}"
    second = run_playbook(playbook, inventory, log=tmp_path / "converge-2.log", **kw)
    assert second.rc == 0, f"second converge failed:\n{second.output[-6000:]}"
    changed_tasks = re.findall(r"^TASK \[([^\]]+)\].*?\n(?:changed|.*changed:)", second.output, re.M)
    assert second.changed(host) == 0, (
        f"second converge is not idempotent: changed={second.changed(host)} ({changed_tasks}):\n"
        f"{second.output[-6000:]}")
    return first, second


def molecule_playbook(role: str, name: str = "converge.yml") -> Path:
    return ROLES / role / "molecule" / "default" / name


def docker_ready():
    """A Docker client (starting dockerd when needed), or skip/fail."""
    try:
        from opsctl.sandbox.engine import ensure_docker

        return ensure_docker()
    except Exception as exc:  # noqa: BLE001 - any failure means: no sandbox here
        need(f"no Docker engine: {exc}")


def start_container(name: str, kind: str, **kw):
    """Start the sandbox host ``opsctl-<name>`` from image ``kind`` and wait for systemd."""
    from opsctl.sandbox.containers import start_host, stop_host, wait_running

    client = docker_ready()
    stop_host(name, client=client)
    try:
        container = start_host(name, kind, client=client, **kw)
    except Exception as exc:  # noqa: BLE001
        need(f"cannot start the {kind} sandbox container: {exc}")
    status = wait_running(container, timeout=240)
    print(f"opsctl-{name}: {status.state} after {status.seconds:.1f}s; failed units {status.failed_units}")
    return container


def container_fixture(name: str, kind: str, **kw):
    """A module-scoped fixture: the sandbox host ``opsctl-<name>`` from image ``kind`` (extra
    arguments go to ``start_host``, e.g. ``volumes``), removed when the module is done."""

    @pytest.fixture(scope="module")
    def container():
        from opsctl.sandbox.containers import stop_host

        c = start_container(name, kind, **kw)
        yield c
        stop_host(name)

    return container


def host_fixture(name: str):
    """A module-scoped ``host`` fixture: testinfra on ``opsctl-<name>`` once ``converged`` ran."""

    @pytest.fixture(scope="module")
    def host(converged):
        import testinfra

        return testinfra.get_host(f"docker://opsctl-{name}")

    return host


def converged_fixture(role: str, name: str, site_host: str, **hostvars):
    """A module-scoped ``converged`` fixture: the role's Molecule converge playbook run twice on
    the ``container`` fixture's host for the default site; returns site, inventory, both runs, tmp."""

    @pytest.fixture(scope="module")
    def converged(container, tmp_path_factory):
        tmp = tmp_path_factory.mktemp(role)
        site = make_site()
        inventory = container_inventory(tmp / "inventory.yml", site, name, site_host, **hostvars)
        first, second = converge_twice(molecule_playbook(role), inventory, name, tmp)
        return {"site": site, "inventory": inventory, "first": first, "second": second, "tmp": tmp}

    return converged
