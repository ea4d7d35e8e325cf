"""The ``opsctl_files`` action plugin end to end: ``ansible-playbook`` on this machine (local connection).

The plugin renders the real templates on the controller and the module converges them in
``tmp_path``; what lands must be byte for byte what ``opsctl render`` writes (one template, one
truth), a second run changes nothing, ``--check`` writes nothing, ``--diff`` shows each file,
secret files never show, and bad arguments fail with one line naming the field, before any
remote call.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from opsctl import TEMPLATES
from opsctl.render.context import context_for
from opsctl.render.engine import render_host
from opsctl.site.loader import DEFAULT_SITE
from opsctl.site.models import Site
from tests.support.paths import REPO

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="files are converged as root (owner root)")

RECAP = re.compile(r"localhost\s*:\s*ok=(\d+)\s+changed=(\d+)\s+unreachable=\d+\s+failed=(\d+)")


def _site() -> Site:
    return Site.model_validate(yaml.safe_load(DEFAULT_SITE.read_text()))


def _play(tmp_path, task: dict, *flags: str) -> tuple[int, str, tuple[int, int, int]]:
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(yaml.safe_dump({"all": {"hosts": {"localhost": {
        "ansible_connection": "local", "ansible_python_interpreter": "/usr/bin/python3",
        "opsctl": context_for(_site(), "backup"), "opsctl_templates": str(TEMPLATES),
        "secret_token": "tok-Very-Secret-9"}}}}))
    playbook = tmp_path / "play.yml"
    playbook.write_text(yaml.safe_dump([{"name": "t", "hosts": "all", "gather_facts": False,
                                         "tasks": [{"name": "files", "opsctl_files": task}]}]))
    env = {**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1",
           "ANSIBLE_LOCAL_TEMP": str(tmp_path / ".ansible-local")}
    argv = [str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(inventory), str(playbook), *flags]
    proc = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
                          stdin=subprocess.DEVNULL)
    out = proc.stdout + proc.stderr
    m = RECAP.search(out)
    assert m, out[-3000:]
    return proc.returncode, out, tuple(int(x) for x in m.groups())


def _task(tmp_path) -> dict:
    return {"files": [
        {"template": "{{ opsctl_templates }}/samba/smb.conf.j2", "dest": str(tmp_path / "smb.conf"),
         "validate": "testparm -s %s" if _has("testparm") else "test -s %s"},
        {"template": "{{ opsctl_templates }}/netatalk/afp.conf.j2", "dest": str(tmp_path / "afp.conf")},
        {"template": "{{ opsctl_templates }}/avahi/adisk.service.j2", "dest": str(tmp_path / "adisk.service")},
        {"content": "TOKEN={{ secret_token }}\n", "dest": str(tmp_path / "notify.env"), "mode": "0600",
         "secret": True},
    ]}


def _has(cmd: str) -> bool:
    from shutil import which

    return which(cmd) is not None


def test_renders_the_same_bytes_as_opsctl_render_and_is_idempotent(tmp_path):
    rc, out, (ok, changed, failed) = _play(tmp_path, _task(tmp_path))
    assert rc == 0 and changed == 1, out[-3000:]
    rendered = {f.path: f.content for f in render_host(_site(), "backup")}
    assert (tmp_path / "smb.conf").read_text() == rendered["samba/smb.conf"]
    assert (tmp_path / "afp.conf").read_text() == rendered["netatalk/afp.conf"]
    assert (tmp_path / "adisk.service").read_text() == rendered["avahi/services/adisk.service"]
    assert (tmp_path / "notify.env").stat().st_mode & 0o7777 == 0o600
    rc, out, (ok, changed, failed) = _play(tmp_path, _task(tmp_path))
    assert rc == 0 and changed == 0, out[-3000:]


def test_check_mode_writes_nothing_and_diff_shows_each_file_but_no_secret(tmp_path):
    (tmp_path / "afp.conf").write_text("[Global]\nold = yes\n")
    rc, out, (ok, changed, failed) = _play(tmp_path, _task(tmp_path), "--check", "--diff")
    assert rc == 0 and changed == 1, out[-3000:]
    assert not (tmp_path / "smb.conf").exists() and not (tmp_path / "notify.env").exists()
    assert (tmp_path / "afp.conf").read_text() == "[Global]\nold = yes\n"
    assert f"--- before: {tmp_path / 'afp.conf'}" in out and "-old = yes" in out
    assert f"+++ after: {tmp_path / 'smb.conf'}" in out
    assert "tok-Very-Secret-9" not in out and "(content hidden: secret file)" in out


def test_drift_in_one_file_is_repaired_alone(tmp_path):
    _play(tmp_path, _task(tmp_path))
    smb = tmp_path / "smb.conf"
    good = smb.read_text()
    smb.write_text(good + "[evil]\npath = /\n")
    rc, out, (ok, changed, failed) = _play(tmp_path, _task(tmp_path), "-v")
    assert rc == 0 and changed == 1 and smb.read_text() == good, out[-3000:]
    assert json.dumps(str(smb)) in out and json.dumps(str(tmp_path / "afp.conf")) not in out


@pytest.mark.parametrize(("task", "message"), [
    ({"files": [{"dest": "relative/smb.conf", "content": "x"}]},
     "opsctl_files: files[0].dest = 'relative/smb.conf' must be an absolute path on the host"),
    ({"files": [{"dest": "DEST", "content": "x", "src": "/etc/hostname"}]},
     "opsctl_files: files[0] (DEST) needs exactly one of template, src, content"),
    ({"files": [{"dest": "DEST", "content": "x", "modes": "0644"}]},
     "opsctl_files: files[0]: unknown key(s) modes; allowed:"),
    ({"files": [{"dest": "DEST", "content": "x"}, {"dest": "DEST", "content": "y"}]},
     "opsctl_files: files: a dest appears twice (['DEST'])"),
    ({"files": {"dest": "DEST", "content": "x"}}, "opsctl_files: files = {"),
    ({"files": [{"dest": "DEST", "content": "x"}], "prune": [{"path": "/etc/avahi/services", "contains": ""}]},
     "opsctl_files: prune[0] = "),
    ({"file": []}, "opsctl_files: unknown argument(s) file; allowed: directories, files, lines, prune"),
])
def test_bad_arguments_fail_with_one_line_and_touch_nothing(tmp_path, task, message):
    dest = str(tmp_path / "x.conf")
    task = json.loads(json.dumps(task).replace("DEST", dest))
    rc, out, (ok, changed, failed) = _play(tmp_path, task)
    assert rc != 0 and failed == 1 and changed == 0
    assert message.replace("DEST", dest) in out, out[-3000:]
    assert "Traceback" not in out
    assert not os.path.exists(dest)


def _play_task(tmp_path, action: str, args: dict, *flags: str) -> tuple[int, str]:
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(yaml.safe_dump({"all": {"hosts": {"localhost": {
        "ansible_connection": "local", "ansible_python_interpreter": "/usr/bin/python3"}}}}))
    playbook = tmp_path / "play.yml"
    playbook.write_text(yaml.safe_dump([{"name": "t", "hosts": "all", "gather_facts": False,
                                         "tasks": [{"name": action, action: args}]}]))
    env = {**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1",
           "ANSIBLE_LOCAL_TEMP": str(tmp_path / ".ansible-local")}
    argv = [str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(inventory), str(playbook), *flags]
    proc = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
                          stdin=subprocess.DEVNULL)
    return proc.returncode, proc.stdout + proc.stderr


def test_password_travels_on_stdin_only_never_in_the_command_or_result(tmp_path):
    """Even without no_log and at -vvv (every command ansible runs is printed), the password of a
    failing chpasswd (the user does not exist) shows nowhere; the error names the failure."""
    rc, out = _play_task(tmp_path, "opsctl_passwords",
                         {"kind": "system", "passwords": {"opsctl-no-such-user": "pw-Never-Shown-7"}}, "-vvv")
    assert rc != 0 and "chpasswd failed for the AFP users" in out, out[-3000:]
    assert "pw-Never-Shown-7" not in out
    assert "EXEC" in out  # the commands were printed, and none had the password


def test_lean_module_errors_are_one_line_results(tmp_path):
    rc, out = _play_task(tmp_path, "opsctl_passwords", {"kind": "ldap", "passwords": {"a": "b"}})
    assert rc != 0 and "kind = 'ldap' is not one of samba, system" in out and "Traceback" not in out
    rc, out = _play_task(tmp_path, "opsctl_services", {"units": [{"name": "x", "state": "running"}]})
    assert rc != 0 and "units[0].state = 'running' is not one of started" in out
    rc, out = _play_task(tmp_path, "opsctl_services", {"unit": []})
    assert rc != 0 and "opsctl_services: unknown argument(s) unit; allowed: packages, units, update_cache" in out


def test_services_check_mode_through_ansible_installs_nothing(tmp_path):
    rc, out = _play_task(tmp_path, "opsctl_services", {"packages": ["opsctl-no-such-package"]}, "--check", "-v")
    assert rc == 0 and "install opsctl-no-such-package" in out and "changed: [localhost]" in out, out[-3000:]
