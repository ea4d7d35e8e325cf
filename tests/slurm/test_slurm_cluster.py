"""Real Slurm: a controller and two compute nodes (slurmctld, slurmd, munge from Debian bookworm)
as systemd containers on an ``--internal`` Docker network, provisioned by ``playbooks/slurm.yml``
through ``opsctl``'s own inventory and runner, then used through ``opsctl.slurm`` / ``opsctl job``:

* provisioning converges, and a second run changes nothing; one munge key, 0400 munge:munge,
  identical everywhere and never printed;
* a 2-node CPU DDP run of charlm (gloo, torchrun c10d rendezvous at the first node): both ranks
  train and the test loss beats the bigram floor (2.45 nats);
* a 4-task sweep (job array, one combination per task) and its results table;
* a job cancelled mid-run, then requeued (``scontrol requeue``), resumes from its checkpoint: the
  step counter continues instead of restarting at 0;
* jobs run as the non-root ``slurm.submit_user``; a checkpoint another cluster user plants for the
  next job id (a pickle that runs a command) is refused and never runs;
* two tasks on one node at once each get their own rendezvous and both complete.

Without Docker this skips on a developer machine and fails in CI (``CI=true``).
Run: ``pytest -s tests/slurm/test_slurm_cluster.py`` (about 5-10 minutes; the first run also
builds the bookworm image, about 8 minutes).
"""

from __future__ import annotations

import json
import re
import time

import pytest
from typer.testing import CliRunner

from opsctl.site import load
from opsctl.slurm import jobs
from tests.support.ci import need
from tests.support.paths import NAMES, REPO

pytestmark = [pytest.mark.docker, pytest.mark.slow]

SITE = REPO / "tests" / "slurm" / "site.yml"
HOSTS = ["slurmctl", "node1", "node2"]
BIGRAM_FLOOR = 2.45
#: a small MLP that beats the bigram floor in about a thousand steps
MLP = ["--model", "mlp", "--context", "5", "--n-embd", "16", "--n-hidden", "128", "--n-layer", "1",
       "--batch-size", "256", "--threads", "1", "--no-notify", "--num-samples", "5"]
DONE = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "PREEMPTED", "BOOT_FAIL",
        "DEADLINE"}
VARS = {"slurm_install_packages": False, "slurm_container_mode": True, "slurm_names_file": str(NAMES)}


def _exec(host: str, cmd: str) -> str:
    proc = jobs.connection(load(SITE).site, host).run_stdin(cmd, "", timeout=60)
    assert proc.returncode == 0, f"{host}: {cmd}: {proc.stdout}{proc.stderr}"
    return proc.stdout


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    from opsctl.apply.runner import run_playbook
    from opsctl.sandbox.slurmimage import install_charlm, start_cluster, stop_cluster
    from opsctl.train.engine import ensure_docker

    if not NAMES.is_file():
        need(f"{NAMES} (names.txt) is missing")
    try:
        client = ensure_docker()
    except Exception as exc:  # noqa: BLE001 - any failure means: no sandbox here
        need(f"no Docker engine: {exc}")
    shared = tmp_path_factory.mktemp("slurm-shared")
    t0 = time.monotonic()
    try:
        hosts = start_cluster(HOSTS, shared=shared, client=client, progress=print)
        install_charlm(hosts, shared=shared)
        print(f"cluster up in {time.monotonic() - t0:.0f} s")
        site = load(SITE).site
        events: list[dict] = []
        runs = []
        for _ in range(2):
            t1 = time.monotonic()
            runs.append(run_playbook(site, "slurm.yml", extra_vars=VARS, on_event=events.append))
            print(f"slurm.yml: rc {runs[-1].rc}, changed {runs[-1].changed} in {time.monotonic() - t1:.0f} s")
        yield {"site": site, "runs": runs, "events": events, "shared": shared}
    finally:
        stop_cluster(HOSTS, client=client)


