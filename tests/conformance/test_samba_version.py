"""The Samba version guard: Python logic (opsctl/verify/samba_version.py) and the samba role's
task file (roles/samba/tasks/version_guard.yml), run for real by ansible-playbook against this machine
with stand-in ``smbd`` commands that print a given version; both must agree on every version."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from opsctl.verify import samba_version as sv
from tests.support.paths import REPO

BROKEN = [
    "Version 4.22.0",
    "Version 4.22.0rc1",
    "Version 4.22.5-Debian-4.22.5+dfsg-1",
    "Version 4.22.6rc2",
    "Version 4.23.0",
    "Version 4.23.2-SerNet-Ubuntu-8.noble",
    "Version 4.23.3rc1",
]
GOOD = [
    "Version 4.17.12-Debian",
    "Version 4.21.9",
    "Version 4.22.6",
    "Version 4.22.11-Debian-4.22.11+dfsg-1",
    "Version 4.23.3",
    "Version 4.23.10",
    "Version 4.24.0",
    "Version 5.22.3",
]


@pytest.mark.parametrize("text", BROKEN)
def test_broken_releases_are_flagged(text):
    assert sv.breaks_time_machine(text) is True
    message = sv.advice(text)
    assert message is not None and "15926" in message
    fix = ".".join(map(str, sv.fixed_in(sv.parse(text))))
    assert f"upgrade Samba to {fix} or later" in message


@pytest.mark.parametrize("text", GOOD)
def test_good_releases_pass(text):
    assert sv.breaks_time_machine(text) is False
    assert sv.advice(text) is None


def test_parse_debian_output():
    v = sv.parse("Version 4.22.11-Debian-4.22.11+dfsg-1\n")
    assert (v.major, v.minor, v.patch, v.rc) == (4, 22, 11, 0)
    assert str(v) == "4.22.11"
    assert str(sv.parse("Version 4.23.3rc1")) == "4.23.3rc1"
    # the first version number counts, not a later package revision
    assert str(sv.parse("Version 4.22.5-Debian-4.22.5+dfsg-1~bpo12+1.2.3")) == "4.22.5"


def test_boundaries():
    # the last broken and the first fixed release of each series
    assert sv.breaks_time_machine("4.22.5") and not sv.breaks_time_machine("4.22.6")
    assert sv.breaks_time_machine("4.23.2") and not sv.breaks_time_machine("4.23.3")
    assert not sv.breaks_time_machine("4.21.99")


@pytest.mark.parametrize("text", ["", "smbd: command not found", "Version four", "4.22", 422])
def test_unreadable_version_is_one_clear_error(text):
    with pytest.raises(sv.SambaVersionError) as err:
        sv.parse(text)
    line = str(err.value)
    assert "\n" not in line and line.startswith("Samba version:")
    assert repr(text.strip()[:80] if isinstance(text, str) else text) in line or "(empty)" in line


def _run_role_guard(tmp_path: Path, outputs: list[str]) -> tuple[list[dict], str]:
    """Include the role's version_guard.yml once per output with a stand-in smbd; each decision and the log."""
    commands = []
    for i, out in enumerate(outputs):
        cmd = tmp_path / f"smbd{i}"
        cmd.write_text(f"#!/bin/sh\nprintf '%s\\n' {json.dumps(out)}\n")
        cmd.chmod(0o755)
        commands.append(str(cmd))
    results = tmp_path / "results.json"
    playbook = tmp_path / "guard.yml"
    playbook.write_text(json.dumps([{
        "hosts": "localhost", "connection": "local", "gather_facts": False,
        "vars": {"guard_results": []},
        "tasks": [
            {"name": "guard", "ansible.builtin.include_tasks": str(tmp_path / "one.yml"),
             "loop": commands, "loop_control": {"loop_var": "guard_cmd"}},
            {"name": "save", "ansible.builtin.copy": {"content": "{{ guard_results | to_json }}",
                                                     "dest": str(results), "mode": "0600"}},
        ],
    }]))
    (tmp_path / "one.yml").write_text(json.dumps([
        {"name": "the role's guard", "ansible.builtin.include_tasks": str(REPO / "roles/samba/tasks/version_guard.yml"),
         "vars": {"samba_smbd_command": "{{ guard_cmd }}"}},
        {"name": "collect",
         "ansible.builtin.set_fact": {"guard_results": "{{ guard_results + [samba_version_guard] }}"}},
    ]))
    env = {**os.environ, "ANSIBLE_NOCOLOR": "1", "ANSIBLE_STDOUT_CALLBACK": "default",
           "ANSIBLE_LOCALHOST_WARNING": "0", "ANSIBLE_CONFIG": str(REPO / "ansible.cfg")}
    res = subprocess.run([str(Path(sys.executable).with_name("ansible-playbook")), "-i", "localhost,",
                          "-e", f"ansible_python_interpreter={sys.executable}", str(playbook)],
                         capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]
    return json.loads(results.read_text()), res.stdout


def test_role_guard_agrees_with_python(tmp_path):
    outputs = [*BROKEN, *GOOD, "no version here"]
    decisions, stdout = _run_role_guard(tmp_path, outputs)
    assert len(decisions) == len(outputs)
    for out, got in zip(outputs, decisions, strict=True):
        if out == "no version here":
            assert got["version"] is None and got["broken"] is False
            assert "could not read a Samba version" in got["message"]
            continue
        assert got["broken"] is sv.breaks_time_machine(out), (out, got)
        assert got["version"] == str(sv.parse(out)), (out, got)
        assert (got["message"] or None) == sv.advice(out), (out, got)
    # the warning is printed for each broken release (and the unreadable one), naming the fix
    assert stdout.count("WARNING: Samba ") == len(BROKEN)
    assert "upgrade Samba to 4.22.6 or later" in stdout and "upgrade Samba to 4.23.3 or later" in stdout
    assert "WARNING: could not read a Samba version" in stdout
