#!/usr/bin/env python3
"""Read-only facts of one backup host as one JSON document. Standard library only.

This single file is the source of truth for every status probe: ``opsctl status`` streams it
to the host (``python3 - --config-b64 ...`` with this source on stdin) and the monitor timer
on the host runs the installed copy (``/usr/local/lib/opsctl/probe.py``) through
``alerts.py``. It never changes anything on the host.

Input (``--config FILE`` or ``--config-b64 BASE64``), JSON::

    {"host": "backup", "state": <the host's desired state>, "mdns": true}

``state`` is the backup server's desired state (:mod:`opsctl.state.backup`, the dict the roles get
as ``opsctl.state``); only the pool's name, the Time Machine shares and the services that must
run are read from it.

Output: ``{"host", "probed_at", "pool": {...}, "users": [...], "services": {...},
"mdns": {...}, "errors": [...]}`` (see :func:`collect`). Sizes are bytes, times are Unix
seconds (UTC).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import re
import subprocess
import sys
import time

PROBE_VERSION = 1
BUNDLE_SUFFIXES = (".sparsebundle", ".backupbundle")
#: Written by macOS inside the bundle when a backup completes (APFS Time Machine).
COMPLETION_MARKERS = ("com.apple.TimeMachine.SnapshotHistory.plist", "com.apple.TimeMachine.Results.plist")
_ENV = {**os.environ, "LC_ALL": "C", "LANG": "C", "PATH": os.environ.get("PATH", "") + ":/usr/sbin:/sbin"}


def run(argv: list[str], timeout: float = 30) -> tuple[int, str, str]:
    """Run a command; (rc, stdout, stderr). A missing command is rc 127, a timeout rc 124."""
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=_ENV,  # noqa: S603
                              stdin=subprocess.DEVNULL)
    except FileNotFoundError:
        return 127, "", f"{argv[0]}: command not found"
    except subprocess.TimeoutExpired:
        return 124, "", f"{argv[0]}: timed out after {timeout:g}s"
    return proc.returncode, proc.stdout, proc.stderr


# --------------------------------------------------------------------------- what to probe


def plan(config: dict) -> dict:
    """The pool, users and services to look at, from the host's desired state."""
    state = config.get("state") or {}
    users = [{"user": s["user"], "share": s["name"], "dataset": s["dataset"], "path": s["path"],
              "protocols": list(s.get("protocols") or [])} for s in state.get("shares") or [] if s.get("time_machine")]
    services = list(state.get("services") or [])
    return {"host": config.get("host") or os.uname().nodename, "pool": (state.get("pool") or {}).get("name", "tank"),
            "users": users, "services": services, "containers": dict(state.get("in_containers") or {}),
            "mdns": bool(config.get("mdns", True)) and "avahi-daemon" in services}


# --------------------------------------------------------------------------- pool


_SCAN_DATE = re.compile(r"\b(?:on|since)\s+(\w{3}\s+\w{3}\s+\d{1,2}\s+\d{1,2}:\d{2}:\d{2}\s+\d{4})")
_ERR_ROW = re.compile(r"^\s+(\S+)\s+([A-Z]+)\s+(\d+)\s+(\d+)\s+(\d+)")


def _local_time(text: str) -> float | None:
    try:
        return time.mktime(time.strptime(" ".join(text.split()), "%a %b %d %H:%M:%S %Y"))
    except ValueError:
        return None


def parse_zpool_status(text: str) -> dict:
    """State, scan (scrub/resilver) and per-device READ/WRITE/CKSUM counts of ``zpool status -p``."""
    out: dict = {"state": None, "scan": None, "scan_kind": None, "scrub_time": None, "scrub_in_progress": False,
                 "devices": [], "errors": {"read": 0, "write": 0, "cksum": 0}, "data_errors": None}
    in_config = False
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("state:"):
            out["state"] = stripped.split(":", 1)[1].strip()
        elif stripped.startswith("scan:"):
            scan = stripped.split(":", 1)[1].strip()
            out["scan"] = scan
            out["scan_kind"] = scan.split()[0] if scan else None
            out["scrub_in_progress"] = scan.startswith("scrub in progress")
            match = _SCAN_DATE.search(scan)
            if match and scan.startswith("scrub"):
                out["scrub_time"] = _local_time(match.group(1))
        elif stripped.startswith("config:"):
            in_config = True
        elif stripped.startswith("errors:"):
            in_config = False
            out["data_errors"] = stripped.split(":", 1)[1].strip()
        elif in_config:
            match = _ERR_ROW.match(line)
            if match and match.group(1) != "NAME":
                name, state, read, write, cksum = match.groups()
                out["devices"].append({"name": name, "state": state, "read": int(read), "write": int(write),
                                       "cksum": int(cksum)})
                for key, value in (("read", read), ("write", write), ("cksum", cksum)):
                    out["errors"][key] += int(value)
    return out