def _wait(site, job_id: str, timeout: float, until=None) -> list[dict]:
    deadline = time.monotonic() + timeout
    rows: list[dict] = []
    while time.monotonic() < deadline:
        rows = jobs.status(site, job_id)
        if until is not None:
            if until(rows):
                return rows
        elif rows and all(r["state"] in DONE for r in rows):
            return rows
        time.sleep(3)
    logs = ""
    try:
        logs = jobs.logs(site, job_id, tail=40)
    except jobs.SlurmError as exc:
        logs = str(exc)
    pytest.fail(f"job {job_id} not done after {timeout:.0f} s: {rows}\n{logs}")


def _metrics(shared, job_id: str, task: int = 0) -> list[dict]:
    path = shared / "checkpoints" / f"{job_id}_{task}" / "metrics.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_provision_converges_and_is_idempotent(cluster):
    first, second = cluster["runs"]
    assert first.rc == 0 and not first.failed, first.failures or first.log[-20:]
    assert first.changed > 0
    assert second.rc == 0 and not second.failed, second.failures or second.log[-20:]
    assert second.changed == 0, [(c["host"], c.get("task")) for c in second.changes]


def test_deployed_configs_are_the_rendered_templates(cluster):
    """One source of truth: the role installs exactly what `opsctl render` renders (slurm.conf with
    the sandbox's container-mode switch on, which `opsctl render` leaves at its production default)."""
    from opsctl.render.context import context_for
    from opsctl.render.engine import environment, render_host

    site = cluster["site"]
    for host in HOSTS:
        rendered = {f.path: f.content for f in render_host(site, host)}
        assert _exec(host, "cat /etc/slurm/cgroup.conf") == rendered["slurm/cgroup.conf"]
        conf = environment().get_template("slurm/slurm.conf.j2").render(opsctl=context_for(site, host),
                                                                        slurm_container_mode=True)
        assert _exec(host, "cat /etc/slurm/slurm.conf") == conf
        assert "ProctrackType=proctrack/cgroup" in rendered["slurm/slurm.conf"]  # production default
    # the running slurmctld took the site's requeue delay (AuthInfo=cred_expire) from that file
    shown = _exec("slurmctl", "scontrol show config")
    assert re.search(r"^AuthInfo\s*=\s*cred_expire=30$", shown, re.M), shown


def test_one_munge_key_everywhere_and_never_logged(cluster):
    sums = {h: _exec(h, "sha256sum /etc/munge/munge.key").split()[0] for h in HOSTS}
    assert len(set(sums.values())) == 1, sums
    for h in HOSTS:
        assert _exec(h, "stat -c '%a %U %G' /etc/munge/munge.key").split() == ["400", "munge", "munge"]
    key = _exec("slurmctl", "cat /etc/munge/munge.key").strip()
    assert len(key) >= 32
    text = json.dumps(cluster["events"]) + "\n".join(r for run in cluster["runs"] for r in run.log)
    assert key not in text and key[:24] not in text
    # munge credentials made on a node decode on the controller
    _exec("node1", "munge -n > /shared/cred")
    assert "Success" in _exec("slurmctl", "unmunge < /shared/cred")


def test_nodes_are_idle_and_run_tasks(cluster):
    states = _exec("slurmctl", "sinfo --noheader --Node --format='%N %t'").split("\n")
    assert sorted(s for s in states if s) == ["node1 idle", "node2 idle"]
    assert sorted(_exec("slurmctl", "srun --nodes=2 --ntasks-per-node=1 hostname").split()) == ["node1", "node2"]


def test_two_node_ddp_beats_the_bigram_floor(cluster):
    site = cluster["site"]
    t0 = time.monotonic()
    job_id = jobs.submit(site, jobs.build_job(site, nodes=2, name="ddp",
                                              train_args=[*MLP, "--steps", "1500", "--eval-every", "500"]))
    rows = _wait(site, job_id, timeout=900)
    seconds = time.monotonic() - t0
    log = jobs.logs(site, job_id)
    print(log[-3000:])
    assert rows[0]["state"] == "COMPLETED", (rows, log[-3000:])
    (row,) = jobs.results(site, job_id)
    print(f"2-node DDP job {job_id}: {row} in {seconds:.0f} s")
    assert row["status"] == "completed" and row["world_size"] == 2 and row["steps"] == 1500
    assert row["test_loss"] < BIGRAM_FLOOR, row
    assert "charlm: rank 0/2: trained 1500 steps" in log and "charlm: rank 1/2: trained 1500 steps" in log
    assert "nodes node[1-2]" in log or "on node[1-2]" in log


