"""Host keys of real hosts: opsctl's own known_hosts file and the one-line refusals that name the fix.

Every ssh connection to a real host (Fabric for ad-hoc commands, Ansible, testinfra) checks the host
key against opsctl's known_hosts (:func:`known_hosts_file`, ``~/.config/opsctl/known_hosts``), which
only ``opsctl hosts trust NAME`` writes, after the operator confirmed the fingerprint. An unknown or
changed key is a :class:`~opsctl.errors.HostKeyError` naming that fix.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from opsctl.errors import HostKeyError, HostUnreachable
from opsctl.files import atomic_write

#: A fingerprint as ``ssh-keygen -lf`` prints it.
FINGERPRINT = re.compile(r"^SHA256:[A-Za-z0-9+/]{43}$")
#: The key types opsctl asks a host for, and trusts.
KEY_TYPES = ("ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521", "ssh-rsa")

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


# --------------------------------------------------------------------------- trusting a host's key


@dataclass
class HostKey:
    """One key a host offers."""

    line: str  # known_hosts line: "<name> <type> <base64>"
    type: str
    fingerprint: str  # SHA256:...


def _names_match(field: str, name: str) -> bool:
    """Does the host field of a known_hosts line (plain or hashed ``|1|salt|hash`` patterns) name ``name``?"""
    for pattern in field.split(","):
        if pattern.startswith("|1|"):
            try:
                _, _, salt, digest = pattern.split("|")
                mac = hmac.new(base64.b64decode(salt), name.encode(), hashlib.sha1).digest()
            except ValueError:
                continue
            if hmac.compare_digest(mac, base64.b64decode(digest)):
                return True
        elif pattern == name:
            return True
    return False


def _is_entry_for(line: str, key_name: str) -> bool:
    return bool(line.strip()) and not line.startswith(("#", "@")) and _names_match(line.split()[0], key_name)


def trusted_lines(path: Path, key_name: str) -> list[str]:
    """The lines of the known_hosts file ``path`` that hold a key for ``key_name``.

    Example::

        trusted_lines(known_hosts_file(), host_key_name("backup.lab", 22))
    """
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        return []
    return [line for line in lines if _is_entry_for(line, key_name)]


def fingerprints(lines: list[str]) -> list[str]:
    """SHA256 fingerprints of known_hosts ``lines``, in order (``ssh-keygen -lf``)."""
    if not lines:
        return []
    with tempfile.NamedTemporaryFile("w", suffix=".keys") as fh:
        fh.write("\n".join(lines) + "\n")
        fh.flush()
        res = subprocess.run(["ssh-keygen", "-l", "-E", "sha256", "-f", fh.name], capture_output=True, text=True)
    prints = [line.split()[1] for line in res.stdout.splitlines() if len(line.split()) > 1]
    if res.returncode != 0 or len(prints) != len(lines):
        raise HostKeyError(f"ssh-keygen could not read the keys: {res.stderr.strip() or res.stdout.strip()}")
    return prints


def scan(address: str, port: int, timeout: int = 10) -> list[HostKey]:
    """The keys the host at ``address:port`` offers (``ssh-keyscan``), with their fingerprints.

    Raises:
        HostUnreachable: no answer, or no key of :data:`KEY_TYPES`.

    Example::

        for key in scan("192.0.2.10", 22):
            print(key.type, key.fingerprint)
    """
    key_name = host_key_name(address, port)
    try:
        res = subprocess.run(["ssh-keyscan", "-T", str(timeout), "-p", str(port), "-t", "ed25519,ecdsa,rsa",
                              "--", address], capture_output=True, text=True, timeout=timeout * 4 + 10,
                             stdin=subprocess.DEVNULL)
    except FileNotFoundError:
        raise HostUnreachable("ssh-keyscan is not installed", "apt-get install openssh-client") from None
    except subprocess.TimeoutExpired:
        raise HostUnreachable(f"no answer from {address} port {port} within {timeout * 4 + 10} s",
                              "check that the host is up") from None
    lines = []
    for line in res.stdout.splitlines():
        fields = line.split()
        if len(fields) == 3 and fields[0] == key_name and fields[1] in KEY_TYPES:
            lines.append(" ".join(fields))
    if not lines:
        said = " ".join(res.stderr.split())[-200:]
        raise HostUnreachable(f"no ssh host key from {address} port {port} (ssh-keyscan: {said or 'no output'})",
                              "check that the host is up and sshd listens there")
    return [HostKey(line, line.split()[1], fp) for line, fp in zip(lines, fingerprints(lines), strict=True)]


def record(path: Path, key_name: str, keys: list[HostKey]) -> None:
    """Replace ``key_name``'s entries in the known_hosts file ``path`` with ``keys`` (atomically, 0600 in
    a 0700 directory); other hosts' lines and comments stay as they were."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        old = path.read_text().splitlines()
    except FileNotFoundError:
        old = []
    kept = [line for line in old if not _is_entry_for(line, key_name)]
    atomic_write(path, "".join(line + "\n" for line in [*kept, *(k.line for k in keys)]), mode=0o600)
