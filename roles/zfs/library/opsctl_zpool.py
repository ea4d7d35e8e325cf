#!/usr/bin/python
"""Ansible module: create a ZFS pool when it is absent, only on blank disks; never destroy."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: opsctl_zpool
short_description: Create a ZFS pool once, only on disks without a signature
description:
  - Creates the pool C(name) with C(zpool create) when no pool of that name is imported.
  - An existing pool is never destroyed, recreated or modified (its vdev layout is not compared).
  - Before creating, every disk named in O(vdevs) is checked with C(wipefs -n) and
    C(lsblk -no FSTYPE,PARTTYPE); a disk that carries a file system, RAID, ZFS or partition
    table signature, or has partitions, is refused unless O(force_disks=true).
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
      - Create even on disks that carry signatures - their signatures are erased with C(wipefs --all)
        and C(-f) is passed to C(zpool create). Destroys their data.
    type: bool
    default: false
author: opsctl
"""

EXAMPLES = r"""
- name: Create the pool
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
argv:
  description: The C(zpool create) command line run (or that would run).
  type: list
  returned: when the pool is absent
signatures:
  description: Disks found carrying signatures, with what was found.
  type: dict
  returned: when the pool is absent
"""

import json  # noqa: E402 - Ansible modules put DOCUMENTATION first
import os  # noqa: E402 - Ansible modules put DOCUMENTATION first

from ansible.module_utils.basic import AnsibleModule  # noqa: E402 - Ansible modules put DOCUMENTATION first

VDEV_KEYWORDS = {"mirror", "raidz", "raidz1", "raidz2", "raidz3", "draid", "spare", "log", "cache",
                 "special", "dedup"}


def pool_exists(module: AnsibleModule, name: str) -> bool:
    rc, _out, err = module.run_command(["zpool", "list", "-H", "-o", "name", name])
    if rc == 0:
        return True
    if "no such pool" in err or "does not exist" in err:
        return False
    module.fail_json(msg=f"`zpool list {name}` failed (rc {rc}): {err.strip()}; is the zfs kernel module loaded "
                         "(modprobe zfs)?")
    return False


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


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "name": {"type": "str", "required": True},
            "vdevs": {"type": "list", "elements": "str", "required": True},
            "ashift": {"type": "int", "default": 12},
            "root_properties": {"type": "dict", "default": {}},
            "force_disks": {"type": "bool", "default": False},
        },
        supports_check_mode=True,
    )
    name = module.params["name"]
    vdevs = module.params["vdevs"]
    result = {"changed": False, "created": False, "name": name}

    if pool_exists(module, name):
        module.exit_json(**result)

    disks = [arg for arg in vdevs if arg not in VDEV_KEYWORDS]
    missing = [d for d in disks if not os.path.exists(d)]
    if missing:
        module.fail_json(msg=f"cannot create pool {name}: disk(s) {', '.join(missing)} do not exist on this host; "
                             "check backup.pool.vdevs in the site spec (ls -l /dev/disk/by-id/)", **result)
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
    if rc != 0:
        module.fail_json(msg=f"`{' '.join(argv)}` failed (rc {rc}): {err.strip() or out.strip()}", **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