def test_sweep_is_a_job_array_with_one_results_table(cluster):
    from opsctl.cli import app

    site = cluster["site"]
    runner = CliRunner()
    res = runner.invoke(app, ["job", "submit", "-s", str(SITE), "--sweep", "lr=3e-3,1e-2 n_embd=8,16",
                              "--name", "sweep", "--train-args", " ".join([*MLP, "--steps", "300",
                                                                            "--eval-every", "150"])])
    assert res.exit_code == 0, res.output
    job_id = res.stdout.strip().splitlines()[-1]
    t0 = time.monotonic()
    rows = _wait(site, job_id, timeout=900)
    print(f"sweep {job_id}: {len(rows)} tasks done in {time.monotonic() - t0:.0f} s")
    assert len(rows) == 4 and {r["state"] for r in rows} == {"COMPLETED"}, rows
    res = runner.invoke(app, ["job", "results", "-s", str(SITE), job_id, "--json"])
    assert res.exit_code == 0, res.output
    table = json.loads(res.stdout)
    assert [r["task"] for r in table] == [0, 1, 2, 3]
    assert [r["args"] for r in table] == ["--lr 3e-3 --n-embd 8", "--lr 3e-3 --n-embd 16",
                                          "--lr 1e-2 --n-embd 8", "--lr 1e-2 --n-embd 16"]
    assert all(r["status"] == "completed" and r["steps"] == 300 and r["test_loss"] for r in table)
    assert len({r["test_loss"] for r in table}) == 4  # four different runs
    res = runner.invoke(app, ["job", "results", "-s", str(SITE), job_id])
    print(res.stdout)
    assert res.exit_code == 0 and "--lr 1e-2 --n-embd 16" in res.stdout


def test_cancel_then_requeue_resumes_from_the_checkpoint(cluster):
    from opsctl.cli import app

    site, shared = cluster["site"], cluster["shared"]
    runner = CliRunner()
    job_id = jobs.submit(site, jobs.build_job(site, nodes=1, name="resume",
                                              train_args=[*MLP, "--steps", "3000", "--eval-every", "100"]))
    _wait(site, job_id, timeout=600, until=lambda rows: len(_metrics(shared, job_id)) >= 3)
    res = runner.invoke(app, ["job", "cancel", "-s", str(SITE), job_id])
    assert res.exit_code == 0, res.output
    rows = _wait(site, job_id, timeout=120)
    assert rows[0]["state"] == "CANCELLED", rows
    before = _metrics(shared, job_id)
    stopped_at = before[-1]["step"]
    assert 0 < stopped_at < 3000
    report = json.loads((shared / "checkpoints" / f"{job_id}_0" / "report.json").read_text()) \
        if (shared / "checkpoints" / f"{job_id}_0" / "report.json").exists() else {}
    print(f"job {job_id} cancelled at step {stopped_at} (report: {report.get('status')}, {report.get('steps')})")

    res = runner.invoke(app, ["job", "cancel", "-s", str(SITE), job_id, "--requeue"])
    assert res.exit_code == 0, res.output
    requeued = time.monotonic()
    again = {"RUNNING", "COMPLETING"} | DONE - {"CANCELLED"}
    _wait(site, job_id, timeout=900, until=lambda rows: bool(rows) and rows[0]["state"] in again)
    print(f"job {job_id} ran again {time.monotonic() - requeued:.0f} s after the requeue (requeue_delay 30)")
    rows = _wait(site, job_id, timeout=900, until=lambda rows: bool(rows) and rows[0]["state"] in DONE - {"CANCELLED"})
    log = jobs.logs(site, job_id)
    assert rows[0]["state"] == "COMPLETED", (rows, log[-3000:])
    assert rows[0]["restarts"] >= 1
    after = _metrics(shared, job_id)
    steps = [r["step"] for r in after]
    print(f"job {job_id} steps logged: {steps}")
    assert steps == sorted(steps) and steps[-1] == 3000
    new = after[len(before):]
    assert new and new[0]["step"] > stopped_at - 100 and new[0]["step"] > 0  # continued, not restarted at 0
    assert steps.count(0) == 1
    assert "restart 1 " in log
    resumed = re.search(rf"resuming from /shared/checkpoints/{job_id}_0/ckpt_last.pt at step (\d+)", log)
    assert resumed and int(resumed[1]) >= stopped_at, log[-3000:]
    print(f"job {job_id} resumed at step {resumed[1]} after {rows[0]['restarts']} restart(s)")
    (row,) = jobs.results(site, job_id)
    assert row["status"] == "completed" and row["steps"] == 3000


