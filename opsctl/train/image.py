"""Build and ship the job image.

Example::

    tag = build_image(site, progress=print)   # 'opsctl/charlm:latest'
    ship_image(site, tag)                      # over ssh; no-op when the host uses this engine
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from opsctl import ROOT
from opsctl.errors import HostUnreachable
from opsctl.progress import Progress
from opsctl.render.engine import render_host
from opsctl.site.models import Site
from opsctl.train.wheels import wheel_dir

ML_SOURCE = ROOT / "ml"
_IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "build", ".pytest_cache")


def build_context(site: Site, dest: Path, progress: Progress = None) -> Path:
    """Write Dockerfile + ml/ + wheels/ into ``dest``; returns the Dockerfile path."""
    t = site.training
    variant = "cuda" if t.use_gpu else "cpu"
    files = {f.path: f.content for f in render_host(site, t.host)}
    dockerfile = dest / "Dockerfile"
    dockerfile.write_text(files[f"containers/Dockerfile.{variant}"])
    shutil.copytree(ML_SOURCE, dest / "ml", ignore=_IGNORE)
    wheels = dest / "wheels"
    wheels.mkdir()
    if t.offline_build:
        for wheel in wheel_dir(progress).glob("*.whl"):
            try:
                (wheels / wheel.name).hardlink_to(wheel)
            except OSError:
                shutil.copy2(wheel, wheels / wheel.name)
    return dockerfile


def build_image(site: Site, progress: Progress = None) -> str:
    """Build ``training.image`` with this machine's Docker engine; returns the tag."""
    from opsctl.train.engine import ensure_docker
    from opsctl.train.jobbase import TAG as JOBBASE
    from opsctl.train.jobbase import ensure_jobbase

    t = site.training
    client = ensure_docker(progress=progress)
    if t.base_images["cpu"] == JOBBASE and not t.use_gpu:
        ensure_jobbase(progress)
    with tempfile.TemporaryDirectory(prefix="opsctl-job-") as tmp:
        build_context(site, Path(tmp), progress)
        cmd = ["docker", "build", "-t", t.image, "-f", "Dockerfile"]
        if t.offline_build:
            cmd += ["--network", "none"]
        proc = subprocess.Popen([*cmd, "."], cwd=tmp, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                env={"DOCKER_BUILDKIT": "0", "PATH": "/usr/local/bin:/usr/bin:/bin"})
        assert proc.stdout is not None
        tail: list[str] = []
        for line in proc.stdout:
            tail = (tail + [line.rstrip()])[-40:]
            if progress and line.startswith("Step "):
                progress(line.strip())
        if proc.wait() != 0:
            raise HostUnreachable("docker build of the job image failed:\n" + "\n".join(tail),
                               "read the build output above")
    client.images.get(t.image)
    return t.image


def ship_image(site: Site, tag: str, progress: Progress = None) -> bool:
    """Copy the image to the training host's Docker engine: ``docker save`` here, streamed over the
    host's ssh connection (Fabric, its key checked against opsctl's known_hosts) into ``docker load``.

    Returns False (nothing to do) when the host uses this machine's engine: the sandbox and local
    hosts, or a host whose engine answers with this engine's ID.

    Raises:
        HostUnreachable: the host's Docker does not answer, or ``docker load`` failed there.
    """
    from opsctl.connections import connection_for
    from opsctl.connections.ssh import SshConnection
    from opsctl.train.engine import ensure_docker

    host = site.host(site.training.host)
    if host.sandbox or host.connection != "ssh":
        return False
    conn = connection_for(host)
    assert isinstance(conn, SshConnection)
    local = ensure_docker()
    res = conn.run_stdin("docker info --format '{{.ID}}'", "", timeout=120)
    if res.returncode != 0:
        raise HostUnreachable(f"Docker on {host.name} does not answer: {(res.stderr or res.stdout).strip()[-300:]}",
                              f"provision it (`opsctl provision --limit {host.name}`)")
    if res.stdout.strip() == local.info()["ID"]:
        return False
    if progress:
        progress(f"shipping {tag} to {host.name}")
    res = conn.run_stream("docker load", local.images.get(tag).save(named=True), timeout=None)
    if res.returncode != 0:
        said = (res.stderr or res.stdout).strip()[-300:]
        raise HostUnreachable(f"docker load of {tag} failed on {host.name}: {said}",
                              "check the disk space and the Docker engine on the host")
    return True


class JobImage:
    """The site's job image as an image builder (the shape of ``opsctl.sandbox.builders.Builder``).

    Its tag is the site's ``training.image``; Docker's layer cache makes a rebuild of unchanged
    inputs cheap, so :meth:`ensure` always runs ``docker build``."""

    name = "job"

    def __init__(self, site: Site) -> None:
        self.site = site

    def tag(self) -> str:
        return self.site.training.image

    def inputs(self) -> dict:
        t = self.site.training
        variant = "cuda" if t.use_gpu else "cpu"
        files = {f.path: f.content for f in render_host(self.site, t.host)}
        return {"dockerfile": files[f"containers/Dockerfile.{variant}"], "offline_build": t.offline_build,
                "ml_source": str(ML_SOURCE)}

    def ensure(self, progress: Progress = None) -> str:
        return build_image(self.site, progress)
