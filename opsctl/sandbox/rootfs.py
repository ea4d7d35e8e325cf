"""Steps shared by the sandbox's debootstrap-built images (:mod:`.images`, :mod:`.slurmimage`): run a
build command with its output tail in the error, run one inside the chroot, mount what apt needs
into it, write a file into it.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

from opsctl.locks import folder_lock
from opsctl.progress import Progress, say
from opsctl.sandbox.errors import SandboxError

__all__ = ["chroot_mounts", "chroot_run", "run_step", "write_into"]


def run_step(cmd: list[str], progress: Progress | None, *, what: str, env: dict | None = None) -> str:
    """Run a build command, streaming its output lines to ``progress``; raise on failure."""
    say(progress, f"$ {' '.join(cmd)}")
    full_env = dict(os.environ, DEBIAN_FRONTEND="noninteractive", LC_ALL="C.UTF-8", **(env or {}))
    proc = subprocess.Popen(
        cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, errors="replace", env=full_env,
    )
    tail: list[str] = []
    assert proc.stdout is not None
    for line in proc.stdout:
        line = line.rstrip()
        tail = (tail + [line])[-25:]
        say(progress, f"  {line}")
    rc = proc.wait()
    if rc != 0:
        raise SandboxError(
            f"{what} failed (exit {rc}) running `{' '.join(cmd)}`; last output:\n" + "\n".join(tail),
            "check network access to the Debian mirror; rerun with a progress callback for the "
            "full log",
        )
    return "\n".join(tail)


def chroot_run(root: Path, args: list[str], progress: Progress | None, *, what: str) -> str:
    return run_step(["chroot", str(root), *args], progress, what=what)


@contextlib.contextmanager
def chroot_mounts(root: Path, debs: Path) -> Iterator[None]:
    """Mount /proc, /dev/pts and the shared .deb cache into the chroot; always unmount. One chroot
    at a time uses the shared cache (:func:`opsctl.locks.folder_lock`)."""
    mounts: list[Path] = []
    with folder_lock(debs):
        try:
            for src, dst, opts in (
                ("proc", root / "proc", ["-t", "proc"]),
                ("devpts", root / "dev/pts", ["-t", "devpts", "-o", "newinstance,ptmxmode=0666"]),
                (str(debs), root / "var/cache/apt/archives", ["--bind"]),
            ):
                dst.mkdir(parents=True, exist_ok=True)
                subprocess.run(["mount", *opts, src, str(dst)], check=True, capture_output=True)
                mounts.append(dst)
            yield
        finally:
            for dst in reversed(mounts):
                subprocess.run(["umount", "-l", str(dst)], check=False, capture_output=True)


def write_into(root: Path, path: str, content: str, mode: int = 0o644) -> None:
    target = root / path.lstrip("/")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(content)
    target.chmod(mode)
