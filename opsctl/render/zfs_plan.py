"""The ordered ZFS plan of a backup server: what ``zpool``/``zfs`` commands create it.

The plan is data (argv lists), rendered as a reviewable shell script
(``templates/zfs/plan.sh.j2``) and as JSON. It only ever *creates*: nothing in it
destroys or recreates a pool or dataset.

Example::

    >>> steps = plan(site.backup.model_dump(mode="json"))
    >>> steps[0]["argv"][:4]
    ['zpool', 'create', '-o', 'ashift=12']
"""

from __future__ import annotations


def plan(backup: dict) -> list[dict]:
    """Steps ``{"id", "check", "argv"}`` for the ``backup`` section (as in the template context):
    run ``argv`` only when ``check`` (an argv, or None for always) fails."""
    pool = backup["pool"]
    steps: list[dict] = []
    create = ["zpool", "create", "-o", f"ashift={pool['ashift']}"]
    for name, value in {**backup["dataset_defaults"], **pool["properties"]}.items():
        create += ["-O", f"{name}={value}"]
    create += ["-O", f"mountpoint=/{pool['name']}", pool["name"], *pool["zpool_args"]]
    steps.append({"id": f"pool:{pool['name']}", "check": ["zpool", "list", "-H", "-o", "name", pool["name"]],
                  "argv": create})
    if pool["dataset_root"]:
        parts = pool["dataset_root"].split("/")
        for depth in range(1, len(parts) + 1):
            dataset = "/".join([pool["name"], *parts[:depth]])
            argv = ["zfs", "create"]
            if depth == len(parts):
                argv += ["-o", f"mountpoint={pool['root_mountpoint']}"]
            steps.append({"id": f"dataset:{dataset}", "check": ["zfs", "list", "-H", "-o", "name", dataset],
                          "argv": [*argv, dataset]})
    for share in backup["time_machine_shares"]:
        argv = ["zfs", "create"]
        for name, value in share["properties"].items():
            argv += ["-o", f"{name}={value}"]
        argv += ["-o", f"quota={share['quota']}", "-o", f"mountpoint={share['path']}", share["dataset"]]
        steps.append({"id": f"dataset:{share['dataset']}",
                      "check": ["zfs", "list", "-H", "-o", "name", share["dataset"]], "argv": argv})
        steps.append({"id": f"owner:{share['path']}", "check": None,
                      "argv": ["chown", f"{share['user']}:{share['user']}", share["path"]]})
        steps.append({"id": f"mode:{share['path']}", "check": None, "argv": ["chmod", "0700", share["path"]]})
    for share in backup["other_shares"]:
        argv = ["zfs", "create", "-p"]
        for name, value in backup["dataset_defaults"].items():
            argv += ["-o", f"{name}={value}"]
        if share["quota"]:
            argv += ["-o", f"quota={share['quota']}"]
        argv += ["-o", f"mountpoint={share['path']}", share["dataset"]]
        steps.append({"id": f"dataset:{share['dataset']}",
                      "check": ["zfs", "list", "-H", "-o", "name", share["dataset"]], "argv": argv})
    return steps