def test_preemption_signal_checkpoints_requeues_and_resumes(cluster):
    """What ``--signal=B:SIGTERM@120`` does before a time limit or preemption: SIGTERM to the batch
    shell only. The script signals the step (charlm checkpoints, exits 0), requeues the job, and the
    next run resumes at exactly the interrupted step."""
    site, shared = cluster["site"], cluster["shared"]
    job_id = jobs.submit(site, jobs.build_job(site, nodes=1, name="preempt",
                                              train_args=[*MLP, "--steps", "3000", "--eval-every", "100"]))
    _wait(site, job_id, timeout=600, until=lambda rows: len(_metrics(shared, job_id)) >= 3)
    _exec("slurmctl", f"scancel --batch --signal=TERM {job_id}")
    rows = _wait(site, job_id, timeout=900, until=lambda rows: bool(rows) and rows[0]["state"] in DONE)
    log = jobs.logs(site, job_id)
    assert rows[0]["state"] == "COMPLETED" and rows[0]["restarts"] == 1, (rows, log[-3000:])
    assert f"requeueing {job_id}" in log
    interrupted = re.search(r"charlm: interrupted: mlp after (\d+) steps", log)
    resumed = re.search(r"resuming from \S+ckpt_last.pt at step (\d+)", log)
    assert interrupted and resumed and interrupted[1] == resumed[1], log[-3000:]
    print(f"job {job_id}: interrupted at step {interrupted[1]}, requeued, resumed at step {resumed[1]}")
    (row,) = jobs.results(site, job_id)
    assert row["status"] == "completed" and row["steps"] == 3000


class _RunsCommand:
    """Unpickling this runs a shell command (what a planted pickle checkpoint would do)."""

    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        import os

        return (os.system, (self.command,))


def _submit_as_user(site, script: str, *options: str) -> str:
    out = jobs._run(site, jobs.sbatch_command(site, *options), script).strip()
    return out.split(";")[0]


def test_checkpoint_planted_for_the_next_job_is_refused(cluster):
    """Issue #10: job ids are predictable and the checkpoints folder is shared, so another cluster
    user (mallory, in the users group, not root) plants `<shared>/checkpoints/<next id>_0/ckpt_last.pt`
    whose pickle runs a command. The job refuses the folder it did not make, fails, and the payload
    never runs; the planted file is left untouched."""
    import base64
    import io

    import torch

    site, shared = cluster["site"], cluster["shared"]
    s = site.slurm
    for host in HOSTS:  # a cluster user like any other: known on every host
        _exec(host, f"id mallory >/dev/null 2>&1 || useradd -M -u 3100 -G {s.users_group} mallory")
    marker = f"{s.shared_dir}/logs/pwned"
    buf = io.BytesIO()
    torch.save({"format": 1, "model_kind": "mlp", "model_state": {}, "step": 1,
                "x": _RunsCommand(f"touch {marker}")}, buf)
    payload = base64.b64encode(buf.getvalue()).decode()
    held = _submit_as_user(site, "#!/bin/sh\ntrue\n", "--hold")  # learn the id counter, run nothing
    jobs.cancel(site, held)
    planted = [str(int(held) + i) for i in range(1, 4)]
    try:
        _victim_refuses(site, shared, planted, payload)
    finally:  # the unused planted folders would trap the next tests' jobs too
        _exec("slurmctl", " ".join(["rm -rf", *(f"{s.shared_dir}/checkpoints/{j}_0" for j in planted)]))


