"""playbooks/training_host.yml (roles docker + trainer) on a sandbox trainer container.

Converges twice (second changed=0) and verifies with testinfra that the job files are exactly the
files `opsctl render` produces, the data/checkpoint directories belong to the job's uid, the names
file and the ML source are in place, and the job's docker-run script reaches the engine.
"""

from __future__ import annotations

import pytest

from opsctl.render.engine import render_host
from tests.roles._roletest import (
    REPO,
    container_fixture,
    container_inventory,
    converge_twice,
    host_fixture,
    make_site,
)
from tests.roles.test_docker import docker_mounts

pytestmark = [pytest.mark.docker, pytest.mark.slow]

NAME = "rt-trainer"
JOB = "/opt/opsctl/job"
NAMES = "emma\nolivia\nava\nisabella\nsophia\n"
container = container_fixture(NAME, "trainer", volumes=docker_mounts())


@pytest.fixture(scope="module")
def converged(container, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("trainer")
    names = tmp / "names.txt"
    names.write_text(NAMES)
    site = make_site()
    inventory = container_inventory(tmp / "inventory.yml", site, NAME, "trainer", docker_engine="external",
                                    docker_install_packages=False, trainer_names_file=str(names))
    first, second = converge_twice(REPO / "playbooks" / "training_host.yml", inventory, NAME, tmp)
    return {"site": inventory.site, "first": first, "second": second}


host = host_fixture(NAME)


def test_second_converge_changes_nothing(converged):
    assert converged["first"].changed(NAME) > 0
    assert converged["second"].changed(NAME) == 0


def test_job_files_are_the_rendered_files(converged, host):
    rendered = {f.path: f for f in render_host(converged["site"], NAME)}
    for name in ("Dockerfile.cpu", "Dockerfile.cuda", "docker-run.sh", "compose.yml", "charlm.def",
                 "apptainer-run.sh"):
        art = rendered[f"containers/{name}"]
        remote = host.file(f"{JOB}/{name}")
        assert remote.content_string == art.content, name
        assert remote.mode == (0o755 if name.endswith(".sh") else 0o644), name
    assert host.file(f"{JOB}/wheels").is_directory  # the Dockerfiles COPY wheels/


def test_data_dirs_belong_to_the_job_uid(converged, host):
    training = converged["site"].training
    for path in (training.data_dir, training.checkpoint_dir):
        d = host.file(path)
        assert d.is_directory and d.uid == training.user_uid and d.gid == training.user_uid and d.mode == 0o750


def test_names_file_copied(converged, host):
    training = converged["site"].training
    f = host.file(f"{training.data_dir}/{training.job.names_file}")
    assert f.content_string == NAMES and f.uid == training.user_uid and f.mode == 0o640


def test_ml_source_copied_without_build_debris(host):
    assert host.file(f"{JOB}/ml/pyproject.toml").exists
    assert host.file(f"{JOB}/ml/charlm/train.py").content_string == (REPO / "ml/charlm/train.py").read_text()
    debris = host.run(f"find {JOB}/ml -name __pycache__ -o -name '*.egg-info' -o -name '*.pyc'").stdout
    assert debris.strip() == ""


def test_run_script_is_valid_and_engine_reachable(host):
    assert host.run(f"sh -n {JOB}/docker-run.sh").rc == 0
    assert host.run(f"sh -n {JOB}/apptainer-run.sh").rc == 0
    assert host.run("docker info --format '{{.ServerVersion}}'").rc == 0
