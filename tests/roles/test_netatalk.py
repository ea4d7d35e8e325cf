"""Role netatalk on a sandbox backup container: converge twice (second changed=0), verify with testinfra."""

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

NAME = "rt-netatalk"
container = container_fixture(NAME, "backup")
converged = converged_fixture("netatalk", NAME, "backup", samba_passwords=TEST_PASSWORDS)
host = host_fixture(NAME)


def test_second_converge_changes_nothing(converged):
    assert converged["first"].changed(NAME) > 0
    assert converged["second"].changed(NAME) == 0


def test_afp_conf_is_the_rendered_file(converged, host):
    rendered = {f.path: f.content for f in render_host(converged["site"], NAME)}
    conf = host.file("/etc/netatalk/afp.conf")
    assert conf.content_string == rendered["netatalk/afp.conf"]
    assert "[alice]" in conf.content_string and "[bob]" not in conf.content_string  # bob is smb only


def test_netatalk_serves_afp(host):
    service = host.service("netatalk")
    assert service.is_running and service.is_enabled
    assert host.socket("tcp://0.0.0.0:548").is_listening or host.socket("tcp://:::548").is_listening
    assert host.process.filter(comm="cnid_metad"), "cnid_metad is not running"
    if host.exists("asip-status"):
        status = host.run("asip-status localhost")
        assert status.rc == 0 and "AFP" in status.stdout, status.stdout + status.stderr


def test_afp_user_has_a_system_password(host, converged):
    lines = host.check_output("getent shadow alice bob").splitlines()
    shadow = {line.split(":")[0]: line.split(":")[1] for line in lines}
    assert shadow["alice"].startswith("$")  # set for the AFP user (yescrypt or sha512 crypt)
    assert not shadow["bob"].startswith("$")  # bob uses SMB only
    for password in TEST_PASSWORDS.values():
        assert password not in converged["first"].output + converged["second"].output


def test_molecule_verify_playbook_passes(converged):
    run = run_playbook(molecule_playbook("netatalk", "verify.yml"), converged["inventory"])
    assert run.rc == 0, run.output[-4000:]
