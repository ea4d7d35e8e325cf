"""Submit the charlm job to the site's Slurm cluster and read it back.

Everything runs on the Slurm controller through the same connection Ansible and testinfra use
(:func:`opsctl.connections.connection_for`): ``sbatch --parsable`` reads the rendered script on
stdin, ``squeue``/``scontrol`` give the state, and logs/results are read from the shared
directory (``slurm.shared_dir``: ``logs/``, ``checkpoints/<job>_<task>/report.json``).

Example::

    job = build_job(site, nodes=2, train_args=["--model", "mlp", "--steps", "300"])
    job_id = submit(site, job)
    status(site, job_id)          # [{'job_id': '7', 'state': 'RUNNING', ...}]
    results(site, job_id)         # one row per task, from each task's report.json
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess

from opsctl.connections import Connection, connection_for
from opsctl.render.context import context_for
from opsctl.render.engine import environment
from opsctl.site.models import Job, Site
from opsctl.slurm import sweep as sweeps

JOB_ID = re.compile(r"^\d+(_\d+)?$")
#: a Slurm job name: it lands in ``#SBATCH --job-name=`` and in log file names
JOB_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", re.ASCII)
#: Slurm time formats: M, M:S, H:M:S, D-H, D-H:M, D-H:M:S, or UNLIMITED/INFINITE
TIME = re.compile(r"(UNLIMITED|INFINITE|\d{1,7}(:\d{1,2}){0,2}|\d{1,4}-\d{1,2}(:\d{1,2}){0,2})", re.ASCII)
PARTITION = re.compile(r"[A-Za-z0-9_-]{1,32}", re.ASCII)


class SlurmError(RuntimeError):
    pass


def _need_slurm(site: Site):
    if site.slurm is None:
        raise SlurmError("the site has no `slurm:` section; add one (see `opsctl schema`)")
    return site.slurm


def connection(site: Site, host: str) -> Connection:
    """How to reach ``host`` (:func:`~opsctl.connections.connection_for`)."""
    return connection_for(site.host(host))


def controller(site: Site) -> Connection:
    return connection(site, _need_slurm(site).controller)


def _run(site: Site, command: str, stdin: str = "", timeout: float = 60) -> str:
    conn = controller(site)
    try:
        proc = conn.run_stdin(command, stdin, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        raise SlurmError(f"`{command}` on {conn.host} timed out after {timeout:.0f} s") from exc
    if proc.returncode != 0:
        raise SlurmError(f"`{command}` on {conn.host} failed (rc {proc.returncode}): "
                         f"{(proc.stderr or proc.stdout).strip()}")
    return proc.stdout


def _check_id(job_id: str) -> str:
    if not JOB_ID.match(str(job_id)):
        raise SlurmError(f"bad job id {job_id!r}; use a number like 42 (or 42_3 for one array task)")
    return str(job_id)


def build_job(site: Site, *, nodes: int = 1, gpus_per_node: int = 0, nproc_per_node: int | None = None,
              sweep: str | None = None, partition: str | None = None, name: str | None = None,
              train_args: list[str] | None = None, time: str | None = None) -> dict:
    """The ``job`` dict for ``templates/slurm/job.sbatch.j2``.

    ``train_args`` default to the spec's ``training.job`` (or charlm's defaults); a sweep adds
    its per-task arguments after them (the later flag wins) and turns the job into an array.
    """
    s = _need_slurm(site)
    # each of these lands in the batch script: one token of a known grammar, never a newline
    if name is not None and not JOB_NAME.fullmatch(name):
        raise SlurmError(f"--name {name!r}: not a job name; use 1-64 letters, digits, '.', '_' or '-' "
                         "(starting with a letter or digit), e.g. --name sweep-lr")
    if time is not None and not TIME.fullmatch(time):
        raise SlurmError(f"--time {time!r}: not a Slurm time limit; use minutes (90), H:M:S (2:00:00) "
                         "or D-H:M:S (1-12:00:00)")
    if partition is not None and not PARTITION.fullmatch(partition):
        raise SlurmError(f"--partition {partition!r}: not a partition name; use one of "
                         f"{', '.join(p.name for p in s.partitions)}")
    if nodes < 1 or nodes > len(s.nodes):
        raise SlurmError(f"--nodes {nodes}: the cluster has {len(s.nodes)} compute node(s)")
    if partition is not None and partition not in {p.name for p in s.partitions}:
        raise SlurmError(f"--partition {partition}: not one of {', '.join(p.name for p in s.partitions)}")
    if gpus_per_node and max(n.gpus for n in s.nodes) < gpus_per_node:
        raise SlurmError(f"--gpus-per-node {gpus_per_node}: no node declares that many GPUs")
    combos = sweeps.expand(sweep) if sweep else []
    job_spec = site.training.job if site.training else Job()
    job: dict = {
        "name": name or f"charlm-{site.site}",
        "nodes": nodes,
        "gpus_per_node": gpus_per_node,
        "nproc_per_node": nproc_per_node or gpus_per_node or 1,
        "partition": partition,
        "array": f"0-{len(combos) - 1}" if combos else None,
        "sweep": combos,
        "train_args": list(train_args) if train_args is not None else job_spec.train_args,
        "data": f"{s.shared_dir}/data/{job_spec.names_file}",
    }
    if time:
        job["time"] = time
    return job


def render_script(site: Site, job: dict) -> str:
    """The sbatch script: ``templates/slurm/job.sbatch.j2`` with the controller's context + ``job``."""
    s = _need_slurm(site)
    ctx = context_for(site, s.controller)
    ctx["slurm"] = s.model_dump(mode="json")
    ctx["training"] = site.training.model_dump(mode="json") if site.training else None
    return environment().get_template("slurm/job.sbatch.j2").render(opsctl=ctx, job=job)


