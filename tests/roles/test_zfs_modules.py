"""The zfs role's modules, the parts that need no ZFS: reading ``zpool status`` / ``zpool import``
output and the layout comparison that decides "import and check" versus "report a mismatch"."""

from __future__ import annotations

import importlib.util
import sys
import textwrap
import types
from pathlib import Path
from unittest import mock

import pytest

LIBRARY = Path(__file__).resolve().parents[2] / "roles" / "zfs" / "library"


def _module(name: str):
    """Load a module file for its helper functions without importing Ansible into this process:
    ``ansible.module_utils`` replaces ``sys.intern`` process-wide (ansible-core 2.19), which breaks
    torch's compiler in every later test of the same pytest worker. The helpers tested here get a
    small stand-in object instead of an ``AnsibleModule`` anyway."""
    basic = types.ModuleType("ansible.module_utils.basic")
    basic.AnsibleModule = object
    stand_ins = {"ansible": types.ModuleType("ansible"),
                 "ansible.module_utils": types.ModuleType("ansible.module_utils"),
                 "ansible.module_utils.basic": basic}
    spec = importlib.util.spec_from_file_location(name, LIBRARY / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    with mock.patch.dict(sys.modules, stand_ins):
        spec.loader.exec_module(mod)
    return mod


zpool = _module("opsctl_zpool")
zfs = _module("opsctl_zfs")

STATUS = textwrap.dedent("""\
      pool: tank
     state: ONLINE
    config:

    \tNAME                      STATE     READ WRITE CKSUM
    \ttank                      ONLINE       0     0     0
    \t  mirror-0                ONLINE       0     0     0
    \t    virtio-opsctl-disk-0  ONLINE       0     0     0
    \t    virtio-opsctl-disk-1  ONLINE       0     0     0
    \tlogs
    \t  virtio-opsctl-disk-2    ONLINE       0     0     0

    errors: No known data errors
    """)

IMPORT = textwrap.dedent("""\
       pool: tank
         id: 1234567890
      state: ONLINE
     status: The pool was last accessed by another system.
     action: The pool can be imported using its name or numeric identifier and
    \tthe '-f' flag.
     config:

    \ttank                      ONLINE
    \t  mirror-0                ONLINE
    \t    virtio-opsctl-disk-0  ONLINE
    \t    virtio-opsctl-disk-1  ONLINE

       pool: other
         id: 42
      state: ONLINE
     action: The pool can be imported using its name or numeric identifier.
     config:

    \tother                     ONLINE
    \t  virtio-opsctl-disk-2-part1  ONLINE
    """)


def _config(text: str, pool: str):
    lines = text.splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.strip() == "config:")
    return zpool.parse_config(lines[start + 1:], pool)


def test_status_config_gives_the_data_vdevs_only():
    assert _config(STATUS, "tank") == [("mirror", ["virtio-opsctl-disk-0", "virtio-opsctl-disk-1"])]


@pytest.mark.parametrize(("vdevs", "layout"), [
    (["mirror", "/dev/disk/by-id/a", "/dev/disk/by-id/b"], [("mirror", ["a", "b"])]),
    (["/dev/disk/by-id/a", "/dev/disk/by-id/b-part1"], [("disk", ["a"]), ("disk", ["b"])]),
    (["raidz", "/d/a", "/d/b", "/d/c", "mirror", "/d/e", "/d/f"],
     [("raidz1", ["a", "b", "c"]), ("mirror", ["e", "f"])]),
    (["/d/a", "mirror", "/d/b", "/d/c"], [("disk", ["a"]), ("mirror", ["b", "c"])]),
])
def test_wanted_layout_from_the_zpool_create_arguments(vdevs, layout):
    assert zpool.wanted_layout(vdevs) == layout


def test_layouts_compare_regardless_of_order_and_partition_suffix():
    have = _config(STATUS, "tank")
    assert zpool._canon(have) == zpool._canon(zpool.wanted_layout(
        ["mirror", "/dev/disk/by-id/virtio-opsctl-disk-1", "/dev/disk/by-id/virtio-opsctl-disk-0-part1"]))
    assert zpool._canon(have) != zpool._canon(zpool.wanted_layout(["/dev/disk/by-id/virtio-opsctl-disk-0"]))


class _FakeModule:
    """Just enough of AnsibleModule for ``importable``: canned command output."""

    def __init__(self, outputs: dict):
        self.outputs = outputs
        self.calls = []

    def run_command(self, argv):
        self.calls.append(argv)
        return self.outputs[tuple(argv)]


def test_importable_pools_are_read_with_their_devices():
    module = _FakeModule({("zpool", "import", "-d", "/dev/disk/by-id"): (0, IMPORT, "")})
    pools = zpool.importable(module, ["/dev/disk/by-id"])
    assert [(p["name"], p["id"], p["state"]) for p in pools] == [("tank", "1234567890", "ONLINE"),
                                                                  ("other", "42", "ONLINE")]
    assert pools[0]["devices"] == ["virtio-opsctl-disk-0", "virtio-opsctl-disk-1"]
    assert pools[0]["status"].startswith("The pool was last accessed by another system")
    assert pools[1]["devices"] == ["virtio-opsctl-disk-2"]


def test_no_importable_pool():
    module = _FakeModule({("zpool", "import", "-d", "/dev/disk/by-id"): (1, "", "no pools available to import")})
    assert zpool.importable(module, ["/dev/disk/by-id"]) == []


@pytest.mark.parametrize(("prop", "value", "want"), [
    ("quota", "100M", "104857600"), ("quota", "none", "0"), ("quota", "1.5G", str(3 << 29)),
    ("mountpoint", "/tank/a/", "/tank/a"), ("compression", True, "on"), ("atime", False, "off"),
])
def test_property_values_compare_as_zfs_get_prints_them(prop, value, want):
    assert zfs.normalize(prop, value) == want


def test_loading_the_modules_leaves_ansible_out_of_this_process():
    assert "ansible.module_utils.basic" not in sys.modules or sys.modules["ansible.module_utils.basic"].__file__
    assert type(sys.intern).__name__ == "builtin_function_or_method", sys.intern  # torch needs the real one
