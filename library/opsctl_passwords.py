#!/usr/bin/python3
# WANT_JSON
"""Ansible module ``opsctl_passwords``: set Samba or system passwords of several users in ONE execution.

Standard library only; run in one ssh command by its action plugin (see library/opsctl_files.py).
Passwords arrive only in the module arguments and reach ``smbpasswd``/``chpasswd`` on stdin,
never on a command line; the result names users, never passwords. Call it with ``no_log: true``.

Arguments:

- ``kind``: ``samba`` (the Samba database: ``pdbedit -L``, ``smbpasswd -s -a USER``) or
  ``system`` (``getent shadow``, ``chpasswd``);
- ``passwords``: user -> password;
- ``update``: false (default): set only the passwords of users that have none yet (not in the
  Samba database; no crypt hash in shadow); true: set every given password (always changed).
"""

from __future__ import annotations

import json
import subprocess
import sys

KINDS = ("samba", "system")


class PasswordError(Exception):
    """A password cannot be set; the message names the user, never the password."""


def _run(argv: list[str], stdin: str | None = None) -> str:
    proc = subprocess.run(argv, input=stdin, capture_output=True, text=True)
    if proc.returncode != 0:
        raise PasswordError(f"{argv[0]} failed for {argv[-1] if argv[0] != 'chpasswd' else 'the AFP users'} "
                            f"(rc={proc.returncode}): {(proc.stderr or proc.stdout).strip()[-500:]}")
    return proc.stdout


def users_with_password(kind: str, users: list[str]) -> set[str]:
    if kind == "samba":
        out = _run(["pdbedit", "-L"])
        return {line.split(":", 1)[0] for line in out.splitlines() if line.strip()} & set(users)
    proc = subprocess.run(["getent", "shadow", *users], capture_output=True, text=True, stdin=subprocess.DEVNULL)
    have = set()
    for line in proc.stdout.splitlines():
        fields = line.split(":")
        if len(fields) > 1 and fields[1].startswith("$"):
            have.add(fields[0])
    return have


def converge(params: dict) -> dict:
    check = bool(params.get("_ansible_check_mode"))
    kind = params.get("kind")
    if kind not in KINDS:
        raise PasswordError(f"kind = {kind!r} is not one of {', '.join(KINDS)}")
    passwords = params.get("passwords") or {}
    if not isinstance(passwords, dict):
        raise PasswordError("passwords must be a mapping user -> password")
    for user, password in passwords.items():
        if not isinstance(password, str) or not password or "\n" in password:
            raise PasswordError(f"the password of {user} is empty or has a newline")
        if kind == "system" and ":" in user:
            raise PasswordError(f"user name {user!r} has a ':'")
    users = sorted(passwords)
    if not users:
        return {"changed": False, "users": []}
    todo = users if params.get("update") else [u for u in users if u not in users_with_password(kind, users)]
    if todo and not check:
        if kind == "samba":
            for user in todo:
                _run(["smbpasswd", "-s", "-a", user], stdin=f"{passwords[user]}\n{passwords[user]}\n")
        else:
            _run(["chpasswd"], stdin="".join(f"{u}:{passwords[u]}\n" for u in todo))
    return {"changed": bool(todo), "users": todo}


def main() -> None:
    try:
        with open(sys.argv[1], encoding="utf-8") as f:
            params = json.load(f)
        result = converge(params)
    except PasswordError as exc:
        result = {"failed": True, "msg": str(exc)}
    except (OSError, KeyError, ValueError) as exc:
        result = {"failed": True, "msg": f"opsctl_passwords: {type(exc).__name__}"}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
