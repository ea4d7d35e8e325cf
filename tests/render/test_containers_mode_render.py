"""backup.mode containers: the compose file `opsctl render` writes (and provision starts), and the images
`opsctl.backup_images` builds from it. Checked by Debian trixie's own docker compose v2 when its
.deb is in $OPSCTL_CACHE/debs-docker/archives."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from opsctl import backup_images
from opsctl.render import render_site
from opsctl.site import parse
from tests.support.paths import REPO

SITE = (REPO / "inventory" / "sandbox.yml").read_text()


def _site(text: str = SITE, mode: str = "containers"):
    text = text.replace("  samba:\n    workgroup", f"  mode: {mode}\n  samba:\n    workgroup", 1)
    return parse(text).site


def _compose(site) -> str:
    files = {f"{f.host}/{f.path}": f.content for f in render_site(site)}
    return files["backup/containers/backup-compose.yml"]


def test_compose_services_binds_and_users():
    site = _site()
    data = yaml.safe_load(_compose(site))
    samba, avahi = data["services"]["samba"], data["services"]["avahi"]
    for svc in (samba, avahi):
        assert svc["network_mode"] == "host" and svc["restart"] == "unless-stopped"
    # the users the container creates: every SMB user with its dataset's mountpoint (uid/gid read there)
    assert samba["command"] == ["alice=/tank/timemachine/alice", "bob=/tank/timemachine/bob"]
    binds = {v["target"]: v for v in samba["volumes"]}
    assert binds["/etc/samba"] == {"type": "bind", "source": "../samba", "target": "/etc/samba", "read_only": True}
    assert binds["/var/lib/samba"]["type"] == "volume"  # the password database survives recreation
    for user in ("alice", "bob"):
        share = binds[f"/tank/timemachine/{user}"]
        # a missing dataset mountpoint fails the start instead of serving an empty folder on the root disk
        assert share["source"] == share["target"] and share["bind"] == {"create_host_path": False}
    avahi_binds = {v["target"]: v for v in avahi["volumes"]}
    assert avahi_binds["/etc/avahi/services"]["source"] == "../avahi/services"
    assert "/run/dbus/system_bus_socket" in avahi_binds
    # no secret in the file: nothing password-like in environment or arguments
    assert "environment" not in samba and "password" not in _compose(site).lower().replace("passwords go", "")


def test_compose_follows_enabled_daemons():
    no_avahi = _site(SITE.replace("  avahi:\n    model: TimeCapsule8,119", "  avahi:\n    enabled: false"))
    assert set(yaml.safe_load(_compose(no_avahi))["services"]) == {"samba"}


def test_image_builds_from_the_compose_file():
    builds = {b.service: b for b in backup_images.image_builds(_compose(_site()))}
    assert set(builds) == {"samba", "avahi"}
    assert builds["samba"].tag == "opsctl/samba:trixie" and builds["avahi"].tag == "opsctl/avahi:trixie"
    for b in builds.values():
        assert b.args == {"BASE": "debian:trixie-slim"}  # compose's ${OPSCTL_BACKUP_BASE:-...} default
        assert b.dockerfile.startswith("ARG BASE\nFROM ${BASE}\n")  # $$ unescaped as compose does
    assert "command -v smbd" in builds["samba"].dockerfile  # a local base with Samba skips apt
    assert "enable-dbus=warn" in builds["avahi"].dockerfile


@pytest.mark.parametrize("text,expected", [
    ("$${BASE}", "${BASE}"), ("${X:-debian:trixie-slim}", "debian:trixie-slim"), ("a $$b $c", "a $b $c"),
])
def test_unescape_like_compose(text, expected):
    assert backup_images._unescape(text) == expected


def _trixie_compose(tmp_path: Path) -> Path | None:
    from opsctl.paths import cache_dir

    debs = sorted((cache_dir() / "debs-docker" / "archives").glob("docker-compose_2*.deb"))
    if not debs:
        return None
    subprocess.run(["dpkg-deb", "-x", str(debs[-1]), str(tmp_path / "x")], check=True)
    return tmp_path / "x" / "usr" / "libexec" / "docker" / "cli-plugins" / "docker-compose"


def test_trixie_docker_compose_accepts_the_file(tmp_path):
    binary = _trixie_compose(tmp_path)
    if binary is None:
        pytest.skip("no Debian trixie docker-compose .deb in $OPSCTL_CACHE/debs-docker/archives to check the file with")
    host = tmp_path / "backup"
    (host / "containers").mkdir(parents=True)
    (host / "containers" / "backup-compose.yml").write_text(_compose(_site()))
    proc = subprocess.run([str(binary), "-f", str(host / "containers" / "backup-compose.yml"), "config", "--format",
                           "json"], capture_output=True, text=True, cwd=host / "containers")
    assert proc.returncode == 0, proc.stderr
    import json

    cfg = json.loads(proc.stdout)
    assert cfg["services"]["samba"]["volumes"][0]["source"] == str(host / "samba")  # relative to the file
    assert cfg["services"]["samba"]["build"]["args"] == {"BASE": "debian:trixie-slim"}
    # every $ of the shell scripts is escaped: compose interpolates no variable of theirs
    assert "variable is not set" not in proc.stderr, proc.stderr
