"""The backup server's Samba and Avahi images (``backup.mode: containers``), built from the rendered compose file.

One truth: the Dockerfiles are the ``dockerfile_inline`` of the services in
``containers/backup-compose.yml`` (``templates/containers/backup-compose.yml.j2``), the same file
``opsctl provision`` starts on the host. This module builds them on this machine with ``docker build``:

* from the official base (``debian:trixie-slim``, the compose file's default), or
* from a local base without a registry: Debian trixie from ``debootstrap`` with Samba and Avahi
  already installed (:func:`ensure_local_base`, ``opsctl/backupbase:trixie``), so the build needs no
  package download; the Dockerfiles skip ``apt-get`` when the daemon is already there.

A host without a registry (``backup.offline_build``, e.g. the sandbox VM) gets them from this machine:
:func:`offline_images` builds them on the local base and saves them to a tarball (cached by the
images' IDs), which ``opsctl provision`` hands to the backup_containers role; the role loads it
with ``docker load`` only when the host's images have other IDs.

Example::

    text = Path("out/backup/containers/backup-compose.yml").read_text()
    tags = build_images(text, base=ensure_local_base(progress=print))   # ['opsctl/samba:trixie', ...]
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from opsctl.errors import HostUnreachable
from opsctl.locks import folder_lock
from opsctl.paths import cache_dir

#: The local base image (no registry): its tag, and the content-hash tag it points at.
BASE_REPO = "opsctl/backupbase"
BASE_TAG = f"{BASE_REPO}:trixie"
#: What the local base is made of; changing it changes the hash (a new base is built).
BASE_INPUTS = {"recipe": 3, "suite": "trixie", "variant": "minbase",
               "include": ["samba", "samba-vfs-modules", "avahi-daemon"]}
#: Build argument of the compose file's Dockerfiles that names the base image.
BASE_ARG = "BASE"

Progress = Callable[[str], None]


@dataclass(frozen=True)
class ImageBuild:
    """One service's image as the compose file describes it."""

    service: str
    tag: str
    dockerfile: str
    args: dict[str, str] = field(default_factory=dict)


def _unescape(value: str) -> str:
    """Compose interpolation: ``$$`` is a literal ``$``; ``${VAR:-default}`` is the default here."""
    out, i = [], 0
    while i < len(value):
        if value.startswith("$$", i):
            out.append("$")
            i += 2
        elif value.startswith("${", i) and ":-" in value[i:value.find("}", i)]:
            end = value.find("}", i)
            out.append(value[i + 2:end].split(":-", 1)[1])
            i = end + 1
        else:
            out.append(value[i])
            i += 1
    return "".join(out)


def image_builds(compose_text: str) -> list[ImageBuild]:
    """The images of the rendered compose file: every service with an ``image`` and an inline Dockerfile."""
    data = yaml.safe_load(compose_text) or {}
    builds = []
    for name, svc in (data.get("services") or {}).items():
        build = svc.get("build") or {}
        if not svc.get("image") or not build.get("dockerfile_inline"):
            continue
        args = {k: _unescape(str(v)) for k, v in (build.get("args") or {}).items()}
        builds.append(ImageBuild(name, svc["image"], _unescape(build["dockerfile_inline"]), args))
    return builds


def _run(argv: list[str], *, what: str, stdin: str | None = None, timeout: float = 1800) -> str:
    try:
        proc = subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=timeout)
    except FileNotFoundError:
        raise HostUnreachable(f"{what}: {argv[0]} is not installed", f"install {argv[0]}") from None
    except subprocess.TimeoutExpired:
        raise HostUnreachable(f"{what}: timed out after {timeout:.0f}s", "see the Docker daemon's log") from None
    if proc.returncode != 0:
        raise HostUnreachable(f"{what} failed (rc={proc.returncode}): {(proc.stderr or proc.stdout).strip()[-1500:]}",
                              "see the output above")
    return proc.stdout


def build_images(compose_text: str, *, base: str | None = None, docker: str = "docker",
                 progress: Progress | None = None) -> list[str]:
    """``docker build`` every image of the compose file (Dockerfile on stdin, no context); returns the tags.

    ``base`` overrides the base image (the compose file's ``BASE`` argument, default the official one)."""
    tags = []
    for b in image_builds(compose_text):
        args = {**b.args, **({BASE_ARG: base} if base else {})}
        if progress:
            progress(f"building {b.tag} from {args.get(BASE_ARG, 'its default base')}")
        argv = [docker, "build", "-q", "-t", b.tag]
        for key, value in sorted(args.items()):
            argv += ["--build-arg", f"{key}={value}"]
        _run([*argv, "-"], what=f"docker build {b.tag}", stdin=b.dockerfile)
        tags.append(b.tag)
    return tags


def base_hash() -> str:
    return hashlib.sha256(json.dumps(BASE_INPUTS, sort_keys=True).encode()).hexdigest()


def _has_image(docker: str, tag: str) -> bool:
    return subprocess.run([docker, "image", "inspect", tag], capture_output=True).returncode == 0


