"""Role docker (docker_engine: external) on a sandbox trainer container: converge twice, verify.

The trainer container has no network, so instead of apt the test bind-mounts this machine's
static docker CLI and the engine's socket (docker_install_packages: false), which is how the
sandbox's trainer uses the machine's engine.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import testinfra

from tests.roles._roletest import (
    container_fixture,
    container_inventory,
    converge_twice,
    make_site,
    molecule_playbook,
    run_playbook,
)
from tests.support.ci import need

pytestmark = [pytest.mark.docker, pytest.mark.slow]

NAME = "rt-docker"
CONTAINER = f"opsctl-{NAME}"
SOCKET = "/var/run/docker.sock"


def docker_mounts() -> dict:
    cli = shutil.which("docker")
    if cli is None:
        need("no docker CLI on this machine to mount into the trainer container")
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


# --------------------------------------------------------------------------- the hardened job container

#: Reads back, inside the container, what the rendered flags must have done (cgroup v1 or v2).
CONFINEMENT = r"""
import json, os
def first(*paths):
    for p in paths:
        try:
            return open(p).read().strip()
        except OSError:
            pass
status = dict(line.split(":\t", 1) for line in open("/proc/self/status").read().splitlines() if ":\t" in line)
def writable(path):
    try:
        with open(os.path.join(path, ".probe"), "w"):
            pass
        os.unlink(os.path.join(path, ".probe"))
        return True
    except OSError:
        return False
print(json.dumps({
    "uid": os.getuid(), "cap_eff": status["CapEff"].strip(), "cap_bnd": status["CapBnd"].strip(),
    "no_new_privs": status["NoNewPrivs"].strip(),
    "pids_max": first("/sys/fs/cgroup/pids.max", "/sys/fs/cgroup/pids/pids.max"),
    "memory_max": first("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"),
    "net": sorted(os.listdir("/sys/class/net")),
    "writable": {p: writable(p) for p in ("/", "/etc", "/opt", "/tmp", "/checkpoints", "/data")},
}))
"""


def _job_image(client) -> tuple[str, bool]:
    """The sandbox job image if it was built (charlm inside), else the Slurm sandbox image (torch
    in /opt/charlm, charlm mounted from this checkout), else skip."""
    tags = [t for img in client.images.list() for t in img.tags]
    for tag in tags:
        if tag.startswith("opsctl/charlm:"):
            return tag, True
    for tag in tags:
        if tag.startswith("opsctl/sandbox-slurm-bookworm:"):
            return tag, False
    need("no job image (opsctl/charlm) and no Slurm sandbox image to run the job container from")


def _rendered_docker_run(tmp_path, image: str) -> list[str]:
    """`docker run ...` exactly as the rendered docker-run.sh of the sandbox site has it (data and
    checkpoint folders in tmp_path, a tiny MLP job), as an argv."""
    import shlex

    from opsctl.render.engine import render_host
    from opsctl.site import load
    from tests.support.paths import NAMES, REPO

    site = load(REPO / "inventory" / "sandbox.yml").site
    t = site.training
    t.data_dir, t.checkpoint_dir, t.image = str(tmp_path / "data"), str(tmp_path / "ckpt"), image
    t.job.model, t.job.steps, t.job.time_budget, t.job.threads = "mlp", 40, None, 1
    (tmp_path / "data").mkdir()
    names = NAMES.read_text().splitlines()[:2000] if NAMES.is_file() else ["emma", "olivia", "ava", "isabella"] * 50
    (tmp_path / "data" / t.job.names_file).write_text("\n".join(names) + "\n")
    (tmp_path / "ckpt").mkdir()
    os.chown(tmp_path / "ckpt", t.user_uid, t.user_uid)
    script = {f.path: f.content for f in render_host(site, t.host)}["containers/docker-run.sh"]
    command = script[script.index("exec docker run"):].replace("\\\n", " ")
    argv = shlex.split(command)[1:]
    assert argv[-1] == "$@"
    argv[argv.index("--name") + 1] = f"opsctl-hardening-{os.getpid()}"
    return argv[:-1]


def test_rendered_job_container_is_confined(tmp_path):
    """The flags of docker-run.sh, run for real on this engine: no capabilities, no_new_privs, a
    read-only root (writable: /tmp and the checkpoint mount only, data read-only), the spec's pids
    and memory limits, and no network interface but lo (the sandbox site has network: false)."""
    import json
    import subprocess

    from opsctl.train.engine import ensure_docker

    image, _ = _job_image(ensure_docker())
    argv = _rendered_docker_run(tmp_path, image)
    for flag in ("--cap-drop", "--security-opt", "--read-only", "--tmpfs", "--memory", "--pids-limit"):
        assert flag in argv, flag
    at = argv.index(image)
    probe = [*argv[:at], "--entrypoint", "/opt/charlm/bin/python", image, "-c", CONFINEMENT]
    proc = subprocess.run(probe, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    seen = json.loads(proc.stdout)
    print(seen)
    assert seen["uid"] == 1000
    assert int(seen["cap_eff"], 16) == 0 and int(seen["cap_bnd"], 16) == 0
    assert seen["no_new_privs"] == "1"
    assert seen["pids_max"] == "4096"
    assert int(seen["memory_max"]) == 16 * 1024**3
    assert seen["net"] == ["lo"]
    assert seen["writable"] == {"/": False, "/etc": False, "/opt": False, "/tmp": True, "/checkpoints": True,
                                "/data": False}


def test_training_runs_in_the_hardened_container(tmp_path):
    """`charlm train` itself works under those flags: it trains, writes its checkpoints and report
    to the checkpoint mount (and nowhere else: the root is read-only)."""
    import json
    import subprocess

    from opsctl.train.engine import ensure_docker
    from tests.support.paths import REPO

    image, has_charlm = _job_image(ensure_docker())
    argv = _rendered_docker_run(tmp_path, image)
    at = argv.index(image)
    if not has_charlm:  # the Slurm image has torch but not charlm: mount this checkout's, read-only
        argv = [*argv[:at], "--entrypoint", "/opt/charlm/bin/python", "--env", "PYTHONPATH=/opt/charlm-src",
                "--mount", f"type=bind,source={REPO / 'ml'},target=/opt/charlm-src,readonly", image,
                "-m", "charlm", *argv[at + 1:]]
    proc = subprocess.run([*argv, "--no-notify", "--num-samples", "3"], capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads((tmp_path / "ckpt" / "mlp" / "report.json").read_text())
    assert report["status"] == "completed" and report["steps"] == 40
    assert (tmp_path / "ckpt" / "mlp" / "ckpt_last.pt").stat().st_uid == 1000
