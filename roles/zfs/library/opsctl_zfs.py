#!/usr/bin/python
"""Ansible module: create a ZFS dataset once, keep its mutable properties as specified; never destroy."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: opsctl_zfs
short_description: Create a ZFS dataset and converge its mutable properties
description:
  - Creates dataset O(name) with every property of O(properties) given as C(-o name=value) at creation
    (create-only properties such as C(normalization) can only be set then).
  - On an existing dataset, compares each property with C(zfs get -Hp -o property,value,source)
    (sizes such as C(100M) are compared in bytes, C(none) as 0) and runs one C(zfs set) for the ones
    that drifted; C(changed) and the diff report exactly those.
  - A create-only property (O(create_only)) whose value differs fails the task, naming the dataset,
    property, actual and wanted values. Such a property can only change by creating a new dataset
    and migrating the data; this module never destroys or recreates a dataset.
  - Supports check mode and diff mode.
options:
  name:
    description: Full dataset name (C(pool/a/b)).
    type: str
    required: true
  properties:
    description: Wanted properties (C(quota), C(compression), C(mountpoint), ...).
    type: dict
    default: {}
  create_only:
    description: Properties ZFS accepts only at creation.
    type: list
    elements: str
    default: [normalization, utf8only, casesensitivity]
  parents:
    description: Create missing parent datasets (C(zfs create -p)).
    type: bool
    default: false
author: opsctl
"""

EXAMPLES = r"""
- name: A Time Machine dataset
  opsctl_zfs:
    name: tank/timemachine/alice
    properties: {normalization: formD, utf8only: "on", casesensitivity: insensitive, quota: 200M,
                 mountpoint: /tank/timemachine/alice}
"""

RETURN = r"""
created:
  description: Whether the dataset was (or in check mode would be) created.
  type: bool
  returned: always
set:
  description: The properties set (name -> wanted value) on an existing dataset.
  type: dict
  returned: always
actual:
  description: The properties as read before any change (name -> value, sizes in bytes).
  type: dict
  returned: when the dataset existed
"""

import re  # noqa: E402 - Ansible modules put DOCUMENTATION first

from ansible.module_utils.basic import AnsibleModule  # noqa: E402 - Ansible modules put DOCUMENTATION first

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


def normalize(prop: str, value: object) -> str:
    text = {True: "on", False: "off"}.get(value, value) if isinstance(value, bool) else str(value)
    if prop in SIZE_PROPERTIES:
        size = size_bytes(text)
        return str(size) if size is not None else text
    if prop == "mountpoint" and text not in ("none", "legacy", "-"):
        return text.rstrip("/") or "/"
    return text


def dataset_exists(module: AnsibleModule, name: str) -> bool:
    rc, _out, err = module.run_command(["zfs", "list", "-H", "-o", "name", name])
    if rc == 0:
        return True
    if "does not exist" in err:
        return False
    module.fail_json(msg=f"`zfs list {name}` failed (rc {rc}): {err.strip()}")
    return False


def get_properties(module: AnsibleModule, name: str, props: list[str]) -> dict[str, dict[str, str]]:
    rc, out, err = module.run_command(["zfs", "get", "-Hp", "-o", "property,value,source", ",".join(props), name])
    if rc != 0:
        module.fail_json(msg=f"`zfs get {','.join(props)} {name}` failed (rc {rc}): {err.strip()}")
    found: dict[str, dict[str, str]] = {}
    for line in out.splitlines():
        parts = line.split("\t")
        if len(parts) >= 3:
            found[parts[0]] = {"value": parts[1], "source": parts[2]}
    return found


def _fmt(props: dict[str, str]) -> str:
    return "".join(f"{k}={v}\n" for k, v in sorted(props.items()))


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "name": {"type": "str", "required": True},
            "properties": {"type": "dict", "default": {}},
            "create_only": {"type": "list", "elements": "str",
                            "default": ["normalization", "utf8only", "casesensitivity"]},
            "parents": {"type": "bool", "default": False},
        },
        supports_check_mode=True,
    )
    name = module.params["name"]
    wanted = {k: normalize(k, v) for k, v in module.params["properties"].items()}
    raw_wanted = {k: ({True: "on", False: "off"}[v] if isinstance(v, bool) else str(v))
                  for k, v in module.params["properties"].items()}
    create_only = set(module.params["create_only"])
    result = {"changed": False, "created": False, "name": name, "set": {}}

    if not dataset_exists(module, name):
        argv = ["zfs", "create"]
        if module.params["parents"]:
            argv.append("-p")
        for prop, value in raw_wanted.items():
            argv += ["-o", f"{prop}={value}"]
        argv.append(name)
        result.update(changed=True, created=True, argv=argv,
                      diff={"before": f"dataset {name}: absent\n",
                            "after": f"dataset {name}:\n" + _fmt(raw_wanted)})
        if not module.check_mode:
            rc, out, err = module.run_command(argv)
            if rc != 0:
                module.fail_json(msg=f"`{' '.join(argv)}` failed (rc {rc}): {err.strip() or out.strip()}", **result)
        module.exit_json(**result)

    if not wanted:
        module.exit_json(**result)
    current = get_properties(module, name, sorted(wanted))
    result["actual"] = {k: v["value"] for k, v in current.items()}
    unknown = sorted(set(wanted) - set(current))
    if unknown:
        module.fail_json(msg=f"ZFS does not know the propert{'y' if len(unknown) == 1 else 'ies'} "
                             f"{', '.join(unknown)} (dataset {name})", **result)

    mismatched = [(p, current[p]["value"], raw_wanted[p]) for p in sorted(wanted)
                  if p in create_only and normalize(p, current[p]["value"]) != wanted[p]]
    if mismatched:
        detail = "; ".join(f"{p} is {actual!r}, the spec wants {want!r}" for p, actual, want in mismatched)
        module.fail_json(
            msg=f"dataset {name}: create-only propert{'y' if len(mismatched) == 1 else 'ies'} differ from the "
                f"spec: {detail}. {'This property' if len(mismatched) == 1 else 'These properties'} can only be "
                "set when a dataset is created, so it can only change by creating a new dataset with the "
                "wanted value and migrating the data (e.g. zfs send | zfs recv -o ..., or rsync), then "
                "renaming it into place. opsctl never destroys or recreates a dataset; alternatively change "
                "the spec to the actual value.",
            **result)

    drift = {p: raw_wanted[p] for p in sorted(wanted)
             if p not in create_only and normalize(p, current[p]["value"]) != wanted[p]}
    if drift:
        argv = ["zfs", "set", *(f"{p}={v}" for p, v in drift.items()), name]
        before = {p: current[p]["value"] for p in drift}
        result.update(changed=True, set=drift, argv=argv,
                      diff={"before": f"dataset {name}:\n" + _fmt(before),
                            "after": f"dataset {name}:\n" + _fmt(drift)})
        if not module.check_mode:
            rc, out, err = module.run_command(argv)
            if rc != 0:
                module.fail_json(msg=f"`{' '.join(argv)}` failed (rc {rc}): {err.strip() or out.strip()}", **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
