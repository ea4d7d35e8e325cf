"""Role apptainer on a sandbox trainer container.

Debian trixie has no apptainer package, so without apptainer_deb the role must stop with a message
that says what to set; with a tool already on the PATH it must install nothing.
"""

from __future__ import annotations

import pytest

from tests.roles._roletest import (
    container_fixture,
    container_inventory,
    make_site,
    molecule_playbook,
    run_playbook,
    sandbox_site_data,
)

pytestmark = [pytest.mark.docker, pytest.mark.slow]

NAME = "rt-apptainer"
container = container_fixture(NAME, "trainer")


@pytest.fixture(scope="module")
def inventory(container, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("apptainer")
    data = sandbox_site_data()
    data["training"]["runtime"] = "apptainer"
    return container_inventory(tmp / "inventory.yml", make_site(data), NAME, "trainer")


def test_no_package_and_no_deb_fails_with_what_to_set(inventory):
    run = run_playbook(molecule_playbook("apptainer"), inventory)
    assert run.rc != 0
    assert "Set apptainer_deb to the URL of an Apptainer release .deb" in run.output


def test_installed_apptainer_is_left_alone(container, inventory):
    from opsctl.sandbox.containers import exec as cexec

    rc, out = cexec(container, "printf '#!/bin/sh\\necho apptainer version 1.0\\n' > /usr/local/bin/apptainer"
                               " && chmod 0755 /usr/local/bin/apptainer")
    assert rc == 0, out
    try:
        run = run_playbook(molecule_playbook("apptainer"), inventory)
        assert run.rc == 0 and run.changed(NAME) == 0, run.output[-4000:]
    finally:
        cexec(container, "rm -f /usr/local/bin/apptainer")
