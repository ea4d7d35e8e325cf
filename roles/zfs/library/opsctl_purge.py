#!/usr/bin/python
"""Ansible module: destroy a removed user's dataset, only if opsctl made it for them and the site dropped it."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: opsctl_purge
short_description: Destroy a removed Time Machine user's dataset (opsctl user remove --purge), with guards
description:
  - Destroys O(dataset) and its children (C(zfs destroy -r)) only when every guard holds, checked on the host
    right before the destroy; otherwise fails naming the guard and changes nothing.
  - The dataset carries the user property O(user_tag) with the value O(user), set locally (opsctl sets it when
    it creates a user's dataset; an untagged dataset was not made by opsctl for that user).
  - Every child dataset carries the same tag value (set or inherited): children that belong to someone or
    something else are never destroyed with it.
  - The dataset is not one the site still declares (O(referenced)), nor an ancestor of one, nor a pool.
  - A dataset that does not exist is reported, not an error (C(changed=false)).
  - Supports check mode.
options:
  dataset:
    description: The dataset to destroy.
    type: str
    required: true
  user:
    description: The removed user whose dataset it must be.
    type: str
    required: true
  referenced:
    description: Every dataset (and pool) the site still declares (C(opsctl.state)).
    type: list
    elements: str
    default: []
  user_tag:
    description: The user property that marks a user's dataset.
    type: str
    default: "opsctl:user"
author: opsctl
"""

EXAMPLES = r"""
- name: Purge carol's dataset
  opsctl_purge:
    dataset: tank/timemachine/carol
    user: carol
    referenced: [tank, tank/timemachine, tank/timemachine/alice]
"""

RETURN = r"""
destroyed:
  description: The datasets destroyed (or, in check mode, that would be), children first.
  type: list
  returned: always
"""

from ansible.module_utils.basic import AnsibleModule  # noqa: E402 - Ansible modules put DOCUMENTATION first


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "dataset": {"type": "str", "required": True},
            "user": {"type": "str", "required": True},
            "referenced": {"type": "list", "elements": "str", "default": []},
            "user_tag": {"type": "str", "default": "opsctl:user"},
        },
        supports_check_mode=True,
    )
    dataset, user, tag = module.params["dataset"], module.params["user"], module.params["user_tag"]
    result: dict = {"changed": False, "destroyed": [], "dataset": dataset}

    def refuse(why: str) -> None:
        module.fail_json(msg=f"refusing to destroy {dataset}: {why}; nothing was destroyed", **result)

    if "/" not in dataset:
        refuse("it is a pool, not a user's dataset")
    for name in module.params["referenced"]:
        if name == dataset or name.startswith(dataset + "/"):
            refuse(f"the site file still uses {'it' if name == dataset else name}; remove the user from the site "
                   "file (opsctl user remove NAME) before purging")
    rc, out, err = module.run_command(["zfs", "list", "-H", "-o", "name", dataset])
    if rc != 0:
        if "does not exist" in err:
            result["absent"] = True
            module.exit_json(**result)
        module.fail_json(msg=f"`zfs list {dataset}` failed (rc {rc}): {err.strip()}", **result)
    rc, out, err = module.run_command(["zfs", "get", "-H", "-r", "-t", "filesystem,volume", "-o", "name,value,source",
                                       tag, dataset])
    if rc != 0:
        module.fail_json(msg=f"`zfs get {tag}` failed (rc {rc}): {err.strip()}", **result)
    rows = [line.split("\t") for line in out.splitlines() if line.count("\t") >= 2]
    own = next((r for r in rows if r[0] == dataset), None)
    if own is None or own[2] != "local" or own[1] != user:
        have = "no tag" if own is None or own[1] == "-" else f"{tag}={own[1]} ({own[2]})"
        refuse(f"it is not tagged {tag}={user} ({have}), so opsctl did not create it for {user}. If you are sure it "
               f"is {user}'s, destroy it by hand (zfs destroy -r {dataset})")
    strangers = [r[0] for r in rows if r[0] != dataset and r[1] != user]
    if strangers:
        refuse(f"child dataset(s) {', '.join(strangers)} are not {user}'s (their {tag} differs)")
    result["destroyed"] = sorted((r[0] for r in rows), key=lambda n: -n.count("/"))
    result["changed"] = True
    if not module.check_mode:
        rc, out, err = module.run_command(["zfs", "destroy", "-r", dataset])
        if rc != 0:
            module.fail_json(msg=f"`zfs destroy -r {dataset}` failed (rc {rc}): {err.strip() or out.strip()}",
                             **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
