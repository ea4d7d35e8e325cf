"""The provision step: apply the site to its hosts, with everything it needs fetched here.

:func:`provision` is what ``opsctl provision`` calls (the CLI only parses arguments and shows
progress). In order, it: has an operator confirm ``force_disks`` (showing what ``wipefs -n`` finds on
each disk), stops on an unknown or changed ssh host key (the fix is ``opsctl hosts trust NAME``),
fetches the Samba passwords (:mod:`opsctl.apply.secrets`), builds the backup host's Samba/Avahi
images here when the site says so (``backup.mode: containers`` with ``offline_build``:
:func:`opsctl.backup_images.offline_images`) and runs the playbook
(:mod:`opsctl.apply.runner`), whose temporary secrets file is always removed.

Example::

    summary = provision(site, limit=["backup"], on_event=print)
    summary.changed  # 0 on a second run
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from dataclasses import dataclass

from opsctl.apply.runner import RunSummary, run_playbook
from opsctl.apply.secrets import samba_passwords
from opsctl.connections import connection_for
from opsctl.errors import BadInput
from opsctl.site.models import Site


@dataclass(frozen=True)
class DiskCheck:
    """What ``--force-disks`` may overwrite: the pool, its host, and per disk what ``wipefs -n`` found."""

    pool: str
    host: str
    disks: list[tuple[str, str]]


#: Shown a :class:`DiskCheck`, returns the operator's answer: True to go on.
ConfirmDisks = Callable[[DiskCheck], bool]


def disk_check(site: Site, limit: list[str] | None = None) -> DiskCheck | None:
    """The disks the pool may be created on, with what is on each; None when no backup host is in scope."""
    backup = site.backup
    if backup is None or not _backup_in_scope(site, limit):
        return None
    conn = connection_for(site.host(backup.host))
    disks = []
    for disk in [d for v in backup.pool.vdevs for d in v.disks]:
        res = conn.run(f"wipefs -n {shlex.quote(disk)}")
        if res.rc == 0:
            found = res.stdout.strip() or "(no signature found)"
        else:
            found = f"(wipefs failed: {res.stderr.strip()})"
        disks.append((disk, found))
    return DiskCheck(backup.pool.name, backup.host, disks)


def provision(
    site: Site,
    playbook: str = "site.yml",
    *,
    limit: list[str] | None = None,
    check: bool = False,
    diff: bool = False,
    force_disks: bool = False,
    confirm_disks: ConfirmDisks | None = None,
    on_event: Callable[[dict], None] | None = None,
) -> RunSummary:
    """Apply ``site`` (or its ``limit`` hosts) with ``playbooks/<playbook>``; return the run's summary.

    ``force_disks`` (ignored with ``check``) lets ZFS create the pool on disks that carry a filesystem;
    ``confirm_disks`` is asked first and must return True (else, or without it: ``BadInput``).

    Raises :class:`~opsctl.errors.BadInput` (also ``SecretError``: a password cannot be had; checked
    before anything is sent to a host), :class:`~opsctl.errors.HostUnreachable` (``HostKeyError``: an
    untrusted host key), and :class:`~opsctl.apply.runner.Interrupted` on SIGINT/SIGTERM.
    """
    hosts = limit or [h.name for h in site.hosts]
    if force_disks and not check:
        _confirm_force_disks(site, limit, confirm_disks)
    secrets = {"samba_passwords": samba_passwords(site)}
    for name in hosts:  # an unknown or changed key stops here with its fix, not as 'unreachable' in Ansible
        connection_for(site.host(name)).check_host_key()
    extra_vars: dict = {"zfs_force_disks": force_disks}
    if _offline_images_wanted(site, limit) and not check:
        from opsctl.backup_images import offline_images

        extra_vars.update(offline_images(site, progress=_say(on_event)))
    return run_playbook(site, playbook, limit=limit, check=check, diff=diff,
                        extra_vars=extra_vars, secret_vars=secrets, on_event=on_event)


def _offline_images_wanted(site: Site, limit: list[str] | None) -> bool:
    """backup.mode containers with offline_build: the host gets its Samba/Avahi images from here."""
    b = site.backup
    return _backup_in_scope(site, limit) and b is not None and b.mode == "containers" and b.offline_build


def _say(on_event: Callable[[dict], None] | None) -> Callable[[str], None] | None:
    if on_event is None:
        return None
    return lambda line: on_event({"event": "message", "text": line})


def _backup_in_scope(site: Site, limit: list[str] | None) -> bool:
    return site.backup is not None and (not limit or site.backup.host in limit)


def _confirm_force_disks(site: Site, limit: list[str] | None, confirm: ConfirmDisks | None) -> None:
    if not _backup_in_scope(site, limit):
        return
    if confirm is None:
        raise BadInput("--force-disks lets ZFS overwrite disks and needs an operator at a terminal to type the "
                      "pool name")
    found = disk_check(site, limit)
    if found is not None and not confirm(found):
        raise BadInput(f"the operator did not confirm overwriting the disks of pool {found.pool}")
