#!/usr/bin/python
"""Ansible module: a ZFS pool that exists is imported, never recreated; a new one only on blank disks."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: opsctl_zpool
short_description: Import the pool if it exists on its disks, else create it once on blank disks
description:
  - Loads the zfs kernel module when it is not loaded (O(load_module)).
  - An imported pool of that name is checked against the spec (vdev layout and ashift); a mismatch
    fails the task with both layouts. It is never destroyed, recreated or modified.
  - A pool that is not imported but importable (C(zpool import -d) on the folders of the spec's disks
    finds it by name or on any of the spec's disks; what a host sees after an OS reinstall or a hostid
    change) is B(imported) (with C(-f) when it was last used by another system) and then checked as above.
  - A disk of the spec that carries a ZFS label of an importable pool of another name is refused, also
    with O(force_disks): opsctl never overwrites a pool that can still be imported.
  - Only when no such pool exists, every disk is checked with C(wipefs -n) and C(lsblk); a disk that
    carries a file system, RAID, ZFS or partition table signature, or has partitions, is refused unless
    O(force_disks=true), and the pool is created.
  - A C(zpool create) that fails because a new partition did not show up in time (udev) is retried once
    after its own partition table is cleared; a create that still fails leaves the disks blank, as it
    found them, so the next run is not refused for its leftovers.
  - Supports check mode and diff mode.
options:
  name:
    description: Pool name.
    type: str
    required: true
  vdevs:
    description: The vdev part of C(zpool create), e.g. C([mirror, /dev/disk/by-id/a, /dev/disk/by-id/b]).
    type: list
    elements: str
    required: true
  ashift:
    description: Pool C(ashift) (C(-o ashift=N)).
    type: int
    default: 12
  root_properties:
    description: Properties of the pool's root dataset, passed as C(-O name=value) at creation only.
    type: dict
    default: {}
  force_disks:
    description:
      - Create even on disks that carry signatures other than the label of an importable pool - their
        signatures are erased with C(wipefs --all) and C(-f) is passed to C(zpool create). Destroys their data.
    type: bool
    default: false
  load_module:
    description: C(modprobe zfs) when C(/sys/module/zfs) is absent.
    type: bool
    default: true
author: opsctl
"""

EXAMPLES = r"""
- name: Import or create the pool
  opsctl_zpool:
    name: tank
    vdevs: [mirror, /dev/disk/by-id/virtio-a, /dev/disk/by-id/virtio-b]
    ashift: 12
    root_properties: {compression: lz4, mountpoint: /tank}
"""

RETURN = r"""
created:
  description: Whether the pool was (or, in check mode, would be) created.
  type: bool
  returned: always
imported:
  description: Whether an existing pool was (or, in check mode, would be) imported.
  type: bool
  returned: always
argv:
  description: The C(zpool create) or C(zpool import) command line run (or that would run).
  type: list
  returned: when the pool was not imported
retried:
  description: Whether C(zpool create) was run a second time (see the description).
  type: bool
  returned: when the first create failed for a partition that was not there in time
signatures:
  description: Disks found carrying signatures, with what was found.
  type: dict
  returned: when the pool is created
"""

import json  # noqa: E402 - Ansible modules put DOCUMENTATION first
import os  # noqa: E402
import re  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402

VDEV_KEYWORDS = {"mirror", "raidz", "raidz1", "raidz2", "raidz3", "draid", "spare", "log", "cache",
                 "special", "dedup"}
_PART = re.compile(r"-part\d+$|(?<=\d)p\d+$")


def base(device: str) -> str:
    """``/dev/disk/by-id/virtio-x-part1`` -> ``virtio-x``: how zpool names a whole-disk vdev's device."""
    return _PART.sub("", os.path.basename(device))


def load_module(module: AnsibleModule) -> None:
    if module.params["load_module"] and not os.path.isdir("/sys/module/zfs"):
        rc, _out, err = module.run_command(["modprobe", "zfs"])
        if rc != 0:
            module.fail_json(msg=f"`modprobe zfs` failed (rc {rc}): {err.strip()}; is the ZFS kernel module "
                                 "installed (zfs-dkms)?")


def pool_imported(module: AnsibleModule, name: str) -> bool:
    rc, _out, err = module.run_command(["zpool", "list", "-H", "-o", "name", name])
    if rc == 0:
        return True
    if "no such pool" in err or "does not exist" in err:
        return False
    module.fail_json(msg=f"`zpool list {name}` failed (rc {rc}): {err.strip()}; is the zfs kernel module "
                         "loaded (modprobe zfs)?")
    return False


