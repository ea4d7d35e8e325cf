"""``opsctl provision``: run the playbooks on the site's hosts with live progress."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.live import Live
from rich.table import Table
from rich.text import Text

from opsctl.cli.common import EXIT_BAD_INPUT, JsonOpt, SiteOpt, console, err, fail, load_site, print_json, styled
from opsctl.sandbox.errors import SandboxError

STATUS_STYLE = {"ok": "green", "changed": "yellow", "failed": "bold red", "unreachable": "bold red",
                "skipped": "dim", "ignored": "dim"}


class Progress:
    """Live per-host view: current task, counts, last failures."""

    def __init__(self, hosts: list[str]):
        self.hosts = {h: {"ok": 0, "changed": 0, "failed": 0, "skipped": 0, "task": ""} for h in hosts}
        self.task = ""
        self.lines: list[Text] = []

    def event(self, event: dict) -> None:
        if event["event"] == "task":
            self.task = (f"{event['role']} : " if event.get("role") else "") + event["name"]
        elif event["event"] == "result":
            host = self.hosts.setdefault(event["host"], {"ok": 0, "changed": 0, "failed": 0, "skipped": 0,
                                                         "task": ""})
            status = event["status"]
            key = {"unreachable": "failed", "ignored": "skipped"}.get(status, status)
            host[key] = host.get(key, 0) + 1
            host["task"] = self.task
            if status in ("changed", "failed", "unreachable"):
                line = Text(f"{status:>11}  {event['host']}: {self.task}", style=STATUS_STYLE[status])
                if event.get("msg"):
                    line.append(f"\n             {event['msg']}", style="red")
                self.lines = (self.lines + [line])[-12:]

    def __rich__(self):
        table = Table(title=self.task or "starting ansible-playbook", title_justify="left")
        for col in ("host", "ok", "changed", "failed", "skipped", "last task"):
            table.add_column(col, justify="right" if col in ("ok", "changed", "failed", "skipped") else "left")
        for name, h in self.hosts.items():
            table.add_row(name, str(h["ok"]), f"[yellow]{h['changed']}[/]" if h["changed"] else "0",
                          f"[red]{h['failed']}[/]" if h["failed"] else "0", str(h["skipped"]), h["task"])
        out = Table.grid()
        for line in self.lines:
            out.add_row(line)
        out.add_row(table)
        return out


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
    from opsctl.apply.runner import Interrupted, run_playbook
    from opsctl.apply.secrets import SecretError, samba_passwords

    loaded = load_site(site, quiet=as_json)
    names = [h.name for h in loaded.site.hosts]
    for name in limit or []:
        if name not in names:
            fail(f"--limit {name!r} is not in the site; known hosts: {', '.join(names)}", EXIT_BAD_INPUT)
    if force_disks and not check:
        _confirm_force_disks(loaded.site, limit)
    try:
        secrets = {"samba_passwords": samba_passwords(loaded.site)}
    except SecretError as exc:
        fail(f"{exc}; nothing was applied", EXIT_BAD_INPUT)
    progress = Progress(limit or names)
    extra = {"zfs_force_disks": force_disks}
    try:
        _check_host_keys(loaded.site, limit or names)
        if as_json:
            summary = run_playbook(loaded.site, playbook, limit=limit, check=check, diff=diff, extra_vars=extra,
                                   secret_vars=secrets)
        else:
            with Live(progress, console=err, refresh_per_second=4, transient=False):
                summary = run_playbook(loaded.site, playbook, limit=limit, check=check, diff=diff,
                                       extra_vars=extra, secret_vars=secrets, on_event=progress.event)
    except SandboxError as exc:
        fail(f"{exc}; nothing was applied")
    except Interrupted as exc:
        fail(f"interrupted ({exc.signal_name}): ansible-playbook was stopped and the temporary secrets file "
             "removed; the hosts may be half-way: run `opsctl provision` again, it converges",
             130 if exc.signal_name == "SIGINT" else 143)
    if as_json:
        print_json({"rc": summary.rc, "hosts": summary.hosts, "changed": summary.changed,
                    "changes": summary.changes, "failures": summary.failures, "warnings": summary.warnings})
    else:
        _summary(summary)
    if summary.failed:
        raise typer.Exit(1)


def _check_host_keys(site, names: list[str]) -> None:
    """Before Ansible runs: a real host whose ssh key is unknown or changed stops the run with the fix
    (`opsctl hosts trust NAME`), instead of an 'unreachable' buried in Ansible's output."""
    from opsctl.connections import connection_for

    for name in names:
        connection_for(site.host(name)).check_host_key()


def _confirm_force_disks(site, limit: list[str] | None) -> None:
    """Name every disk --force-disks may overwrite, with what `wipefs -n` finds on it, and have the
    operator type the pool name (no y/N; no terminal: refused). The zfs role's module still never
    overwrites a disk of a pool that can be imported."""
    import shlex
    import sys

    backup = site.backup
    if backup is None or (limit and backup.host not in limit):
        return
    if not sys.stdin.isatty():
        fail("--force-disks lets ZFS overwrite disks and needs an operator at a terminal to type the pool name; "
             "nothing was applied", EXIT_BAD_INPUT)
    from opsctl.connections import connection_for

    conn = connection_for(site.host(backup.host))
    pool = backup.pool.name
    err.print(styled(("--force-disks", "bold red"), f": pool {pool} on {backup.host} may be created on these "
                     "disks, ERASING what they hold:"), highlight=False)
    for disk in [d for v in backup.pool.vdevs for d in v.disks]:
        res = conn.run(f"wipefs -n {shlex.quote(disk)}")
        found = (res.stdout.strip() or "(no signature found)") if res.rc == 0 else \
            f"(wipefs failed: {res.stderr.strip()})"
        err.print(f"  {disk}", style="bold", markup=False, highlight=False)
        for line in found.splitlines():
            err.print(f"      {line}", markup=False, highlight=False)
    typed = typer.prompt(f"Type the pool name ({pool}) to go on", default="", show_default=False, err=True)
    if typed != pool:
        fail(f"you typed {typed!r}, not {pool!r}; nothing was applied", EXIT_BAD_INPUT)


def _summary(summary) -> None:
    table = Table(title="provision summary")
    for col in ("host", "ok", "changed", "failed", "unreachable", "skipped"):
        table.add_column(col, justify="left" if col == "host" else "right")
    for host, s in summary.hosts.items():
        table.add_row(host, str(s["ok"]), str(s["changed"]), str(s["failures"]), str(s["unreachable"]),
                      str(s["skipped"]))
    console.print(table)
    for w in summary.warnings:
        err.print(f"WARNING {w['host']}: {w['text']}", style="yellow", markup=False, highlight=False, soft_wrap=True)
    if summary.failed:
        if not summary.hosts and summary.log:
            err.print("\n".join(summary.log[-30:]), markup=False, highlight=False)
        for f in summary.failures:
            err.print(f"FAILED {f['host']}: {f['task']}: {f.get('msg', '')}", style="red", markup=False,
                      highlight=False, soft_wrap=True)
    else:
        console.print(f"[green]done[/]: {summary.changed} change(s)")