def sbatch_command(site: Site, *options: str) -> str:
    """``sbatch --parsable`` as the cluster's non-root ``slurm.submit_user`` (never root: the job
    runs as whoever submits it), from a directory that user may enter."""
    s = _need_slurm(site)
    extra = "".join(f" {shlex.quote(o)}" for o in options)
    return f"cd / && runuser -u {shlex.quote(s.submit_user)} -- sbatch --parsable{extra}"


def submit(site: Site, job: dict) -> str:
    """``sbatch --parsable`` the rendered script on the controller as ``slurm.submit_user``;
    returns the job id."""
    out = _run(site, sbatch_command(site), render_script(site, job)).strip()
    job_id = out.split(";")[0].strip()
    if not job_id.isdigit():
        raise SlurmError(f"sbatch printed {out!r}, not a job id")
    return job_id


def _fields(line: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for tok in line.split():
        key, sep, val = tok.partition("=")
        if sep:
            out[key] = val
    return out


def status(site: Site, job_id: str | None = None) -> list[dict]:
    """One row per job (or per array task): id, name, state, time, nodes, restarts, reason."""
    if job_id is None:
        out = _run(site, "squeue --noheader --format='%i|%j|%T|%M|%D|%R'")
        rows = []
        for line in out.splitlines():
            if line.strip():
                jid, name, state, elapsed, nnodes, reason = (line.split("|") + [""] * 6)[:6]
                rows.append({"job_id": jid, "name": name, "state": state, "time": elapsed, "nodes": nnodes,
                             "nodelist_or_reason": reason})
        return rows
    out = _run(site, f"scontrol show job --oneliner {shlex.quote(_check_id(job_id))}")
    rows = []
    for line in out.splitlines():
        f = _fields(line)
        if not f:
            continue
        task = f.get("ArrayTaskId")
        nodelist = f.get("NodeList", "")
        where = nodelist if nodelist not in ("", "(null)") else f"({f.get('Reason', '')})"
        rows.append({"job_id": f.get("ArrayJobId", f.get("JobId")) + (f"_{task}" if task else ""),
                     "name": f.get("JobName", ""), "state": f.get("JobState", ""), "time": f.get("RunTime", ""),
                     "nodes": f.get("NumNodes", ""), "nodelist_or_reason": where,
                     "restarts": int(f.get("Restarts", 0)), "exit_code": f.get("ExitCode", "")})
    return rows


def logs(site: Site, job_id: str, tail: int | None = None) -> str:
    """The job's output file(s) from ``<shared_dir>/logs`` (every task of an array)."""
    s = _need_slurm(site)
    base = _check_id(job_id)
    logs_dir = shlex.quote(f"{s.shared_dir}/logs")
    pattern = f"*-{base}.out" if "_" in base else f"*-{base}.out *-{base}_*.out"
    show = f"tail -n {int(tail)}" if tail else "cat"
    script = (f"cd {logs_dir} && found=0; for f in {pattern}; do [ -e \"$f\" ] || continue; found=1; "
              f"echo \"==> $f <==\"; {show} \"$f\"; done; [ $found = 1 ]")
    try:
        return _run(site, script)
    except SlurmError as exc:
        raise SlurmError(f"no log of job {base} in {s.shared_dir}/logs yet (pending?)") from exc


def cancel(site: Site, job_id: str, *, requeue: bool = False) -> None:
    """``scancel`` the job; with ``requeue``: ``scontrol requeue`` (it checkpoints and resumes later)."""
    jid = shlex.quote(_check_id(job_id))
    _run(site, f"scontrol requeue {jid}" if requeue else f"scancel {jid}")


_RESULTS_SCRIPT = r"""
import glob, json, os, sys
root, job = sys.argv[1], sys.argv[2]
rows = []
for d in glob.glob(os.path.join(root, "checkpoints", job + "_*")):
    task = d.rsplit("_", 1)[1]
    if not task.isdigit():
        continue
    row = {"task": int(task), "out_dir": d, "report": None, "args": [], "last_step": None}
    try:
        with open(os.path.join(d, "sweep_args.txt")) as f:
            row["args"] = [a for a in f.read().split("\n") if a]
    except OSError:
        pass
    try:
        with open(os.path.join(d, "report.json")) as f:
            row["report"] = json.load(f)
    except (OSError, ValueError):
        pass
    try:
        with open(os.path.join(d, "metrics.jsonl")) as f:
            lines = [ln for ln in f.read().splitlines() if ln.strip()]
        if lines:
            row["last_step"] = json.loads(lines[-1]).get("step")
    except (OSError, ValueError):
        pass
    rows.append(row)
print(json.dumps(sorted(rows, key=lambda r: r["task"])))
"""


def results(site: Site, job_id: str) -> list[dict]:
    """One row per task of the job: its sweep args and the numbers of its ``report.json``."""
    s = _need_slurm(site)
    base = _check_id(job_id).split("_")[0]
    raw = json.loads(_run(site, f"python3 - {shlex.quote(s.shared_dir)} {base}", _RESULTS_SCRIPT))
    rows = []
    for r in raw:
        rep = r["report"] or {}
        rows.append({
            "task": r["task"],
            "args": " ".join(r["args"]),
            "status": rep.get("status", "running" if r["last_step"] is not None else "pending"),
            "steps": rep.get("steps", r["last_step"]),
            "train_loss": (rep.get("train_loss") or {}).get("nats"),
            "test_loss": (rep.get("test_loss") or {}).get("nats"),
            "world_size": rep.get("world_size"),
            "tokens_per_s": rep.get("tokens_per_s"),
            "out_dir": r["out_dir"],
        })
    return rows