def pool_facts(pool: str) -> dict:
    facts: dict = {"name": pool, "exists": False, "health": None, "healthy": False}
    rc, out, err = run(["zpool", "list", "-Hp", "-o", "name,health,size,allocated,free,capacity", pool])
    if rc != 0:
        facts["error"] = (err or out).strip() or f"zpool list exited {rc}"
        return facts
    fields = out.strip().split("\t")
    if len(fields) >= 6:
        facts.update(exists=True, health=fields[1], size_bytes=_int(fields[2]), allocated_bytes=_int(fields[3]),
                     free_bytes=_int(fields[4]), capacity_percent=_int(fields[5].rstrip("%")))
    rc, out, err = run(["zpool", "status", "-x", pool])
    facts["status_x"] = (out or err).strip()
    facts["healthy"] = rc == 0 and "is healthy" in out and facts["health"] == "ONLINE"
    rc, out, err = run(["zpool", "status", "-p", pool])
    if rc == 0:
        facts.update(parse_zpool_status(out))
    else:
        facts["status_error"] = (err or out).strip()
    return facts


def _int(text: str) -> int | None:
    try:
        return int(text)
    except ValueError:
        return None


# --------------------------------------------------------------------------- users


def dataset_props(datasets: list[str]) -> dict[str, dict]:
    """``zfs get -Hp`` used, quota, available, creation per dataset (missing datasets are absent)."""
    if not datasets:
        return {}
    rc, out, _err = run(["zfs", "get", "-Hp", "-o", "name,property,value", "used,quota,available,creation",
                         *datasets])
    props: dict[str, dict] = {}
    for line in out.splitlines():
        parts = line.split("\t")
        if len(parts) == 3:
            props.setdefault(parts[0], {})[parts[1]] = _int(parts[2])
    return props


def bundle_facts(path: str) -> list[dict]:
    """Each ``*.sparsebundle`` / ``*.backupbundle`` at the top of ``path``: size, newest change, completion."""
    bundles = []
    try:
        entries = sorted(os.scandir(path), key=lambda e: e.name)
    except OSError:
        return bundles
    for entry in entries:
        if not entry.name.lower().endswith(BUNDLE_SUFFIXES) or not entry.is_dir(follow_symlinks=False):
            continue
        newest = entry.stat(follow_symlinks=False).st_mtime
        size = 0
        files = 0
        marker = None
        for root, dirs, names in os.walk(entry.path):
            for name in dirs + names:
                try:
                    st = os.lstat(os.path.join(root, name))
                except OSError:
                    continue
                newest = max(newest, st.st_mtime)
                if name in names:
                    files += 1
                    size += st.st_size
                    if root == entry.path and name in COMPLETION_MARKERS:
                        marker = max(marker or 0.0, st.st_mtime)
        bundles.append({"name": entry.name, "bytes": size, "files": files, "newest_change": newest,
                        "completed": marker})
    return bundles


def user_facts(users: list[dict]) -> list[dict]:
    props = dataset_props([u["dataset"] for u in users])
    out = []
    for user in users:
        p = props.get(user["dataset"])
        facts = {**user, "exists": p is not None}
        if p is not None:
            quota = p.get("quota") or None  # 0 = none
            facts.update(used_bytes=p.get("used"), quota_bytes=quota, available_bytes=p.get("available"),
                         created=p.get("creation"),
                         percent=round(100.0 * p["used"] / quota, 1) if quota and p.get("used") is not None else None)
        bundles = bundle_facts(user["path"])
        facts["bundles"] = bundles
        completed = [b["completed"] for b in bundles if b["completed"]]
        newest = [b["newest_change"] for b in bundles]
        if completed:
            facts["last_backup"], facts["last_backup_source"] = max(completed), "completion marker"
        elif newest:
            facts["last_backup"], facts["last_backup_source"] = max(newest), "newest change in bundle"
        else:
            facts["last_backup"], facts["last_backup_source"] = None, "no bundle"
        out.append(facts)
    return out


# --------------------------------------------------------------------------- services and mDNS


