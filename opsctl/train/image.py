"""Build and ship the job image.

Example::

    tag = build_image(site, progress=print)   # 'opsctl/charlm:latest'
    ship_image(site, tag)                      # no-op when the host uses this engine
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from opsctl import ROOT
from opsctl.render.engine import render_host
from opsctl.sandbox.errors import SandboxError
from opsctl.spec.models import Site

Progress = Callable[[str], None] | None
ML_SOURCE = ROOT / "ml"
_IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "build", ".pytest_cache")


def wheel_dir(progress: Progress = None) -> Path:
    """torch==2.13.0 (CPU) + numpy and their dependencies as wheels, downloaded once for Python 3.11."""
    from opsctl.sandbox.engine import cache_dir

    target = cache_dir() / "wheels" / "cp311"
    stamp = target / ".complete"
    if not stamp.exists():
        target.mkdir(parents=True, exist_ok=True)
        if progress:
            progress("downloading torch/numpy wheels for the offline job image")
        proc = subprocess.run([sys.executable, "-m", "pip", "download", "-q", "-d", str(target),
                               "--only-binary=:all:", "--python-version", "3.11", "--platform",
                               "manylinux_2_28_x86_64", "--platform", "manylinux2014_x86_64", "--platform",
                               "manylinux_2_17_x86_64", "torch==2.13.0", "numpy", "setuptools", "wheel"],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            raise SandboxError(f"pip download failed: {proc.stderr[-1500:]}", "check that PyPI is reachable")
        stamp.write_text("ok\n")
    return target


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
    from opsctl.sandbox.engine import ensure_docker
    from opsctl.sandbox.jobbase import TAG as JOBBASE
    from opsctl.sandbox.jobbase import ensure_jobbase

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
            raise SandboxError("docker build of the job image failed:\n" + "\n".join(tail),
                               "read the build output above")
    client.images.get(t.image)
    return t.image


def ship_image(site: Site, tag: str, engine_url: str | None, progress: Progress = None) -> bool:
    """Copy the image to the training host's engine (``docker save | docker load``).

    Returns False (nothing to do) when that engine is this machine's own.
    """
    import docker

    from opsctl.sandbox.engine import ensure_docker

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
