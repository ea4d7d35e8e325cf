"""Unit tests of the remote halves of opsctl's plugins (library/opsctl_*.py), run on this machine.

The modules are standard-library "want JSON" modules; their ``converge(params)`` is what runs on
the host. These tests call it on files in ``tmp_path`` (owner root: the tests run as root, as
the modules do on a host) and, for the JSON protocol, run the module file as Ansible does:
``python3 MODULE ARGS_FILE``.
"""

from __future__ import annotations

import base64
import importlib.util
import json
import os
import subprocess
import sys

import pytest

from tests.support.paths import REPO

LIBRARY = REPO / "library"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"_lib_{name}", LIBRARY / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


files_mod = _load("opsctl_files")
services_mod = _load("opsctl_services")
passwords_mod = _load("opsctl_passwords")

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the modules run as root on a host (chown)")


def _file(dest, text, **kw):
    return {"dest": str(dest), "content_b64": base64.b64encode(text.encode()).decode(), "owner": "root",
            "group": "root", "mode": kw.pop("mode", "0644"), **kw}


def _run_module(path, params: dict, tmp_path) -> dict:
    args = tmp_path / "args.json"
    args.write_text(json.dumps(params))
    proc = subprocess.run([sys.executable, str(path), str(args)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


# -- opsctl_files ------------------------------------------------------------------------------


def test_writes_only_what_differs_then_nothing(tmp_path):
    a, b = tmp_path / "a.conf", tmp_path / "b.conf"
    b.write_text("same\n")
    os.chmod(b, 0o644)
    params = {"files": [_file(a, "new\n", mode="0600"), _file(b, "same\n")]}
    first = files_mod.converge(params)
    assert first["changed"] and [f["path"] for f in first["files"]] == [str(a)]
    assert a.read_text() == "new\n" and (a.stat().st_mode & 0o7777) == 0o600
    assert files_mod.converge(params) == {"changed": False, "files": []}


def test_mode_drift_is_repaired_without_rewriting(tmp_path):
    a = tmp_path / "a.conf"
    a.write_text("x\n")
    os.chmod(a, 0o604)
    inode = a.stat().st_ino
    result = files_mod.converge({"files": [_file(a, "x\n", mode="0640")]})
    assert result["files"] == [{"path": str(a), "action": "fixed owner/group/mode"}]
    assert (a.stat().st_mode & 0o7777) == 0o640 and a.stat().st_ino == inode


def test_check_mode_changes_nothing_but_reports(tmp_path):
    a, stale = tmp_path / "a.conf", tmp_path / "old.service"
    a.write_text("old\n")
    stale.write_text("<!-- Rendered by opsctl -->\n")
    d = tmp_path / "newdir"
    params = {"_ansible_check_mode": True, "_ansible_diff": True, "directories": [{"path": str(d)}],
              "files": [_file(a, "new\n")],
              "prune": [{"path": str(tmp_path), "pattern": "*.service", "contains": "Rendered by opsctl"}]}
    result = files_mod.converge(params)
    assert result["changed"] and len(result["files"]) == 3
    assert a.read_text() == "old\n" and stale.exists() and not d.exists()
    assert [(x["before"], x["after"]) for x in result["diff"]][:1] == [("old\n", "new\n")]


def test_diff_per_file_and_secret_content_hidden(tmp_path):
    a, env = tmp_path / "a.conf", tmp_path / "notify.env"
    a.write_text("one\n")
    result = files_mod.converge({"_ansible_diff": True, "files": [
        _file(a, "two\n"), _file(env, "TOKEN=s3cret-value\n", mode="0600", secret=True)]})
    assert result["diff"][0] == {"before_header": str(a), "after_header": str(a), "before": "one\n", "after": "two\n"}
    assert "s3cret-value" not in json.dumps(result)
    assert env.read_text() == "TOKEN=s3cret-value\n"


def test_no_diff_key_without_diff_mode(tmp_path):
    assert "diff" not in files_mod.converge({"files": [_file(tmp_path / "a", "x")]})


def test_stale_managed_file_removed_foreign_and_kept_files_stay(tmp_path):
    (tmp_path / "old.service").write_text("<!-- Rendered by opsctl for backup -->\n")
    (tmp_path / "smb.service").write_text("<!-- Rendered by opsctl for backup -->\n")
    (tmp_path / "custom.service").write_text("<!-- the admin's own -->\n")
    (tmp_path / "notes.txt").write_text("Rendered by opsctl\n")
    result = files_mod.converge({"prune": [{"path": str(tmp_path), "pattern": "*.service",
                                            "contains": "Rendered by opsctl", "keep": ["smb.service"]}]})
    assert result["files"] == [{"path": str(tmp_path / "old.service"), "action": "removed (stale)"}]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["custom.service", "notes.txt", "smb.service"]


def test_prune_without_marker_is_refused(tmp_path):
    (tmp_path / "custom.service").write_text("x\n")
    with pytest.raises(files_mod.FileError, match="non-empty 'contains'"):
        files_mod.converge({"prune": [{"path": str(tmp_path), "pattern": "*.service", "contains": ""}]})
    assert (tmp_path / "custom.service").exists()


def test_validate_failure_leaves_the_old_file(tmp_path):
    a = tmp_path / "smb.conf"
    a.write_text("good\n")
    with pytest.raises(files_mod.FileError, match=r"validate command .* failed .* left unchanged: bad content"):
        files_mod.converge({"files": [_file(a, "bad\n", validate="sh -c 'grep -q good \"$1\" || "
                                                                 "{ echo bad content >&2; exit 1; }' - %s")]})
    assert a.read_text() == "good\n"
    assert [p.name for p in tmp_path.iterdir()] == ["smb.conf"]  # no temp file left behind


def test_validate_success_writes_and_sees_the_candidate(tmp_path):
    a = tmp_path / "smb.conf"
    files_mod.converge({"files": [_file(a, "good\n", validate="grep -q good %s")]})
    assert a.read_text() == "good\n"


def test_write_is_atomic_rename(tmp_path):
    a = tmp_path / "a.conf"
    a.write_text("old\n")
    inode = a.stat().st_ino
    files_mod.converge({"files": [_file(a, "new\n")]})
    assert a.stat().st_ino != inode  # a new file renamed over the old one, never a partial write


def test_unknown_owner_is_a_clear_error(tmp_path):
    with pytest.raises(files_mod.FileError, match="owner 'nobody-here' does not exist"):
        files_mod.converge({"files": [_file(tmp_path / "a", "x", owner="nobody-here")]})


def test_line_replaced_or_appended(tmp_path):
    ns = tmp_path / "nsswitch.conf"
    ns.write_text("passwd: files\nhosts: files dns\n")
    spec = {"path": str(ns), "regexp": "^hosts:", "line": "hosts: files mdns4_minimal [NOTFOUND=return] dns"}
    assert files_mod.converge({"lines": [spec]})["changed"]
    assert ns.read_text() == "passwd: files\nhosts: files mdns4_minimal [NOTFOUND=return] dns\n"
    assert not files_mod.converge({"lines": [spec]})["changed"]
    ns.write_text("passwd: files")
    files_mod.converge({"lines": [spec]})
    assert ns.read_text() == "passwd: files\nhosts: files mdns4_minimal [NOTFOUND=return] dns\n"


def test_directories_created_with_mode(tmp_path):
    d = tmp_path / "state"
    result = files_mod.converge({"directories": [{"path": str(d), "mode": "0700"}]})
    assert result["changed"] and (d.stat().st_mode & 0o7777) == 0o700
    assert not files_mod.converge({"directories": [{"path": str(d), "mode": "0700"}]})["changed"]


def test_symlink_or_directory_dest_is_refused(tmp_path):
    target = tmp_path / "target"
    target.write_text("keep\n")
    link = tmp_path / "link"
    link.symlink_to(target)
    with pytest.raises(files_mod.FileError, match="exists and is not a regular file"):
        files_mod.converge({"files": [_file(link, "x")]})
    with pytest.raises(files_mod.FileError, match="exists and is not a regular file"):
        files_mod.converge({"files": [_file(tmp_path, "x")]})
    assert target.read_text() == "keep\n"


def test_directory_over_a_file_is_refused(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(files_mod.FileError, match="exists and is not a directory"):
        files_mod.converge({"directories": [{"path": str(tmp_path / "f")}]})


def test_validate_without_placeholder_is_refused(tmp_path):
    with pytest.raises(files_mod.FileError, match="has no %s"):
        files_mod.converge({"files": [_file(tmp_path / "a", "x", validate="true")]})
    assert not (tmp_path / "a").exists()


def test_lines_need_an_existing_file(tmp_path):
    with pytest.raises(files_mod.FileError, match="does not exist"):
        files_mod.converge({"lines": [{"path": str(tmp_path / "none"), "regexp": "^a", "line": "a"}]})
    assert not (tmp_path / "none").exists()


def test_module_protocol_reports_errors_as_failed_json(tmp_path):
    out = _run_module(LIBRARY / "opsctl_files.py", {"files": [_file(tmp_path / "a", "x", mode="rwx")]}, tmp_path)
    assert out["failed"] and "mode 'rwx' is not an octal mode" in out["msg"]
    ok = _run_module(LIBRARY / "opsctl_files.py", {"files": [_file(tmp_path / "a", "x")]}, tmp_path)
    assert ok == {"changed": True, "files": [{"path": str(tmp_path / "a"), "action": "created"}]}


def test_module_imports_only_the_standard_library():
    """The point of these modules is a cheap remote start: no ansible import on the host."""
    for name in ("opsctl_files", "opsctl_services", "opsctl_passwords"):
        text = (LIBRARY / f"{name}.py").read_text()
        assert "WANT_JSON" in text.splitlines()[1]
        assert "import ansible" not in text and "from ansible" not in text


# -- opsctl_services ---------------------------------------------------------------------------


def test_services_rejects_unknown_state():
    with pytest.raises(services_mod.ServiceError, match=r"units\[0\].state = 'running' is not one of started"):
        services_mod.converge({"units": [{"name": "x.service", "state": "running"}]})


def test_missing_packages_sees_installed_ones():
    assert services_mod.missing_packages(["dpkg", "opsctl-no-such-package"]) == ["opsctl-no-such-package"]


def test_services_check_mode_reports_missing_package_without_installing():
    result = services_mod.converge({"_ansible_check_mode": True, "packages": ["dpkg", "opsctl-no-such-package"]})
    assert result == {"changed": True, "actions": ["install opsctl-no-such-package"]}


# -- opsctl_passwords --------------------------------------------------------------------------


def test_passwords_refuse_bad_input_without_echoing_it():
    with pytest.raises(passwords_mod.PasswordError, match="kind = 'ldap'"):
        passwords_mod.converge({"kind": "ldap", "passwords": {"a": "b"}})
    with pytest.raises(passwords_mod.PasswordError) as err:
        passwords_mod.converge({"kind": "system", "passwords": {"alice": "two\nlines"}})
    assert "two" not in str(err.value) and "alice" in str(err.value)


def test_passwords_empty_is_a_noop():
    assert passwords_mod.converge({"kind": "samba", "passwords": {}}) == {"changed": False, "users": []}
