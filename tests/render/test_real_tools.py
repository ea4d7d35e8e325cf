"""Every rendered file is checked by the real tool that reads it."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from opsctl.render import render_site
from opsctl.site import parse
from tests.support.ci import require
from tests.support.paths import REPO, avahi_dtd_dir

SITES = {
    "sandbox": (REPO / "inventory" / "sandbox.yml").read_text(),
    "full": (REPO / "tests" / "data" / "full_site.yml").read_text(),
}
# Legacy Netatalk 2.x, CPU-only docker runtime and GPU count (not "all") variants of the full site.
SITES["netatalk2"] = SITES["full"].replace("version: 3", "version: 2").replace("gpus: all", "gpus: 2") \
    .replace("gpu_request: cdi", "")
SITES["no-avahi"] = SITES["full"].replace("model: MacPro7,1", "enabled: false").replace("gpu_request: cdi", "")


@pytest.fixture(scope="module", params=sorted(SITES))
def rendered(request, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp(request.param)
    render_site(parse(SITES[request.param]).site, out)
    return out


def _files(root: Path, pattern: str) -> list[Path]:
    return sorted(root.glob(pattern))


def test_smb_conf_passes_testparm(rendered):
    testparm = require("testparm")
    confs = _files(rendered, "*/samba/smb.conf")
    assert confs
    for conf in confs:
        proc = subprocess.run([testparm, "-s", str(conf)], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
        assert "Unknown parameter" not in proc.stderr and "Ignoring unknown" not in proc.stderr, proc.stderr
        dump = proc.stdout
        assert "fruit:time machine = yes" in dump
        assert "vfs objects = catia fruit streams_xattr" in dump
        assert "server min protocol = SMB2" in dump
        assert "disable netbios = Yes" in dump or "disable netbios = yes" in dump


def test_avahi_services_valid_against_dtd(rendered):
    xmllint = require("xmllint")
    dtd_dir = avahi_dtd_dir()
    services = _files(rendered, "*/avahi/services/*.service")
    if "no-avahi" in rendered.name:
        assert services == []
        return
    assert services
    proc = subprocess.run([xmllint, "--noout", "--path", str(dtd_dir), "--dtdvalid",
                           str(dtd_dir / "avahi-service.dtd"), *map(str, services)], capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr


def test_shell_scripts_parse_and_pass_shellcheck(rendered):
    shellcheck = require("shellcheck")
    scripts = _files(rendered, "*/zfs/plan.sh") + _files(rendered, "*/containers/*.sh") \
        + _files(rendered, "*/slurm/*.sbatch")
    assert scripts
    for script in scripts:
        shell = "bash" if script.suffix == ".sbatch" else "sh"
        subprocess.run([shell, "-n", str(script)], check=True)
        proc = subprocess.run([shellcheck, "--severity=style", str(script)], capture_output=True, text=True)
        assert proc.returncode == 0, f"{script}:\n{proc.stdout}"


def test_apptainer_definition_parses(rendered):
    from spython.main.parse.parsers import SingularityParser

    for definition in _files(rendered, "*/containers/charlm.def"):
        recipe = SingularityParser(str(definition)).recipe["spython-base"]
        assert recipe.fromHeader
        assert any("pip install" in line for line in recipe.install)
        assert "ml /opt/charlm-src" in recipe.files


def test_compose_files_are_yaml_with_services(rendered):
    for compose in _files(rendered, "*/containers/*compose.yml"):
        data = yaml.safe_load(compose.read_text())
        assert data["services"], compose


def test_dockerfiles_are_non_root_and_unprivileged(rendered):
    for dockerfile in _files(rendered, "*/containers/Dockerfile.*"):
        text = dockerfile.read_text()
        assert text.splitlines()[3].startswith("FROM ") or "\nFROM " in text
        user_lines = [line for line in text.splitlines() if line.startswith("USER ")]
        assert user_lines and not user_lines[-1].startswith("USER root") and not user_lines[-1].startswith("USER 0")
    for run in _files(rendered, "*/containers/docker-run.sh"):
        assert "--privileged" not in run.read_text()


def test_gpu_flags(tmp_path):
    site = parse(SITES["full"]).site
    files = {f.path: f.content for f in render_site(site, None, ["gpu1"])}
    assert "--device nvidia.com/gpu=all" in files["containers/docker-run.sh"]
    assert "--nv" in files["containers/apptainer-run.sh"]
    site = parse(SITES["full"].replace("gpus: all", "gpus: 2")).site
    files = {f.path: f.content for f in render_site(site, None, ["gpu1"])}
    assert "--device nvidia.com/gpu=0 --device nvidia.com/gpu=1" in files["containers/docker-run.sh"]
    site = parse(SITES["netatalk2"]).site
    files = {f.path: f.content for f in render_site(site, None, ["gpu1"])}
    assert "--gpus 2" in files["containers/docker-run.sh"]
    assert "count: 2" in files["containers/compose.yml"]


def test_netatalk_variants(tmp_path):
    files = {f.path: f.content for f in render_site(parse(SITES["netatalk2"]).site, None, ["tm1"])}
    assert "netatalk/afp.conf" not in files
    volumes = files["netatalk/AppleVolumes.default"]
    assert '/srv/timemachine/alice "tm-alice" cnidscheme:dbd options:usedots,upriv,tm allow:alice' in volumes
    assert "bob_2" not in volumes  # smb only
    assert "-uamlist uams_dhx2.so,uams_dhx.so" in files["netatalk/afpd.conf"]
    assert "AFPD_MAX_CLIENTS=50" in files["netatalk/default-netatalk"]
    files = {f.path: f.content for f in render_site(parse(SITES["full"]).site, None, ["tm1"])}
    afp = files["netatalk/afp.conf"]
    assert "vol size limit = 409600" in afp and "zeroconf = no" in afp and "time machine = yes" in afp


def test_avahi_adisk_and_device_info():
    files = {f.path: f.content for f in render_site(parse(SITES["full"]).site, None, ["tm1"])}
    adisk = files["avahi/services/adisk.service"]
    assert "<txt-record>sys=adVF=0x100</txt-record>" in adisk
    assert "<txt-record>dk0=adVN=tm-alice,adVF=0x82</txt-record>" in adisk
    assert "<txt-record>dk2=adVN=tm-carol-c,adVF=0x82</txt-record>" in adisk
    assert "<txt-record>model=MacPro7,1</txt-record>" in files["avahi/services/device-info.service"]
    assert "mdns4_minimal" in files["avahi/nsswitch.hosts"]
    smb = files["samba/smb.conf"]
    assert "multicast dns register = no" in smb
    files = {f.path: f.content for f in render_site(parse(SITES["no-avahi"]).site, None, ["tm1"])}
    assert "multicast dns register" not in files["samba/smb.conf"]
    assert "zeroconf" not in files["netatalk/afp.conf"]
