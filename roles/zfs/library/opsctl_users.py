#!/usr/bin/python
"""Ansible module: the Time Machine users' system accounts, all in one call; never adopt a system account."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: opsctl_users
short_description: Create the Time Machine users' groups and accounts (no login shell), in one call
description:
  - Takes the users of the backup server's desired state (C(opsctl.state.users)) and makes sure each has
    a group of its own name and an account in it with the given home (its dataset's mountpoint, not
    created here), login shell and comment.
  - An existing account or group with an id below C(min_id) (a system account such as C(adm), C(disk)
    or C(sudo)) is never adopted: the task fails naming it, before anything is changed.
  - An existing account whose uid differs from a uid the spec gives is refused too (changing it would
    orphan the files of its backups).
  - Drifted home, shell, primary group or comment are corrected with C(usermod).
  - Each of O(groups) (an extra share's group) is created after the accounts and holds exactly its
    C(members) (C(gpasswd -M)); a group of that name with a gid below C(min_id) is refused like an account.
  - Supports check mode and diff mode.
options:
  users:
    description: Each a dict with C(name), C(home), optional C(uid) and C(full_name).
    type: list
    elements: dict
    required: true
  groups:
    description: Each a dict with C(name) and C(members) (account names); opsctl owns these groups.
    type: list
    elements: dict
    default: []
  shell:
    description: Login shell of the accounts.
    type: str
    default: /usr/sbin/nologin
  min_id:
    description: Lowest uid/gid an existing account or group may have to be managed.
    type: int
    default: 1000
  make_homes:
    description:
      - Also create each home directory (owner and group the user, O(home_mode)) and correct its owner and
        mode. Off where the homes are ZFS mountpoints (the datasets task owns them); on for hosts without ZFS.
    type: bool
    default: false
  home_mode:
    description: Mode of the home directories with O(make_homes).
    type: str
    default: "0700"
author: opsctl
"""

EXAMPLES = r"""
- name: The Time Machine users
  opsctl_users:
    users:
      - {name: alice, home: /tank/timemachine/alice, uid: null, full_name: Alice}
    groups:
      - {name: share-projects, members: [alice]}
"""

RETURN = r"""
created:
  description: Accounts created (or, in check mode, that would be).
  type: list
  returned: always
modified:
  description: Accounts changed, with the usermod arguments.
  type: dict
  returned: always
groups:
  description: Groups created or whose members were set (or, in check mode, would be).
  type: list
  returned: always
"""

import grp  # noqa: E402 - Ansible modules put DOCUMENTATION first
import os  # noqa: E402
import pwd  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402


def make_homes(module: AnsibleModule, result: dict, before: list[str], after: list[str]) -> list[list[str]]:
    """Create/own each user's home directory (run after the accounts exist)."""
    mode = int(module.params["home_mode"], 8)
    done: list[list[str]] = []
    for user in module.params["users"]:
        name, home = user["name"], user["home"]
        try:
            st = os.stat(home)
            was = f"{st.st_uid}:{st.st_gid} {oct(st.st_mode & 0o7777)}"
        except OSError:
            st, was = None, "absent"
        if st is not None and not module.check_mode:
            account = pwd.getpwnam(name)
            if (st.st_uid, st.st_gid, st.st_mode & 0o7777) == (account.pw_uid, account.pw_gid, mode):
                continue
        elif st is not None:
            continue
        argvs = [["mkdir", "-p", home], ["chown", f"{name}:{name}", home], ["chmod", module.params["home_mode"], home]]
        before.append(f"{home}: {was}\n")
        after.append(f"{home}: {name}:{name} {module.params['home_mode']}\n")
        result.setdefault("homes", []).append(home)
        if not module.check_mode:
            for argv in argvs:
                rc, out, err = module.run_command(argv)
                if rc != 0:
                    module.fail_json(msg=f"`{' '.join(argv)}` failed (rc {rc}): {err.strip()}", **result)
        done.append(argvs[0])
    return done


