"""Host keys of real hosts: opsctl's own known_hosts file and the one-line refusals that name the fix.

Every ssh connection to a real host (Fabric for ad-hoc commands, Ansible, testinfra) checks the host
key against opsctl's known_hosts (:func:`known_hosts_file`, ``~/.config/opsctl/known_hosts``), which
only ``opsctl hosts trust NAME`` writes, after the operator confirmed the fingerprint. An unknown or
changed key is a :class:`~opsctl.errors.HostKeyError` naming that fix.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from opsctl.errors import HostKeyError

_LOOK = "check the fingerprint on the host's console (ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub)"


def known_hosts_file() -> Path:
    """opsctl's known_hosts: ``$OPSCTL_KNOWN_HOSTS``, else ``$XDG_CONFIG_HOME/opsctl/known_hosts``
    (``~/.config/opsctl/known_hosts``)."""
    if os.environ.get("OPSCTL_KNOWN_HOSTS"):
        return Path(os.environ["OPSCTL_KNOWN_HOSTS"])
    config = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(config) / "opsctl" / "known_hosts"


def ssh_path(path: Path) -> str:
    """``path`` as ssh and a shell take it unchanged; :class:`HostKeyError` when they would not."""
    # ssh splits UserKnownHostsFile on whitespace and expands % tokens; testinfra passes it through a shell
    if not re.fullmatch(r"[A-Za-z0-9._/+@,=:~\[\]-]+", str(path)):
        raise HostKeyError(f"the known_hosts path {str(path)!r} has characters ssh or a shell would reinterpret",
                           "set OPSCTL_KNOWN_HOSTS (or HOME/XDG_CONFIG_HOME) to a plain path")
    return str(path)


def strict_ssh_options(known_hosts: Path | None = None) -> list[str]:
    """ssh options (for Ansible and testinfra, which run the ssh binary) that refuse any host whose key
    is not in opsctl's known_hosts (no other file, no prompt, no learning new keys)."""
    path = ssh_path(known_hosts or known_hosts_file())
    return ["-o", "StrictHostKeyChecking=yes", "-o", f"UserKnownHostsFile={path}",
            "-o", "GlobalKnownHostsFile=/dev/null", "-o", "UpdateHostKeys=no", "-o", "BatchMode=yes"]


def host_key_name(address: str, port: int) -> str:
    """How known_hosts names ``address:port`` (``[addr]:port`` unless the port is 22)."""
    return address if port == 22 else f"[{address}]:{port}"


def untrusted_message(name: str, key_name: str, known_hosts: str | Path) -> str:
    return (f"the ssh host key of {name} ({key_name}) is not trusted yet (not in {known_hosts}); nothing was sent "
            f"to it. Fix: {_LOOK}, then run `opsctl hosts trust {name}`")


def changed_message(name: str, key_name: str, known_hosts: str | Path) -> str:
    return (f"the ssh host key of {name} ({key_name}) has CHANGED since it was trusted in {known_hosts}: the "
            f"host was reinstalled, or someone is intercepting the connection; nothing was sent to it. Fix: "
            f"{_LOOK} and, only if it matches, run `opsctl hosts trust {name}`")


def explain_ssh_failure(name: str, key_name: str, stderr: str | bytes, known_hosts: str | Path) -> str | None:
    """The one-line explanation (with the fix) of an ssh binary's host key refusal in ``stderr``; None
    otherwise."""
    if isinstance(stderr, bytes):
        stderr = stderr.decode(errors="replace")
    if "Host key verification failed" not in stderr:
        return None
    if "IDENTIFICATION HAS CHANGED" in stderr or "has changed" in stderr:
        return changed_message(name, key_name, known_hosts)
    return untrusted_message(name, key_name, known_hosts)
