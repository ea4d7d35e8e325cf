"""Run the playbooks against the inventory built from the spec, streaming per-task events.

``ansible-playbook`` runs with the repo's ``ansible.cfg`` and the ``opsctl_events`` stdout
callback (JSON lines), so the CLI can show live per-host/per-task progress and a summary.
Secrets go in a 0600 extra-vars file inside a 0700 temp dir, never on the command line.

Example::

    summary = run_playbook(site, "site.yml", on_event=print)
    summary.changed  # total changed tasks over all hosts
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from opsctl import PLAYBOOKS, ROOT
from opsctl.apply.inventory import build_inventory, write_inventory
from opsctl.files import atomic_write
from opsctl.site.models import Site


@dataclass
class RunSummary:
    rc: int
    hosts: dict[str, dict] = field(default_factory=dict)  # per host: ok, changed, failures, unreachable, ...
    failures: list[dict] = field(default_factory=list)  # result events with status failed/unreachable
    changes: list[dict] = field(default_factory=list)  # result events with status changed
    warnings: list[dict] = field(default_factory=list)  # {"host", "task", "text"}: module and role warnings
    log: list[str] = field(default_factory=list)  # non-event output (warnings, errors)

    @property
    def changed(self) -> int:
        return sum(h.get("changed", 0) for h in self.hosts.values())

    @property
    def failed(self) -> bool:
        return self.rc != 0 or any(h.get("failures") or h.get("unreachable") for h in self.hosts.values())


def ansible_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update({
        "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
        "ANSIBLE_STDOUT_CALLBACK": "opsctl_events",
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_FORCE_COLOR": "0",
        "ANSIBLE_LOAD_CALLBACK_PLUGINS": "1",
        "PYTHONUNBUFFERED": "1",
    })
    bindir = str(Path(sys.executable).parent)
    if bindir not in env.get("PATH", "").split(os.pathsep):
        env["PATH"] = bindir + os.pathsep + env.get("PATH", "")
    return env


def run_playbook(
    site: Site,
    playbook: str = "site.yml",
    *,
    limit: list[str] | None = None,
    check: bool = False,
    diff: bool = False,
    extra_vars: dict | None = None,
    secret_vars: dict | None = None,
    tags: list[str] | None = None,
    on_event: Callable[[dict], None] | None = None,
) -> RunSummary:
    """Run ``playbooks/<playbook>`` on the site (or ``limit`` hosts); return the summary."""
    summary = RunSummary(rc=0)
    with tempfile.TemporaryDirectory(prefix="opsctl-") as tmp:
        os.chmod(tmp, 0o700)
        inventory = write_inventory(Path(tmp) / "inventory.yml", build_inventory(site, limit))
        cmd = ["ansible-playbook"]
        cmd += ["-i", str(inventory), str(PLAYBOOKS / playbook)]
        if limit:
            cmd += ["--limit", ",".join(limit)]
        if check:
            cmd.append("--check")
        if diff:
            cmd.append("--diff")
        if tags:
            cmd += ["--tags", ",".join(tags)]
        if extra_vars:
            cmd += ["-e", "@" + str(atomic_write(Path(tmp) / "vars.json", json.dumps(extra_vars), mode=0o600))]
        if secret_vars:
            cmd += ["-e", "@" + str(atomic_write(Path(tmp) / "secrets.json", json.dumps(secret_vars), mode=0o600))]
        # Its own session: a Ctrl-C or SIGTERM reaches opsctl only, which stops ansible-playbook (and
        # its workers) itself and leaves through the `with`, so the secrets file is always removed.
        proc = subprocess.Popen(cmd, cwd=ROOT, env=ansible_env(), stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, stdin=subprocess.DEVNULL,
                                start_new_session=True)
        try:
            with _sigterm_raises():
                _read_events(proc, summary, on_event)
                summary.rc = proc.wait()
        except (KeyboardInterrupt, Interrupted) as exc:
            _stop(proc)
            raise Interrupted(getattr(exc, "signal_name", "SIGINT")) from None
    return summary


class Interrupted(Exception):
    """The run was stopped by a signal; ansible-playbook was stopped and the temporary files removed."""

    def __init__(self, signal_name: str = "SIGTERM"):
        super().__init__(signal_name)
        self.signal_name = signal_name


@contextlib.contextmanager
def _sigterm_raises():
    """Turn SIGTERM into :class:`Interrupted` while a playbook runs (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise Interrupted("SIGTERM")

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _stop(proc: subprocess.Popen, grace: float = 10) -> None:
    """SIGTERM the playbook's process group, SIGKILL it after ``grace`` seconds."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def _read_events(proc: subprocess.Popen, summary: RunSummary, on_event: Callable[[dict], None] | None) -> None:
    assert proc.stdout is not None
    for line in proc.stdout:
        line = line.rstrip("\n")
        try:
            event = json.loads(line) if line.startswith("{") else None
        except json.JSONDecodeError:
            event = None
        if not isinstance(event, dict) or "event" not in event:
            if line.strip():
                summary.log.append(line)
            continue
        if event["event"] == "stats":
            summary.hosts = event["hosts"]
        elif event["event"] == "result":
            summary.warnings += [{"host": event["host"], "task": event["task"], "text": w}
                                 for w in event.get("warnings", [])]
            if event["status"] in ("failed", "unreachable"):
                summary.failures.append(event)
            elif event["status"] == "changed":
                summary.changes.append(event)
        if on_event:
            on_event(event)
