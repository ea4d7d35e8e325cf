#!/usr/bin/python
"""Ansible module: converge all of a backup host's datasets in one call; never destroy."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: opsctl_zfs
short_description: Create the planned ZFS datasets and converge their mutable properties, in one call
description:
  - Takes the datasets of the backup server's desired state (C(opsctl.state.datasets), computed by
    opsctl.state.backup) in creation order and converges them with one C(zfs list) and one C(zfs get)
    for all of them.
  - A missing dataset is created with every property given as C(-o name=value) (create-only properties
    such as C(normalization) can only be set then), tagged C(opsctl:user=<user>) when it is a user's.
  - On an existing dataset each property is compared (sizes such as C(100M) in bytes, C(none) as 0) and
    one C(zfs set) runs for the ones that drifted.
  - Refusals, checked for every dataset before anything is changed (so a refused run changes nothing):
    a create-only property that differs (it can only change by creating a new dataset and migrating
    the data; this module never destroys or recreates one); a quota below what the dataset already uses
    (Time Machine would delete old backups to fit); a quota change whose usage cannot be read.
  - Then the mountpoint of each dataset with an C(owner) gets that owner, C(group) (default the owner's
    name) and C(mode).
  - Supports check mode and diff mode.
options:
  datasets:
    description:
      - Datasets in creation order, each a dict with C(name), C(properties) (dict), optional C(user)
        (tag), C(owner), C(group), C(mode) (octal string) and C(parents) (zfs create -p).
    type: list
    elements: dict
    required: true
  create_only:
    description: Properties ZFS accepts only at creation.
    type: list
    elements: str
    default: [normalization, utf8only, casesensitivity]
  user_tag:
    description: The user property that marks a user's dataset.
    type: str
    default: "opsctl:user"
author: opsctl
"""

EXAMPLES = r"""
- name: Converge the Time Machine datasets
  opsctl_zfs:
    datasets:
      - {name: tank/timemachine, properties: {mountpoint: /tank/timemachine}}
      - name: tank/timemachine/alice
        properties: {quota: 200M, mountpoint: /tank/timemachine/alice, casesensitivity: insensitive}
        user: alice
        owner: alice
        mode: "0700"
"""

RETURN = r"""
created:
  description: Datasets created (or, in check mode, that would be).
  type: list
  returned: always
set:
  description: Per dataset, the properties set (name -> wanted value).
  type: dict
  returned: always
owned:
  description: Mountpoints whose owner or mode was changed.
  type: list
  returned: always
"""

import os  # noqa: E402 - Ansible modules put DOCUMENTATION first
import re  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402

#: Properties whose values are sizes (``zfs get -p`` prints them in bytes; ``none`` is 0).
SIZE_PROPERTIES = {"quota", "refquota", "reservation", "refreservation", "recordsize", "volsize",
                   "volblocksize", "special_small_blocks"}
_UNITS = {"": 1, "B": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40, "P": 1 << 50, "E": 1 << 60}
_SIZE = re.compile(r"(\d+(?:\.\d+)?)([BKMGTPE]?)(?:i?B)?", re.IGNORECASE)


def size_bytes(value: str) -> int | None:
    """``100M`` -> 104857600, ``none`` -> 0; None when ``value`` is not a size."""
    text = str(value).strip()
    if text in ("none", "-", "0"):
        return 0
    match = _SIZE.fullmatch(text)
    if not match:
        return None
    number, unit = match.groups()
    return int(float(number) * _UNITS[unit.upper()])


def text(value: object) -> str:
    return {True: "on", False: "off"}[value] if isinstance(value, bool) else str(value)


def normalize(prop: str, value: object) -> str:
    value = text(value)
    if prop in SIZE_PROPERTIES:
        size = size_bytes(value)
        return str(size) if size is not None else value
    if prop == "mountpoint" and value not in ("none", "legacy", "-"):
        return value.rstrip("/") or "/"
    return value


