"""The playbook runner with a real ansible-playbook on a local-connection host: warnings reach the
summary, and a SIGTERM stops the run cleanly (child stopped, temporary secrets removed, Interrupted)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from opsctl.site.models import Site
from tests.support.ci import need

PLAYBOOK = textwrap.dedent("""\
    - name: Local play
      hosts: all
      gather_facts: false
      tasks:
        - name: Warn about something the operator should know
          ansible.builtin.debug:
            msg: "WARNING: this release is known to break things"
        - name: Take a while
          ansible.builtin.command: sleep 120
          changed_when: false
    """)


@pytest.fixture
def local(tmp_path, monkeypatch):
    import shutil

    if shutil.which("ansible-playbook") is None:
        need("ansible-playbook is not on PATH (scripts/test.sh puts .venv/bin first)")
    books = tmp_path / "playbooks"
    books.mkdir()
    (books / "local.yml").write_text(PLAYBOOK.replace("sleep 120", "sleep 0"))
    (books / "slow.yml").write_text(PLAYBOOK)
    monkeypatch.setattr("opsctl.apply.runner.PLAYBOOKS", books)
    site = Site.model_validate({"site": "t", "hosts": [{"name": "ctl", "connection": "local"}]})
    return site, books


def test_role_warnings_reach_the_summary(local):
    from opsctl.apply.runner import run_playbook

    site, _books = local
    summary = run_playbook(site, "local.yml", secret_vars={"samba_passwords": {"alice": "x"}})
    assert summary.rc == 0 and not summary.failed, summary.log
    assert summary.warnings == [{"host": "ctl", "task": "Warn about something the operator should know",
                                 "text": "WARNING: this release is known to break things"}]


def test_warning_task_inside_a_role_reaches_the_summary(local, tmp_path):
    """A role's task is named "role : Warn ..." by Ansible; its warning must still reach the summary
    (samba's version guard is such a task)."""
    from opsctl.apply.runner import run_playbook

    site, books = local
    tasks = tmp_path / "roles" / "warner" / "tasks"
    tasks.mkdir(parents=True)
    (tasks / "main.yml").write_text(PLAYBOOK.split("tasks:\n", 1)[1].replace("sleep 120", "sleep 0")
                                    .replace("        - name", "- name").replace("\n          ", "\n  "))
    (books / "role.yml").write_text(textwrap.dedent(f"""\
        - name: Local play with a role
          hosts: all
          gather_facts: false
          roles:
            - role: {tmp_path / "roles" / "warner"}
        """))
    summary = run_playbook(site, "role.yml")
    assert summary.rc == 0 and not summary.failed, summary.log
    assert [w["text"] for w in summary.warnings] == ["WARNING: this release is known to break things"]


def test_sigterm_stops_ansible_and_removes_the_secrets(local, tmp_path):
    _site, books = local
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    script = textwrap.dedent(f"""\
        import sys
        import opsctl.apply.runner as r
        from opsctl.site.models import Site
        r.PLAYBOOKS = __import__("pathlib").Path({str(books)!r})
        site = Site.model_validate({{"site": "t", "hosts": [{{"name": "ctl", "connection": "local"}}]}})
        try:
            r.run_playbook(site, "slow.yml", secret_vars={{"samba_passwords": {{"alice": "s3cret"}}}},
                           on_event=lambda e: print(e.get("event"), e.get("name", ""), flush=True))
        except r.Interrupted as exc:
            print("interrupted", exc.signal_name, flush=True)
            sys.exit(143)
        """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "TMPDIR": str(tmpdir)})
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("task Take a while"):
            break
    else:
        pytest.fail(f"the slow task never started (exit {proc.wait()})")
    time.sleep(1)
    secrets = list(tmpdir.glob("opsctl-*/secrets.json"))
    assert len(secrets) == 1  # while it runs
    proc.send_signal(signal.SIGTERM)
    rest = proc.stdout.read()
    assert proc.wait(timeout=60) == 143 and "interrupted SIGTERM" in rest, rest
    assert list(tmpdir.glob("opsctl-*")) == []  # opsctl's inventory, vars and secrets files are gone
    left = subprocess.run(["pgrep", "-f", str(books / "slow.yml")], capture_output=True, text=True).stdout.split()
    assert left == [], f"ansible-playbook still running: {left}"
