"""Run the training job on the training host and collect its report.

Example::

    result = run_job(site, Path("names.txt"), on_line=print)
    result.rc, result.report["test_loss"]
"""

from __future__ import annotations

import json
import shlex
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from opsctl.connections import connection_for
from opsctl.spec.models import Site

JOB_DIR = "/opt/opsctl/job"


@dataclass
class JobResult:
    rc: int
    report: dict | None
    out_dir: str  # on the training host


def upload_names(site: Site, names: Path) -> str:
    """Put the names file into the host's data dir (readable by the job's uid); returns its path."""
    t = site.training
    conn = connection_for(site.host(t.host))
    target = f"{t.data_dir}/{t.job.names_file}"
    res = conn.run_stdin(f"install -D -m 0644 /dev/stdin {shlex.quote(target)}", names.read_bytes())
    if res.returncode != 0:
        raise RuntimeError(f"could not write {target} on {t.host}: {res.stderr!r}")
    return target


def run_job(site: Site, extra_args: list[str] | None = None,
            on_line: Callable[[str], None] | None = None) -> JobResult:
    """Run the provisioned ``docker-run.sh`` (or ``apptainer-run.sh``) on the host, streaming its output."""
    t = site.training
    conn = connection_for(site.host(t.host))
    script = "docker-run.sh" if t.runtime == "docker" else "apptainer-run.sh"
    command = f"cd {JOB_DIR} && sh {script} " + " ".join(shlex.quote(a) for a in extra_args or [])
    proc = conn.popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                      stdin=subprocess.DEVNULL)
    assert proc.stdout is not None
    for line in proc.stdout:
        if on_line:
            on_line(line.rstrip("\n"))
    rc = proc.wait()
    out_dir = f"{t.checkpoint_dir}/{t.job.model}"
    res = conn.run_stdin(f"cat {shlex.quote(out_dir + '/report.json')}", "")
    report = None
    if res.returncode == 0:
        try:
            report = json.loads(res.stdout)
        except json.JSONDecodeError:
            report = None
    return JobResult(rc, report, out_dir)
