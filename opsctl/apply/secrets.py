"""Samba passwords: from the environment, a (vault-encrypted) secrets file, the sandbox's own
store, or a prompt; never from the spec, never logged, never written world-readable.

Sources, first match wins per user:

1. ``OPSCTL_SMB_PASSWORD_<USER>`` (user name upper-cased, ``-`` -> ``_``),
2. ``OPSCTL_SECRETS_FILE``: YAML ``samba_passwords: {user: password}``; ansible-vault encrypted
   files are decrypted with ``ansible-vault view`` (``ANSIBLE_VAULT_PASSWORD_FILE``),
3. for a sandbox site: generated once and kept in ``$OPSCTL_CACHE/sandbox/secrets.json`` (0600),
4. an interactive prompt (no echo) when stdin is a terminal.

Every password is checked before use (:func:`check_password`): a newline, carriage return, NUL or
``:`` is refused, because the host tools that receive it split on them (``chpasswd`` reads
``user:password`` lines, ``smbpasswd -s`` reads one line per password). Every problem with a
source (unreadable or malformed secrets file, corrupt sandbox store, vault decrypt failure) is a
:class:`SecretError` with a one-line message naming the source and the fix, never the password.
"""

from __future__ import annotations

import getpass
import json
import os
import secrets
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from opsctl.errors import BadInput
from opsctl.files import atomic_write
from opsctl.locks import file_lock
from opsctl.paths import cache_dir
from opsctl.site.models import Site


class SecretError(BadInput):
    """A password source cannot be used; the message names the source and the fix (never a password).
    Bad input (exit 2): nothing was applied."""


#: Characters a password must not contain: line breaks and NUL end the line ``chpasswd``/``smbpasswd -s``
#: read (``pw\nroot:x`` would set root's password), ``:`` separates user and password for ``chpasswd``.
FORBIDDEN_PASSWORD_CHARS = {"\n": "a newline", "\r": "a carriage return", "\x00": "a NUL byte", ":": "':'"}


def check_password(user: str, password: object, source: str) -> str:
    """Return ``password`` if the host tools can take it; else raise :class:`SecretError` naming the user
    and the ``source`` (an env var name, a file), never the password itself."""
    if not isinstance(password, str):
        kind = "nothing" if password is None else f"a {type(password).__name__}"
        raise SecretError(f"the Samba password for {user} from {source} is {kind}, not a string; "
                          "write it as a quoted YAML string")
    if not password:
        raise SecretError(f"the Samba password for {user} from {source} is empty; set a non-empty password")
    bad = [name for char, name in FORBIDDEN_PASSWORD_CHARS.items() if char in password]
    if bad:
        raise SecretError(f"the Samba password for {user} from {source} contains {' and '.join(bad)}, which "
                          "chpasswd/smbpasswd would split on; choose a password without line breaks, NUL or ':'")
    return password


def env_name(user: str) -> str:
    return "OPSCTL_SMB_PASSWORD_" + user.upper().replace("-", "_")