def parse_config(lines: list[str], pool: str) -> list[tuple[str, list[str]]]:
    """The top-level data vdevs of a ``config:`` section: ``[("mirror", [dev, ...]), ("disk", [dev])]``."""
    vdevs: list[tuple[str, list[str]]] = []
    pool_indent = None
    for line in lines:
        if not line.strip():
            continue
        indent = len(line) - len(line.lstrip())
        word = line.split()[0]
        if pool_indent is None:
            if word == pool:
                pool_indent = indent
            continue
        if indent <= pool_indent:  # logs, cache, spares, errors: not data vdevs
            break
        if indent == pool_indent + 2:
            kind = re.sub(r"-\d+$", "", word)
            if kind in VDEV_KEYWORDS:
                vdevs.append((kind, []))
            else:
                vdevs.append(("disk", [base(word)]))
        elif vdevs:
            vdevs[-1][1].append(base(word))
    return vdevs


def importable(module: AnsibleModule, dirs: list[str]) -> list[dict]:
    """Pools ``zpool import -d DIR`` finds (not imported): name, id, state, status text, data vdevs."""
    pools: list[dict] = []
    for folder in dirs:
        rc, out, err = module.run_command(["zpool", "import", "-d", folder])
        text = out + err
        if rc != 0 and "no pools available" in text:
            continue
        for block in re.split(r"(?m)^\s*pool: ", text)[1:]:
            lines = block.splitlines()
            name = lines[0].strip()
            fields = {m.group(1): m.group(2).strip() for m in re.finditer(r"(?m)^\s*(\w+): (.*)$", block)}
            config = lines[next((i for i, ln in enumerate(lines) if ln.strip() == "config:"), len(lines)):]
            vdevs = parse_config(config[1:], name)
            if not any(p["id"] == fields.get("id") for p in pools):
                pools.append({"name": name, "id": fields.get("id", ""), "state": fields.get("state", ""),
                              "status": fields.get("status", ""), "folder": folder, "vdevs": vdevs,
                              "devices": sorted({d for _k, ds in vdevs for d in ds})})
    return pools


def wanted_layout(vdevs: list[str]) -> list[tuple[str, list[str]]]:
    layout: list[tuple[str, list[str]]] = []
    for arg in vdevs:
        if arg in VDEV_KEYWORDS:
            layout.append(("raidz1" if arg == "raidz" else arg, []))
        elif layout and layout[-1][0] != "disk" and layout[-1][0] in VDEV_KEYWORDS:
            layout[-1][1].append(base(arg))
        else:
            layout.append(("disk", [base(arg)]))
    return layout


def _canon(layout: list[tuple[str, list[str]]]) -> list[tuple[str, list[str]]]:
    return sorted((("raidz1" if k == "raidz" else k), sorted(ds)) for k, ds in layout)


def _show(layout: list[tuple[str, list[str]]]) -> str:
    return "; ".join(f"{k} {' '.join(ds)}" if k != "disk" else ds[0] for k, ds in layout) or "(none)"


def check_layout(module: AnsibleModule, name: str, result: dict) -> None:
    """Fail (never fix) when the imported pool's data vdevs or ashift differ from the spec."""
    rc, out, err = module.run_command(["zpool", "status", name])
    if rc != 0:
        module.fail_json(msg=f"`zpool status {name}` failed (rc {rc}): {err.strip()}", **result)
    lines = out.splitlines()
    start = next((i for i, ln in enumerate(lines) if ln.strip() == "config:"), len(lines))
    have = parse_config(lines[start + 1:], name)
    want = wanted_layout(module.params["vdevs"])
    problems = []
    if _canon(have) != _canon(want):
        problems.append(f"its vdevs are [{_show(have)}], the spec says [{_show(want)}]")
    rc, out, _err = module.run_command(["zpool", "get", "-H", "-p", "-o", "value", "ashift", name])
    ashift = out.strip()
    if rc == 0 and ashift not in ("0", "-", str(module.params["ashift"])):
        problems.append(f"its ashift is {ashift}, the spec says {module.params['ashift']}")
    if problems:
        module.fail_json(
            msg=f"pool {name} does not match the site file: {'; '.join(problems)}. opsctl never recreates or "
                "reshapes a pool that exists: change backup.pool in the site file to what the pool is (zpool "
                "status), or change the pool by hand (zpool attach/add) if that is what you meant.",
            **result)


