"""Shared helpers of the role tests: a site whose host is a sandbox container or the session VM,
applied through opsctl's own apply path.

Every role test builds a site in Python and names the host the role runs on after the test's
sandbox (:func:`target_site`: ``connection: docker`` to the container ``opsctl-<name>``, or
``sandbox: vm`` for the session VM aliased under that name). :func:`run_playbook` then runs the
role's ``molecule/default/converge.yml`` (or a playbook of ``playbooks/``) with
:func:`opsctl.apply.runner.run_playbook`, which writes the inventory with
:mod:`opsctl.apply.inventory` (groups, host vars, the ``opsctl`` context, ``!unsafe`` tagging) and
runs ``ansible-playbook`` with opsctl's events callback, exactly as ``opsctl provision`` does.
:func:`converge_twice` checks that the second run reports ``changed=0``; testinfra verifies.

Outside CI a test skips when its sandbox (Docker engine, images, the ZFS VM) cannot run here; in
CI (``CI=true``) it fails instead, so a broken path cannot pass unnoticed.
"""

from __future__ import annotations

import copy
import json
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

import opsctl.sandbox  # noqa: F401  (registers how sandbox hosts are reached, as the CLI does)
from opsctl.apply import inventory as opsctl_inventory
from opsctl.apply import runner
from opsctl.render.context import context_for
from opsctl.site.loader import DEFAULT_SITE
from opsctl.site.models import Site
from tests.support.ci import need
from tests.support.paths import REPO

ROLES = REPO / "roles"
#: Passwords used by the role tests (never real ones).
TEST_PASSWORDS = {"alice": "alice-Secret-1", "bob": "bob-Secret-2"}
#: Variables ``opsctl provision`` passes as secrets (a 0600 file of their own), not as extra vars.
SECRET_VARS = ("samba_passwords",)


def sandbox_site_data() -> dict:
    """The embedded default site (inventory/sandbox.yml) as plain data, to modify in a test."""
    return yaml.safe_load(DEFAULT_SITE.read_text())


def make_site(data: dict | None = None) -> Site:
    return Site.model_validate(copy.deepcopy(data) if data is not None else sandbox_site_data())


def target_site(site: Site | dict, site_host: str, name: str, *, container: bool = True) -> Site:
    """``site`` with its host ``site_host`` renamed to ``name`` everywhere the site names it, reached
    as the sandbox container ``opsctl-<name>`` (``connection: docker``, a product connection) or,
    with ``container=False``, as the sandbox VM called ``name`` (``sandbox: vm``)."""
    data = copy.deepcopy(site if isinstance(site, dict) else site.model_dump(mode="json", exclude_unset=True,
                                                                            exclude_computed_fields=True))
    hosts = [h for h in data["hosts"] if h["name"] == site_host]
    assert hosts, f"the site has no host {site_host!r}"
    host = {k: v for k, v in hosts[0].items() if k not in ("sandbox", "connection", "address", "port", "user")}
    host["name"] = name
    host.update({"connection": "docker", "address": f"opsctl-{name}"} if container else {"sandbox": "vm"})
    data["hosts"] = [host if h["name"] == site_host else h for h in data["hosts"]]
    for section in ("backup", "training"):
        if (data.get(section) or {}).get("host") == site_host:
            data[section]["host"] = name
    slurm = data.get("slurm") or {}
    if slurm.get("controller") == site_host:
        slurm["controller"] = name
    for node in slurm.get("nodes", []):
        if node.get("name") == site_host:
            node["name"] = name
    return Site.model_validate(data)


@dataclass
class Target:
    """Where a role test applies: the site, its host ``host`` (the sandbox), the variables the test
    adds on the command line (role switches; ``-e`` like ``opsctl provision``'s extra vars) and its
    secrets, and a copy of the inventory opsctl builds for it (``inventory``, for reading)."""

    site: Site
    host: str
    inventory: Path
    extra_vars: dict = field(default_factory=dict)
    secret_vars: dict = field(default_factory=dict)


def make_target(path: Path, site: Site, host: str, **variables) -> Target:
    """A :class:`Target` for ``host`` of ``site``; ``variables`` named in :data:`SECRET_VARS` go as secrets."""
    secret = {k: v for k, v in variables.items() if k in SECRET_VARS}
    extra = {k: v for k, v in variables.items() if k not in SECRET_VARS}
    opsctl_inventory.write_inventory(path, opsctl_inventory.build_inventory(site, [host]))
    return Target(site, host, path, extra, secret)


def container_inventory(path: Path, site: Site, name: str, site_host: str, **variables) -> Target:
    """The target for the sandbox container ``opsctl-<name>`` standing in for ``site_host``."""
    return make_target(path, target_site(site, site_host, name), name, **variables)


