"""The spec refuses bad input with a message naming the field, the value and the fix."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from opsctl.site import SpecError, parse
from opsctl.site.types import parse_size


def _errors(text: str) -> str:
    with pytest.raises(SpecError) as info:
        parse(text, "site.yml")
    return "\n".join(info.value.problems)


def test_example_site_is_valid(example_yaml, full_yaml):
    loaded = parse(example_yaml)
    assert loaded.site.backup.pool.ashift == 12
    assert loaded.warnings == []
    assert parse(full_yaml).site.slurm.nodes[1].name == "node2"


@pytest.mark.parametrize("name", [
    "a;rm -rf /", "bob smith", "o'neil", 'x"y', "\u0430lice",  # Cyrillic a
    "Alice", "-dash", "$(id)", "`id`", "x" * 33, "", "root", "al\nice", "ali ce",
])
def test_bad_user_names_are_refused(example_yaml, name):
    text = example_yaml.replace("name: bob", f"name: {json.dumps(name)}")
    message = _errors(text)
    assert "backup.users[1].name" in message
    assert "site.yml:" in message
    assert ("POSIX user name" in message) or ("system account" in message)


@pytest.mark.parametrize("size,hint", [("500 GB", "not '500 GB'"), ("-1G", "negative"), ("0", "zero"),
                                       ("12X", "binary unit"), ("1.5 T", "not '500 GB'"), ("500GiB", "not '500 GB'")])
def test_bad_sizes_are_refused(example_yaml, size, hint):
    message = _errors(example_yaml.replace("quota: 100M", f"quota: {json.dumps(size)}"))
    assert "backup.users[1].quota" in message and repr(size) in message and hint in message


def test_sizes_parse_binary_units():
    assert parse_size("1.5K") == 1536
    assert parse_size("500G") == 500 * 2**30
    assert parse_size(4096) == 4096


@pytest.mark.parametrize("ashift", [8, 17, -1])
def test_ashift_range(example_yaml, ashift):
    message = _errors(example_yaml.replace("ashift: 12", f"ashift: {ashift}"))
    assert "backup.pool.ashift" in message and str(ashift) in message


def test_duplicate_users(example_yaml):
    message = _errors(example_yaml.replace("name: bob", "name: alice"))
    assert "duplicate users: 'alice'" in message and "backup" in message


def test_duplicate_shares_case_insensitive(full_yaml):
    message = _errors(full_yaml.replace("name: Projects", "name: TM-ALICE"))
    assert "duplicate shares" in message


def test_duplicate_datasets(full_yaml):
    message = _errors(full_yaml.replace("dataset: projects", "dataset: tm/alice"))
    assert "duplicate datasets: 'backup/tm/alice'" in message


def test_share_groups_may_not_collide(full_yaml):
    """An extra share's folder belongs to the group share-<name>: two shares may not map to one group,
    nor may a user be named like it (the user's own group has the user's name)."""
    clash = full_yaml.replace("name: Projects", "name: p.x").replace(
        "  shares:\n", "  shares:\n    - name: p-x\n      dataset: px\n      valid_users: [alice]\n")
    assert "duplicate share groups: 'share-p-x'" in _errors(clash)
    message = _errors(full_yaml.replace("name: carol-c", "name: share-projects"))
    assert "share 'Projects': its members' group 'share-projects' is the name of a user" in message


def test_duplicate_hosts(example_yaml):
    message = _errors(example_yaml.replace("name: trainer", "name: backup"))
    assert "duplicate hosts" in message


def test_duplicate_disks(example_yaml):
    message = _errors(example_yaml.replace("disk-1", "disk-0"))
    assert "duplicate pool disks" in message and "virtio-opsctl-disk-0" in message


@pytest.mark.parametrize("prop,value,expect", [
    ("compression", "lz5", "not a valid value for ZFS property 'compression'"),
    ("casesensitivity", "ignore", "insensitive"),
    ("compresion", "lz4", "unknown ZFS property 'compresion'"),
    ("atime", "maybe", "'maybe'"),
])
def test_unknown_zfs_values(example_yaml, prop, value, expect):
    text = example_yaml.replace("  users:", f"  dataset_defaults:\n    {prop}: {value}\n  users:", 1)
    message = _errors(text)
    assert "backup.dataset_defaults" in message and expect in message


def test_utf8only_off_with_normalization(example_yaml):
    text = example_yaml.replace("  users:", "  dataset_defaults:\n    utf8only: 'off'\n  users:", 1)
    message = _errors(text)
    assert "utf8only=off cannot be combined with normalization=formD" in message


def test_yaml_on_off_are_zfs_words(example_yaml):
    """YAML 1.1 `on`/`off` would be booleans; the spec keeps them as ZFS words."""
    text = example_yaml.replace("  users:", "  dataset_defaults:\n    atime: on\n    utf8only: on\n  users:", 1)
    backup = parse(text).site.backup
    assert backup.dataset_defaults["atime"] == "on"
    assert backup.dataset_defaults["normalization"] == "formD"  # defaults kept for keys not given


def test_tm_size_above_quota(example_yaml):
    message = _errors(example_yaml.replace("tm_size: 150M", "tm_size: 250M"))
    assert "backup.users[0]" in message and "tm_size 250M is larger than quota 200M" in message


@pytest.mark.parametrize("port", [0, 65536, 70000])
def test_port_range(example_yaml, port):
    text = example_yaml.replace("  netatalk:\n    version: 4", f"  netatalk:\n    version: 4\n    port: {port}")
    message = _errors(text)
    assert "backup.netatalk.port" in message and str(port) in message


def test_unstable_disk_names_warn(example_yaml):
    loaded = parse(example_yaml.replace("/dev/disk/by-id/virtio-opsctl-disk-0", "/dev/sdb"))
    assert any("/dev/sdb" in w and "/dev/disk/by-id" in w for w in loaded.warnings)


def test_disk_path_injection(example_yaml):
    message = _errors(example_yaml.replace("/dev/disk/by-id/virtio-opsctl-disk-0", "'/dev/sdb; reboot'"))
    assert "backup.pool.vdevs[0].disks[0]" in message and "not a safe absolute path" in message


def test_unknown_field(example_yaml):
    message = _errors(example_yaml.replace("recycle_bin", "recycle_bn"))
    assert "backup.samba.recycle_bn: unknown field" in message


def test_unknown_host_reference(example_yaml):
    message = _errors(example_yaml.replace("host: trainer", "host: nowhere"))
    assert "training.host 'nowhere' is not a declared host" in message


def test_mirror_needs_two_disks(example_yaml):
    message = _errors(example_yaml.replace("          - /dev/disk/by-id/virtio-opsctl-disk-1\n", ""))
    assert "a mirror vdev needs at least 2 disks" in message


def test_cli_exit_code_and_no_traceback(tmp_path, example_yaml):
    bad = tmp_path / "site.yml"
    bad.write_text(example_yaml.replace("name: bob", "name: 'a;rm -rf /'"))
    proc = subprocess.run([sys.executable, "-m", "opsctl", "validate", "--site", str(bad)],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "backup.users[1].name" in proc.stderr and "'a;rm -rf /'" in proc.stderr
    assert "nothing was applied" in proc.stderr


def test_cli_validate_json_and_schema(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "opsctl", "validate", "--json"], capture_output=True, text=True,
                          check=True)
    assert json.loads(proc.stdout)["hosts"]["backup"] == ["backup"]
    schema = json.loads(subprocess.run([sys.executable, "-m", "opsctl", "schema"], capture_output=True,
                                       text=True, check=True).stdout)
    assert "backup" in schema["properties"] and "Backup" in schema["$defs"]


def test_cli_init_refuses_overwrite(tmp_path):
    target = tmp_path / "site.yml"
    run = [sys.executable, "-m", "opsctl", "init", str(target)]
    assert subprocess.run(run, capture_output=True).returncode == 0
    assert parse(target.read_text()).site.site == "sandbox"
    assert subprocess.run(run, capture_output=True).returncode == 2