def share_groups(module: AnsibleModule, result: dict, refusals: list[str], before: list[str],
                 after: list[str]) -> list[list[str]]:
    """The steps that give each share group exactly its members (run after the accounts exist)."""
    steps: list[list[str]] = []
    for spec in module.params["groups"]:
        name, members = spec["name"], sorted(spec.get("members") or [])
        try:
            group = grp.getgrnam(name)
        except KeyError:
            group = None
        if group is not None and group.gr_gid < module.params["min_id"]:
            refusals.append(f"group {name!r} exists with gid {group.gr_gid} (a system group); a share's group is "
                            "never a system group: rename the share in the site file")
            continue
        have = sorted(group.gr_mem) if group is not None else None
        if have == members:
            continue
        if group is None:
            steps.append(["groupadd", name])
        steps.append(["gpasswd", "-M", ",".join(members), name])
        result["groups"].append(name)
        before.append(f"group {name}: " + ("absent" if have is None else f"members {','.join(have) or '-'}") + "\n")
        after.append(f"group {name}: members {','.join(members) or '-'}\n")
    return steps


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "users": {"type": "list", "elements": "dict", "required": True},
            "groups": {"type": "list", "elements": "dict", "default": []},
            "shell": {"type": "str", "default": "/usr/sbin/nologin"},
            "min_id": {"type": "int", "default": 1000},
            "make_homes": {"type": "bool", "default": False},
            "home_mode": {"type": "str", "default": "0700"},
        },
        supports_check_mode=True,
    )
    shell, min_id = module.params["shell"], module.params["min_id"]
    result: dict = {"changed": False, "created": [], "modified": {}, "groups": []}
    refusals: list[str] = []
    steps: list[list[str]] = []
    before, after = [], []
    for user in module.params["users"]:
        name, home, uid = user["name"], user["home"], user.get("uid")
        comment = user.get("full_name") or ""
        try:
            group = grp.getgrnam(name)
        except KeyError:
            group = None
        try:
            account = pwd.getpwnam(name)
        except KeyError:
            account = None
        if account is not None and account.pw_uid < min_id:
            refusals.append(f"account {name!r} exists with uid {account.pw_uid} (a system account); it is never "
                            "adopted as a Time Machine user: rename the user in the site file")
            continue
        if group is not None and group.gr_gid < min_id:
            refusals.append(f"group {name!r} exists with gid {group.gr_gid} (a system group); a Time Machine user "
                            "is never given a system group: rename the user in the site file")
            continue
        if account is not None and uid and account.pw_uid != int(uid):
            refusals.append(f"account {name!r} has uid {account.pw_uid}, the site file says {uid}; opsctl does not "
                            "renumber an account that owns backups: fix the uid in the site file (or chown by hand)")
            continue
        if group is None:
            steps.append(["groupadd", *(["-g", str(uid)] if uid else []), name])
        if account is None:
            steps.append(["useradd", "-M", "-g", name, "-d", home, "-s", shell, "-c", comment,
                          *(["-u", str(uid)] if uid else []), name])
            result["created"].append(name)
            before.append(f"user {name}: absent\n")
            after.append(f"user {name}: home={home} shell={shell}\n")
            continue
        gid = group.gr_gid if group is not None else None
        args: list[str] = []
        if account.pw_dir != home:
            args += ["-d", home]
        if account.pw_shell != shell:
            args += ["-s", shell]
        if account.pw_gecos.split(",")[0] != comment:
            args += ["-c", comment]
        if gid is None or account.pw_gid != gid:
            args += ["-g", name]
        if args:
            steps.append(["usermod", *args, name])
            result["modified"][name] = args
            before.append(f"user {name}: home={account.pw_dir} shell={account.pw_shell}\n")
            after.append(f"user {name}: home={home} shell={shell}\n")
    steps += share_groups(module, result, refusals, before, after)
    if refusals:
        module.fail_json(msg="refused, nothing was changed: " + " | ".join(refusals), refusals=refusals, **result)
    if steps and not module.check_mode:
        for argv in steps:
            rc, out, err = module.run_command(argv)
            if rc != 0:
                module.fail_json(msg=f"`{' '.join(argv)}` failed (rc {rc}): {err.strip() or out.strip()}", **result)
    if module.params["make_homes"]:
        steps += make_homes(module, result, before, after)
    result["changed"] = bool(steps)
    if steps:
        result["diff"] = {"before": "".join(before), "after": "".join(after)}
    module.exit_json(**result)


if __name__ == "__main__":
    main()
