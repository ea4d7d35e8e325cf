"""Samba passwords: from the environment, a (vault-encrypted) secrets file, the sandbox's own
store, or a prompt; never from the spec, never logged, never written world-readable.

Sources, first match wins per user:

1. ``OPSCTL_SMB_PASSWORD_<USER>`` (user name upper-cased, ``-`` -> ``_``),
2. ``OPSCTL_SECRETS_FILE``: YAML ``samba_passwords: {user: password}``; ansible-vault encrypted
   files are decrypted with ``ansible-vault view`` (``ANSIBLE_VAULT_PASSWORD_FILE``),
3. for a sandbox site: generated once and kept in ``$OPSCTL_CACHE/sandbox/secrets.json`` (0600),
4. an interactive prompt (no echo) when stdin is a terminal.
"""

from __future__ import annotations

import getpass
import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import yaml

from opsctl.locks import file_lock
from opsctl.spec.models import Site


class SecretError(Exception):
    pass


def cache_dir() -> Path:
    return Path(os.environ.get("OPSCTL_CACHE", Path.home() / ".cache" / "opsctl"))


def env_name(user: str) -> str:
    return "OPSCTL_SMB_PASSWORD_" + user.upper().replace("-", "_")


def _from_file(path: Path) -> dict[str, str]:
    raw = path.read_bytes()
    if raw.startswith(b"$ANSIBLE_VAULT"):
        proc = subprocess.run(["ansible-vault", "view", str(path)], capture_output=True, text=True)
        if proc.returncode != 0:
            raise SecretError(f"cannot decrypt {path}: set ANSIBLE_VAULT_PASSWORD_FILE (ansible-vault said: "
                              f"{proc.stderr.strip()})")
        raw = proc.stdout.encode()
    data = yaml.safe_load(raw) or {}
    return {str(k): str(v) for k, v in (data.get("samba_passwords") or {}).items()}


def is_sandbox(site: Site) -> bool:
    return all(h.sandbox for h in site.hosts)


def sandbox_store() -> Path:
    return cache_dir() / "sandbox" / "secrets.json"


#: AFP's "Cleartxt Passwrd" UAM (the only one netatalk-tests' afparg speaks, which `opsctl verify` uses
#: to open volumes) carries at most 8 characters, so sandbox passwords have exactly 8. Sandbox only:
#: the VM listens on loopback; real sites bring their own passwords.
SANDBOX_PASSWORD_CHARS = 8


def _sandbox_passwords(users: list[str]) -> dict[str, str]:
    store = sandbox_store()
    store.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    # Several opsctl processes (parallel test workers) may fill the store at once: one at a time.
    with file_lock(store.with_suffix(".lock")):
        return _fill_store(store, users)


def _fill_store(store: Path, users: list[str]) -> dict[str, str]:
    data = json.loads(store.read_text()) if store.exists() else {}
    changed = False
    for user in users:
        if len(data.get(user, "")) != SANDBOX_PASSWORD_CHARS:
            data[user] = secrets.token_urlsafe(SANDBOX_PASSWORD_CHARS)[:SANDBOX_PASSWORD_CHARS]
            changed = True
    if changed or not store.exists():
        tmp = store.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(data, fh)
        os.replace(tmp, store)
    return {u: data[u] for u in users}


def samba_passwords(site: Site, users: list[str] | None = None, *, interactive: bool | None = None) -> dict[str, str]:
    """Passwords for the SMB users of the backup server (all of them, or ``users``)."""
    if site.backup is None:
        return {}
    wanted = users or [u.name for u in site.backup.users if "smb" in u.protocols or "afp" in u.protocols]
    found: dict[str, str] = {}
    for user in wanted:
        if os.environ.get(env_name(user)):
            found[user] = os.environ[env_name(user)]
    if os.environ.get("OPSCTL_SECRETS_FILE"):
        from_file = _from_file(Path(os.environ["OPSCTL_SECRETS_FILE"]))
        found.update({u: p for u, p in from_file.items() if u in wanted and u not in found})
    missing = [u for u in wanted if u not in found]
    if missing and is_sandbox(site):
        found.update(_sandbox_passwords(missing))
        missing = []
    if interactive is None:
        interactive = sys.stdin.isatty()
    if missing and interactive:
        for user in missing:
            first = getpass.getpass(f"Samba password for {user}: ")
            if not first or first != getpass.getpass(f"again for {user}: "):
                raise SecretError(f"passwords for {user} were empty or did not match")
            found[user] = first
        missing = []
    if missing:
        raise SecretError(
            "no Samba password for " + ", ".join(missing) + "; set " + ", ".join(env_name(u) for u in missing)
            + ", or OPSCTL_SECRETS_FILE (YAML samba_passwords: {user: password}, may be ansible-vault encrypted), "
            "or run interactively to be prompted")
    return found


def write_private(path: Path, data: dict) -> Path:
    """Write JSON readable by the owner only (for ``ansible-playbook -e @file``)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(data, fh)
    return path