def service_facts(services: list[str], containers: dict[str, str] | None = None) -> dict[str, str]:
    """``systemctl is-active`` of each service; one that runs as a container (backup.mode containers,
    ``containers``: service -> container) reads its container's state, a running one as ``active``."""
    out = {}
    for name in services:
        container = (containers or {}).get(name)
        if container:
            rc, stdout, stderr = run(["docker", "inspect", "--format", "{{.State.Status}}", container], timeout=15)
            state = stdout.strip() if rc == 0 else "inactive"
            out[name] = "active" if state == "running" else (state or "unknown")
            continue
        _rc, stdout, stderr = run(["systemctl", "is-active", name], timeout=15)
        out[name] = (stdout.strip() or stderr.strip() or "unknown").splitlines()[0]
    return out


def _unescape(text: str) -> str:
    """avahi-browse -p escapes bytes as \\DDD (decimal)."""
    return re.sub(r"\\(\d{3})", lambda m: chr(int(m.group(1))), text)


def parse_avahi_browse(text: str) -> list[dict]:
    """Resolved (``=``) lines of ``avahi-browse -atrp``, one dict per distinct service."""
    seen: dict[tuple, dict] = {}
    for line in text.splitlines():
        if not line.startswith("="):
            continue
        fields = line.split(";", 9)
        if len(fields) < 9:
            continue
        _, iface, proto, name, stype, domain, host, address, port = fields[:9]
        txt = re.findall(r'"((?:[^"\\]|\\.)*)"', fields[9]) if len(fields) > 9 else []
        entry = {"name": _unescape(name), "type": stype, "domain": domain, "host": host, "port": _int(port),
                 "txt": [_unescape(t) for t in txt]}
        key = (entry["name"], stype, tuple(entry["txt"]))
        record = seen.setdefault(key, {**entry, "addresses": [], "interfaces": []})
        if address not in record["addresses"]:
            record["addresses"].append(address)
        if f"{iface}/{proto}" not in record["interfaces"]:
            record["interfaces"].append(f"{iface}/{proto}")
    return list(seen.values())


def adisk_volumes(services: list[dict]) -> list[str]:
    """Volume names in ``_adisk._tcp`` TXT records (``dk0=adVN=alice,adVF=0x82``)."""
    names = []
    for svc in services:
        if svc["type"] != "_adisk._tcp":
            continue
        for txt in svc["txt"]:
            match = re.match(r"dk\d+=(.*)", txt)
            if match:
                for part in match.group(1).split(","):
                    if part.startswith("adVN=") and part[5:] not in names:
                        names.append(part[5:])
    return names


def mdns_facts() -> dict:
    rc, out, err = run(["avahi-browse", "-atrpk", "--terminate"], timeout=30)
    services = parse_avahi_browse(out)
    facts = {"ok": rc == 0, "services": services, "types": sorted({s["type"] for s in services}),
             "adisk_volumes": adisk_volumes(services)}
    if rc != 0:
        facts["error"] = (err or out).strip()[-300:] or f"avahi-browse exited {rc}"
    return facts


# --------------------------------------------------------------------------- all of it


def collect(config: dict) -> dict:
    """Every fact of the host described by ``config`` (see the module docstring)."""
    started = time.time()
    what = plan(config)
    facts: dict = {"host": what["host"], "probe_version": PROBE_VERSION, "probed_at": started, "errors": []}
    facts["pool"] = pool_facts(what["pool"])
    if not facts["pool"]["exists"]:
        facts["errors"].append(f"pool {what['pool']}: {facts['pool'].get('error', 'missing')}")
    facts["users"] = user_facts(what["users"])
    for user in facts["users"]:
        if not user["exists"]:
            facts["errors"].append(f"dataset {user['dataset']} of user {user['user']} is missing")
    facts["services"] = service_facts(what["services"], what["containers"])
    facts["mdns"] = mdns_facts() if what["mdns"] else {"ok": True, "services": [], "types": [],
                                                      "adisk_volumes": [], "skipped": True}
    for user in facts["users"]:
        user["advertised"] = user["share"] in facts["mdns"]["adisk_volumes"]
    facts["duration_seconds"] = round(time.time() - started, 3)
    return facts


def read_config(args: argparse.Namespace) -> dict:
    if args.config_b64:
        return json.loads(base64.b64decode(args.config_b64))
    if args.config:
        with open(args.config, encoding="utf-8") as fh:
            return json.load(fh)
    return {}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="print the read-only status facts of this backup host as JSON")
    parser.add_argument("--config", help="JSON config file ({host, state, mdns})")
    parser.add_argument("--config-b64", help="the same JSON, base64-encoded")
    parser.add_argument("--no-mdns", action="store_true", help="skip avahi-browse")
    args = parser.parse_args(argv)
    config = read_config(args)
    if args.no_mdns:
        config["mdns"] = False
    json.dump(collect(config), sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
