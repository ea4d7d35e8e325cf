"""Tests for opsctl.train.engine (this machine's Docker engine) and opsctl.sandbox.images.

The ``docker`` tests use the real local engine (started by ``ensure_docker`` if needed) and
build real debootstrap images on first run (root and network needed; minutes when cold).
Under CI (``CI=true``) an unreachable Docker engine FAILS these tests; elsewhere it skips them.
"""

from __future__ import annotations

import dataclasses
import time

import pytest

from opsctl.paths import cache_dir
from opsctl.sandbox import images
from opsctl.sandbox.errors import SandboxError
from opsctl.train.engine import ensure_docker
from tests.support.ci import need


@pytest.fixture(scope="module")
def docker_client():
    try:
        client = ensure_docker(progress=print)
    except SandboxError as exc:
        need(f"no Docker engine could be reached or started: {exc}")
    return client


# --- pure hashing tests (no Docker) -------------------------------------------------------------


def test_hash_is_stable_and_well_formed():
    for kind in images.KINDS:
        h1 = images.image_inputs_hash(kind)
        h2 = images.image_inputs_hash(kind)
        assert h1 == h2
        assert len(h1) == 64 and all(c in "0123456789abcdef" for c in h1)
        assert images.image_tag(kind) == f"opsctl/sandbox-{kind}:{h1[:12]}"
    assert len({images.image_inputs_hash(k) for k in images.KINDS}) == len(images.KINDS)


def test_hash_changes_when_inputs_change(monkeypatch):
    base = images.image_inputs_hash("trainer")
    spec = images.KINDS["trainer"]

    monkeypatch.setitem(images.KINDS, "trainer", dataclasses.replace(spec, packages=(*spec.packages, "vim")))
    with_pkg = images.image_inputs_hash("trainer")
    assert with_pkg != base
    monkeypatch.setitem(images.KINDS, "trainer", spec)
    assert images.image_inputs_hash("trainer") == base

    monkeypatch.setattr(images, "RECIPE_VERSION", images.RECIPE_VERSION + 1)
    assert images.image_inputs_hash("trainer") not in (base, with_pkg)
    monkeypatch.undo()
    assert images.image_inputs_hash("trainer") == base

    monkeypatch.setattr(images, "SUITE", "forky")
    assert images.image_inputs_hash("trainer") != base
    monkeypatch.undo()

    monkeypatch.setattr(images, "MASKED_UNITS", (*images.MASKED_UNITS, "foo.service"))
    assert images.image_inputs_hash("trainer") != base
    monkeypatch.undo()

    monkeypatch.setitem(images.COMMON_FILES, "/etc/x", "y\n")
    assert images.image_inputs_hash("trainer") != base
    monkeypatch.undo()

    monkeypatch.setenv("OPSCTL_DEBIAN_MIRROR", "http://mirror.invalid/debian")
    assert images.image_inputs_hash("trainer") != base


def test_package_order_does_not_matter(monkeypatch):
    base = images.image_inputs_hash("slurm")
    spec = images.KINDS["slurm"]
    reordered = dataclasses.replace(spec, packages=tuple(reversed(spec.packages)))
    monkeypatch.setitem(images.KINDS, "slurm", reordered)
    assert images.image_inputs_hash("slurm") == base


def test_backup_spec_has_required_packages():
    spec = images.KINDS["backup"]
    wanted = {"samba", "smbclient", "netatalk", "netatalk-tools", "avahi-daemon", "avahi-utils",
              "libnss-mdns", "acl", "attr", "perl-openssl-defaults", "dbus-user-session",
              "tracker-extract"}
    assert wanted <= set(spec.packages)
    assert "netatalk-tests" in spec.optional_packages
    assert {"systemd", "python3", "python3-apt", "sudo"} <= set(images.COMMON_PACKAGES)


def test_unknown_kind_raises():
    with pytest.raises(SandboxError, match="unknown sandbox image kind"):
        images.image_inputs_hash("nope")


# --- real Docker tests -------------------------------------------------------------------------


@pytest.mark.docker
def test_ensure_docker_answers(docker_client):
    assert docker_client.ping()
    assert docker_client.version()["ApiVersion"]
    # second call is a no-op returning a working client
    assert ensure_docker().ping()


