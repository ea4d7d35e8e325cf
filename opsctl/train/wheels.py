"""The wheels (torch CPU, numpy) the job images install offline, downloaded once into the cache.
Used by the job image (:mod:`opsctl.train.image`) and the sandbox's Slurm image."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from opsctl.errors import HostUnreachable
from opsctl.paths import cache_dir
from opsctl.progress import Progress

__all__ = ["wheel_dir"]


def wheel_dir(progress: Progress = None) -> Path:
    """torch==2.13.0 (CPU) + numpy and their dependencies as wheels, downloaded once for Python 3.11."""
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
            raise HostUnreachable(f"pip download failed: {proc.stderr[-1500:]}", "check that PyPI is reachable")
        stamp.write_text("ok\n")
    return target
