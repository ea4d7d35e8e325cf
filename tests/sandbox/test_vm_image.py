"""The VM image's inputs without building it: the guest recipe file (hash stays the image's cache
key, shellcheck-clean) and the Debian mirror read from this machine's apt sources."""

from __future__ import annotations

from pathlib import Path

import pytest

from opsctl.sandbox.errors import SandboxError
from opsctl.sandbox.vm import apt_sources, image
from opsctl.sandbox.vm.apt_sources import debian_mirror, mirrors_in_deb822, mirrors_in_one_line
from tests.support.ci import require

#: The cached image every machine and CI already has; a new hash means a 10-20 minute rebuild.
#: Change it only together with a real change of the guest (recipe text or package lists).
KNOWN_HASH = "0694ee0df8d4f0ed"


def test_recipe_file_keeps_the_image_hash():
    assert image.vm_image_hash() == KNOWN_HASH


def test_only_the_recipe_below_the_marker_is_hashed(tmp_path, monkeypatch):
    text = image.RECIPE_FILE.read_text()
    head, _, recipe = text.partition(image.RECIPE_MARKER)
    assert recipe.startswith("\nset -euxo pipefail\n") and recipe == image.GUEST_RECIPE
    (tmp_path / "a.sh").write_text("#!/bin/bash\n# another comment\n" + image.RECIPE_MARKER + recipe)
    monkeypatch.setattr(image, "GUEST_RECIPE", image._read_recipe(tmp_path / "a.sh"))
    assert image.vm_image_hash() == KNOWN_HASH
    (tmp_path / "b.sh").write_text(head + image.RECIPE_MARKER + recipe + "apt-get install -y -q docker.io\n")
    monkeypatch.setattr(image, "GUEST_RECIPE", image._read_recipe(tmp_path / "b.sh"))
    assert image.vm_image_hash() != KNOWN_HASH


def test_recipe_without_marker_is_refused(tmp_path):
    (tmp_path / "c.sh").write_text("set -e\n")
    with pytest.raises(SandboxError, match="recipe"):
        image._read_recipe(tmp_path / "c.sh")


def test_guest_recipe_passes_shellcheck():
    import subprocess

    proc = subprocess.run([require("shellcheck"), "--severity=style", str(image.RECIPE_FILE)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_vm_image_builder_interface():
    vm = image.VmImage()
    assert vm.tag() == KNOWN_HASH and vm.inputs()["recipe"] == image.GUEST_RECIPE


# ------------------------------------------------------------------------------ apt sources

DEB822 = """\
# bookworm, the way Debian 12 installs it
Types: deb deb-src
URIs: http://mirror.test/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://mirror.test/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
"""


def _apt(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / "etc" / "apt" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


@pytest.fixture(autouse=True)
def _no_override(monkeypatch):
    monkeypatch.delenv("OPSCTL_DEBIAN_MIRROR", raising=False)


def test_deb822_sources_give_the_archive_not_security():
    assert mirrors_in_deb822(DEB822) == ["http://mirror.test/debian"]
    disabled = DEB822.replace("Types: deb deb-src\n", "Types: deb\nEnabled: no\n")
    assert mirrors_in_deb822(disabled) == []
    src_only = DEB822.replace("Types: deb deb-src\n", "Types: deb-src\n")
    assert mirrors_in_deb822(src_only) == []


def test_one_line_sources():
    text = ("# deb http://old.test/debian bookworm main\n"
            "deb [arch=amd64 signed-by=/k.gpg] https://one.test/debian/ bookworm main contrib\n"
            "deb http://one.test/debian-security bookworm-security main\n"
            "deb http://third.party/apt stable main\n")
    assert mirrors_in_one_line(text) == ["https://one.test/debian/"]


def test_debian_mirror_reads_sources_under_root(tmp_path):
    root = _apt(tmp_path, {"sources.list.d/debian.sources": DEB822,
                           "sources.list.d/vendor.list": "deb http://vendor.test/apt stable main\n"})
    assert debian_mirror(root) == "http://mirror.test/debian"
    only_list = _apt(tmp_path / "b", {"sources.list": "deb https://two.test/debian/ trixie main\n"})
    assert debian_mirror(only_list) == "https://two.test/debian"


def test_debian_mirror_override(tmp_path, monkeypatch):
    monkeypatch.setenv("OPSCTL_DEBIAN_MIRROR", "http://override.test/debian/")
    assert debian_mirror(tmp_path) == "http://override.test/debian"


def test_no_debian_mirror_is_a_clear_error(tmp_path):
    root = _apt(tmp_path, {"sources.list.d/vendor.list": "deb http://vendor.test/apt stable main\n",
                           "sources.list.d/debian.sources": DEB822.split("\n\n")[1]})
    with pytest.raises(SandboxError, match="OPSCTL_DEBIAN_MIRROR") as info:
        debian_mirror(root)
    assert str(root / "etc" / "apt") in str(info.value)


def test_image_build_takes_the_mirror_from_apt_sources():
    # the build calls the parser, not a URL written in code
    assert image.debian_mirror is apt_sources.debian_mirror
    assert "http" not in image.RECIPE_FILE.read_text()


def test_cli_prints_the_image_hash():
    from typer.testing import CliRunner

    from opsctl.cli import app

    res = CliRunner().invoke(app, ["sandbox", "build-image", "--hash"])
    assert res.exit_code == 0 and res.stdout.strip() == KNOWN_HASH


def test_every_image_builder_has_the_one_interface():
    from opsctl.sandbox.builders import Builder, sandbox_builders
    from opsctl.site.loader import load
    from opsctl.train.image import JobImage
    from opsctl.train.jobbase import JobBase
    from tests.support.paths import REPO

    site = load(REPO / "inventory" / "sandbox.yml").site
    builders = [*sandbox_builders(), JobBase(), JobImage(site)]
    assert {b.name for b in builders} >= {"sandbox-backup", "slurm-bookworm", "zfsvm", "jobbase", "job"}
    for builder in builders:
        assert isinstance(builder, Builder), builder
        assert builder.tag() and isinstance(builder.inputs(), dict), builder.name
    assert JobImage(site).tag() == site.training.image
