"""Hostile strings in the site file (issue #10): refused at validation, exit 2, nothing run.

Each reproduction of the issue that concerns the site file is a named regression test that goes
through the real CLI (``python -m opsctl validate``) and asserts exit 2, a message naming the
field and the value, no traceback, and no file created by the injected command.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from pydantic import TypeAdapter, ValidationError

from opsctl.site import SpecError, parse
from opsctl.site.types import MAX_SIZE, DataRoot, parse_size
from tests.support.paths import REPO

SANDBOX = (REPO / "inventory" / "sandbox.yml").read_text()
FULL = (REPO / "tests" / "data" / "full_site.yml").read_text()


def _errors(text: str) -> str:
    with pytest.raises(SpecError) as info:
        parse(text, "site.yml")
    return "\n".join(info.value.problems)


def _validate_cli(tmp_path: Path, text: str, *, positional: bool = True) -> subprocess.CompletedProcess:
    site = tmp_path / "site.yml"
    site.write_text(text)
    args = [str(site)] if positional else ["--site", str(site)]
    return subprocess.run([sys.executable, "-m", "opsctl", "validate", *args], capture_output=True, text=True,
                          cwd=tmp_path, timeout=60)


def _assert_refused(proc: subprocess.CompletedProcess, field: str, value: str) -> None:
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    assert field in proc.stderr, proc.stderr
    assert value in proc.stderr, proc.stderr
    assert "nothing was applied" in proc.stderr


def _with_samba(text: str, line: str) -> str:
    assert "    workgroup: LAB\n" in text
    return text.replace("    workgroup: LAB\n", f"    workgroup: LAB\n    {line}\n")


# --------------------------------------------------------------------------- reproductions of issue #10


def test_repro_template_injection_in_samba_interfaces_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    value = f"{{{{ lookup('pipe', 'touch {marker}') }}}}"
    proc = _validate_cli(tmp_path, _with_samba(SANDBOX, f"interfaces: [{json.dumps(value)}]"))
    _assert_refused(proc, "backup.samba.interfaces", "lookup('pipe', 'touch")
    assert "template marker '{{'" in proc.stderr
    assert not marker.exists()


def test_repro_template_injection_provision_check_runs_nothing(tmp_path):
    """The reproduction ran the lookup from `opsctl provision --check`; now it stops at validation."""
    marker = tmp_path / "pwned"
    site = tmp_path / "site.yml"
    value = f"{{{{ lookup('pipe', 'touch {marker}') }}}}"
    site.write_text(_with_samba(SANDBOX, f"interfaces: [{json.dumps(value)}]"))
    proc = subprocess.run([sys.executable, "-m", "opsctl", "provision", "--check", "--site", str(site)],
                          capture_output=True, text=True, cwd=tmp_path, timeout=120)
    _assert_refused(proc, "backup.samba.interfaces", "lookup('pipe', 'touch")
    assert not marker.exists()


def test_repro_host_vars_proxycommand_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    text = SANDBOX.replace("    groups: [backup_servers]\n", "    groups: [backup_servers]\n    vars:\n"
                           f"      ansible_ssh_common_args: '-o ProxyCommand=\"touch {marker}\"'\n")
    proc = _validate_cli(tmp_path, text)
    _assert_refused(proc, "hosts[0].vars", "'ansible_ssh_common_args' is not allowed")
    assert "allowed: ansible_python_interpreter" in proc.stderr  # the message names the allowed keys
    assert not marker.exists()


def test_repro_apple_model_with_spaces_is_refused(tmp_path):
    # Netatalk 2 writes the model raw into afpd.conf (`-mimicmodel MODEL`): a space adds afpd options.
    proc = _validate_cli(tmp_path, SANDBOX.replace("model: TimeCapsule8,119", "model: 'RackMac -uampath /tmp'"))
    _assert_refused(proc, "backup.avahi.model", "'RackMac -uampath /tmp'")
    assert "no spaces" in proc.stderr


@pytest.mark.parametrize("name", ["adm", "sudo", "shadow", "disk", "docker", "staff", "wheel", "users", "nogroup",
                                  "operator", "tty", "kmem", "dialout", "audio", "video", "plugdev", "netdev",
                                  "systemd-timesync", "systemd-coredump", "_chrony", "_anything", "messagebus"])
def test_repro_system_account_user_names_are_refused(tmp_path, name):
    message = _errors(SANDBOX.replace("name: bob", f"name: {name}"))
    assert f"backup.users[1].name: {name!r} is a system account name" in message


def test_repro_system_account_user_name_cli(tmp_path):
    _assert_refused(_validate_cli(tmp_path, SANDBOX.replace("name: bob", "name: shadow")), "backup.users[1].name",
                    "'shadow' is a system account name")


@pytest.mark.parametrize("share", ["global", "homes", "printers", "GLOBAL", "Homes", "PRINTERS", "print$", "IPC$"])
def test_repro_reserved_share_names_are_refused(share):
    text = FULL.replace("    - name: Projects\n", f"    - name: {json.dumps(share)}\n")
    message = _errors(text)
    assert "backup.shares[0].name" in message and repr(share) in message, message


def test_repro_reserved_share_name_cli(tmp_path):
    proc = _validate_cli(tmp_path, FULL.replace("    - name: Projects\n", "    - name: Global\n"))
    _assert_refused(proc, "backup.shares[0].name", "'Global' is a share name reserved by Samba/Netatalk")


def test_repro_mountpoint_root_slash_is_refused(tmp_path):
    text = SANDBOX.replace("    dataset_root: timemachine\n", "    dataset_root: timemachine\n    mountpoint_root: /\n")
    _assert_refused(_validate_cli(tmp_path, text), "backup.pool.mountpoint_root", "'/' is a system folder")


@pytest.mark.parametrize("field", ["data_dir", "checkpoint_dir"])
def test_repro_training_dir_var_lib_is_refused(tmp_path, field):
    import re

    text, count = re.subn(rf"(?m)^  {field}: .*$", f"  {field}: /var/lib", SANDBOX)
    assert count == 1
    _assert_refused(_validate_cli(tmp_path, text), f"training.{field}", "'/var/lib' is a system folder")


def test_repro_huge_quota_is_refused(tmp_path):
    proc = _validate_cli(tmp_path, SANDBOX.replace("quota: 100M", "quota: 99999999999P"))
    _assert_refused(proc, "backup.users[1].quota", "'99999999999P' is larger than ZFS can hold")


# --------------------------------------------------------------------------- every string field


def _string_leaves(node, path=()):
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _string_leaves(value, (*path, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _string_leaves(value, (*path, index))
    elif isinstance(node, str):
        yield path


def _field(path) -> str:
    out = ""
    for key in path:
        out += f"[{key}]" if isinstance(key, int) else ("." if out else "") + key
    return out


def _set(data, path, value):
    for key in path[:-1]:
        data = data[key]
    data[path[-1]] = value


_FULL_DATA = yaml.safe_load(FULL)
_LEAVES = list(_string_leaves(_FULL_DATA))


@pytest.mark.parametrize("marker", ["{{", "{%", "{#"])
def test_every_string_field_refuses_template_markers(marker):
    """Each string of the full example site, with a Jinja marker added, is refused naming its field."""
    assert len(_LEAVES) > 40
    for path in _LEAVES:
        data = yaml.safe_load(FULL)
        _set(data, path, f"x{marker} 7*7 }}")
        message = _errors(yaml.safe_dump(data))
        # List items are reported on the list field (the message says which item).
        field = _field(path[:-1] if isinstance(path[-1], int) else path)
        assert f"{field}: " in message and f"template marker {marker!r}" in message, (path, message)


def test_template_marker_in_a_mapping_key_is_refused():
    message = _errors(SANDBOX.replace("    groups: [backup_servers]\n",
                                      "    groups: [backup_servers]\n    vars: {'{{ x }}': 1}\n"))
    assert "hosts[0].vars" in message and "template marker" in message


# --------------------------------------------------------------------------- host vars and interfaces


@pytest.mark.parametrize("key", ["ansible_ssh_common_args", "ansible_ssh_extra_args", "ansible_ssh_executable",
                                 "ansible_become_exe", "ansible_connection", "ansible_shell_executable",
                                 "ansible_become_flags", "docker_engine", "opsctl"])
def test_host_vars_outside_the_allow_list_are_refused(key):
    message = _errors(SANDBOX.replace("    groups: [backup_servers]\n",
                                      f"    groups: [backup_servers]\n    vars: {{{key}: x}}\n"))
    assert f"hosts[0].vars: host variable {key!r} is not allowed; allowed: ansible_python_interpreter" in message


@pytest.mark.parametrize("key,value", [("ansible_python_interpreter", "/usr/bin/python3 -c 'import os'"),
                                       ("ansible_python_interpreter", "python3"),
                                       ("ansible_become_method", "sudo -s"), ("ansible_port", 0),
                                       ("ansible_port", "22"), ("ansible_become", "yes please"),
                                       ("ansible_become_user", "root;id")])
def test_host_var_values_are_checked(key, value):
    message = _errors(SANDBOX.replace("    groups: [backup_servers]\n",
                                      f"    groups: [backup_servers]\n    vars: {{{key}: {json.dumps(value)}}}\n"))
    assert f"hosts[0].vars: {key}: " in message and "is not valid; use" in message


def test_allowed_host_vars_pass():
    site = parse(SANDBOX.replace("    groups: [backup_servers]\n", "    groups: [backup_servers]\n    vars: "
                                 "{ansible_python_interpreter: /usr/bin/python3, ansible_become: true, "
                                 "ansible_become_method: sudo, ansible_port: 2222}\n")).site
    assert site.hosts[0].vars["ansible_port"] == 2222


@pytest.mark.parametrize("value", ["eth0", "br-lan", "enp3s0f1", "wlan0.100", "192.168.1.10", "192.168.1.0/24",
                                   "10.0.0.1/255.255.255.0", "fe80::1/64", "lo"])
def test_interfaces_accept_names_and_addresses(value):
    assert parse(_with_samba(SANDBOX, f"interfaces: [{json.dumps(value)}]")).site.backup.samba.interfaces == [value]


@pytest.mark.parametrize("value", ["eth0 lo", "eth0;id", "$(id)", "a" * 16, "-eth0", "192.168.1.0/33", "999.1.1.1",
                                   "eth0\\", "eth0\nlog level = 10", ""])
def test_interfaces_refuse_anything_else(value):
    message = _errors(_with_samba(SANDBOX, f"interfaces: [{json.dumps(value)}]"))
    assert "backup.samba.interfaces[0]" in message and "is not an interface" in message


# --------------------------------------------------------------------------- config tokens


@pytest.mark.parametrize("model", ["Mac Pro", "MacPro7,1\\", "Mac\tPro", "Mac\nPro", "-x", "Mac\"Pro", "Mac'Pro"])
def test_device_model_is_one_config_token(model):
    message = _errors(SANDBOX.replace("model: TimeCapsule8,119", f"model: {json.dumps(model)}"))
    assert "backup.avahi.model" in message and "not a valid Apple device model" in message


@pytest.mark.parametrize("field,value", [("server_string", "opsctl\\"), ("server_string", "a\nb"),
                                         ("workgroup", "LAB\\")])
def test_samba_text_cannot_continue_or_break_a_line(field, value):
    text = _with_samba(SANDBOX, f"{field}: {json.dumps(value)}") if field != "workgroup" else \
        SANDBOX.replace("workgroup: LAB", f"workgroup: {json.dumps(value)}")
    assert f"backup.samba.{field}" in _errors(text)


# --------------------------------------------------------------------------- reserved paths and sizes


@pytest.mark.parametrize("path", ["/", "/etc", "/usr", "/var", "/var/lib", "/boot", "/root", "/bin", "/sbin", "/lib",
                                  "/lib64", "/lib32", "/usr/lib", "/dev", "/proc", "/sys", "/run", "/tmp", "/home",
                                  "/opt", "/srv", "/var/lib/"])
def test_data_root_refuses_system_folders(path):
    with pytest.raises(ValidationError, match="is a system folder"):
        TypeAdapter(DataRoot).validate_python(path)
    text = SANDBOX.replace("    dataset_root: timemachine\n",
                           f"    dataset_root: timemachine\n    mountpoint_root: {path}\n")
    assert "backup.pool.mountpoint_root" in _errors(text)


@pytest.mark.parametrize("path", ["/srv/ml/data", "/srv/ml/checkpoints", "/tank/timemachine", "/var/lib/opsctl",
                                  "/home/ml", "/data", "/libraries"])
def test_data_root_accepts_folders_of_their_own(path):
    assert TypeAdapter(DataRoot).validate_python(path) == path


@pytest.mark.parametrize("pool", ["etc", "usr", "srv", "home", "tmp", "boot"])
def test_pool_named_after_a_system_folder_needs_its_own_mountpoint(pool):
    text = SANDBOX.replace("name: tank", f"name: {pool}").replace("    dataset_root: timemachine\n", "")
    message = _errors(text)
    assert "backup.pool" in message and f"'/{pool}' is a system folder" in message
    parse(text.replace("    ashift: 12\n", "    ashift: 12\n    mountpoint_root: /srv/tm\n"))


def test_extra_share_path_may_not_be_a_system_folder():
    text = FULL.replace("name: backup\n    ashift", "name: var\n    ashift") \
        .replace("dataset: projects", "dataset: lib")
    message = _errors(text)
    assert "share 'Projects': its path '/var/lib' is a system folder" in message


def test_sizes_up_to_16e_only():
    assert parse_size("16384P") == MAX_SIZE == 1 << 64
    for size in ("16385P", "99999999999P", "18446744073709551617", "1" + "0" * 400):
        with pytest.raises(ValueError, match="larger than ZFS can hold"):
            parse_size(size)


# --------------------------------------------------------------------------- Time Machine headroom


def test_tm_size_defaults_to_90_percent_of_quota_in_whole_mib():
    site = parse(SANDBOX).site
    bob = site.backup.users[1]
    assert bob.tm_size is None and bob.quota == "100M"
    assert bob.tm_size_bytes == 90 * 2**20 and bob.tm_size_mib == 90 and bob.tm_size_zfs == "90M"
    odd = parse(SANDBOX.replace("quota: 100M", "quota: 1001M")).site.backup.users[1]
    assert odd.tm_size_bytes == 900 * 2**20  # 900.9 MiB rounded down to whole MiB
    big = parse(FULL).site.backup
    assert {s["user"]: s["tm_size_mib"] for s in big.time_machine_shares} == \
        {"alice": 400 * 1024, "bob_2": 1536 * 1024 * 9 // 10, "carol-c": 250 * 1024 * 9 // 10}


def test_given_tm_size_wins():
    assert parse(SANDBOX).site.backup.users[0].tm_size_bytes == 150 * 2**20


def test_tm_size_with_little_headroom_warns_not_fails():
    loaded = parse(SANDBOX.replace("tm_size: 150M", "tm_size: 190M"))
    assert loaded.site.backup.users[0].tm_size_bytes == 190 * 2**20
    assert len(loaded.warnings) == 1
    assert loaded.warnings[0].startswith("backup.users[0].tm_size: tm_size 190M leaves less than 10 % headroom")
    assert "set tm_size <= 180M" in loaded.warnings[0]
    assert parse(SANDBOX.replace("tm_size: 150M", "tm_size: 180M")).warnings == []


def test_tm_headroom_warning_shows_in_validate(tmp_path):
    proc = _validate_cli(tmp_path, SANDBOX.replace("tm_size: 150M", "tm_size: 200M"))
    assert proc.returncode == 0, proc.stderr
    assert "warning: backup.users[0].tm_size: tm_size 200M leaves less than 10 % headroom" in proc.stderr


# --------------------------------------------------------------------------- the site file as an argument


def test_validate_and_render_take_the_site_file_as_argument(tmp_path):
    site = tmp_path / "mine.yml"
    site.write_text(SANDBOX.replace("site: sandbox", "site: mine"))
    proc = subprocess.run([sys.executable, "-m", "opsctl", "validate", "--json", str(site)], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["path"] == str(site)
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "opsctl", "render", str(site), "--out", str(out), "--json"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "# smb.conf for backup (site mine)" in (out / "backup" / "samba" / "smb.conf").read_text()


def test_two_different_site_files_are_bad_input(tmp_path):
    site = tmp_path / "mine.yml"
    site.write_text(SANDBOX)
    proc = subprocess.run([sys.executable, "-m", "opsctl", "validate", str(site), "--site",
                           str(REPO / "tests" / "data" / "full_site.yml")], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "two site files given" in proc.stderr and "Traceback" not in proc.stderr


def test_render_refuses_hostile_site_before_writing(tmp_path):
    site = tmp_path / "site.yml"
    site.write_text(_with_samba(SANDBOX, "interfaces: ['{{ 7*7 }}']"))
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "opsctl", "render", str(site), "--out", str(out)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "backup.samba.interfaces" in proc.stderr and "Traceback" not in proc.stderr
    assert not out.exists()