def _victim_refuses(site, shared, planted: list[str], payload: str) -> None:
    import base64

    s = site.slurm
    for jid in planted:
        d = f"{s.shared_dir}/checkpoints/{jid}_0"
        proc = jobs.connection(site, "slurmctl").run_stdin(
            f"runuser -u mallory -- sh -c 'umask 0 && mkdir {d} && base64 -d > {d}/ckpt_last.pt'", payload)
        assert proc.returncode == 0, proc.stderr
    assert (shared / "checkpoints" / f"{planted[0]}_0" / "ckpt_last.pt").stat().st_uid == 3100

    job_id = jobs.submit(site, jobs.build_job(site, nodes=1, name="victim", train_args=[*MLP, "--steps", "50"]))
    assert job_id in planted, (job_id, planted)
    rows = _wait(site, job_id, timeout=300)
    log = jobs.logs(site, job_id)
    print(log[-2000:])
    assert rows[0]["state"] == "FAILED", (rows, log[-2000:])
    assert f"refusing {s.shared_dir}/checkpoints/{job_id}_0: it exists but this job did not make it" in log
    assert "mallory" in log and "charlm: resuming" not in log
    assert not (shared / "logs" / "pwned").exists()
    ckpt = shared / "checkpoints" / f"{job_id}_0" / "ckpt_last.pt"
    assert ckpt.stat().st_uid == 3100 and base64.b64encode(ckpt.read_bytes()).decode() == payload
    # the job ran as the non-root submit user, never root
    user = _exec("slurmctl", f"scontrol show job {job_id} | grep -o 'UserId=[^ ]*'")
    assert user.startswith(f"UserId={s.submit_user}("), user


def test_two_tasks_on_one_node_each_get_their_own_rendezvous(cluster):
    """Issue #15: every job used `--rdzv_endpoint=<head>:29500`, so two array tasks on one node
    shared one c10d store and the second died with RendezvousConnectionError when the first ended.
    One-node jobs now rendezvous on their own (--standalone): two tasks of different lengths run
    on node1 at the same time and both complete."""
    site = cluster["site"]
    job = jobs.build_job(site, nodes=1, name="pair", sweep="steps=300,1500",
                         train_args=[*MLP, "--eval-every", "100"])
    job_id = _submit_as_user(site, jobs.render_script(site, job), "--nodelist=node1")
    t0 = time.monotonic()
    seen: list[list[dict]] = []

    def both_running_or_one_done(rows: list[dict]) -> bool:
        if len(rows) == 2 and all(r["state"] == "RUNNING" and r["nodelist_or_reason"] == "node1" for r in rows):
            seen.append(rows)
            return True
        return any(r["state"] in DONE for r in rows)

    _wait(site, job_id, timeout=600, until=both_running_or_one_done)
    rows = _wait(site, job_id, timeout=900)
    log = jobs.logs(site, job_id)
    assert seen, f"the two tasks never ran on node1 at the same time: {rows}\n{log[-3000:]}"
    print(f"pair {job_id}: both tasks ran on node1 at once; done in {time.monotonic() - t0:.0f} s")
    assert [r["state"] for r in rows] == ["COMPLETED", "COMPLETED"], (rows, log[-3000:])
    assert "RendezvousConnectionError" not in log
    table = jobs.results(site, job_id)
    assert [(r["status"], r["steps"]) for r in table] == [("completed", 300), ("completed", 1500)]
