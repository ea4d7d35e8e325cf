"""Role docker (docker_engine: external) on a sandbox trainer container: converge twice, verify.

The trainer container has no network, so instead of apt the test bind-mounts this machine's
static docker CLI and the engine's socket (docker_install_packages: false), which is how the
sandbox's trainer uses the machine's engine.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import testinfra
from _roletest import (
    cannot_run,
    container_fixture,
    container_inventory,
    converge_twice,
    make_site,
    molecule_playbook,
    run_playbook,
)

pytestmark = [pytest.mark.docker, pytest.mark.slow]

NAME = "rt-docker"
CONTAINER = f"opsctl-{NAME}"
SOCKET = "/var/run/docker.sock"


def docker_mounts() -> dict:
    cli = shutil.which("docker")
    if cli is None:
        cannot_run("no docker CLI on this machine to mount into the trainer container")
    return {SOCKET: {"bind": SOCKET, "mode": "rw"},
            str(Path(cli).resolve()): {"bind": "/usr/local/bin/docker", "mode": "ro"}}
container = container_fixture(NAME, "trainer", volumes=docker_mounts())


@pytest.fixture(scope="module")
def inventory(container, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("docker")
    return container_inventory(tmp / "inventory.yml", make_site(), NAME, "trainer",
                               docker_engine="external", docker_install_packages=False), tmp


def test_external_engine_converges_idempotently(inventory):
    inv, tmp = inventory
    first, second = converge_twice(molecule_playbook("docker"), inv, NAME, tmp)
    assert second.changed(NAME) == 0
    host = testinfra.get_host(f"docker://{CONTAINER}")
    assert host.file(SOCKET).is_socket
    assert not host.file("/etc/docker/daemon.json").exists  # external engine: no daemon config here
    version = host.run("docker version --format '{{.Server.Version}}'")
    assert version.rc == 0 and version.stdout.strip(), version.stderr


def test_molecule_verify_playbook_passes(inventory):
    run = run_playbook(molecule_playbook("docker", "verify.yml"), inventory[0])
    assert run.rc == 0, run.output[-4000:]


def test_missing_socket_is_reported(inventory):
    inv, _tmp = inventory
    run = run_playbook(molecule_playbook("docker"), inv, extra_vars={"docker_socket": "/run/nothing.sock"})
    assert run.rc != 0
    assert "is not a socket on this host" in run.output


def test_bad_engine_value_is_reported(inventory):
    run = run_playbook(molecule_playbook("docker"), inventory[0], extra_vars={"docker_engine": "podman"})
    assert run.rc != 0 and "docker_engine must be 'host' or 'external'" in run.output
