"""Slurm without a cluster: sweep expansion, the rendered slurm.conf/cgroup.conf/gres.conf, the
sbatch script of `opsctl job submit` (bash -n + shellcheck), and the job CLI's input checks."""

from __future__ import annotations

import re
import subprocess

import pytest
from typer.testing import CliRunner

from opsctl.cli import app
from opsctl.render.engine import environment, render_host
from opsctl.site import load
from opsctl.slurm import jobs, sweep
from tests.support.ci import require
from tests.support.paths import REPO

SITE = REPO / "tests" / "slurm" / "site.yml"
FULL = REPO / "tests" / "data" / "full_site.yml"


def test_sweep_is_the_cartesian_product_first_axis_slowest():
    assert sweep.expand("lr=1e-3,3e-4 n_embd=64,128") == [
        ["--lr", "1e-3", "--n-embd", "64"], ["--lr", "1e-3", "--n-embd", "128"],
        ["--lr", "3e-4", "--n-embd", "64"], ["--lr", "3e-4", "--n-embd", "128"]]
    assert sweep.expand("seed=1,2,3") == [["--seed", "1"], ["--seed", "2"], ["--seed", "3"]]
    assert len(sweep.expand("a=1,2 b=1,2,3 c=x,y")) == 12


@pytest.mark.parametrize("bad", ["", "lr", "lr=", "lr=1;rm", "out=/tmp", "lr=1 lr=2", "LR=1", "lr=$(x)",
                                 "data=a", "resume=1"])
def test_bad_sweeps_are_refused(bad):
    with pytest.raises(sweep.SweepError):
        sweep.expand(bad)


def _files(path, host):
    return {f.path: f.content for f in render_host(load(path).site, host)}


def test_cluster_files_render_for_controller_and_nodes_only():
    site = load(FULL).site
    assert set(_files(FULL, "slurmctl")) == {"slurm/slurm.conf", "slurm/cgroup.conf", "slurm/gres.conf"}
    assert _files(FULL, "node1")["slurm/slurm.conf"] == _files(FULL, "slurmctl")["slurm/slurm.conf"]
    assert "slurm/slurm.conf" not in _files(FULL, site.training.host)  # the training host only submits
    assert "slurm/gres.conf" not in _files(SITE, "node1")  # no GPUs declared -> no gres.conf


def test_slurm_conf_follows_the_spec():
    conf = _files(FULL, "slurmctl")["slurm/slurm.conf"]
    assert "SlurmctldHost=slurmctl\n" in conf and "ClusterName=lab\n" in conf
    assert "NodeName=node1 CPUs=8 RealMemory=32000 Gres=gpu:a100:2 State=UNKNOWN" in conf
    assert "PartitionName=gpu Nodes=node1,node2 Default=YES MaxTime=2-00:00:00 State=UP" in conf
    assert "GresTypes=gpu" in conf and "AuthType=auth/munge" in conf and "ReturnToService=2" in conf
    # production defaults: cgroups, no container overrides
    assert "ProctrackType=proctrack/cgroup" in conf and "TaskPlugin=task/cgroup,task/affinity" in conf
    assert "config_overrides" not in conf and "linuxproc" not in conf
    gres = _files(FULL, "node1")["slurm/gres.conf"]
    assert "NodeName=node1 Name=gpu Type=a100 File=/dev/nvidia[0-1]\n" in gres
    cgroup = _files(FULL, "node1")["slurm/cgroup.conf"]
    assert "CgroupPlugin=autodetect" in cgroup and "ConstrainDevices=yes" in cgroup
    # requeue delay: Slurm's own 120 s unless the site says otherwise (the test cluster: 30 s)
    assert "\nAuthInfo=cred_expire=120\n" in conf
    assert "\nAuthInfo=cred_expire=30\n" in _files(SITE, "slurmctl")["slurm/slurm.conf"]


def test_container_mode_is_a_role_var_only():
    site = load(SITE).site
    from opsctl.render.context import context_for

    conf = environment().get_template("slurm/slurm.conf.j2").render(
        opsctl=context_for(site, "node1"), slurm_container_mode=True)
    assert "ProctrackType=proctrack/linuxproc" in conf and "TaskPlugin=task/none" in conf
    assert "SlurmdParameters=config_overrides" in conf and "proctrack/cgroup" not in conf


