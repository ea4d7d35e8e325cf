"""``opsctl provision``: parse the arguments, call :func:`opsctl.apply.provision.provision`, show its
progress live and its summary."""

from __future__ import annotations

import contextlib
import sys
from typing import Annotated

import typer

from opsctl.cli.common import EXIT_BAD_INPUT, JsonOpt, SiteOpt, err, fail, load_site, print_json, styled
from opsctl.cli.output import live_progress, print_run_summary
from opsctl.errors import BadInput, HostUnreachable


def provision(
    site: SiteOpt = None,
    limit: Annotated[list[str] | None, typer.Option("--limit", "-l", help="only these hosts (repeatable)")] = None,
    check: Annotated[bool, typer.Option("--check", help="dry run: report what would change")] = False,
    diff: Annotated[bool, typer.Option("--diff", help="show file differences")] = False,
    force_disks: Annotated[bool, typer.Option(
        "--force-disks", help="allow creating the pool on disks that carry a filesystem or partition table "
                              "(DESTROYS what is on them; never a pool that can be imported). Shows what is on "
                              "each disk and asks you to type the pool name; refused without a terminal")] = False,
    playbook: Annotated[str, typer.Option(help="playbook under playbooks/")] = "site.yml",
    as_json: JsonOpt = False,
) -> None:
    """Apply the site: ZFS, Samba, Netatalk, Avahi on the backup server; Docker/Apptainer + job files on
    the training host. A second run reports zero changes."""
    from opsctl.apply import provision as service
    from opsctl.apply.runner import Interrupted

    loaded = load_site(site, quiet=as_json)
    names = [h.name for h in loaded.site.hosts]
    for name in limit or []:
        if name not in names:
            fail(f"--limit {name!r} is not in the site; known hosts: {', '.join(names)}", EXIT_BAD_INPUT)
    confirm = _confirm_disks if sys.stdin.isatty() else None
    try:
        with contextlib.nullcontext(None) if as_json else live_progress(limit or names) as on_event:
            summary = service.provision(loaded.site, playbook, limit=limit, check=check, diff=diff,
                                        force_disks=force_disks, confirm_disks=confirm, on_event=on_event)
    except BadInput as exc:  # --force-disks not confirmed, a Samba password missing or unusable
        fail(f"{exc}; nothing was applied", EXIT_BAD_INPUT)
    except HostUnreachable as exc:
        fail(f"{exc}; nothing was applied")
    except Interrupted as exc:
        fail(f"interrupted ({exc.signal_name}): ansible-playbook was stopped and the temporary secrets file "
             "removed; the hosts may be half-way: run `opsctl provision` again, it converges",
             130 if exc.signal_name == "SIGINT" else 143)
    if as_json:
        print_json({"rc": summary.rc, "hosts": summary.hosts, "changed": summary.changed,
                    "changes": summary.changes, "failures": summary.failures, "warnings": summary.warnings})
    else:
        print_run_summary(summary)
    if summary.failed:
        raise typer.Exit(1)


def _confirm_disks(check) -> bool:
    """Name every disk --force-disks may overwrite, with what `wipefs -n` finds on it, and have the
    operator type the pool name (no y/N). The zfs role's module still never overwrites a disk of a
    pool that can be imported."""
    err.print(styled(("--force-disks", "bold red"), f": pool {check.pool} on {check.host} may be created on these "
                     "disks, ERASING what they hold:"), highlight=False)
    for disk, found in check.disks:
        err.print(f"  {disk}", style="bold", markup=False, highlight=False)
        for line in found.splitlines():
            err.print(f"      {line}", markup=False, highlight=False)
    typed = typer.prompt(f"Type the pool name ({check.pool}) to go on", default="", show_default=False, err=True)
    if typed != check.pool:
        fail(f"you typed {typed!r}, not {check.pool!r}; nothing was applied", EXIT_BAD_INPUT)
    return True
