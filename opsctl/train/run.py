"""The run step: build and ship the job image, run the training job on the training host, collect its report.

:func:`train` is what ``opsctl train`` calls (the CLI only parses arguments and prints).

Example::

    result = train(site, names=Path("names.txt"), progress=print, on_line=print)
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
from opsctl.errors import BadInput, HostUnreachable
from opsctl.progress import Progress, say
from opsctl.site.models import Site

JOB_DIR = "/opt/opsctl/job"


@dataclass
class JobResult:
    rc: int
    report: dict | None
    out_dir: str  # on the training host


def train(site: Site, *, names: Path | None = None, build: bool = True, resume: bool = False,
          progress: Progress = None, on_line: Callable[[str], None] | None = None) -> JobResult:
    """Train on the site's training host: build the job image on this machine and ship it (``build``),
    upload ``names`` into the host's data dir, run the job (``resume``: from its last checkpoint).

    Raises :class:`~opsctl.errors.BadInput` (no training section, a runtime this does not drive, a missing
    names file) before anything is built, and :class:`~opsctl.errors.HostUnreachable` when the host
    cannot take the image or the file.
    """
    from opsctl.train.image import build_image, ship_image

    t = site.training
    if t is None:
        raise BadInput("the site has no `training:` section", "add one (see `opsctl schema`)")
    if names is not None and not names.is_file():
        raise BadInput(f"--names {names}: no such file", "give the path of a names file (one name per line)")
    if t.runtime != "docker":
        raise BadInput("opsctl train builds Docker images", "for runtime apptainer build charlm.sif from the "
                       "rendered charlm.def (`apptainer build`) and run /opt/opsctl/job/apptainer-run.sh on the host")
    if build:
        say(progress, f"building {t.image}")
        ship_image(site, build_image(site, progress=progress), progress=progress)
    if names is not None:
        try:
            say(progress, f"uploaded {upload_names(site, names)} on {t.host}")
        except (RuntimeError, OSError) as exc:  # the host refused the file (or it is unreadable here)
            raise HostUnreachable(f"{exc}; fix the data dir {t.data_dir} on {t.host} (or the names file) "
                                  "and run again") from None
    return run_job(site, ["--resume"] if resume else [], on_line=on_line)


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