def _check_shell(tmp_path, text, name):
    path = tmp_path / name
    path.write_text(text)
    subprocess.run(["bash", "-n", str(path)], check=True)
    proc = subprocess.run([require("shellcheck"), "--severity=style", str(path)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout


def test_sweep_job_script(tmp_path):
    site = load(SITE).site
    job = jobs.build_job(site, nodes=1, sweep="lr=1e-3,3e-4 n_embd=64,128",
                         train_args=["--model", "mlp", "--steps", "50"])
    assert job["array"] == "0-3" and len(job["sweep"]) == 4
    script = jobs.render_script(site, job)
    assert "#SBATCH --array=0-3\n" in script
    assert "    3) sweep_args=(--lr 3e-4 --n-embd 128) ;;" in script
    assert "#SBATCH --signal=B:SIGTERM@120\n" in script and "#SBATCH --requeue\n" in script
    assert "#SBATCH --output=/shared/logs/%x-%A_%a.out" in script
    assert "launcher=()" in script  # container: none -> the bare environment
    assert "--data /shared/data/names.txt" in script and "--resume --model mlp --steps 50" in script
    _check_shell(tmp_path, script, "sweep.sbatch")


@pytest.mark.parametrize("container", ["apptainer", "docker"])
def test_multi_node_gpu_job_script(tmp_path, container):
    site = load(FULL).site
    site.slurm.container = container
    job = jobs.build_job(site, nodes=2, gpus_per_node=2, partition="gpu", time="1:00:00")
    script = jobs.render_script(site, job)
    assert "#SBATCH --nodes=2\n" in script and "#SBATCH --gpus-per-node=2\n" in script
    assert "#SBATCH --partition=gpu\n" in script and "#SBATCH --time=1:00:00\n" in script
    assert "nproc_per_node=2\n" in script and "--rdzv_backend=c10d" in script
    # one c10d store per job: port rdzv_port + job id % 1000 (two jobs on one node never share one)
    assert '--rdzv_endpoint="$head_node:$((29500 + SLURM_JOB_ID % 1000))"' in script
    assert "rdzv=(--standalone)" in script and "--nnodes=\"$SLURM_JOB_NUM_NODES\"" in script
    assert ("apptainer exec --nv" in script) == (container == "apptainer")
    assert ("--gpus all" in script) == (container == "docker")
    assert "#SBATCH --output=/shared/logs/%x-%j.out" in script and "--array" not in script
    # the spec's training.job is the default job
    assert "--model mlp" in script and "--lr 0.01" in script
    _check_shell(tmp_path, script, "gpu.sbatch")


def test_build_job_checks_against_the_cluster():
    site = load(SITE).site
    for kwargs in ({"nodes": 3}, {"gpus_per_node": 1}, {"partition": "nope"}):
        with pytest.raises(jobs.SlurmError):
            jobs.build_job(site, **kwargs)
    with pytest.raises(jobs.SlurmError):
        jobs.cancel(site, "1; rm -rf /")


def test_cli_dry_run_and_bad_input():
    runner = CliRunner()
    res = runner.invoke(app, ["job", "submit", "-s", str(SITE), "--sweep", "lr=1e-3,3e-4", "--dry-run",
                              "--train-args", "--model mlp --steps 10"])
    assert res.exit_code == 0, res.output
    assert "#SBATCH --array=0-1" in res.output
    res = runner.invoke(app, ["job", "submit", "-s", str(SITE), "--sweep", "lr", "--dry-run"])
    assert res.exit_code == 2
    res = runner.invoke(app, ["job", "submit", "-s", str(SITE), "--nodes", "5", "--dry-run"])
    assert res.exit_code == 2 and "compute node" in res.output
    res = runner.invoke(app, ["job", "status", "-s", str(REPO / "inventory" / "sandbox.yml")])
    assert res.exit_code == 2 and "slurm" in res.output


@pytest.mark.parametrize("option,value,field", [
    ("--name", "x\ntouch /tmp/pwned", "--name"),
    ("--name", "a b", "--name"),
    ("--name", "#SBATCH", "--name"),
    ("--time", "1:00:00\ntouch /tmp/pwned", "--time"),
    ("--time", "1h", "--time"),
    ("--partition", "cpu\nx", "--partition"),
    ("--sweep", "lr=1e-3\ntouch", "--sweep"),
    ("--sweep", "lr=--resume", "--sweep"),
    ("--sweep", "ou=x", "--sweep"),
])
def test_values_that_reach_the_batch_script_are_validated_and_nothing_is_submitted(monkeypatch, option, value,
                                                                                    field):
    """--name/--time used to go raw into `#SBATCH` lines: a newline added a command run on the nodes."""
    submitted = []
    monkeypatch.setattr(jobs, "submit", lambda site, job: submitted.append(job) or "1")
    runner = CliRunner()
    res = runner.invoke(app, ["job", "submit", "-s", str(SITE), option, value])
    assert res.exit_code == 2, res.output
    assert field in res.output and "Traceback" not in res.output
    assert repr(value) in res.output or option == "--sweep"  # a sweep error names the bad term
    assert len(res.output.strip().splitlines()) <= 2, res.output
    assert submitted == []
    # the same request with a good value is submitted (the spy sees it)
    good = {"--name": "sweep-1.a", "--time": "1-02:00:00", "--partition": "cpu", "--sweep": "lr=1e-3,-1"}[option]
    res = runner.invoke(app, ["job", "submit", "-s", str(SITE), option, good])
    assert res.exit_code == 0, res.output
    assert len(submitted) == 1


@pytest.mark.parametrize("good", ["90", "30:00", "2:00:00", "1-12", "1-12:30", "1-12:30:00", "UNLIMITED"])
def test_slurm_time_formats_are_accepted(good):
    job = jobs.build_job(load(SITE).site, time=good, name="ok")
    assert job["time"] == good


def test_jobs_are_submitted_as_the_non_root_submit_user():
    site = load(SITE).site
    assert site.slurm.submit_user == "charlm" and site.slurm.users_group == "slurmusers"
    assert jobs.sbatch_command(site) == "cd / && runuser -u charlm -- sbatch --parsable"
    assert jobs.sbatch_command(site, "--nodelist=node1").endswith("sbatch --parsable --nodelist=node1")


@pytest.mark.parametrize("field,value", [("submit_user", "root"), ("submit_user", "daemon"),
                                         ("users_group", "sudo"), ("users_group", "docker"),
                                         ("users_group", "charlm"), ("rdzv_port", 65000),
                                         ("requeue_delay", 4), ("requeue_delay", "2m")])
def test_slurm_accounts_are_never_system_ones(tmp_path, field, value):
    import yaml

    from opsctl.site.loader import SpecError

    data = yaml.safe_load(SITE.read_text())
    data["slurm"][field] = value
    path = tmp_path / "site.yml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(SpecError, match=field):
        load(path)


SLURM_STUBS = {
    # what the batch script needs from Slurm outside the job step; the step itself is recorded
    "scontrol": '#!/bin/sh\n[ "$1 $2" = "show hostnames" ] && echo node1\nexit 0\n',
    "srun": '#!/bin/sh\nprintf "%s\\n" "$@" > "$STEP_ARGS"\n',
}


def _run_batch(tmp_path, script, restart=0, job_id=7):
    import os

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for name, text in SLURM_STUBS.items():
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    env = {"PATH": f"{bin_dir}:{os.environ['PATH']}", "SLURM_JOB_ID": str(job_id), "SLURM_JOB_NUM_NODES": "1",
           "SLURM_JOB_NODELIST": "node1", "SLURM_RESTART_COUNT": str(restart), "STEP_ARGS": str(tmp_path / "step")}
    (tmp_path / "step").unlink(missing_ok=True)
    return subprocess.run(["bash", "-c", script], capture_output=True, text=True, env=env, timeout=60)


def test_batch_script_resumes_only_from_a_directory_it_made(tmp_path):
    """The checkpoint folder of job 7 must be made by job 7: a fresh `mkdir` (mode 0700), or on a
    requeue (SLURM_RESTART_COUNT > 0) the 0700 folder owned by the job's own uid. A folder planted by
    anyone else (other owner, group/world access, a symlink) is refused before torchrun starts."""
    import os
    import shutil

    shared = tmp_path / "shared"
    (shared / "checkpoints").mkdir(parents=True)
    site = load(SITE).site
    site.slurm.shared_dir = str(shared)
    script = jobs.render_script(site, jobs.build_job(site, nodes=1, train_args=["--model", "mlp"]))
    assert 'mkdir -m 0700 -- "$out_dir"' in script and "mkdir -p" not in script
    out = shared / "checkpoints" / "7_0"

    res = _run_batch(tmp_path, script)  # first run: makes the folder, 0700, and starts the step
    assert res.returncode == 0, res.stderr
    assert out.is_dir() and (out.stat().st_mode & 0o777) == 0o700 and out.stat().st_uid == os.getuid()
    step = (tmp_path / "step").read_text().split("\n")
    assert "--standalone" in step and "--resume" in step and str(out) in step
    assert not any(a.startswith("--rdzv_endpoint") for a in step)

    res = _run_batch(tmp_path, script, restart=1)  # requeued: its own folder, resumes
    assert res.returncode == 0 and "resuming from this job's own" in res.stdout, res.stderr
    assert (tmp_path / "step").exists()

    res = _run_batch(tmp_path, script, restart=0)  # a new job cannot adopt an existing folder
    assert res.returncode == 1 and "refusing" in res.stderr and not (tmp_path / "step").exists()

    out.chmod(0o750)  # group access: someone else could have written into it
    res = _run_batch(tmp_path, script, restart=1)
    assert res.returncode == 1 and "refusing" in res.stderr and not (tmp_path / "step").exists()

    out.chmod(0o700)
    os.chown(out, 12345, 12345)  # planted by another cluster user
    res = _run_batch(tmp_path, script, restart=1)
    assert res.returncode == 1 and "refusing" in res.stderr and not (tmp_path / "step").exists()

    mine = tmp_path / "mine"
    mine.mkdir(mode=0o700)
    shutil.rmtree(out)
    out.symlink_to(mine)  # a link to a folder the job's user owns
    res = _run_batch(tmp_path, script, restart=1)
    assert res.returncode == 1 and "refusing" in res.stderr and not (tmp_path / "step").exists()


def test_multi_node_rendezvous_port_comes_from_the_job_id(tmp_path):
    site = load(SITE).site
    script = jobs.render_script(site, jobs.build_job(site, nodes=2, train_args=["--model", "mlp"]))
    port = re.search(r'--rdzv_endpoint="\$head_node:\$\(\((.+?)\)\)"', script)[1]
    for job_id, expect in ((7, 29507), (1999, 30499), (3000, 29500)):
        res = subprocess.run(["bash", "-c", f"SLURM_JOB_ID={job_id}; echo $(({port}))"], capture_output=True,
                             text=True, check=True)
        assert int(res.stdout) == expect


def test_job_tables_print_remote_text_as_text(monkeypatch):
    """Job names and sweep args come from any cluster user (squeue, files in the shared folder):
    `[bold red]x` prints as itself and `[/]` does not crash the table."""
    rows = [{"job_id": "5", "name": "[bold red]x", "state": "RUNNING", "time": "0:01", "nodes": "1",
             "nodelist_or_reason": "[/]", "restarts": 0}]
    monkeypatch.setattr(jobs, "status", lambda site, job_id=None: rows)
    res = CliRunner().invoke(app, ["job", "status", "-s", str(SITE)])
    assert res.exit_code == 0, res.output
    assert "[bold red]x" in res.output and "[/]" in res.output
    table = [{"task": 0, "args": "--lr [red]1", "status": "completed", "steps": 3, "train_loss": 1.0,
              "test_loss": 2.0, "world_size": 1, "tokens_per_s": 1.0, "out_dir": "/x"}]
    monkeypatch.setattr(jobs, "results", lambda site, job_id: table)
    res = CliRunner().invoke(app, ["job", "results", "-s", str(SITE), "5"])
    assert res.exit_code == 0, res.output
    assert "--lr [red]1" in res.output


@pytest.mark.parametrize("field", ["data_dir", "checkpoint_dir"])
@pytest.mark.parametrize("root", ["/", "/var/lib", "/etc", "/usr", "/root"])
def test_training_roots_refuse_system_folders(tmp_path, field, root):
    """The trainer role chowns training.data_dir/checkpoint_dir to the job uid: never a system folder."""
    import yaml

    from opsctl.site.loader import SpecError

    data = yaml.safe_load(FULL.read_text())
    data["training"][field] = root
    path = tmp_path / "site.yml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(SpecError, match=field):
        load(path)
    data["training"][field] = "/srv/ml/x"
    path.write_text(yaml.safe_dump(data))
    assert getattr(load(path).site.training, field) == "/srv/ml/x"
