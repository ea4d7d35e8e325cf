"""opsctl/cli/output.py: the live playbook view and the run summary show Ansible's and the hosts'
text literally (a task or host name is never Rich markup)."""

from __future__ import annotations

from rich.console import Console

from opsctl.apply.runner import RunSummary
from opsctl.cli import common, output

TASK = "[bold red]evil task[/]"
HOST = "[reverse]host"


def _render(renderable) -> str:
    con = Console(width=300, record=True, color_system=None)
    con.print(renderable)
    return con.export_text()


def test_live_view_prints_task_and_host_names_literally():
    view = output.PlaybookProgress([HOST])
    view.event({"event": "task", "name": TASK, "role": "zfs"})
    view.event({"event": "result", "host": HOST, "status": "changed"})
    view.event({"event": "result", "host": HOST, "status": "failed", "msg": "[/]boom"})
    text = _render(view)
    assert f"zfs : {TASK}" in text and HOST in text and "[/]boom" in text
    row = next(line for line in text.splitlines() if HOST in line and "│" in line)
    assert [c.strip() for c in row.split("│")[1:-1]] == [HOST, "0", "1", "1", "0", f"zfs : {TASK}"]


def test_summary_prints_host_names_literally(monkeypatch):
    con = Console(width=300, record=True, color_system=None)
    monkeypatch.setattr(output, "console", con)
    monkeypatch.setattr(common, "console", con)
    summary = RunSummary(rc=0, hosts={HOST: {"ok": 3, "changed": 1, "failures": 0, "unreachable": 0, "skipped": 0}})
    output.print_run_summary(summary)
    text = con.export_text()
    assert HOST in text and "done: 1 change(s)" in text
