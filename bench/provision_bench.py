"""Provision benchmark: tasks, remote module executions and wall time per role on the OpenZFS VM.

Boots its own sandbox VM (``bench-backup`` by default, never the sandbox's ``backup``), writes a
site file in a temporary directory whose backup host is that VM (``sandbox: vm``; the backup part
of the embedded sandbox site), then runs ``playbooks/backup_server.yml`` three times the way
``opsctl provision`` does (same runner, inventory, secrets and JSON events):

1. the first provision (fresh VM: pool, datasets, users, packages present in the image);
2. the no-op provision (nothing to change: the figure ops people pay for every drift check);
3. a one-file drift repair (a line appended to smb.conf on the host, then provision).

Then a status probe of the same host (``opsctl status``'s probe, in-process) and prints, for
each run: changed count, tasks, remote module executions (python runs on the host, counted from
ansible's connection log at verbosity 3), ssh commands, wall time, and the time per role. Last
the ratio no-op provision / status probe. Ratios, not timed assertions: the machine is shared.

    python bench/provision_bench.py                  # ~5 min on the 2-core machine
    python bench/provision_bench.py --json out.json --keep   # keep the VM running afterwards
    git worktree add /tmp/before <commit> && python bench/provision_bench.py --tree /tmp/before
                                                     # the roles/playbooks/templates of another checkout
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
#: A module execution on the host: the interpreter runs a module (pipelined on stdin, or a
#: transferred file), as printed by the ssh connection plugin at -vvv.
_PY_EXEC = re.compile(r"SSH: EXEC ssh .*'/bin/sh -c '\"'\"'.*/usr/bin/python3")
_SSH_EXEC = re.compile(r"SSH: EXEC (ssh|sftp|scp) ")


def site_file(directory: Path, host: str) -> Path:
    """The embedded sandbox site's backup part, served by the VM ``host``."""
    from opsctl.site.loader import DEFAULT_SITE

    data = yaml.safe_load(DEFAULT_SITE.read_text())
    data["site"] = "bench"
    data["hosts"] = [{"name": host, "sandbox": "vm", "groups": ["backup_servers"]}]
    data["backup"]["host"] = host
    data.pop("training", None)
    path = directory / "bench_site.yml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


class Recorder:
    """Collects the runner's JSON events with their arrival time."""

    def __init__(self):
        self.events: list[tuple[float, dict]] = []

    def __call__(self, event: dict) -> None:
        self.events.append((time.monotonic(), event))

    def per_role(self, end: float) -> dict[str, float]:
        """Seconds per role: a task lasts from its start event to the next task's start (or the end)."""
        starts = [(t, e.get("role") or "(play)") for t, e in self.events if e.get("event") == "task"]
        roles: dict[str, float] = defaultdict(float)
        for (t, role), nxt in zip(starts, [s[0] for s in starts[1:]] + [end], strict=True):
            roles[role] += nxt - t
        return dict(roles)

    def tasks(self) -> int:
        return sum(1 for _, e in self.events if e.get("event") == "task")

    def results(self, status: str) -> int:
        return sum(1 for _, e in self.events if e.get("event") == "result" and e.get("status") == status)


def provision(site, label: str, secrets: dict, log_dir: Path | None = None) -> dict:
    from opsctl.apply.runner import run_playbook

    rec = Recorder()
    start = time.monotonic()
    summary = run_playbook(site, "backup_server.yml", extra_vars={"zfs_force_disks": False},
                           secret_vars=secrets, on_event=rec)
    end = time.monotonic()
    if summary.failed:
        tail = "\n".join(summary.log[-40:])
        raise SystemExit(f"{label}: provision failed (rc={summary.rc}): {summary.failures}\n{tail}")
    log = "\n".join(summary.log)
    if log_dir is not None:
        (log_dir / (re.sub(r"[^a-z0-9]+", "-", label.lower()).strip("-") + ".log")).write_text(log)
    print(f"  {label}: {end - start:.1f}s, changed={summary.changed}", flush=True)
    return {"run": label, "seconds": round(end - start, 1), "changed": summary.changed, "tasks": rec.tasks(),
            "skipped": rec.results("skipped"), "module_executions": len(_PY_EXEC.findall(log)),
            "ssh_commands": len(_SSH_EXEC.findall(log)),
            "per_role": {k: round(v, 1) for k, v in rec.per_role(end).items()}}


