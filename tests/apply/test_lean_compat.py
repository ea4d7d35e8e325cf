"""The lean path for opsctl's ordinary Ansible modules (``roles/zfs/library``): the exact bootstrap the
action plugin sends (``python3 -c BOOTSTRAP``, payload on stdin) runs the module with the stand-in
``AnsibleModule`` of ``action_plugins/_opsctl_compat.py``.

Run here as real processes against this machine's own accounts (check mode: nothing is created),
never by importing Ansible into the pytest process. The guards of the stand-in: unknown or missing
arguments and wrong types fail before the module does anything; ``run_command`` never takes a shell
string.
"""

from __future__ import annotations

import ast
import json
import pwd
import subprocess
import sys

from tests.support.paths import REPO

ACTIONS = REPO / "action_plugins"
LIBRARY = REPO / "roles" / "zfs" / "library"


def _bootstrap() -> str:
    """BOOTSTRAP as defined in _opsctl_lean.py, read without importing it (it imports Ansible)."""
    tree = ast.parse((ACTIONS / "_opsctl_lean.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "BOOTSTRAP":
            return ast.literal_eval(node.value)
    raise AssertionError("BOOTSTRAP not found in _opsctl_lean.py")


def run_module(name: str, params: dict, *, check: bool = True) -> dict:
    doc = {"source": (LIBRARY / f"{name}.py").read_text(), "name": name, "error": "_NoSuchError",
           "params": {**params, "_ansible_check_mode": check, "_ansible_diff": False}, "show": True,
           "compat": (ACTIONS / "_opsctl_compat.py").read_text()}
    proc = subprocess.run([sys.executable, "-c", _bootstrap()], input=json.dumps(doc), capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def _free_name() -> str:
    for i in range(100):
        name = f"leantest{i}"
        try:
            pwd.getpwnam(name)
        except KeyError:
            return name
    raise AssertionError("no free account name")


def test_users_module_runs_lean_in_check_mode_and_changes_nothing():
    name = _free_name()
    res = run_module("opsctl_users", {"users": [{"name": name, "uid": 51234, "full_name": "Lean Test",
                                                 "home": f"/tmp/{name}"}]})
    assert not res.get("failed"), res
    assert res["changed"] is True  # the account is missing: check mode says it would be created
    try:
        pwd.getpwnam(name)
    except KeyError:
        pass
    else:
        raise AssertionError(f"check mode created {name}")


def test_users_module_refuses_a_system_account_through_the_stand_in():
    """The module's own guard (never adopt uid < 1000) still runs on the lean path."""
    res = run_module("opsctl_users", {"users": [{"name": "daemon", "uid": None, "full_name": "",
                                                 "home": "/tmp/daemon-home"}]})
    assert res.get("failed") is True, res
    assert "daemon" in res["msg"]


def test_unknown_missing_and_mistyped_arguments_fail_before_the_module_runs():
    res = run_module("opsctl_users", {"users": [], "bogus": 1})
    assert res["failed"] is True and "Unsupported parameters: bogus" in res["msg"], res
    res = run_module("opsctl_purge", {"user": "alice"})
    assert res["failed"] is True and "missing required arguments: dataset" in res["msg"], res
    res = run_module("opsctl_zpool", {"name": "tank", "vdevs": ["mirror", "/dev/x", "/dev/y"], "ashift": "twelve"})
    assert res["failed"] is True and "'ashift'" in res["msg"] and "integer" in res["msg"], res
    res = run_module("opsctl_zpool", {"name": "tank", "vdevs": "mirror /dev/x", "ashift": 12})
    assert res["failed"] is True and "'vdevs'" in res["msg"] and "list" in res["msg"], res


def test_module_errors_are_results_not_tracebacks():
    """A command the module needs is missing here (no zfs): a failed result naming it."""
    res = run_module("opsctl_zfs", {"datasets": [{"name": "leantestpool/x", "properties": {}, "kind": "parent"}]})
    assert res["failed"] is True, res
    assert "zfs" in res["msg"] and "Traceback" not in res["msg"], res


def test_run_command_never_takes_a_shell_string():
    code = ("import json,sys;g={};exec(open(sys.argv[1]).read(),g);g['_PARAMS'].update({});"
            "m=g['AnsibleModule']({});\n"
            "try:\n m.run_command('echo hi; id')\nexcept TypeError as e:\n print('refused:', e)\n")
    proc = subprocess.run([sys.executable, "-c", code, str(ACTIONS / "_opsctl_compat.py")], capture_output=True,
                          text=True, timeout=30)
    assert "refused: run_command takes an argv list" in proc.stdout, proc.stdout + proc.stderr
