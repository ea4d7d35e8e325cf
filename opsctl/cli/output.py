"""How a playbook run looks on the terminal: the live per-host view while it runs
(:class:`PlaybookProgress`) and the summary table after it (:func:`print_run_summary`).

Shared by ``opsctl provision`` and ``opsctl user``. Task names, hosts and messages come from Ansible
and the hosts, so they are shown as ``Text``, never parsed as Rich markup.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

from rich.live import Live
from rich.table import Table
from rich.text import Text

from opsctl.cli.common import console, err, styled

STATUS_STYLE = {"ok": "green", "changed": "yellow", "failed": "bold red", "unreachable": "bold red",
                "skipped": "dim", "ignored": "dim"}


def _counts() -> dict:
    return {"ok": 0, "changed": 0, "failed": 0, "skipped": 0, "task": ""}


class PlaybookProgress:
    """Live per-host view: current task, counts, last failures. Feed it the runner's events."""

    def __init__(self, hosts: list[str]):
        self.hosts = {h: _counts() for h in hosts}
        self.task = ""
        self.lines: list[Text] = []

    def event(self, event: dict) -> None:
        if event["event"] == "task":
            self.task = (f"{event['role']} : " if event.get("role") else "") + event["name"]
        elif event["event"] == "message":  # a step of opsctl's own before the playbook (e.g. an image build)
            self.task = event["text"]
        elif event["event"] == "result":
            host = self.hosts.setdefault(event["host"], _counts())
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
        table = Table(title=Text(self.task or "starting ansible-playbook"), title_justify="left")
        for col in ("host", "ok", "changed", "failed", "skipped", "last task"):
            table.add_column(col, justify="right" if col in ("ok", "changed", "failed", "skipped") else "left")
        for name, h in self.hosts.items():
            table.add_row(Text(name), str(h["ok"]), Text(str(h["changed"]), style="yellow" if h["changed"] else ""),
                          Text(str(h["failed"]), style="red" if h["failed"] else ""), str(h["skipped"]),
                          Text(h["task"]))
        out = Table.grid()
        for line in self.lines:
            out.add_row(line)
        out.add_row(table)
        return out


@contextlib.contextmanager
def live_progress(hosts: list[str], *, transient: bool = False) -> Iterator[Callable[[dict], None]]:
    """Yield the runner's ``on_event``: a :class:`PlaybookProgress` for ``hosts`` shown live on stderr from
    the first event on (so a prompt before the playbook starts is not drawn over)."""
    progress = PlaybookProgress(hosts)
    live = Live(progress, console=err, refresh_per_second=4, transient=transient)

    def on_event(event: dict) -> None:
        if not live.is_started:
            live.start()
        progress.event(event)

    try:
        yield on_event
    finally:
        if live.is_started:
            live.stop()


def print_run_summary(summary) -> None:
    """The per-host table, the roles' warnings, and the failures (or ``done: N change(s)``)."""
    table = Table(title="provision summary")
    for col in ("host", "ok", "changed", "failed", "unreachable", "skipped"):
        table.add_column(col, justify="left" if col == "host" else "right")
    for host, s in summary.hosts.items():
        table.add_row(Text(host), str(s["ok"]), str(s["changed"]), str(s["failures"]), str(s["unreachable"]),
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
        console.print(styled(("done", "green"), f": {summary.changed} change(s)"), highlight=False)
