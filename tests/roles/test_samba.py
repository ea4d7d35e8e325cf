"""Role samba on a sandbox backup container: converge twice (second changed=0), verify with testinfra."""

from __future__ import annotations

import pytest

from opsctl.render.engine import render_host
from tests.roles._roletest import (
    TEST_PASSWORDS,
    container_fixture,
    converged_fixture,
    host_fixture,
    molecule_playbook,
    run_playbook,
)

pytestmark = [pytest.mark.docker, pytest.mark.slow]

NAME = "rt-samba"
container = container_fixture(NAME, "backup")
converged = converged_fixture("samba", NAME, "backup", samba_passwords=TEST_PASSWORDS)
host = host_fixture(NAME)


def test_second_converge_changes_nothing(converged):
    assert converged["first"].changed(NAME) > 0
    assert converged["second"].changed(NAME) == 0


def test_passwords_never_logged(converged):
    for run in (converged["first"], converged["second"]):
        for password in TEST_PASSWORDS.values():
            assert password not in run.output


def test_smb_conf_is_the_rendered_file(converged, host):
    rendered = {f.path: f.content for f in render_host(converged["site"], NAME)}
    conf = host.file("/etc/samba/smb.conf")
    assert conf.user == "root" and conf.mode == 0o644
    assert conf.content_string == rendered["samba/smb.conf"]


def test_smbd_running_and_nmbd_masked(host):
    smbd = host.service("smbd")
    assert smbd.is_running and smbd.is_enabled
    assert host.run("systemctl is-enabled nmbd").stdout.strip() == "masked"
    assert not host.service("nmbd").is_running


def test_users_are_system_accounts_without_login(converged, host):
    for tm in converged["site"].backup.time_machine_shares:
        user = tm["user"]
        account = host.user(user)
        assert account.exists and account.group == user
        assert account.shell == "/usr/sbin/nologin"
        share = host.file(tm["path"])
        assert share.is_directory and share.user == user and share.group == user and share.mode == 0o700


def test_samba_users_can_log_in(host):
    users = {line.split(":")[0] for line in host.check_output("pdbedit -L").splitlines()}
    assert {"alice", "bob"} <= users
    listing = host.run(f"smbclient -L localhost -U alice%{TEST_PASSWORDS['alice']} -m SMB3")
    assert listing.rc == 0, listing.stderr
    assert "alice" in listing.stdout and "bob" in listing.stdout
    wrong = host.run("smbclient -L localhost -U alice%wrong -m SMB3")
    assert wrong.rc != 0


def test_time_machine_share_takes_a_file(converged, host):
    path = converged["site"].backup.time_machine_shares[0]["path"]
    cmd = (f"cd /tmp && echo tm > probe.txt && smbclient //localhost/alice -U alice%{TEST_PASSWORDS['alice']} "
           "-m SMB3 -c 'put probe.txt; ls'")
    out = host.run(cmd)
    assert out.rc == 0, out.stdout + out.stderr
    assert host.file(f"{path}/probe.txt").user == "alice"


def test_password_of_known_user_not_reset(converged):
    """A known Samba user keeps its password unless samba_password_update is set."""
    run = run_playbook(molecule_playbook("samba"), converged["inventory"],
                       extra_vars={"samba_passwords": {"alice": "another-one", "bob": "another-two"}})
    assert run.rc == 0 and run.changed(NAME) == 0, run.output[-4000:]


def test_molecule_verify_playbook_passes(converged):
    run = run_playbook(molecule_playbook("samba", "verify.yml"), converged["inventory"])
    assert run.rc == 0, run.output[-4000:]