def disk_signatures(module: AnsibleModule, disk: str) -> list[str]:
    """Human-readable list of what ``disk`` carries (empty: blank)."""
    found: list[str] = []
    rc, out, err = module.run_command(["wipefs", "-n", "--json", disk])
    if rc != 0:
        module.fail_json(msg=f"`wipefs -n {disk}` failed (rc {rc}): {err.strip()}")
    if out.strip():
        try:
            data = json.loads(out)
        except ValueError:
            data = {"signatures": [{"type": line} for line in out.splitlines()[1:] if line.strip()]}
        for sig in data.get("signatures", []):
            found.append(f"{sig.get('type', '?')} signature (wipefs) at offset {sig.get('offset', '?')}")
    rc, out, err = module.run_command(["lsblk", "-n", "-r", "-o", "NAME,TYPE,FSTYPE,PARTTYPE", disk])
    if rc != 0:
        module.fail_json(msg=f"`lsblk {disk}` failed (rc {rc}): {err.strip()}")
    for line in out.splitlines():
        fields = line.split(" ")
        name, kind = fields[0], fields[1] if len(fields) > 1 else ""
        fstype = fields[2] if len(fields) > 2 else ""
        parttype = fields[3] if len(fields) > 3 else ""
        if kind == "part":
            found.append(f"partition {name}" + (f" ({fstype})" if fstype else ""))
        elif fstype or parttype:
            found.append(f"{fstype or parttype} (lsblk)")
    return found


def settle(module: AnsibleModule) -> None:
    """Wait for udev to process the disks' change events (a no-op where udevadm is missing)."""
    udevadm = module.get_bin_path("udevadm")
    if udevadm:
        module.run_command([udevadm, "settle", "--timeout=60"])


#: ``zpool create`` failures that mean "the new partition was not there in time", not "the disk is in use".
RETRYABLE = r"currently unavailable|missing link|was partitioned but|failed to detect device partitions"


def clear_own_partitions(module: AnsibleModule, disks: list[str], result: dict) -> None:
    """Erase what a failed ``zpool create`` wrote on ``disks``: the ZFS labels on its partitions, then
    the partition table. Only called on disks that were blank (or wiped with force_disks) just before."""
    for disk in disks:
        # The kernel's view (lsblk), not udev's links: a partition whose link never appeared is still there.
        _rc, out, _err = module.run_command(["lsblk", "-rnpo", "PATH,TYPE", disk])
        parts = [line.split(" ")[0] for line in out.splitlines() if line.endswith(" part")]
        for part in parts:
            module.run_command(["zpool", "labelclear", "-f", part])
            module.run_command(["wipefs", "--all", part])
        rc, _out, err = module.run_command(["wipefs", "--all", disk])
        if rc != 0:
            module.fail_json(msg=f"`zpool create` failed and clearing its partition table with `wipefs --all "
                                 f"{disk}` failed too (rc {rc}): {err.strip()}", **result)
        module.run_command(["blockdev", "--rereadpt", disk])
    settle(module)


