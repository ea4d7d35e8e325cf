"""backup.mode: how Samba and Avahi run (host daemons by default, or Docker containers)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from opsctl.site import SpecError, parse

MODE_ANCHOR = "  samba:\n    workgroup"


def _with_mode(text: str, value: str) -> str:
    assert MODE_ANCHOR in text
    return text.replace(MODE_ANCHOR, f"  mode: {value}\n{MODE_ANCHOR}", 1)


def test_mode_defaults_to_host(example_yaml):
    assert parse(example_yaml).site.backup.mode == "host"


@pytest.mark.parametrize("value", ["host", "containers"])
def test_mode_values(example_yaml, value):
    assert parse(_with_mode(example_yaml, value)).site.backup.mode == value


@pytest.mark.parametrize("value", ["docker", "Containers", "''", "[containers]", "true"])
def test_bad_mode_is_refused_naming_field_value_and_choices(example_yaml, value):
    with pytest.raises(SpecError) as info:
        parse(_with_mode(example_yaml, value), "site.yml")
    message = "\n".join(info.value.problems)
    assert "backup.mode" in message and "site.yml:" in message
    assert "'host' or 'containers'" in message


def test_bad_mode_cli_exit_2_nothing_applied(tmp_path, example_yaml):
    bad = tmp_path / "site.yml"
    bad.write_text(_with_mode(example_yaml, "docker"))
    proc = subprocess.run([sys.executable, "-m", "opsctl", "validate", "--site", str(bad)],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "backup.mode" in proc.stderr and "'docker'" in proc.stderr
    assert "nothing was applied" in proc.stderr


def test_offline_build_defaults_off_and_only_matters_in_containers_mode(example_yaml):
    """Images are built here and shipped only for containers mode with offline_build (a host without
    a registry); host mode never builds them, whatever offline_build says."""
    from opsctl.apply.provision import _offline_images_wanted

    site = parse(example_yaml).site
    assert site.backup.offline_build is False
    for mode, offline, wanted in (("containers", "true", True), ("containers", "false", False),
                                  ("host", "true", False)):
        text = _with_mode(example_yaml, f"{mode}\n  offline_build: {offline}")
        site = parse(text).site
        assert _offline_images_wanted(site, None) is wanted, (mode, offline)
        assert _offline_images_wanted(site, ["some-other-host"]) is False