def vm_inventory(path: Path, vm, data: dict, name: str, *, mutate: Callable[[dict], None] | None = None,
                 **variables) -> Target:
    """The target for the session VM standing in for the site's backup host, under the host name
    ``name`` (:func:`tests.support.vm.alias_vm`). ``mutate(context)`` changes the ``opsctl`` context
    the way validation would refuse (given with ``-e``, which wins over the inventory), to prove a
    module refuses it too."""
    from tests.support.vm import alias_vm

    alias_vm(vm, name)
    site = target_site(data, data["backup"]["host"], name, container=False)
    if mutate:
        context = json.loads(json.dumps(context_for(site, name)))
        mutate(context)
        variables["opsctl"] = context
    return make_target(path, site, name, **variables)


@dataclass
class Run:
    rc: int
    output: str
    recap: dict[str, dict[str, int]]
    seconds: float
    changes: list[str] = field(default_factory=list)  # "task (host)" of every changed result

    def changed(self, host: str) -> int:
        return self.recap[host]["changed"]

    def failed(self, host: str) -> int:
        return self.recap[host]["failures"]


def _output(summary: runner.RunSummary, events: list[dict]) -> str:
    """What the run printed: opsctl's event lines, then each failure's message and each diff as text."""
    lines = [json.dumps(e, default=str) for e in events] + summary.log
    for event in events:
        if event.get("msg"):
            lines.append(f"{event['status']}: [{event['host']}] {event['task']}: {event['msg']}")
        for diff in _as_list(event.get("diff")):
            lines += [str(diff.get(k, "")) for k in ("before", "after") if isinstance(diff, dict)]
        lines += [f"warning: [{event['host']}] {w}" for w in event.get("warnings", [])]
    return "\n".join(lines) + "\n"


def _as_list(value) -> list:
    return value if isinstance(value, list) else [] if value is None else [value]


def run_playbook(playbook: Path, target: Target, *, extra_vars: dict | None = None, check: bool = False,
                 diff: bool = False, log: Path | None = None) -> Run:
    """Run ``playbook`` on ``target`` through :func:`opsctl.apply.runner.run_playbook`."""
    if shutil.which("ansible-playbook", path=str(Path(sys.executable).parent)) is None \
            and shutil.which("ansible-playbook") is None:
        need("ansible-playbook is not installed (pip install ansible)")
    events: list[dict] = []
    start = time.monotonic()
    summary = runner.run_playbook(target.site, str(playbook), limit=[target.host], check=check, diff=diff,
                                  extra_vars={**target.extra_vars, **(extra_vars or {})} or None,
                                  secret_vars=target.secret_vars or None, on_event=events.append)
    seconds = time.monotonic() - start
    output = _output(summary, events)
    if log is not None:
        log.write_text(output)
    changes = [f"{e['task']} ({e['host']})" for e in summary.changes]
    name = playbook.relative_to(REPO) if playbook.is_relative_to(REPO) else playbook
    print(f"ansible-playbook {name}: rc={summary.rc} in {seconds:.1f}s; recap {summary.hosts}")
    return Run(summary.rc, output, summary.hosts, seconds, changes)


def converge_twice(playbook: Path, target: Target, host: str, tmp_path: Path, **kw) -> tuple[Run, Run]:
    """Converge, then converge again: the first must succeed, the second must change nothing."""
    first = run_playbook(playbook, target, log=tmp_path / "converge-1.log", **kw)
    assert first.rc == 0 and host in first.recap, f"first converge failed:\n{first.output[-6000:]}"
    second = run_playbook(playbook, target, log=tmp_path / "converge-2.log", **kw)
    assert second.rc == 0, f"second converge failed:\n{second.output[-6000:]}"
    assert second.changed(host) == 0, (
        f"second converge is not idempotent: changed={second.changed(host)} ({second.changes}):\n"
        f"{second.output[-6000:]}")
    return first, second


def molecule_playbook(role: str, name: str = "converge.yml") -> Path:
    return ROLES / role / "molecule" / "default" / name


def docker_ready():
    """A Docker client (starting dockerd when needed), or skip/fail."""
    try:
        from opsctl.train.engine import ensure_docker

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
    the ``container`` fixture's host, as the default site's ``site_host`` renamed ``name``; returns
    that site, the target (``inventory``), both runs and tmp."""

    @pytest.fixture(scope="module")
    def converged(container, tmp_path_factory):
        tmp = tmp_path_factory.mktemp(role)
        inventory = container_inventory(tmp / "inventory.yml", make_site(), name, site_host, **hostvars)
        first, second = converge_twice(molecule_playbook(role), inventory, name, tmp)
        return {"site": inventory.site, "inventory": inventory, "first": first, "second": second, "tmp": tmp}

    return converged
