"""Day-2 user management on the backup server: add, change quota, remove (optionally purge).

Every change goes the same way: edit the site file round-trip (:mod:`opsctl.site.edit`),
validate the whole edited spec, write it atomically, then converge the backup host by running
the idempotent backup playbook limited to that host (system user, dataset with the defaults and
the quota, ``chown``/``chmod 700``, share, Avahi ``dkN`` entry all come from the roles and the
desired state, :mod:`opsctl.state.backup`). What the roles never do in a provision (they never
delete) is done here explicitly: ``smbpasswd -x`` on remove, and on purge the zfs role's guarded
``opsctl_purge`` module (only a dataset opsctl tagged for that user and the site no longer uses).

Each ``opsctl user`` command calls one service here (:func:`add_user`, :func:`change_quota`,
:func:`remove_access`, :func:`purge_dataset`) with the plan the matching ``plan_*`` made.

Example::

    plan = plan_add(loaded, "carol", quota="500G", protocols=["smb"])
    applied = add_user(plan)          # the password from the secret sources
    if applied.summary.failed: ...

Every service returns an :class:`Applied`: the playbook run's summary plus what the command reports.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from opsctl.site.edit import SpecDocument, check_user_entry
from opsctl.site.loader import Loaded, SpecError
from opsctl.site.models import Site
from opsctl.site.types import check_posix_user, parse_size
from opsctl.sizes import human_size
from opsctl.state import backup

if TYPE_CHECKING:
    from opsctl.apply.runner import RunSummary


class UserError(Exception):
    """A refused or failed user operation; ``bad_input`` means nothing was changed."""

    def __init__(self, message: str, *, bad_input: bool = True):
        super().__init__(message)
        self.bad_input = bad_input


@dataclass
class Plan:
    """A validated spec edit, not yet written."""

    action: str
    user: str
    doc: SpecDocument
    before: Site
    after: Site
    notes: list[str] = field(default_factory=list)

    @property
    def host(self) -> str:
        assert self.after.backup is not None
        return self.after.backup.host


@dataclass
class Applied:
    """What a service did: the backup playbook's run summary (``summary.failed`` says whether it
    converged), the dataset's usage read before a quota change, and the steps done outside the
    roles on remove (``{"samba": ..., "login": ...}``, empty when the playbook failed)."""

    summary: RunSummary
    used: int | None = None
    access: dict[str, str] = field(default_factory=dict)


def _backup(site: Site) -> None:
    if site.backup is None:
        raise UserError("the site has no backup server (no `backup:` section); nothing to manage")


def dataset_of(site: Site, name: str) -> str:
    return backup.dataset_of(site, name)


def share_of(site: Site, name: str) -> str:
    assert site.backup is not None
    return f"{site.backup.share_prefix}{name}"


def _open(loaded: Loaded) -> SpecDocument:
    if str(loaded.path) in ("", "<site>"):
        raise UserError("the site was not loaded from a file; pass --site FILE")
    return SpecDocument.open(loaded.path)


def plan_add(loaded: Loaded, name: str, quota: str, protocols: list[str] | None = None,
             tm_size: str | None = None) -> Plan:
    """Validate the name and sizes with the spec's own checks, and the whole edited spec."""
    _backup(loaded.site)
    check_posix_user(name)
    doc = _open(loaded)
    doc.add_user(name, quota, protocols, tm_size)
    after = doc.validate().site
    return Plan("add", name, doc, loaded.site, after)


def plan_set_quota(loaded: Loaded, name: str, quota: str, tm_size: str | None = None) -> Plan:
    _backup(loaded.site)
    check_posix_user(name)
    doc = _open(loaded)
    doc.set_quota(name, quota, tm_size)
    after = doc.validate().site
    return Plan("set-quota", name, doc, loaded.site, after)


def plan_remove(loaded: Loaded, name: str) -> Plan:
    _backup(loaded.site)
    check_posix_user(name)
    doc = _open(loaded)
    doc.remove_user(name)
    after = doc.validate().site
    return Plan("remove", name, doc, loaded.site, after)


# --------------------------------------------------------------------------- the host


def backup_connection(site: Site):
    from opsctl.connections import connection_for

    assert site.backup is not None
    return connection_for(site.host(site.backup.host))


def dataset_used(site: Site, name: str) -> int | None:
    """``zfs get -Hp used`` of the user's dataset in bytes; None when the dataset does not exist (yet).

    A read that fails for another reason (pool not imported, zfs missing, host trouble) is a
    :class:`UserError`: "could not read" must never pass as "nothing to protect"."""
    dataset = dataset_of(site, name)
    res = backup_connection(site).run(f"LC_ALL=C zfs get -Hp -o value used {shlex.quote(dataset)}")
    if res.rc != 0 and f"cannot open '{dataset}': dataset does not exist" in res.stderr:
        return None
    try:
        if res.rc == 0:
            return int(res.stdout.strip())
    except ValueError:
        pass
    lines = (res.stderr or res.stdout).strip().splitlines()
    detail = lines[-1] if lines else f"exit {res.rc}"
    raise UserError(f"cannot read how much {dataset} uses (zfs get used: {detail}), "
                    "so the quota is not changed; check the pool with `opsctl status` and run again", bad_input=False)