def human(n: int) -> str:
    value = float(n)
    for unit in ("B", "K", "M", "G", "T", "P"):
        if value < 1024 or unit == "P":
            return f"{value:.0f}{unit}" if unit == "B" else f"{value:.1f}{unit}"
        value /= 1024
    return str(n)


def run(module: AnsibleModule, argv: list[str], result: dict) -> str:
    rc, out, err = module.run_command(argv)
    if rc != 0:
        module.fail_json(msg=f"`{' '.join(argv)}` failed (rc {rc}): {err.strip() or out.strip()}", **result)
    return out


def existing(module: AnsibleModule, names: list[str], result: dict) -> set[str]:
    pools = sorted({n.split("/", 1)[0] for n in names})
    rc, out, err = module.run_command(["zfs", "list", "-H", "-o", "name", "-t", "filesystem,volume", "-r", *pools])
    if rc != 0 and module.check_mode and "does not exist" in err:
        # check mode: the pool task only said it would create or import the pool
        module.warn(f"pool {', '.join(pools)} is not imported yet: every dataset is shown as to be created")
        return set()
    if rc != 0:
        module.fail_json(msg=f"`zfs list -r {' '.join(pools)}` failed (rc {rc}): {err.strip()}; is the pool "
                             "imported (zpool list)?", **result)
    return set(out.split())


def current(module: AnsibleModule, names: list[str], props: list[str], result: dict) -> dict[str, dict[str, str]]:
    """``{dataset: {property: value}}`` of ``props`` (and ``used``) for all ``names``, in one ``zfs get``."""
    found: dict[str, dict[str, str]] = {n: {} for n in names}
    if not names:
        return found
    out = run(module, ["zfs", "get", "-Hp", "-o", "name,property,value", ",".join(sorted({*props, "used"})),
                       *names], result)
    for line in out.splitlines():
        parts = line.split("\t")
        if len(parts) >= 3 and parts[0] in found:
            found[parts[0]][parts[1]] = parts[2]
    return found


