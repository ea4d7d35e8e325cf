"""Real systemd-container tests for opsctl.sandbox.containers (marked ``docker``).

Boots the ``backup`` image as ``opsctl-backup`` (as the lab does, nmbd masked), checks
systemd, Samba, Avahi, Netatalk (cnid_metad with the sandbox nofile shim), python3 for
Ansible, an Ansible ping through the community.docker connection, and clean removal.
Under CI (``CI=true``) an unreachable Docker engine FAILS these tests; elsewhere they skip.
"""

from __future__ import annotations

import os
import subprocess
import time

import pytest

from opsctl.sandbox import containers
from opsctl.sandbox.containers import exec, list_hosts, start_host, stop_host, wait_running
from opsctl.sandbox.errors import SandboxError
from opsctl.sandbox.images import ensure_image
from opsctl.train.engine import ensure_docker
from tests.support.ci import need, require

pytestmark = [pytest.mark.docker, pytest.mark.timeout(1800)]

HOST = "backup"
CONTAINER = f"opsctl-{HOST}"


@pytest.fixture(scope="module")
def docker_client():
    try:
        client = ensure_docker(progress=print)
    except SandboxError as exc:
        need(f"no Docker engine could be reached or started: {exc}")
    return client


@pytest.fixture(scope="module")
def backup_host(docker_client):
    ensure_image("backup", progress=print, client=docker_client)  # build time not counted below
    stop_host(HOST, client=docker_client)
    t0 = time.monotonic()
    c = start_host(HOST, "backup", extra_args=["systemd.mask=nmbd.service"], client=docker_client)
    status = wait_running(c, timeout=180)
    print(f"{CONTAINER}: {status.state} after {time.monotonic() - t0:.1f} s; failed: {status.failed_units}")
    c.boot_status = status
    yield c
    stop_host(HOST, client=docker_client)


def _active(c, unit: str, timeout: float = 30) -> str:
    """systemctl is-active, retried briefly (units may still be settling after boot)."""
    deadline = time.monotonic() + timeout
    while True:
        _, out = exec(c, ["systemctl", "is-active", unit])
        if out.strip() == "active" or time.monotonic() > deadline:
            return out.strip()
        time.sleep(1)


def test_boot_reaches_running_or_degraded(backup_host):
    st = backup_host.boot_status
    assert st.ok, st
    assert st.state in ("running", "degraded")
    # report anything degraded loudly in the test output
    if st.failed_units:
        print("degraded, failed units:", st.failed_units)
    assert backup_host.attrs["Config"]["Hostname"] == HOST
    assert backup_host.labels["opsctl.sandbox"] == "1"
    assert backup_host.attrs["HostConfig"]["NetworkMode"] == "none"


def test_start_host_is_idempotent(docker_client, backup_host):
    again = start_host(HOST, "backup", extra_args=["systemd.mask=nmbd.service"], client=docker_client)
    assert again.id == backup_host.id
    assert CONTAINER in [c.name for c in list_hosts(client=docker_client)]


@pytest.mark.parametrize("unit", ["smbd", "avahi-daemon", "dbus"])
def test_core_units_active(backup_host, unit):
    assert _active(backup_host, unit) == "active"


def test_nmbd_masked_by_init_arg(backup_host):
    _, out = exec(backup_host, ["systemctl", "is-enabled", "nmbd"])
    assert "masked" in out


def test_dummy0_multicast_interface(backup_host):
    rc, out = exec(backup_host, "ip -o -4 addr show dev dummy0; ip -o link show dev dummy0")
    assert rc == 0, out
    assert "192.0.2.10/24" in out
    assert "MULTICAST" in out and ",UP" in out


def test_avahi_browse_runs(backup_host):
    assert _active(backup_host, "avahi-daemon") == "active"
    rc, out = exec(backup_host, "timeout 30 avahi-browse -atrp --terminate")
    assert rc == 0, out
    # a service published in the container is resolved on dummy0 (the multicast interface)
    script = (
        "avahi-publish -s opsctl-probe _opsctlprobe._tcp 4242 >/dev/null 2>&1 & p=$!; sleep 2; "
        "timeout 30 avahi-browse -atrp --terminate; rc=$?; kill $p; exit $rc"
    )
    rc, out = exec(backup_host, script)
    assert rc == 0, out
    assert any(
        line.startswith("=;dummy0;IPv4;opsctl-probe;_opsctlprobe._tcp;") and ";192.0.2.10;4242;" in line
        for line in out.splitlines()
    ), out


def test_python3_for_ansible(backup_host):
    rc, out = exec(backup_host, "python3 -c 'import apt, sys; print(sys.version_info[:2])'")
    assert rc == 0, out


