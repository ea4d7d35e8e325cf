"""Role avahi on a sandbox backup container: converge twice (second changed=0), verify with testinfra."""

from __future__ import annotations

import shlex

import pytest

from opsctl.render.engine import render_host
from tests.roles._roletest import (
    container_fixture,
    container_inventory,
    converge_twice,
    host_fixture,
    make_site,
    molecule_playbook,
    run_playbook,
    sandbox_site_data,
)

pytestmark = [pytest.mark.docker, pytest.mark.slow]

NAME = "rt-avahi"
FOREIGN = "<?xml version=\"1.0\"?>\n<!-- the admin's own file, not opsctl's -->\n<service-group/>\n"
STALE = "<?xml version=\"1.0\"?>\n<!-- Rendered by opsctl for backup: an old service -->\n<service-group/>\n"
container = container_fixture(NAME, "backup")


def _inventory(path, site):
    return container_inventory(path, site, NAME, "backup")


@pytest.fixture(scope="module")
def converged(container, tmp_path_factory):
    from opsctl.sandbox.containers import exec as cexec

    tmp = tmp_path_factory.mktemp("avahi")
    # An opsctl-managed file from an earlier spec and an admin's own file.
    for name, text in (("old-opsctl.service", STALE), ("custom.service", FOREIGN)):
        rc, out = cexec(container, f"printf '%s' {shlex.quote(text)} > /etc/avahi/services/{name}")
        assert rc == 0, out
    site = make_site()
    inventory = _inventory(tmp / "inventory.yml", site)
    first, second = converge_twice(molecule_playbook("avahi"), inventory, NAME, tmp)
    return {"site": inventory.site, "inventory": inventory, "first": first, "second": second, "tmp": tmp}


host = host_fixture(NAME)


def test_second_converge_changes_nothing(converged):
    assert converged["first"].changed(NAME) > 0
    assert converged["second"].changed(NAME) == 0


def test_service_files_are_the_rendered_files(converged, host):
    rendered = {f.path: f.content for f in render_host(converged["site"], NAME)}
    for name in ("smb.service", "afpd.service", "adisk.service", "device-info.service"):
        assert host.file(f"/etc/avahi/services/{name}").content_string == rendered[f"avahi/services/{name}"]


def test_stale_opsctl_file_removed_foreign_file_kept(host):
    assert not host.file("/etc/avahi/services/old-opsctl.service").exists
    assert host.file("/etc/avahi/services/custom.service").exists


def test_nsswitch_resolves_mdns(host):
    hosts = [line for line in host.file("/etc/nsswitch.conf").content_string.splitlines()
             if line.startswith("hosts:")]
    assert hosts == ["hosts:          files mdns4_minimal [NOTFOUND=return] dns"]


def test_time_machine_is_advertised(host):
    assert host.service("avahi-daemon").is_running
    out = host.run("avahi-browse -artp --no-db-lookup")
    assert "_adisk._tcp" in out.stdout and "_smb._tcp" in out.stdout, out.stdout + out.stderr
    assert "dk0=adVN=alice" in out.stdout


def test_molecule_verify_playbook_passes(converged):
    run = run_playbook(molecule_playbook("avahi", "verify.yml"), converged["inventory"])
    assert run.rc == 0, run.output[-4000:]


def test_spec_without_afp_removes_the_afp_advert(converged, host):
    data = sandbox_site_data()
    for user in data["backup"]["users"]:
        user["protocols"] = ["smb"]
    inventory = _inventory(converged["tmp"] / "inventory-smb-only.yml", make_site(data))
    run = run_playbook(molecule_playbook("avahi"), inventory)
    assert run.rc == 0 and run.changed(NAME) >= 1, run.output[-4000:]
    assert not host.file("/etc/avahi/services/afpd.service").exists
    assert host.file("/etc/avahi/services/smb.service").exists