def _vault_view(path: Path) -> bytes:
    # ansible-vault lives next to this interpreter when opsctl runs from its virtualenv without PATH set.
    exe = shutil.which("ansible-vault") or shutil.which("ansible-vault", path=str(Path(sys.executable).parent))
    if exe is None:
        raise SecretError(f"OPSCTL_SECRETS_FILE {path} is ansible-vault encrypted but ansible-vault is not "
                          "installed; install ansible-core or give a decrypted file")
    try:
        proc = subprocess.run([exe, "view", str(path)], capture_output=True, stdin=subprocess.DEVNULL, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SecretError(f"cannot decrypt OPSCTL_SECRETS_FILE {path}: {exc}") from None
    if proc.returncode != 0:
        said = " ".join(proc.stderr.decode(errors="replace").split())[:300]
        raise SecretError(f"cannot decrypt OPSCTL_SECRETS_FILE {path}: set ANSIBLE_VAULT_PASSWORD_FILE to the "
                          f"vault password file (ansible-vault said: {said})")
    return proc.stdout


def _from_file(path: Path) -> dict[str, str]:
    """``samba_passwords:`` of the secrets file; any problem is one :class:`SecretError` naming the file."""
    where = f"OPSCTL_SECRETS_FILE {path}"
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise SecretError(f"{where} does not exist; create it (YAML samba_passwords: {{user: password}}) "
                          "or unset OPSCTL_SECRETS_FILE") from None
    except OSError as exc:
        raise SecretError(f"cannot read {where}: {exc.strerror or exc}; fix the path or its permissions") from None
    if raw.startswith(b"$ANSIBLE_VAULT"):
        raw = _vault_view(path)
    try:
        data = yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" (line {mark.line + 1})" if mark is not None else ""
        raise SecretError(f"{where} is not valid YAML{at}; expected samba_passwords: {{user: password}}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise SecretError(f"{where} holds a YAML {type(data).__name__}, not a mapping; expected "
                          "samba_passwords: {user: password}")
    passwords = data.get("samba_passwords")
    if passwords is None:
        return {}
    if not isinstance(passwords, dict):
        raise SecretError(f"samba_passwords in {where} is a YAML {type(passwords).__name__}, not a mapping; "
                          "expected samba_passwords: {user: password}")
    return {str(user): check_password(str(user), pw, where) for user, pw in passwords.items()}


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
    try:
        store.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        raise SecretError(f"cannot create {store.parent} for the sandbox password store: "
                          f"{exc.strerror or exc}; set OPSCTL_CACHE to a writable directory") from None
    # Several opsctl processes (parallel test workers) may fill the store at once: one at a time.
    with file_lock(store.with_suffix(".lock")):
        return _fill_store(store, users)


def _read_store(store: Path) -> dict[str, str]:
    fix = f"delete {store} (new sandbox passwords are generated; `opsctl provision` sets them)"
    try:
        data = json.loads(store.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
        raise SecretError(f"the sandbox password store {store} is unreadable or corrupt ({reason}); {fix}") from None
    if not isinstance(data, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in data.items()):
        raise SecretError(f"the sandbox password store {store} is corrupt (not a JSON object of user: password "
                          f"strings); {fix}")
    return data


def _fill_store(store: Path, users: list[str]) -> dict[str, str]:
    data = _read_store(store)
    changed = False
    for user in users:
        if len(data.get(user, "")) != SANDBOX_PASSWORD_CHARS:
            data[user] = secrets.token_urlsafe(SANDBOX_PASSWORD_CHARS)[:SANDBOX_PASSWORD_CHARS]
            changed = True
    if changed or not store.exists():
        try:
            atomic_write(store, json.dumps(data), mode=0o600)
        except OSError as exc:
            raise SecretError(f"cannot write the sandbox password store {store}: {exc.strerror or exc}") from None
    return {u: check_password(u, data[u], f"the sandbox password store {store}") for u in users}


def samba_passwords(site: Site, users: list[str] | None = None, *, interactive: bool | None = None) -> dict[str, str]:
    """Passwords for the SMB users of the backup server (all of them, or ``users``)."""
    if site.backup is None:
        return {}
    wanted = users or [u.name for u in site.backup.users if "smb" in u.protocols or "afp" in u.protocols]
    found: dict[str, str] = {}
    for user in wanted:
        if os.environ.get(env_name(user)):
            found[user] = check_password(user, os.environ[env_name(user)], env_name(user))
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
            found[user] = check_password(user, first, "the prompt")
        missing = []
    if missing:
        raise SecretError(
            "no Samba password for " + ", ".join(missing) + "; set " + ", ".join(env_name(u) for u in missing)
            + ", or OPSCTL_SECRETS_FILE (YAML samba_passwords: {user: password}, may be ansible-vault encrypted), "
            "or run interactively to be prompted")
    return found