def test_netatalk_cnid_metad_survives_nofile_cap(backup_host):
    """cnid_metad wants nofile 65535; the sandbox shim lets it run under a lower host cap."""
    assert _active(backup_host, "netatalk") == "active"
    deadline = time.monotonic() + 30
    rc = 1
    while time.monotonic() < deadline:
        rc, out = exec(backup_host, "pgrep -x cnid_metad")
        if rc == 0:
            time.sleep(3)  # it used to crash-loop: make sure it stays up
            rc, out = exec(backup_host, "pgrep -x cnid_metad")
            if rc == 0:
                break
        time.sleep(1)
    _, journal = exec(backup_host, "journalctl -b -u netatalk --no-pager | tail -20")
    assert rc == 0, f"cnid_metad not running:\n{journal}"
    assert "Restarting 'cnid_metad'" not in journal, journal


def test_ulimit_capped_to_host(backup_host):
    _, out = exec(backup_host, "ulimit -Hn")
    wanted = containers.default_ulimits()[0].hard
    assert int(out.strip()) == wanted


def test_ansible_ping_over_docker_connection(backup_host):
    require("ansible")
    cmd = ["ansible", "-i", f"{CONTAINER},", "-c", "community.docker.docker", "all",
           "-m", "ansible.builtin.ping"]
    env = dict(os.environ, ANSIBLE_HOST_KEY_CHECKING="False", ANSIBLE_NOCOLOR="1")
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300,
                         stdin=subprocess.DEVNULL, check=False)
    assert res.returncode == 0, res.stdout + res.stderr
    assert '"ping": "pong"' in res.stdout


def test_stop_removes_host(docker_client, backup_host):
    assert stop_host(HOST, client=docker_client) is True
    assert CONTAINER not in [c.name for c in list_hosts(client=docker_client)]
    assert stop_host(HOST, client=docker_client) is False


def test_list_hosts_leaves_out_a_container_removed_while_it_lists(docker_client, monkeypatch):
    """A host container removed between Docker's listing and its inspection (another opsctl, or
    another test, stopping its host at that moment) is left out; the call does not fail."""
    ensure_image("trainer", client=docker_client)
    stop_host("t-gone", client=docker_client)
    c = start_host("t-gone", "trainer", client=docker_client)
    inspect = docker_client.api.inspect_container

    def removed_first(container_id, *args, **kwargs):
        if container_id == c.id:  # really removed, right before the inspection
            docker_client.api.remove_container(container_id, force=True)
        return inspect(container_id, *args, **kwargs)

    try:
        monkeypatch.setattr(docker_client.api, "inspect_container", removed_first)
        names = [h.name for h in list_hosts(client=docker_client)]
        monkeypatch.undo()
        assert c.name not in names
        assert "opsctl-t-gone" not in [h.name for h in list_hosts(client=docker_client)]
    finally:
        monkeypatch.undo()
        stop_host("t-gone", client=docker_client)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["trainer", "slurm"])
def test_other_kinds_boot_and_report_failed_units(docker_client, kind):
    name = f"t-{kind}"
    ensure_image(kind, progress=print, client=docker_client)
    stop_host(name, client=docker_client)
    try:
        c = start_host(name, kind, client=docker_client)
        st = wait_running(c, timeout=180)
        assert st.state == "running", st
        rc, out = exec(c, "python3 -c 'import apt' && sudo -n true")
        assert rc == 0, out
        if kind == "trainer":
            rc, out = exec(c, "python3 -m venv /tmp/v && /tmp/v/bin/python -c 'print(42)'")
            assert rc == 0 and "42" in out, out
        else:
            rc, out = exec(c, "command -v slurmd slurmctld sinfo munged")
            assert rc == 0, out
        # a failing unit turns the system degraded and is reported by name
        exec(c, "printf '[Service]\\nType=oneshot\\nExecStart=/bin/false\\n' "
                ">/etc/systemd/system/opsctl-broken.service && systemctl daemon-reload && "
                "systemctl start opsctl-broken.service")
        st = wait_running(c, timeout=60)
        assert st.state == "degraded"
        assert "opsctl-broken.service" in st.failed_units
    finally:
        stop_host(name, client=docker_client)


def test_nofile_fallback_when_daemon_refuses(docker_client, monkeypatch):
    """Asking for more nofile than the Docker host allows falls back instead of failing."""
    ensure_image("trainer", client=docker_client)
    monkeypatch.setattr(containers, "_host_nofile_hard", lambda: 1 << 20)  # pretend: no cap here
    stop_host("t-ulimit", client=docker_client)
    try:
        c = start_host("t-ulimit", "trainer", client=docker_client)
        rc, out = exec(c, "ulimit -Hn")
        assert rc == 0 and int(out) > 0
    finally:
        stop_host("t-ulimit", client=docker_client)
