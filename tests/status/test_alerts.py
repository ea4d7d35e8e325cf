"""Alert conditions and the once-per-state-change state machine; the host's installed copy of the
scripts run with a bare python (-I -S: no site-packages, so no opsctl) against a local webhook."""

from __future__ import annotations

import copy
import json
import os
import shutil
import stat
import subprocess
import sys

import pytest

from opsctl.notify import NOTIFIER_FILE
from opsctl.status import ALERTS_FILE, PROBE_FILE, alerts
from tests.support.opsdata import sample_facts
from tests.support.webhook import Webhook

NOW = 1_800_000_000.0


@pytest.fixture
def webhook():
    hook = Webhook()
    yield hook
    hook.close()


def firing(facts, **kw) -> set[str]:
    return {k for k, v in alerts.evaluate(facts, now=NOW, **kw).items() if v["firing"]}


def test_conditions():
    facts = sample_facts(NOW)
    assert firing(facts) == {"quota:alice", "stale:bob"}
    assert firing(facts, quota_percent=96, stale_days=14) == set()
    facts["pool"].update(health="DEGRADED", healthy=False, status_x="pool 'tank' is degraded")
    assert "pool:tank" in firing(facts)
    facts["pool"] = {"name": "tank", "exists": False, "error": "no such pool"}
    assert "pool:tank" in firing(facts)
    assert firing({"host": "backup", "probe_error": "ssh: connection refused"}) == {"probe"}


def test_no_backup_yet_is_stale_only_once_the_dataset_is_old():
    facts = sample_facts(NOW)
    bob = facts["users"][1]
    bob.update(last_backup=None, bundles=[], created=NOW - 2 * 86400)
    assert "stale:bob" not in firing(facts)
    bob["created"] = NOW - 8 * 86400
    assert "stale:bob" in firing(facts)


def test_each_alert_is_notified_once_per_state_change(tmp_path):
    state = str(tmp_path / "alerts.json")
    sent: list[str] = []

    def send(text, fields):
        sent.append(text)
        return {"webhook": "ok"}

    facts = sample_facts(NOW)
    r1 = alerts.process(facts, state, send, now=NOW)
    assert sorted(e["key"] for e in r1["events"]) == ["quota:alice", "stale:bob"]
    assert len(sent) == 2 and all(t.startswith("opsctl ALERT: ") for t in sent)
    assert stat.S_IMODE(os.stat(state).st_mode) == 0o600
    r2 = alerts.process(facts, state, send, now=NOW + 600)
    assert r2["events"] == [] and len(sent) == 2
    assert {f["key"] for f in r2["firing"]} == {"quota:alice", "stale:bob"}  # still firing: exit status stays 1
    # alice frees space: one RESOLVED; bob stays stale: nothing new
    fixed = copy.deepcopy(facts)
    fixed["users"][0].update(used_bytes=50 << 20, percent=50.0)
    r3 = alerts.process(fixed, state, send, now=NOW + 1200)
    assert [e["key"] for e in r3["events"]] == ["quota:alice"] and sent[-1].startswith("opsctl RESOLVED: ")
    assert alerts.process(fixed, state, send, now=NOW + 1800)["events"] == []
    # and above 90 % again: a new alert
    r5 = alerts.process(facts, state, send, now=NOW + 2400)
    assert [e["key"] for e in r5["events"]] == ["quota:alice"] and len(sent) == 4


def test_failed_delivery_is_retried_and_resolving_an_unnotified_alert_is_silent(tmp_path):
    state = str(tmp_path / "alerts.json")
    outcome = {"webhook": "URLError: refused"}
    sent = []

    def send(text, fields):
        sent.append(text)
        return dict(outcome)

    facts = sample_facts(NOW)
    facts["users"] = facts["users"][:1]  # only the quota alert
    alerts.process(facts, state, send, now=NOW)
    alerts.process(facts, state, send, now=NOW + 600)
    assert len(sent) == 2  # retried
    outcome["webhook"] = "ok"
    alerts.process(facts, state, send, now=NOW + 1200)
    alerts.process(facts, state, send, now=NOW + 1800)
    assert len(sent) == 3  # delivered once, then quiet
    # a fresh state: the alert fires and resolves before any delivery succeeded -> no RESOLVED message
    state2 = str(tmp_path / "other.json")
    outcome["webhook"] = "HTTP 500"
    alerts.process(facts, state2, send, now=NOW)
    ok = copy.deepcopy(facts)
    ok["users"][0]["percent"] = 1.0
    n = len(sent)
    assert alerts.process(ok, state2, send, now=NOW + 600)["events"] == [] and len(sent) == n


def test_no_channel_configured_records_without_sending(tmp_path):
    state = str(tmp_path / "alerts.json")
    result = alerts.process(sample_facts(NOW), state, lambda *a: pytest.fail("sent"), now=NOW, channels=[])
    assert len(result["events"]) == 2 and result["delivery"] == {}
    assert alerts.process(sample_facts(NOW), state, lambda *a: pytest.fail("sent"), now=NOW,
                          channels=[])["events"] == []


def test_corrupt_state_file_starts_over(tmp_path):
    state = tmp_path / "alerts.json"
    state.write_text("{not json")
    assert len(alerts.process(sample_facts(NOW), str(state), lambda *a: {"webhook": "ok"}, now=NOW)["events"]) == 2
    assert json.loads(state.read_text())["version"] == 1


def test_installed_copy_runs_with_a_bare_python_and_notifies_once(fake_host, tmp_path, webhook):
    """What the monitor timer runs on the host: the three files side by side, no opsctl, no site-packages."""
    lib = tmp_path / "lib"
    lib.mkdir()
    for src, name in ((PROBE_FILE, "probe.py"), (ALERTS_FILE, "alerts.py"), (NOTIFIER_FILE, "notify.py")):
        shutil.copy(src, lib / name)
    config = fake_host(alice_used=95 << 20)
    config_file = tmp_path / "monitor.json"
    config_file.write_text(json.dumps({**config, "stale_days": 7, "quota_percent": 90}))
    state = tmp_path / "state" / "alerts.json"
    env = {"PATH": os.environ["PATH"], "CHARLM_WEBHOOK_URL": webhook.url}
    cmd = [sys.executable, "-I", "-S", str(lib / "alerts.py"), "--config", str(config_file), "--state", str(state),
           "--facts-out", str(tmp_path / "facts.json")]
    first = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60)
    assert first.returncode == 1, first.stderr
    assert [b["alert"] for b in webhook.bodies] == ["quota:alice"]
    assert webhook.bodies[0]["text"].startswith("opsctl ALERT: backup: user alice uses 95.0% of the quota")
    assert webhook.bodies[0]["host"] == "backup" and webhook.bodies[0]["state"] == "firing"
    second = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60)
    assert second.returncode == 1 and len(webhook.bodies) == 1, second.stderr
    assert "1 alert(s) firing: quota:alice" in second.stdout
    facts = json.loads((tmp_path / "facts.json").read_text())
    assert facts["users"][0]["percent"] == 95.0
    # healthy again: one RESOLVED, exit 0
    fake_host(alice_used=10 << 20)
    third = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60)
    assert third.returncode == 0, third.stderr
    assert [b["state"] for b in webhook.bodies] == ["firing", "resolved"]


def test_bad_config_is_exit_2(tmp_path):
    res = subprocess.run([sys.executable, "-I", "-S", str(ALERTS_FILE), "--config", str(tmp_path / "nope.json"),
                          "--state", str(tmp_path / "s.json"), "--notifier", str(NOTIFIER_FILE)],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 2 and "cannot read" in res.stderr
