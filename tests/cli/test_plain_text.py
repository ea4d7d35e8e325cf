"""Through the real CLI: no output shows raw Rich markup (``[dim]``, ``[/]``), and text from the user
(file paths, help defaults) is printed as written, not eaten as markup. Also: the site file is an
optional positional argument of ``validate`` and ``render``, as inventory/sandbox.yml's comment says."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from opsctl import ROOT
from opsctl.cli import app

RAW = ("[dim]", "[/]", "[bold]", "[green]")


def _opsctl(*args: str, cwd=ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "opsctl", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=120, env={**os.environ, "COLUMNS": "250", "NO_COLOR": "1"})


def _no_raw_markup(text: str) -> None:
    for tag in RAW:
        assert tag not in text, text


def test_validate_takes_the_site_file_as_written_in_its_comment():
    assert "`opsctl validate inventory/sandbox.yml`" in (ROOT / "inventory" / "sandbox.yml").read_text()
    res = _opsctl("validate", "inventory/sandbox.yml")
    assert res.returncode == 0, res.stderr
    assert "valid" in res.stdout and "inventory/sandbox.yml" in res.stdout
    _no_raw_markup(res.stdout + res.stderr)


def test_render_takes_the_site_file_positionally(tmp_path):
    res = _opsctl("render", str(ROOT / "inventory" / "sandbox.yml"), "--out", str(tmp_path / "o"))
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "o" / "backup").is_dir()
    _no_raw_markup(res.stdout + res.stderr)


def test_two_different_site_files_are_bad_input(tmp_path):
    other = tmp_path / "other.yml"
    other.write_text((ROOT / "inventory" / "sandbox.yml").read_text())
    res = _opsctl("validate", "inventory/sandbox.yml", "--site", str(other))
    assert res.returncode == 2 and "two site files given" in res.stderr and "Traceback" not in res.stderr


def test_paths_with_brackets_print_literally(tmp_path):
    folder = tmp_path / "[bold]lab"  # a folder name cannot hold "/", so no "[/]" here
    folder.mkdir()
    site = folder / "site.yml"
    res = _opsctl("init", str(site))
    assert res.returncode == 0, res.stderr
    assert f"wrote {site}; edit it, then run opsctl validate {site}" in " ".join(res.stdout.split())
    res = _opsctl("validate", str(site))
    assert res.returncode == 0, res.stderr
    assert str(site) in "".join(res.stdout.split())  # the (wrapped) table title keeps the folder's brackets
    out = folder / "[red]out"
    res = _opsctl("render", str(site), "--out", str(out))
    assert res.returncode == 0, res.stderr
    assert f"renderedinto{out}/" in "".join(res.stdout.split())


@pytest.mark.parametrize("command", [["user", "add"], ["provision"], ["status"], ["train"], ["job", "submit"],
                                     ["verify"], ["render"], ["validate"], ["hosts", "trust"]])
def test_help_shows_defaults_as_written(command):
    result = CliRunner().invoke(app, [*command, "--help"], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    _no_raw_markup(result.output)
    text = " ".join(result.output.split())
    if command == ["user", "add"]:
        assert "[default: smb]" in text and "[default: 90 % of the quota]" in text
    if "--site" in text:
        assert "[default: the embedded sandbox, inventory/sandbox.yml]" in text
