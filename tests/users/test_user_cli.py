"""`opsctl user` and `opsctl status` without a VM: bad input exits 2 and leaves the site file alone,
--no-apply edits only the file, purge needs the dataset name typed back, an unreachable host is a
status (and one alert), not a crash."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from opsctl.cli import app
from tests.support.opsdata import OPS_SITE
from tests.support.paths import REPO
from tests.support.webhook import Webhook

FULL = REPO / "tests" / "data" / "full_site.yml"


def run(*args: str, input: str | None = None, env: dict | None = None):
    result = CliRunner().invoke(app, list(args), input=input, env=env)
    return result.exit_code, result.output


@pytest.fixture
def site(tmp_path):
    path = tmp_path / "site.yml"
    path.write_text(FULL.read_text())
    return path


@pytest.mark.parametrize("args", [
    ["user", "add", "Bad;Name", "--quota", "1G"],
    ["user", "add", "root", "--quota", "1G"],
    ["user", "add", "carol", "--quota", "1 GB"],
    ["user", "add", "carol", "--quota", "1G", "--tm-size", "2G"],
    ["user", "add", "carol", "--quota", "1G", "--protocols", "smb,nfs"],
    ["user", "add", "alice", "--quota", "1G"],
    ["user", "add", "carol", "--quota", "1G"],  # no password: no env var, no TTY, not a sandbox
    ["user", "set-quota", "alice", "1 GB"],
    ["user", "set-quota", "nosuch", "1G"],
    ["user", "remove", "nosuch"],
    ["user", "remove", "alice", "--purge"],  # no TTY, no --confirm
    ["user", "remove", "alice", "--purge", "--confirm", "tank/alice"],  # wrong name
    ["user", "remove", "alice", "--purge", "--no-apply"],
])
def test_bad_input_exits_2_and_changes_nothing(site, args, monkeypatch):
    monkeypatch.delenv("OPSCTL_SMB_PASSWORD_CAROL", raising=False)
    monkeypatch.delenv("OPSCTL_SECRETS_FILE", raising=False)
    before = site.read_bytes()
    code, out = run(*args, "--site", str(site))
    assert code == 2, out
    assert "nothing was applied" in out
    assert site.read_bytes() == before


def test_purge_refusal_names_the_dataset(site):
    code, out = run("user", "remove", "alice", "--purge", "--site", str(site))
    assert code == 2 and "--confirm" in out and "/alice" in out


def test_add_no_apply_edits_the_file_and_prints_onboarding(site):
    code, out = run("user", "add", "carol", "--quota", "500G", "--protocols", "smb,afp", "--tm-size", "400G",
                    "--no-apply", "--site", str(site))
    assert code == 0, out
    text = site.read_text()
    assert "- name: carol" in text and "quota: 500G" in text and "tm_size: 400G" in text
    flat = " ".join(out.split())
    assert "smb://192.0.2.10/tm-carol" in flat  # the host's address and the share prefix
    assert 'sudo tmutil setdestination -p "smb://carol@192.0.2.10/tm-carol"' in flat
    assert "afp://" in flat and "Restore from Time Machine" in flat and "Other Server" in flat
    code, out = run("user", "add", "carol", "--quota", "1G", "--no-apply", "--site", str(site))
    assert code == 2 and "already" in out


def test_set_quota_and_remove_no_apply(site):
    assert run("user", "set-quota", "alice", "700G", "--no-apply", "--site", str(site))[0] == 0
    assert "quota: 700G" in site.read_text()
    # tm_size 400G would exceed the quota: the whole-spec validation refuses it
    code, out = run("user", "set-quota", "alice", "300G", "--no-apply", "--site", str(site))
    assert code == 2 and "larger than quota" in out
    # bob_2 is still a valid user of the Projects share: removing him would break the spec
    code, out = run("user", "remove", "bob_2", "--no-apply", "--site", str(site))
    assert code == 2 and "unknown valid_users" in out and "bob_2" in site.read_text()
    code, out = run("user", "remove", "carol-c", "--no-apply", "--json", "--site", str(site))
    assert code == 0, out
    assert "carol-c" not in site.read_text() and json.loads(out)["purged"] is False


def test_json_output_of_add(site):
    code, out = run("user", "add", "erin", "--quota", "1G", "--no-apply", "--json", "--site", str(site))
    assert code == 0
    data = json.loads(out)
    assert data["user"] == "erin" and data["applied"] is False and any("smb://" in line for line in data["onboarding"])


def test_status_of_an_unreachable_host_and_one_alert(tmp_path):
    site = tmp_path / "site.yml"
    site.write_text(OPS_SITE.read_text().replace("opsbackup", "nosuchvm"))
    hook = Webhook()
    env = {"CHARLM_WEBHOOK_URL": hook.url, "TELEGRAM_BOT_TOKEN": ""}
    try:
        prom = tmp_path / "opsctl.prom"
        args = ["status", "--site", str(site), "--alert", "--state-dir", str(tmp_path), "--prometheus", str(prom),
                "--json"]
        code, out = run(*args, env=env)
        assert code == 1
        data = json.loads(out)
        assert "not running" in data["hosts"][0]["probe_error"]
        assert [e["key"] for e in data["alerts"][0]["events"]] == ["probe"]
        assert 'opsctl_probe_success{host="nosuchvm"} 0' in prom.read_text()
        code, out = run(*args, env=env)
        assert code == 1 and json.loads(out)["alerts"][0]["events"] == []
        assert len(hook.bodies) == 1 and hook.bodies[0]["alert"] == "probe"
    finally:
        hook.close()
    assert (tmp_path / "alerts-nosuchvm.json").exists()


def test_status_bad_input(tmp_path):
    site = tmp_path / "site.yml"
    site.write_text(OPS_SITE.read_text())
    assert run("status", "--site", str(site), "--limit", "trainer")[0] == 2
    assert run("status", "--site", str(site), "--html", str(tmp_path / "no" / "dir.html"))[0] == 2