def check_quota_not_below_usage(site: Site, name: str, quota: str) -> int:
    """Refuse (UserError) a quota below the dataset's current usage, or when the usage cannot be read;
    returns the usage (0 for a dataset that does not exist yet: provision creates it with the new quota).
    (The zfs role's module refuses it too, whatever the change came from.)"""
    used = dataset_used(site, name)
    if used is None:
        return 0
    if parse_size(quota) < used:
        raise UserError(f"{name} already uses {used} bytes ({human_size(used)}) of {dataset_of(site, name)}; a quota "
                        f"of {quota} would stop their backups and make Time Machine delete old ones; pick at least "
                        f"{human_size(used)}")
    return used


def run_backup_playbook(site: Site, *, secret_vars: dict | None = None, extra_vars: dict | None = None,
                        on_event: Callable[[dict], None] | None = None):
    """Converge the backup host (only it) with the idempotent backup playbook."""
    from opsctl.apply.runner import run_playbook

    assert site.backup is not None
    return run_playbook(site, "backup_server.yml", limit=[site.backup.host], extra_vars=extra_vars,
                        secret_vars=secret_vars, on_event=on_event)


def apply_change(plan: Plan, *, secret_vars: dict | None = None, extra_vars: dict | None = None,
                 on_event: Callable[[dict], None] | None = None):
    """Write the edited spec (atomically, after validation), then converge the backup host."""
    plan.doc.save()
    return run_backup_playbook(plan.after, secret_vars=secret_vars, extra_vars=extra_vars, on_event=on_event)


# --------------------------------------------------------------------------- the services (one per command)


def add_user(plan: Plan, password: str | None = None, *,
             on_event: Callable[[dict], None] | None = None) -> Applied:
    """``opsctl user add``: write the site file, converge the backup host, set the AFP password.

    Args:
        plan: from :func:`plan_add`.
        password: the new user's Samba (and AFP) password; None fetches it from the secret sources
            (``OPSCTL_SMB_PASSWORD_<USER>``, ``OPSCTL_SECRETS_FILE``, the sandbox store or a prompt).
        on_event: progress callback for the playbook run.

    Returns the playbook's run (check ``.summary.failed``). Only this user's password is sent
    (in a 0600 vars file, never argv), and it is set even if the account already had one.

    Raises:
        UserError: a password that the secret checks refuse (``bad_input``); or the user was added but
            the AFP password could not be set (not ``bad_input``: the site file was written).

    Example::

        applied = add_user(plan_add(loaded, "carol", "500G"), password)
    """
    from opsctl.apply.secrets import SecretError, check_password, samba_passwords
    from opsctl.errors import HostUnreachable

    name = plan.user
    try:
        password = (samba_passwords(plan.after, [name])[name] if password is None
                    else check_password(name, password, "--password-stdin"))
    except SecretError as exc:
        raise UserError(str(exc)) from None
    # samba_password_update: (re)set the given password even if the account is already in Samba's database;
    # it loops over the given passwords only. (netatalk_password_update would loop over every AFP user.)
    summary = apply_change(plan, secret_vars={"samba_passwords": {name: password}},
                           extra_vars={"samba_password_update": True}, on_event=on_event)
    user = next(u for u in plan.after.backup.users if u.name == name)  # type: ignore[union-attr]
    if not summary.failed and "afp" in user.protocols:
        try:
            set_system_password(plan.after, name, password)
        except (UserError, HostUnreachable) as exc:
            raise UserError(f"{exc}; the user was added but cannot log in over AFP yet", bad_input=False) from None
    return Applied(summary)


def change_quota(plan: Plan, *, on_event: Callable[[dict], None] | None = None) -> Applied:
    """``opsctl user set-quota``: refuse a quota below the current usage, else write and converge.

    Returns the run with ``used`` (the dataset's bytes in use before). Nothing is written when the
    usage is above the new quota or cannot be read (:class:`UserError`; ``bad_input`` tells the two apart).

    Example::

        used = change_quota(plan_set_quota(loaded, "alice", "600G")).used
    """
    from opsctl.errors import HostUnreachable

    quota = next(u.quota for u in plan.after.backup.users if u.name == plan.user)  # type: ignore[union-attr]
    try:
        used = check_quota_not_below_usage(plan.before, plan.user, quota)
    except HostUnreachable as exc:
        raise UserError(f"{exc}; cannot read the current usage, nothing was applied", bad_input=False) from None
    return Applied(apply_change(plan, on_event=on_event), used=used)


def remove_access(plan: Plan, *, on_event: Callable[[dict], None] | None = None) -> Applied:
    """``opsctl user remove``: write the site file, converge, then forget the Samba password and
    lock the login (the roles never delete). The dataset and its backups stay.

    Returns the run with ``access`` ``{"samba": ..., "login": ...}`` (empty when the playbook failed).
    """
    summary = apply_change(plan, on_event=on_event)
    if summary.failed:
        return Applied(summary)
    return Applied(summary, access={"samba": samba_forget(plan.after, plan.user),
                                    "login": lock_login(plan.after, plan.user)})


