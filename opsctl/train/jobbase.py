"""The job image's local base for sites without a registry (the sandbox's training host): Debian bookworm
(Python 3.11, matching the CPU torch wheel) with python3-venv, from debootstrap.

Cached by a hash of its inputs: the tag ``opsctl/jobbase:bookworm`` points at
``opsctl/jobbase:<hash12>``; an existing image is reused with zero work.

Example::

    tag = ensure_jobbase()   # 'opsctl/jobbase:bookworm'
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import tempfile
from pathlib import Path

from opsctl.errors import HostUnreachable
from opsctl.paths import cache_dir
from opsctl.train.engine import apt_install, ensure_docker

REPO = "opsctl/jobbase"
TAG = f"{REPO}:bookworm"
INPUTS = {"recipe": 1, "suite": "bookworm", "variant": "minbase",
          "include": ["python3", "python3-venv", "ca-certificates"]}


def jobbase_hash() -> str:
    return hashlib.sha256(json.dumps(INPUTS, sort_keys=True).encode()).hexdigest()


def ensure_jobbase(progress=None) -> str:
    """Build (once) and return the tag of the local job base image."""
    client = ensure_docker(progress=progress)
    digest_tag = f"{REPO}:{jobbase_hash()[:12]}"
    import docker.errors

    try:
        image = client.images.get(digest_tag)
    except docker.errors.ImageNotFound:
        image = None
    if image is not None:
        if TAG not in image.tags:
            image.tag(REPO, "bookworm")
        return TAG
    if not shutil.which("debootstrap"):
        apt_install(["debootstrap"], progress=progress)
    debs = cache_dir() / "debs-bookworm"
    debs.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="opsctl-jobbase-", dir=cache_dir(create=True)) as tmp:
        root = Path(tmp) / "rootfs"
        if progress:
            progress("debootstrap bookworm for the job base image (about a minute)")
        proc = subprocess.run(
            ["debootstrap", "--variant=minbase", f"--include={','.join(INPUTS['include'])}",
             f"--cache-dir={debs}", "bookworm", str(root)], capture_output=True, text=True)
        if proc.returncode != 0:
            raise HostUnreachable(f"debootstrap bookworm failed: {proc.stdout[-800:]}{proc.stderr[-800:]}",
                               "check that Debian's package mirror is reachable")
        for d in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for child in (root / d).glob("*.deb"):
                child.unlink()
        tar = subprocess.Popen(["tar", "--numeric-owner", "-C", str(root), "-c", "."], stdout=subprocess.PIPE)
        imp = subprocess.run(["docker", "import", "-c", 'CMD ["/bin/bash"]', "-", digest_tag], stdin=tar.stdout,
                             capture_output=True, text=True)
        tar.wait()
        if imp.returncode != 0:
            raise HostUnreachable(f"docker import failed: {imp.stderr}", "see the dockerd log")
    client.images.get(digest_tag).tag(REPO, "bookworm")
    return TAG


class JobBase:
    """The job base image as an image builder (the shape of ``opsctl.sandbox.builders.Builder``)."""

    name = "jobbase"

    def tag(self) -> str:
        return f"{REPO}:{jobbase_hash()[:12]}"

    def inputs(self) -> dict:
        return dict(INPUTS)

    def ensure(self, progress=None) -> str:
        return ensure_jobbase(progress)