def use_tree(tree: Path) -> None:
    """Run the playbooks, roles, plugins and templates of checkout ``tree`` (e.g. a git worktree of
    the commit before a change) with this checkout's runner: the before/after comparison."""
    import opsctl.apply.inventory as inventory
    import opsctl.apply.runner as runner

    runner.ROOT, runner.PLAYBOOKS, inventory.TEMPLATES = tree, tree / "playbooks", tree / "templates"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--name", default="bench-backup", help="the VM's name (its own, not the sandbox's)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--keep", action="store_true", help="leave the VM running at the end")
    parser.add_argument("--log-dir", type=Path, help="write each run's ansible connection log (-vvv) here")
    parser.add_argument("--tree", type=Path, help="run the roles of this checkout instead (before/after)")
    args = parser.parse_args(argv)
    if args.tree:
        if not (args.tree / "playbooks" / "backup_server.yml").is_file() or not (args.tree / "ansible.cfg").is_file():
            parser.error(f"--tree {args.tree}: not an opsctl checkout (no playbooks/backup_server.yml or "
                         "ansible.cfg); give a git worktree of this repository")
        use_tree(args.tree.resolve())

    from opsctl.apply.secrets import samba_passwords
    from opsctl.sandbox.vm import ZfsVM
    from opsctl.site import load
    from opsctl.status import probe_site

    # The connection plugin's -vvv lines land in the runner's log (not JSON): they are what is counted.
    os.environ["ANSIBLE_VERBOSITY"] = "3"
    tmp = Path(tempfile.mkdtemp(prefix="opsctl-provbench-"))
    site = load(site_file(tmp, args.name)).site
    print(f"load average {os.getloadavg()[0]:.2f}; site file {tmp / 'bench_site.yml'}; booting VM {args.name} ...",
          flush=True)
    t0 = time.monotonic()
    vm = ZfsVM.boot(args.name, disks=2, disk_size="1G")
    runs = []
    try:
        print(f"booted in {time.monotonic() - t0:.0f}s", flush=True)
        secrets = {"samba_passwords": samba_passwords(site, interactive=False)}
        runs.append(provision(site, "first", secrets, args.log_dir))
        runs.append(provision(site, "no-op", secrets, args.log_dir))
        vm.ssh("printf '[drift]\\npath = /tmp\\n' >> /etc/samba/smb.conf", check=True)
        runs.append(provision(site, "drift repair (smb.conf)", secrets, args.log_dir))
        t = time.monotonic()
        facts = probe_site(site, None, mdns=True)
        probe = time.monotonic() - t
        if any(f.get("probe_error") for f in facts):
            raise SystemExit(f"status probe failed: {[f.get('probe_error') for f in facts]}")
    finally:
        if not args.keep:
            vm.stop()
            shutil.rmtree(tmp, ignore_errors=True)  # --keep: the site file stays for `opsctl --site`
    roles = sorted({r for run in runs for r in run["per_role"]})
    print(f"\n{'run':26} {'changed':>7} {'tasks':>5} {'modules':>7} {'ssh':>5} {'seconds':>8}  "
          + " ".join(f"{r:>9}" for r in roles))
    for run in runs:
        print(f"{run['run']:26} {run['changed']:>7} {run['tasks']:>5} {run['module_executions']:>7} "
              f"{run['ssh_commands']:>5} {run['seconds']:>8.1f}  "
              + " ".join(f"{run['per_role'].get(r, 0):>9.1f}" for r in roles))
    noop = runs[1]["seconds"]
    print(f"\nstatus probe: {probe:.1f}s; no-op provision / status probe = {noop / probe:.1f}x; "
          f"second run changed={runs[1]['changed']}; load average {os.getloadavg()[0]:.2f}")
    if args.json:
        args.json.write_text(json.dumps({"runs": runs, "status_probe_seconds": round(probe, 1),
                                         "noop_over_probe": round(noop / probe, 2)}, indent=2))
    return 0 if runs[1]["changed"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