@pytest.mark.docker
@pytest.mark.slow
@pytest.mark.timeout(1800)
@pytest.mark.parametrize("kind", ["backup", "trainer"])
def test_ensure_image_builds_then_reuses(docker_client, kind):
    lines: list[str] = []
    tag = images.ensure_image(kind, progress=lines.append, client=docker_client)
    assert tag == images.image_tag(kind)
    img = docker_client.images.get(tag)
    assert img.labels["opsctl.sandbox"] == "1"
    assert img.labels["opsctl.sandbox.kind"] == kind
    assert img.labels["opsctl.sandbox.inputs-hash"] == images.image_inputs_hash(kind)
    assert img.attrs["Config"]["Cmd"] == ["/sbin/init"]
    # cached root filesystem kept for fast rebuilds
    assert (cache_dir() / "rootfs" / f"{kind}-{tag.rsplit(':', 1)[1]}.tar").is_file()
    # warm path: zero work
    lines.clear()
    t0 = time.monotonic()
    assert images.ensure_image(kind, progress=lines.append, client=docker_client) == tag
    assert time.monotonic() - t0 < 5
    assert any("reusing" in line for line in lines)
    assert not any("debootstrap" in line for line in lines)


@pytest.mark.docker
@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_deleted_image_is_reimported_from_cached_tarball(docker_client):
    kind = "trainer"
    tag = images.ensure_image(kind, client=docker_client)
    users = docker_client.containers.list(all=True, filters={"ancestor": tag})
    if users:
        pytest.skip(f"{tag} is in use by {[c.name for c in users]}")
    docker_client.images.remove(tag)
    lines: list[str] = []
    assert images.ensure_image(kind, progress=lines.append, client=docker_client) == tag
    assert any("using cached root filesystem" in line for line in lines)
    assert not any("debootstrap" in line for line in lines)
    # no temporary build tags left behind
    repo_tags = [t for i in docker_client.images.list(f"opsctl/sandbox-{kind}") for t in i.tags]
    assert not [t for t in repo_tags if ":building-" in t]


@pytest.mark.docker
@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_image_contents(docker_client):
    """The backup image: systemd init, empty machine-id, masks, trixie sources, shim."""
    tag = images.ensure_image("backup", client=docker_client)
    script = (
        "set -e; test -x /sbin/init; readlink -f /sbin/init; test ! -s /etc/machine-id; "
        "readlink /etc/systemd/system/systemd-udevd.service; "
        "readlink /etc/systemd/system/getty@.service; "
        "cat /etc/apt/sources.list.d/debian.sources; "
        f"test -f {images.NOFILE_SHIM_PATH}; "
        "cat /etc/systemd/journald.conf.d/10-opsctl-console.conf; "
        "python3 --version; dpkg -s samba netatalk avahi-daemon python3-apt | grep -c '^Status: install ok'"
    )
    out = docker_client.containers.run(tag, ["sh", "-c", script], remove=True, network_mode="none")
    text = out.decode()
    assert "/usr/lib/systemd/systemd" in text or "/lib/systemd/systemd" in text
    assert text.count("/dev/null") >= 2
    assert "Suites: trixie trixie-updates" in text and "Components: main contrib" in text
    assert "ForwardToConsole=yes" in text
    assert "Python 3." in text
    assert text.strip().endswith("4")


# --- ensure_docker failure paths (simulated; the real daemon is left alone) ---------------------


def test_ensure_docker_not_root_gives_reason_and_fix(monkeypatch):
    from opsctl.train import engine

    monkeypatch.setattr(engine, "_ping", lambda base_url=None: None)
    monkeypatch.setattr(engine.shutil, "which", lambda name: f"/usr/bin/{name}")
    monkeypatch.setattr(engine.os, "geteuid", lambda: 1000)
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    with pytest.raises(SandboxError) as err:
        ensure_docker()
    assert "needs root" in str(err.value) and "Fix:" in str(err.value)


def test_ensure_docker_reports_dead_dockerd_with_log(monkeypatch, tmp_path):
    import subprocess

    from opsctl.train import engine

    monkeypatch.setenv("OPSCTL_CACHE", str(tmp_path))
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    monkeypatch.setattr(engine, "_ping", lambda base_url=None: None)
    monkeypatch.setattr(engine.shutil, "which", lambda name: None if name == "systemctl" else "/x")
    monkeypatch.setattr(engine.os, "geteuid", lambda: 0)

    def fake_start(log_path, progress):
        log_path.write_text("failed to start daemon: pid file found, ensure docker is not running\n")
        return subprocess.Popen(["false"])

    monkeypatch.setattr(engine, "_start_dockerd", fake_start)
    with pytest.raises(SandboxError) as err:
        ensure_docker(timeout=5)
    msg = str(err.value)
    assert "dockerd exited" in msg and "pid file found" in msg and "Fix:" in msg


def test_ensure_docker_remote_docker_host_is_not_started(monkeypatch):
    from opsctl.train import engine

    monkeypatch.setattr(engine, "_ping", lambda base_url=None: None)
    monkeypatch.setenv("DOCKER_HOST", "tcp://10.255.255.1:2375")
    with pytest.raises(SandboxError, match="DOCKER_HOST"):
        ensure_docker()
