"""``opsctl provision``: run the playbooks on the site's hosts with live progress."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.live import Live
from rich.table import Table
from rich.text import Text

from opsctl.cli.common import EXIT_BAD_INPUT, JsonOpt, SiteOpt, console, err, fail, load_site, print_json
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
                              "(DESTROYS what is on them)")] = False,
    playbook: Annotated[str, typer.Option(help="playbook under playbooks/")] = "site.yml",
    as_json: JsonOpt = False,
) -> None:
    """Apply the site: ZFS, Samba, Netatalk, Avahi on the backup server; Docker/Apptainer + job files on
    the training host. A second run reports zero changes."""
    from opsctl.apply.runner import run_playbook
    from opsctl.apply.secrets import SecretError, samba_passwords

    loaded = load_site(site, quiet=as_json)
    names = [h.name for h in loaded.site.hosts]
    for name in limit or []:
        if name not in names:
            fail(f"--limit {name!r} is not in the site; known hosts: {', '.join(names)}", EXIT_BAD_INPUT)
    if force_disks and not check and not typer.confirm(
            "--force-disks lets ZFS overwrite disks that hold data. Continue?", default=False, err=True):
        fail("aborted; nothing was applied", EXIT_BAD_INPUT)
    try:
        secrets = {"samba_passwords": samba_passwords(loaded.site)}
    except SecretError as exc:
        fail(f"{exc}; nothing was applied", EXIT_BAD_INPUT)
    progress = Progress(limit or names)
    extra = {"zfs_force_disks": force_disks}
    try:
        if as_json:
            summary = run_playbook(loaded.site, playbook, limit=limit, check=check, diff=diff, extra_vars=extra,
                                   secret_vars=secrets)
        else:
            with Live(progress, console=err, refresh_per_second=4, transient=False):
                summary = run_playbook(loaded.site, playbook, limit=limit, check=check, diff=diff,
                                       extra_vars=extra, secret_vars=secrets, on_event=progress.event)
    except SandboxError as exc:
        fail(f"{exc}; nothing was applied")
    if as_json:
        print_json({"rc": summary.rc, "hosts": summary.hosts, "changed": summary.changed,
                    "changes": summary.changes, "failures": summary.failures})
    else:
        _summary(summary)
    if summary.failed:
        raise typer.Exit(1)


def _summary(summary) -> None:
    table = Table(title="provision summary")
    for col in ("host", "ok", "changed", "failed", "unreachable", "skipped"):
        table.add_column(col, justify="left" if col == "host" else "right")
    for host, s in summary.hosts.items():
        table.add_row(host, str(s["ok"]), str(s["changed"]), str(s["failures"]), str(s["unreachable"]),
                      str(s["skipped"]))
    console.print(table)
    if summary.failed:
        if not summary.hosts and summary.log:
            err.print("\n".join(summary.log[-30:]), markup=False, highlight=False)
        for f in summary.failures:
            err.print(f"FAILED {f['host']}: {f['task']}: {f.get('msg', '')}", style="red", markup=False,
                      highlight=False, soft_wrap=True)
    else:
        console.print(f"[green]done[/]: {summary.changed} change(s)")