def samba_forget(site: Site, name: str) -> str:
    """Remove the user from Samba's password database (``smbpasswd -x``); returns what happened."""
    conn = backup_connection(site)
    q = shlex.quote(name)
    res = conn.run(f"pdbedit -L -u {q}")
    if res.rc != 0:
        return "not in the Samba database"
    res = conn.run(f"smbpasswd -x {q}")
    if res.rc != 0:
        raise UserError(f"smbpasswd -x {name} failed: {(res.stderr or res.stdout).strip()}", bad_input=False)
    return "removed from the Samba database"


def lock_login(site: Site, name: str) -> str:
    """Lock the removed user's system password (``usermod -L``): AFP logs in with it, and the account
    stays as the owner of the kept backups. Returns what happened."""
    conn = backup_connection(site)
    q = shlex.quote(name)
    if conn.run(f"getent passwd {q}").rc != 0:
        return "no system account"
    res = conn.run(f"usermod -L {q}")
    if res.rc != 0:
        raise UserError(f"usermod -L {name} failed: {(res.stderr or res.stdout).strip()}", bad_input=False)
    return "system password locked"


def set_system_password(site: Site, name: str, password: str) -> None:
    """AFP (uams_dhx2) checks the system password: set it with ``chpasswd`` fed through stdin.

    The netatalk role only sets it for accounts without one, so a re-added user would keep the old one.
    """
    from opsctl.apply.secrets import SecretError, check_password

    try:
        check_password(name, password, "the password given")
    except SecretError as exc:
        raise UserError(str(exc)) from None
    res = backup_connection(site).run_stdin("chpasswd", f"{name}:{password}\n")
    if res.returncode != 0:
        raise UserError(f"chpasswd for {name} failed: {(res.stderr or '').strip()}", bad_input=False)


def purge_dataset(site: Site, name: str, *, on_event: Callable[[dict], None] | None = None) -> dict:
    """Destroy ``name``'s dataset through the zfs role's guarded ``opsctl_purge`` module.

    The module refuses (nothing destroyed) a dataset not tagged ``opsctl:user=<name>``, one with
    children of anybody else, and one the site still uses; ``site`` is the site *after* the user
    was removed. Returns the module's result (``destroyed``, or ``absent``).
    """
    from opsctl.apply.runner import run_playbook

    assert site.backup is not None
    summary = run_playbook(site, "purge_user.yml", limit=[site.backup.host], on_event=on_event,
                           extra_vars={"zfs_purge_dataset": dataset_of(site, name), "zfs_purge_user": name})
    if summary.failed:
        why = "; ".join(f.get("msg", "") for f in summary.failures) or "\n".join(summary.log[-10:])
        raise UserError(why, bad_input=any("refusing" in f.get("msg", "") for f in summary.failures))
    return {"destroyed": summary.changed > 0}


# --------------------------------------------------------------------------- onboarding


def mac_host(site: Site) -> str:
    """The name a Mac uses: the host's address, else its mDNS name ``<host>.local``."""
    assert site.backup is not None
    host = site.host(site.backup.host)
    return host.address or f"{host.name}.local"


def onboarding(site: Site, name: str) -> list[str]:
    """What to do on the user's Mac, line by line."""
    assert site.backup is not None
    user = next(u for u in site.backup.users if u.name == name)
    server, share = mac_host(site), share_of(site, name)
    lines = [f"Time Machine for {name} on {server}, share {share!r} (quota {user.quota}, Time Machine size "
             f"{user.tm_size_zfs}).", ""]
    if "smb" in user.protocols:
        lines += [
            "1. In Finder: Go > Connect to Server (Cmd-K), enter",
            f"     smb://{server}/{share}",
            f"   and log in as {name} with the Samba password.",
            "2. Or in Terminal (asks for the password):",
            f'     sudo tmutil setdestination -p "smb://{name}@{server}/{share}"',
        ]
    if "afp" in user.protocols:
        lines += [
            "   Over AFP (older macOS):" if "smb" in user.protocols else "1. Over AFP:",
            f"     afp://{server}/{share}",
            f'     sudo tmutil setdestination -p "afp://{name}@{server}/{share}"',
        ]
    url = f"smb://{server}/{share}" if "smb" in user.protocols else f"afp://{server}/{share}"
    lines += [
        "3. System Settings > General > Time Machine: the disk appears; select it and back up now.",
        "",
        "Restore a whole Mac from this server:",
        "   boot into Recovery (Apple silicon: hold the power button; Intel: Cmd-R) > Restore from Time Machine",
        f"   > Other Server (or 'Connect to Remote Disk') > {url} > log in as {name} > pick a backup.",
    ]
    return lines


__all__ = ["Applied", "Plan", "SpecError", "UserError", "add_user", "apply_change", "change_quota",
           "check_quota_not_below_usage", "check_user_entry", "dataset_of", "lock_login", "onboarding", "plan_add",
           "plan_remove", "plan_set_quota", "purge_dataset", "remove_access", "samba_forget"]
