#!/usr/bin/python3
# WANT_JSON
"""Ansible module ``opsctl_services``: packages present and systemd units in their state, in ONE execution.

Standard library only; run in one ssh command by its action plugin (see library/opsctl_files.py).
It reads the state of every unit with one ``systemctl show`` and runs systemctl only for what
differs; packages are checked with one ``dpkg-query`` and installed with ``apt-get`` only when
missing. Honours check mode.

Arguments:

- ``packages``: Debian packages that must be installed (``apt-get install`` when missing);
- ``update_cache``: run ``apt-get update`` before installing (only when something is missing);
- ``units``: ``[{name, enabled, masked, state}]`` in order; ``state`` is one of started, stopped,
  restarted, reloaded (restarted/reloaded always act: they are for handlers). A unit that
  systemd does not know yet, or whose file changed (``NeedDaemonReload``), triggers one
  ``systemctl daemon-reload`` first.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

STATES = ("started", "stopped", "restarted", "reloaded")
ACTIVE = ("active", "activating", "reloading")
ENABLED = ("enabled", "enabled-runtime", "static", "indirect", "generated", "alias")
PROPS = "Id,LoadState,UnitFileState,ActiveState,NeedDaemonReload"


class ServiceError(Exception):
    """A unit or package cannot be brought to the wanted state; the message says which and why."""


def _run(argv: list[str], env: dict | None = None) -> str:
    proc = subprocess.run(argv, capture_output=True, text=True, stdin=subprocess.DEVNULL,
                          env={**os.environ, **(env or {})})
    if proc.returncode != 0:
        raise ServiceError(f"{' '.join(argv)} failed (rc={proc.returncode}): "
                           f"{(proc.stderr or proc.stdout).strip()[-1500:]}")
    return proc.stdout


def unit_states(names: list[str]) -> dict[str, dict[str, str]]:
    """``systemctl show`` of every unit at once: name -> {LoadState, UnitFileState, ...}."""
    out = _run(["systemctl", "show", f"--property={PROPS}", "--", *names])
    blocks = [b for b in out.split("\n\n") if b.strip()]
    if len(blocks) != len(names):
        raise ServiceError(f"systemctl show returned {len(blocks)} blocks for {len(names)} units: {out[-500:]}")
    states = {}
    for name, block in zip(names, blocks, strict=True):
        states[name] = dict(line.split("=", 1) for line in block.splitlines() if "=" in line)
    return states


def missing_packages(packages: list[str]) -> list[str]:
    proc = subprocess.run(["dpkg-query", "-W", "-f", "${Package} ${db:Status-Status}\n", "--", *packages],
                          capture_output=True, text=True, stdin=subprocess.DEVNULL)
    installed = {line.split()[0] for line in proc.stdout.splitlines() if line.endswith(" installed")}
    return [p for p in packages if p not in installed]


def converge(params: dict) -> dict:
    check = bool(params.get("_ansible_check_mode"))
    actions: list[str] = []

    packages = list(params.get("packages") or [])
    if packages:
        missing = missing_packages(packages)
        if missing:
            actions.append(f"install {' '.join(missing)}")
            if not check:
                env = {"DEBIAN_FRONTEND": "noninteractive"}
                if params.get("update_cache"):
                    _run(["apt-get", "update", "-q"], env)
                _run(["apt-get", "install", "-y", "-q", "-o", "Dpkg::Options::=--force-confdef",
                      "-o", "Dpkg::Options::=--force-confold", "--", *missing], env)

    units = list(params.get("units") or [])
    for i, unit in enumerate(units):
        if not isinstance(unit, dict) or not unit.get("name"):
            raise ServiceError(f"units[{i}] = {unit!r} needs a name")
        if unit.get("state") and unit["state"] not in STATES:
            raise ServiceError(f"units[{i}].state = {unit['state']!r} is not one of {', '.join(STATES)}")
    if not units:
        return {"changed": bool(actions), "actions": actions}

    names = [u["name"] for u in units]
    states = unit_states(names)
    stale = any(s.get("LoadState") == "not-found" or s.get("NeedDaemonReload") == "yes" for s in states.values())
    if stale and not check:
        _run(["systemctl", "daemon-reload"])
        states = unit_states(names)

    for unit in units:
        name, st = unit["name"], states[unit["name"]]
        file_state, active = st.get("UnitFileState", ""), st.get("ActiveState", "")
        if st.get("LoadState") == "not-found" and not unit.get("masked") and not check:
            raise ServiceError(f"unit {name} does not exist on the host (is its package installed?)")

        def act(verb: str, label: str | None = None, _name: str = name) -> None:
            actions.append(f"{label or verb} {_name}")
            if not check:
                _run(["systemctl", verb, _name])

        state, enabled, masked = unit.get("state"), unit.get("enabled"), unit.get("masked")
        if state == "stopped" and active in ACTIVE:
            act("stop")
        if masked is True and file_state != "masked":
            act("mask")
            file_state = "masked"
        elif masked is False and file_state == "masked":
            act("unmask")
            file_state = ""
        if enabled is True and file_state not in ENABLED:
            act("enable")
        elif enabled is False and file_state == "enabled":
            act("disable")
        if state == "started" and active not in ACTIVE:
            act("start")
        elif state == "restarted":
            act("restart")
        elif state == "reloaded":
            act("reload" if active in ACTIVE else "start", "reload" if active in ACTIVE else "start")

    return {"changed": bool(actions), "actions": actions}


def main() -> None:
    try:
        with open(sys.argv[1], encoding="utf-8") as f:
            params = json.load(f)
        result = converge(params)
    except ServiceError as exc:
        result = {"failed": True, "msg": str(exc)}
    except (OSError, KeyError, ValueError) as exc:
        result = {"failed": True, "msg": f"opsctl_services: {type(exc).__name__}: {exc}"}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
