"""What the VM's image build and lifecycle share: where files go, progress lines, host tools, log tails."""

from __future__ import annotations

import shutil
from pathlib import Path

from opsctl.paths import cache_dir
from opsctl.progress import Progress, say
from opsctl.sandbox.errors import SandboxError

__all__ = ["Progress", "cache_root", "emit", "require_tools", "run_dir", "tail"]

cache_root = cache_dir
emit = say


def run_dir() -> Path:
    """Where running VMs' state files and run folders live."""
    return cache_dir() / "run"


def require_tools(*tools: str) -> None:
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        raise SandboxError(
            f"missing host tools for the ZFS VM: {', '.join(missing)}; install them with "
            "`apt-get install -y debootstrap qemu-system-x86 qemu-utils e2fsprogs openssh-client`"
        )


def tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
