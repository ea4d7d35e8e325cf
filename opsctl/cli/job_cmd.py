"""``opsctl job``: run the charlm job on the site's Slurm cluster.

``submit`` renders ``templates/slurm/job.sbatch.j2`` and submits it on the controller (a
``--sweep`` becomes a job array, one combination per task); ``status``, ``logs``, ``cancel``
and ``results`` (one table over every task's ``report.json``) read it back.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Annotated

import typer
from rich import box
from rich.table import Table
from rich.text import Text

from opsctl.cli.common import EXIT_BAD_INPUT, JsonOpt, SiteOpt, console, err, fail, load_site, print_json

app = typer.Typer(help="Run the ML job on the Slurm cluster: submit (sweeps as job arrays), status, logs, "
                       "cancel, results.", no_args_is_help=True)

JobId = Annotated[str, typer.Argument(help="job id (42), or one array task (42_3)")]


def _site(path: Path | None, quiet: bool):
    s = load_site(path, quiet=quiet).site
    if s.slurm is None:
        fail("the site has no `slurm:` section; add one (see `opsctl schema`)", EXIT_BAD_INPUT)
    return s


def _call(fn, *args, **kwargs):
    from opsctl.errors import HostUnreachable
    from opsctl.slurm.jobs import SlurmError
    from opsctl.slurm.sweep import SweepError

    try:
        return fn(*args, **kwargs)
    except SweepError as exc:
        fail(f"--sweep: {exc}", EXIT_BAD_INPUT)
    except (SlurmError, HostUnreachable) as exc:
        fail(str(exc))


@app.command()
def submit(
    site: SiteOpt = None,
    nodes: Annotated[int, typer.Option("--nodes", "-N", min=1, help="compute nodes (one torchrun per node)")] = 1,
    gpus_per_node: Annotated[int, typer.Option("--gpus-per-node", "-G", min=0, help="GPUs per node (0 = CPU)")] = 0,
    nproc_per_node: Annotated[int | None, typer.Option(
        "--nproc-per-node", min=1, help="workers per node [default: GPUs per node, or 1]")] = None,
    sweep: Annotated[str | None, typer.Option(
        "--sweep", help="hyperparameter sweep, e.g. 'lr=1e-3,3e-4 n_embd=64,128': a job array, one "
                        "combination (cartesian product) per task")] = None,
    partition: Annotated[str | None, typer.Option("--partition", "-p")] = None,
    name: Annotated[str | None, typer.Option("--name", help="job name [default: charlm-<site>]")] = None,
    time: Annotated[str | None, typer.Option("--time", "-t", help="time limit (Slurm format, e.g. 2:00:00)")] = None,
    train_args: Annotated[str | None, typer.Option(
        "--train-args", help="charlm train arguments instead of the spec's training.job, e.g. "
                             "'--model mlp --steps 500'")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="print the sbatch script, submit nothing")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Submit the charlm job (or a sweep) to the cluster; prints the job id."""
    from opsctl.slurm import jobs

    s = _site(site, as_json or dry_run)
    try:
        args = shlex.split(train_args) if train_args is not None else None
    except ValueError as exc:
        fail(f"--train-args: {exc}", EXIT_BAD_INPUT)
    from opsctl.slurm.sweep import SweepError

    try:
        job = jobs.build_job(s, nodes=nodes, gpus_per_node=gpus_per_node, nproc_per_node=nproc_per_node,
                             sweep=sweep, partition=partition, name=name, train_args=args, time=time)
    except SweepError as exc:
        fail(f"--sweep: {exc}", EXIT_BAD_INPUT)
    except jobs.SlurmError as exc:  # the request does not fit the cluster: bad input, nothing submitted
        fail(str(exc), EXIT_BAD_INPUT)
    if dry_run:
        print(jobs.render_script(s, job), end="")
        return
    job_id = _call(jobs.submit, s, job)
    if as_json:
        print_json({"job_id": job_id, "tasks": len(job["sweep"]) or 1, "job": job})
    else:
        tasks = f" ({len(job['sweep'])} array tasks)" if job["sweep"] else ""
        err.print(f"submitted job {job_id}{tasks} on {s.slurm.controller}", highlight=False, markup=False)
        print(job_id)


@app.command()
def status(site: SiteOpt = None,
           job_id: Annotated[str | None, typer.Argument(help="job id; default: the queue")] = None,
           as_json: JsonOpt = False) -> None:
    """The queue, or one job's state (every array task)."""
    from opsctl.slurm import jobs

    rows = _call(jobs.status, _site(site, as_json), job_id)
    if as_json:
        print_json(rows)
        return
    table = Table("job", "name", "state", "time", "nodes", "nodelist/reason", "restarts")
    for r in rows:  # job names come from any cluster user: plain text, never Rich markup
        table.add_row(*(Text(str(v)) for v in (r["job_id"], r["name"], r["state"], r["time"], r["nodes"],
                                               r["nodelist_or_reason"], r.get("restarts", ""))))
    console.print(table)


@app.command()
def logs(site: SiteOpt = None, job_id: JobId = ..., tail: Annotated[int | None, typer.Option(
        "--tail", "-n", min=1, help="last N lines of each task's log")] = None) -> None:
    """Print the job's output (every array task) from the shared log directory."""
    from opsctl.slurm import jobs

    print(_call(jobs.logs, _site(site, True), job_id, tail), end="")


@app.command()
def cancel(site: SiteOpt = None, job_id: JobId = ..., requeue: Annotated[bool, typer.Option(
        "--requeue", help="requeue instead (scontrol requeue): the job checkpoints and resumes later")] = False,
) -> None:
    """Cancel a job (scancel), or requeue it."""
    from opsctl.slurm import jobs

    _call(jobs.cancel, _site(site, True), job_id, requeue=requeue)
    err.print(f"{'requeued' if requeue else 'cancelled'} job {job_id}", highlight=False, markup=False)


def _fmt(value, digits: int = 4) -> str:
    if value is None:
        return "-"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


@app.command()
def results(site: SiteOpt = None, job_id: JobId = ..., as_json: JsonOpt = False) -> None:
    """One table over the job's tasks: sweep arguments, status, steps, train/test loss (nats)."""
    from opsctl.slurm import jobs

    rows = _call(jobs.results, _site(site, as_json), job_id)
    if as_json:
        print_json(rows)
        return
    if not rows:
        fail(f"no task of job {job_id} has written anything yet")
    table = Table(title=Text(f"job {job_id}: tasks by test loss (train/test in nats)"), box=box.SIMPLE_HEAD,
                  pad_edge=False)
    table.add_column("task", justify="right", no_wrap=True, min_width=4)
    table.add_column("args", no_wrap=True)
    table.add_column("status", no_wrap=True)
    for col in ("steps", "train", "test", "ranks"):
        table.add_column(col, justify="right", no_wrap=True)
    for r in sorted(rows, key=lambda r: (r["test_loss"] is None, r["test_loss"] or 0, r["task"])):
        table.add_row(*(Text(v) for v in (str(r["task"]), r["args"] or "-", str(r["status"]), _fmt(r["steps"]),
                                          _fmt(r["train_loss"]), _fmt(r["test_loss"]), _fmt(r["world_size"]))))
    console.print(table)
