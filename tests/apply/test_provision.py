"""opsctl/apply/provision.py, the provision step: --force-disks is confirmed before anything else, and
the Samba passwords are fetched here (not by the CLI) and reach the playbook with the force flag."""

from __future__ import annotations

import shutil
import textwrap

import pytest

from opsctl.apply import provision as step
from opsctl.apply.secrets import SecretError
from opsctl.errors import BadInput
from opsctl.site.models import Site
from tests.support.ci import need

DISKS = ["/dev/disk/by-id/opsctl-test-missing-0", "/dev/disk/by-id/opsctl-test-missing-1"]


def _site(backup: bool = True) -> Site:
    data = {"site": "t", "hosts": [{"name": "ctl", "connection": "local"}]}
    if backup:
        data["backup"] = {"host": "ctl", "pool": {"name": "tank", "vdevs": [{"type": "mirror", "disks": DISKS}]},
                          "users": [{"name": "alice", "quota": "10M"}]}
    return Site.model_validate(data)


@pytest.fixture(autouse=True)
def _no_passwords(monkeypatch, tmp_path):
    for var in ("OPSCTL_SMB_PASSWORD_ALICE", "OPSCTL_SECRETS_FILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("OPSCTL_CACHE", str(tmp_path / "cache"))


def test_force_disks_without_an_operator_is_refused_before_passwords_or_hosts():
    # no password anywhere: had the step gone on, SecretError would be raised instead
    with pytest.raises(BadInput, match="needs an operator at a terminal to type the pool name"):
        step.provision(_site(), force_disks=True)


def test_force_disks_shows_each_disk_and_a_no_stops_the_run():
    if shutil.which("wipefs") is None:
        need("wipefs (util-linux) is not installed")
    seen = []

    def operator(check: step.DiskCheck) -> bool:
        seen.append(check)
        return False

    with pytest.raises(BadInput, match="did not confirm overwriting the disks of pool tank"):
        step.provision(_site(), force_disks=True, confirm_disks=operator)
    [check] = seen
    assert (check.pool, check.host) == ("tank", "ctl")
    assert [d for d, _ in check.disks] == DISKS
    assert all(found.startswith("(wipefs failed: ") for _, found in check.disks)  # the disks do not exist


def test_force_disks_out_of_scope_or_in_check_mode_asks_nobody():
    # --limit without the backup host, and --check: no question; the step goes on to the passwords
    with pytest.raises(SecretError, match="no Samba password for alice"):
        step.provision(_site(), force_disks=True, check=True)
    assert step.disk_check(_site(), ["elsewhere"]) is None
    assert step.disk_check(_site(backup=False)) is None


PLAYBOOK = textwrap.dedent("""\
    - name: Show what the step handed over
      hosts: all
      gather_facts: false
      tasks:
        - name: Warn with the variables the step handed over
          ansible.builtin.debug:
            msg: "force={{ zfs_force_disks }} users={{ samba_passwords.keys() | sort | join(',') }}"
    """)


def test_the_step_fetches_the_passwords_and_hands_them_to_the_playbook(tmp_path, monkeypatch):
    if shutil.which("ansible-playbook") is None:
        need("ansible-playbook is not on PATH (scripts/test.sh puts .venv/bin first)")
    books = tmp_path / "playbooks"
    books.mkdir()
    (books / "show.yml").write_text(PLAYBOOK)
    monkeypatch.setattr("opsctl.apply.runner.PLAYBOOKS", books)
    monkeypatch.setenv("OPSCTL_SMB_PASSWORD_ALICE", "pw-alice1")
    events = []
    summary = step.provision(_site(), "show.yml", check=True, force_disks=True, on_event=events.append)
    assert summary.rc == 0, summary.log
    assert [w["text"] for w in summary.warnings] == ["force=True users=alice"]
    assert any(e["event"] == "task" for e in events)