def ensure_local_base(*, docker: str = "docker", progress: Progress | None = None) -> str:
    """Build (once, cached by :func:`base_hash`) the local trixie base with Samba and Avahi; its tag.

    debootstrap (root; ``.deb`` files cached in ``<cache>/debs``) then ``docker import``."""
    digest_tag = f"{BASE_REPO}:{base_hash()[:12]}"
    if not _has_image(docker, digest_tag):
        if shutil.which("debootstrap") is None:
            raise HostUnreachable("building the local Samba/Avahi base needs debootstrap",
                                  "apt-get install debootstrap")
        debs = cache_dir(create=True) / "debs"
        debs.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="opsctl-backupbase-", dir=cache_dir()) as tmp:
            root = Path(tmp) / "rootfs"
            if progress:
                progress(f"debootstrap trixie with {', '.join(BASE_INPUTS['include'])} for {digest_tag}")
            _run(["debootstrap", f"--variant={BASE_INPUTS['variant']}", f"--cache-dir={debs}",
                  BASE_INPUTS["suite"], str(root)], what="debootstrap trixie")
            _install_in_chroot(root, debs, BASE_INPUTS["include"])
            tar = subprocess.Popen(["tar", "--numeric-owner", "-C", str(root), "-c", "."], stdout=subprocess.PIPE)
            imp = subprocess.run([docker, "import", "-c", 'CMD ["/bin/bash"]', "-", digest_tag],
                                 stdin=tar.stdout, capture_output=True, text=True)
            tar.wait()
            if imp.returncode != 0 or tar.returncode != 0:
                raise HostUnreachable(f"docker import {digest_tag} failed: {imp.stderr.strip()[-800:]}",
                                      "see the Docker daemon's log")
    _run([docker, "tag", digest_tag, BASE_TAG], what=f"docker tag {BASE_TAG}")
    return BASE_TAG


def _install_in_chroot(root: Path, debs: Path, packages: list[str]) -> None:
    """``apt-get install`` in the debootstrapped ``root`` (debootstrap cannot resolve the virtual
    packages avahi-daemon needs), no daemon started (policy-rc.d), ``.deb`` files from/to ``debs``."""
    (root / "usr/sbin/policy-rc.d").write_text("#!/bin/sh\nexit 101\n")
    (root / "usr/sbin/policy-rc.d").chmod(0o755)
    shutil.copy("/etc/resolv.conf", root / "etc/resolv.conf")
    archives = root / "var/cache/apt/archives"
    mounts = [("proc", root / "proc", ["-t", "proc", "proc"]), ("debs", archives, ["--bind", str(debs)])]
    done: list[Path] = []
    with folder_lock(debs):  # the shared cache: one chroot's apt at a time
        try:
            for _name, target, args in mounts:
                target.mkdir(parents=True, exist_ok=True)
                _run(["mount", *args, str(target)], what=f"mount {target}")
                done.append(target)
            env = "DEBIAN_FRONTEND=noninteractive"
            _run(["chroot", str(root), "env", env, "apt-get", "update", "-q"], what="apt-get update (trixie)")
            _run(["chroot", str(root), "env", env, "apt-get", "install", "-y", "-q", "--no-install-recommends",
                  *packages], what=f"apt-get install {' '.join(packages)}")
        finally:
            for target in reversed(done):
                subprocess.run(["umount", "-l", str(target)], capture_output=True)
    if any(target.is_mount() for target in done):  # never delete through a mount (the shared .deb cache)
        raise HostUnreachable(f"could not unmount {[str(t) for t in done if t.is_mount()]}", "unmount them by hand")
    (root / "usr/sbin/policy-rc.d").unlink()
    # what a container never reads: apt's caches and lists, documentation, translations (half the size)
    for pattern in ("var/cache/apt/*", "var/lib/apt/lists/*", "usr/share/doc/*", "usr/share/man/*",
                    "usr/share/locale/*", "usr/share/info/*"):
        for path in root.glob(pattern):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()


def offline_images(site, *, docker: str = "docker", progress: Progress | None = None) -> dict:
    """Build the backup host's Samba/Avahi images here on the local base and save them to a tarball.

    Returns the backup_containers role's variables: ``backup_containers_images`` (tag -> image ID)
    and ``backup_containers_images_tar`` (a 0600 file under the cache, named by those IDs, so an
    unchanged build is neither saved nor loaded again)."""
    from opsctl.render.engine import render_host
    from opsctl.train.engine import ensure_docker

    ensure_docker(progress=progress)  # this machine's engine (started when it is not running)
    compose = {r.path: r.content for r in render_host(site, site.backup.host)}["containers/backup-compose.yml"]
    tags = build_images(compose, base=ensure_local_base(docker=docker, progress=progress), docker=docker,
                        progress=progress)
    ids = {tag: _run([docker, "image", "inspect", "--format", "{{.Id}}", tag], what=f"docker image inspect {tag}")
           .strip() for tag in tags}
    folder = cache_dir(create=True) / "backup-images"
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    tar = folder / f"{hashlib.sha256(json.dumps(ids, sort_keys=True).encode()).hexdigest()[:16]}.tar"
    if not tar.exists():
        if progress:
            progress(f"saving {', '.join(tags)} for the host (no registry there)")
        part = tar.with_suffix(".part")
        _run([docker, "save", "-o", str(part), *tags], what="docker save")
        part.chmod(0o600)
        part.rename(tar)
        for old in folder.glob("*.tar"):
            if old != tar:
                old.unlink()
    return {"backup_containers_images": ids, "backup_containers_images_tar": str(tar)}