def owner_changes(datasets: list[dict]) -> list[tuple[dict, str]]:
    """Mountpoints whose owner/group/mode differ from the plan (a missing user is the users task's job)."""
    import grp
    import pwd

    changes = []
    for d in datasets:
        owner, path = d.get("owner"), d["properties"].get("mountpoint")
        if not owner or not path:
            continue
        try:
            st = os.stat(path)
            uid, gid = pwd.getpwnam(owner).pw_uid, grp.getgrnam(d.get("group") or owner).gr_gid
        except (OSError, KeyError):
            changes.append((d, "absent"))
            continue
        mode = int(str(d.get("mode") or "0700"), 8)
        if st.st_uid != uid or st.st_gid != gid or (st.st_mode & 0o7777) != mode:
            changes.append((d, f"{st.st_uid}:{st.st_gid} {oct(st.st_mode & 0o7777)}"))
    return changes


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "datasets": {"type": "list", "elements": "dict", "required": True},
            "create_only": {"type": "list", "elements": "str",
                            "default": ["normalization", "utf8only", "casesensitivity"]},
            "user_tag": {"type": "str", "default": "opsctl:user"},
        },
        supports_check_mode=True,
    )
    datasets = module.params["datasets"]
    create_only = set(module.params["create_only"])
    tag = module.params["user_tag"]
    result: dict = {"changed": False, "created": [], "set": {}, "owned": []}
    before, after = [], []

    have = existing(module, [d["name"] for d in datasets], result)
    present = [d for d in datasets if d["name"] in have]
    props = sorted({p for d in present for p in d.get("properties") or {}})
    actual = current(module, [d["name"] for d in present], props, result)

    # 1. Plan every change and collect every refusal before touching anything.
    refusals: list[str] = []
    creates: list[list[str]] = []
    sets: list[tuple[str, dict[str, str]]] = []
    for d in datasets:
        name, wanted = d["name"], {k: text(v) for k, v in (d.get("properties") or {}).items()}
        if name not in have:
            argv = ["zfs", "create", *(["-p"] if d.get("parents") else [])]
            for prop, value in wanted.items():
                argv += ["-o", f"{prop}={value}"]
            if d.get("user"):
                argv += ["-o", f"{tag}={d['user']}"]
            creates.append([*argv, name])
            result["created"].append(name)
            before.append(f"dataset {name}: absent\n")
            after.append(f"dataset {name}:\n" + "".join(f"  {k}={v}\n" for k, v in sorted(wanted.items())))
            continue
        now = actual[name]
        unknown = sorted(set(wanted) - set(now))
        if unknown:
            refusals.append(f"ZFS does not know the propert{'y' if len(unknown) == 1 else 'ies'} "
                            f"{', '.join(unknown)} (dataset {name})")
            continue
        for prop in sorted(wanted):
            if prop in create_only and normalize(prop, now[prop]) != normalize(prop, wanted[prop]):
                refusals.append(
                    f"dataset {name}: create-only property {prop} is {now[prop]!r}, the spec wants "
                    f"{wanted[prop]!r}. It can only be set when a dataset is created, so it can only change by "
                    "creating a new dataset with the wanted value and migrating the data (e.g. zfs send | "
                    "zfs recv -o ..., or rsync), then renaming it into place. opsctl never destroys or "
                    "recreates a dataset; alternatively change the spec to the actual value.")
        drift = {p: wanted[p] for p in sorted(wanted)
                 if p not in create_only and normalize(p, now[p]) != normalize(p, wanted[p])}
        if "quota" in drift and drift["quota"] != "none":
            used = size_bytes(now.get("used", ""))
            quota = size_bytes(drift["quota"])
            if used is None or quota is None:
                refusals.append(f"dataset {name}: cannot read how much it uses (zfs get used said "
                                f"{now.get('used')!r}), so a quota change to {drift['quota']} is refused; "
                                "check the pool (zpool status) and run again")
            elif 0 < quota < used:
                refusals.append(
                    f"dataset {name} already uses {human(used)} ({used} bytes); a quota of {drift['quota']} "
                    "below that would stop its backups and make Time Machine delete old ones to fit. Set a "
                    f"quota of at least {human(used)} in the site file, or free space on the share first.")
        if drift:
            sets.append((name, drift))
            result["set"][name] = drift
            before.append(f"dataset {name}:\n" + "".join(f"  {p}={now[p]}\n" for p in drift))
            after.append(f"dataset {name}:\n" + "".join(f"  {p}={v}\n" for p, v in drift.items()))
    if refusals:
        module.fail_json(msg="refused, nothing was changed: " + " | ".join(refusals), refusals=refusals,
                         **{k: v for k, v in result.items() if k != "changed"}, changed=False)

    # 2. Apply: create, set, then own the mountpoints.
    if not module.check_mode:
        for argv in creates:
            run(module, argv, result)
        for name, drift in sets:
            run(module, ["zfs", "set", *(f"{p}={v}" for p, v in drift.items()), name], result)
    owners = owner_changes(datasets)  # in check mode a dataset still to be created counts as "absent"
    for d, was in owners:
        path, mode = d["properties"]["mountpoint"], str(d.get("mode") or "0700")
        result["owned"].append(path)
        before.append(f"{path}: {was}\n")
        owner = f"{d['owner']}:{d.get('group') or d['owner']}"
        after.append(f"{path}: {owner} {mode}\n")
        if not module.check_mode:
            run(module, ["chown", owner, path], result)  # before chmod: a chown may clear set-id bits
            run(module, ["chmod", mode, path], result)
    result["changed"] = bool(creates or sets or owners)
    if result["changed"]:
        result["diff"] = {"before": "".join(before), "after": "".join(after)}
    module.exit_json(**result)


if __name__ == "__main__":
    main()