def import_pool(module: AnsibleModule, name: str, candidates: list[dict], result: dict) -> None:
    if len(candidates) > 1:
        ids = ", ".join(f"{p['id']} ({p['state']})" for p in candidates)
        module.fail_json(msg=f"more than one importable pool is named {name} (ids {ids}); import the right one "
                             f"by hand (zpool import -d {candidates[0]['folder']} ID), then run again", **result)
    pool = candidates[0]
    argv = ["zpool", "import", "-d", pool["folder"], pool["id"] or name]
    result.update(changed=True, imported=True, argv=argv,
                  diff={"before": f"pool {name}: exported or not yet imported (id {pool['id']}, "
                                  f"{pool['state']})\n", "after": f"pool {name}: imported\n"})
    if module.check_mode:
        module.exit_json(**result)
    rc, out, err = module.run_command(argv)
    if rc != 0 and re.search(r"in use from another system|previously in use|hostid", err + out):
        # The pool was last imported by another system: the host after an OS reinstall or a hostid change.
        argv = ["zpool", "import", "-f", "-d", pool["folder"], pool["id"] or name]
        result["argv"] = argv
        result["forced_import"] = True
        rc, out, err = module.run_command(argv)
    if rc != 0:
        module.fail_json(msg=f"pool {name} exists on its disks but `{' '.join(argv)}` failed (rc {rc}): "
                             f"{err.strip() or out.strip()}; it was not recreated: import it by hand", **result)
    check_layout(module, name, result)
    module.exit_json(**result)


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "name": {"type": "str", "required": True},
            "vdevs": {"type": "list", "elements": "str", "required": True},
            "ashift": {"type": "int", "default": 12},
            "root_properties": {"type": "dict", "default": {}},
            "force_disks": {"type": "bool", "default": False},
            "load_module": {"type": "bool", "default": True},
        },
        supports_check_mode=True,
    )
    name = module.params["name"]
    vdevs = module.params["vdevs"]
    result = {"changed": False, "created": False, "imported": False, "name": name}
    load_module(module)

    if pool_imported(module, name):
        check_layout(module, name, result)
        module.exit_json(**result)

    disks = [arg for arg in vdevs if arg not in VDEV_KEYWORDS]
    missing = [d for d in disks if not os.path.exists(d)]
    if missing:
        module.fail_json(msg=f"cannot create pool {name}: disk(s) {', '.join(missing)} do not exist on this host; "
                             "check backup.pool.vdevs in the site spec (ls -l /dev/disk/by-id/)", **result)

    # A pool that exists on these disks is imported, never recreated; one of another name is never overwritten.
    found = importable(module, sorted({os.path.dirname(d) for d in disks}))
    ours = {base(d) for d in disks}
    same = [p for p in found if p["name"] == name]
    if same:
        import_pool(module, name, same, result)
    others = [p for p in found if ours & set(p["devices"])]
    if others:
        detail = "; ".join(f"pool {p['name']} (id {p['id']}, {p['state']}) on "
                           f"{', '.join(sorted(ours & set(p['devices'])))}" for p in others)
        module.fail_json(
            msg=f"refusing to create pool {name}: disk(s) of the spec belong to a pool that can still be imported: "
                f"{detail}. opsctl never overwrites an importable pool, not even with --force-disks. If that pool "
                f"is the one you mean, rename backup.pool.name in the site file; if its data is really "
                "expendable, destroy it by hand (zpool import, then zpool destroy).", **result)

    signatures = {d: s for d in disks if (s := disk_signatures(module, d))}
    result["signatures"] = signatures
    if signatures and not module.params["force_disks"]:
        detail = "; ".join(f"{d}: {', '.join(s)}" for d, s in signatures.items())
        module.fail_json(
            msg=f"refusing to create pool {name}: disk(s) are not blank: {detail}. They may hold data. "
                "Check the disk paths in backup.pool.vdevs; if the data is expendable, wipe the disks "
                "(wipefs -a DISK) or rerun with --force-disks (zfs_force_disks: true), which overwrites them.",
            **result)

    argv = ["zpool", "create"]
    if module.params["force_disks"]:
        argv.append("-f")
    argv += ["-o", f"ashift={module.params['ashift']}"]
    for prop, value in module.params["root_properties"].items():
        argv += ["-O", f"{prop}={value}"]
    argv += [name, *vdevs]
    result.update(changed=True, created=True, argv=argv,
                  diff={"before": f"pool {name}: absent\n", "after": f"pool {name}: {' '.join(argv)}\n"})
    if module.check_mode:
        module.exit_json(**result)
    if signatures:
        # Forced: clear the old signatures first so neither libblkid nor udev keeps describing the
        # disk by its previous content while zpool partitions it.
        for disk in signatures:
            rc, out, err = module.run_command(["wipefs", "--all", disk])
            if rc != 0:
                module.fail_json(msg=f"`wipefs --all {disk}` failed (rc {rc}): {err.strip()}", **result)
    settle(module)
    rc, out, err = module.run_command(argv)
    if rc != 0 and re.search(RETRYABLE, err + out):
        # zpool partitions each whole disk, then opens the new partition through its udev link; a busy
        # udev (or a stale link of the disk's last partition table) makes that fail. The disks were blank
        # (or wiped) a moment ago, so what they carry now is this run's own partition table: clear it,
        # let udev catch up, and try once more.
        result["retried"] = True
        module.warn(f"`zpool create` failed at first ({(err.strip() or out.strip()).splitlines()[-1]}); the "
                    "partition table it had just written was cleared and the create run once more")
        clear_own_partitions(module, disks, result)
        rc, out, err = module.run_command(argv)
    if rc != 0:
        # Leave the disks as they were found, so the next run is not refused for this run's leftovers.
        clear_own_partitions(module, disks, result)
        module.fail_json(msg=f"`{' '.join(argv)}` failed (rc {rc}): {err.strip() or out.strip()}. The disks "
                             "were left blank, as they were found; run provision again (if it fails the same "
                             "way, check the disks: dmesg, lsblk).", **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
