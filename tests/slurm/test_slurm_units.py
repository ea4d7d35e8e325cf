"""Slurm without a cluster: sweep expansion, the rendered slurm.conf/cgroup.conf/gres.conf, the
sbatch script of `opsctl job submit` (bash -n + shellcheck), and the job CLI's input checks."""

from __future__ import annotations

import subprocess

import pytest
from tools import REPO, require
from typer.testing import CliRunner

from opsctl.cli import app
from opsctl.render.engine import environment, render_host
from opsctl.slurm import jobs, sweep
from opsctl.spec import load

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
    assert '--rdzv_endpoint="$head_node:29500"' in script and "--nnodes=\"$SLURM_JOB_NUM_NODES\"" in script
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
