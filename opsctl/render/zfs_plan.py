"""The ordered plan that builds a backup server's ZFS state: pool, accounts, share groups, datasets,
ownership.

The steps are derived from the desired state (:mod:`opsctl.state.backup`), the same object the zfs
role hands to its modules, and rendered as a reviewable shell script (``templates/zfs/plan.sh.j2``)
and, with the state itself, as JSON. The plan only ever *creates*: nothing in it destroys or
recreates a pool or dataset (the role also imports a pool that exists on its disks, which a
script cannot decide safely: plan.sh stops when the pool is not imported but its disks carry ZFS
labels).

Example::

    >>> steps = plan(backup_state(site).as_dict())   # doctest: +SKIP
    >>> steps[0]["argv"][:4]                          # doctest: +SKIP
    ['zpool', 'create', '-o', 'ashift=12']
"""

from __future__ import annotations


def plan(state: dict) -> list[dict]:
    """Steps ``{"id", "check", "argv"}`` for a backup state (``BackupState.as_dict()``): run ``argv``
    only when ``check`` (an argv, or None for always) fails."""
    pool = state["pool"]
    steps: list[dict] = []
    create = ["zpool", "create", "-o", f"ashift={pool['ashift']}"]
    for name, value in pool["root_properties"].items():
        create += ["-O", f"{name}={value}"]
    create += [pool["name"], *pool["zpool_args"]]
    steps.append({"id": f"pool:{pool['name']}", "check": ["zpool", "list", "-H", "-o", "name", pool["name"]],
                  "argv": create})
    for user in state["users"]:
        steps.append({"id": f"group:{user['name']}", "check": ["getent", "group", user["name"]],
                      "argv": ["groupadd", *(["-g", str(user["uid"])] if user["uid"] else []), user["name"]]})
        steps.append({"id": f"user:{user['name']}", "check": ["getent", "passwd", user["name"]],
                      "argv": ["useradd", "-M", "-g", user["name"], "-d", user["home"], "-s", "/usr/sbin/nologin",
                               "-c", user["full_name"], *(["-u", str(user["uid"])] if user["uid"] else []),
                               user["name"]]})
    for group in state["groups"]:
        steps.append({"id": f"group:{group['name']}", "check": ["getent", "group", group["name"]],
                      "argv": ["groupadd", group["name"]]})
        steps.append({"id": f"members:{group['name']}", "check": None,
                      "argv": ["gpasswd", "-M", ",".join(group["members"]), group["name"]]})
    for ds in state["datasets"]:
        argv = ["zfs", "create", *(["-p"] if ds["parents"] else [])]
        for name, value in ds["properties"].items():
            argv += ["-o", f"{name}={value}"]
        if ds["user"]:
            argv += ["-o", f"{state['user_tag']}={ds['user']}"]
        steps.append({"id": f"dataset:{ds['name']}", "check": ["zfs", "list", "-H", "-o", "name", ds["name"]],
                      "argv": [*argv, ds["name"]]})
        if ds["owner"]:
            path = ds["mountpoint"]
            steps.append({"id": f"owner:{path}", "check": None,
                          "argv": ["chown", f"{ds['owner']}:{ds['group']}", path]})
            steps.append({"id": f"mode:{path}", "check": None, "argv": ["chmod", ds["mode"], path]})
    return steps
