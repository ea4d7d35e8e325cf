"""Build and ship the job image.

Example::

    tag = build_image(site, progress=print)   # 'opsctl/charlm:latest'
    ship_image(site, tag)                      # no-op when the host uses this engine
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


def ship_image(site: Site, tag: str, engine_url: str | None, progress: Progress = None) -> bool:
    """Copy the image to the training host's engine (``docker save | docker load``).

    Returns False (nothing to do) when that engine is this machine's own.
    """
    import docker

    from opsctl.train.engine import ensure_docker

    local = ensure_docker()
    if engine_url is None:
        return False
    remote = docker.DockerClient(base_url=engine_url, use_ssh_client=True, timeout=900)
    if remote.info()["ID"] == local.info()["ID"]:
        return False
    if progress:
        progress(f"shipping {tag} to {engine_url}")
    remote.images.load(local.images.get(tag).save(named=True))
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
