"""The main job's training step on the embedded default site: `opsctl sandbox up` starts the
trainer container, `opsctl provision` sets it up, `opsctl train` builds the job image, ships the
names and runs the job in a container, and the test loss is below the count-bigram floor.

The site is the embedded one without its backup server (test_sandbox_flow.py covers that half on
the session VM), so this file runs on the other xdist worker, beside the VM tests. The trainer is
renamed so a developer's own sandbox is never touched.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import yaml

from tests.support.ci import need
from tests.support.paths import NAMES, REPO

pytestmark = [pytest.mark.docker]

TRAINER = "itrain-trainer"


def _site() -> dict:
    site = yaml.safe_load((REPO / "inventory" / "sandbox.yml").read_text())
    site.pop("backup")
    site["hosts"] = [{**h, "name": TRAINER} for h in site["hosts"] if h["name"] == "trainer"]
    site["training"]["host"] = TRAINER
    return site


def opsctl(site, *args: str, timeout: float = 1800) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "200", "OPSCTL_SITE": str(site)}
    return subprocess.run([sys.executable, "-m", "opsctl", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout, env=env, stdin=subprocess.DEVNULL)


@pytest.fixture(scope="module")
def trainer(tmp_path_factory):
    from opsctl.sandbox.containers import stop_host

    if not NAMES.exists():
        need(f"names file {NAMES} missing")
    site = tmp_path_factory.mktemp("itrain") / "site.yml"
    site.write_text(yaml.safe_dump(_site(), sort_keys=False))
    stop_host(TRAINER)
    try:
        up = opsctl(site, "sandbox", "up", "--json", timeout=1800)
        assert up.returncode == 0, up.stderr[-3000:]
        proc = opsctl(site, "provision", "--json")
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        assert set(json.loads(proc.stdout)["hosts"]) == {TRAINER}
        yield site
    finally:
        stop_host(TRAINER)


def test_train_job_in_container(trainer):
    proc = opsctl(trainer, "train", "--names", str(NAMES), "--json", timeout=1800)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout)["report"]
    assert report["status"] == "completed"
    test_loss = report["test_loss"]
    nats = test_loss["nats"] if isinstance(test_loss, dict) else test_loss
    assert nats < 2.45, report  # below the count-bigram floor
