#!/usr/bin/env python3
"""Alerts from probe facts, each notified once per state change. Standard library only.

Conditions (one alert key each):

* ``pool:<pool>``          the pool is not ONLINE / ``zpool status -x`` is not healthy / missing,
* ``quota:<user>``         a user uses more than ``quota_percent`` (90) % of the quota,
* ``stale:<user>``         the newest backup is older than ``stale_days`` (7) days (a user with no
                           backup at all once the dataset is older than that),
* ``probe``                the host could not be probed at all (controller only).

State (``{key: {"firing", "since", "message", "notified"}}``) is a small JSON file: the monitor
timer keeps it in ``/var/lib/opsctl/alerts.json`` on the host, ``opsctl status --alert`` in
``$OPSCTL_CACHE/alerts-<host>.json``. A notification goes out when a key starts firing and when
a notified one resolves; a failed delivery is retried on the next run. The exit status of
:func:`main` is 1 while any alert fires (so cron/systemd see it), 0 otherwise, 2 on bad usage.

On the backup host (installed by the ``monitor`` role, next to ``probe.py`` and ``notify.py``)::

    python3 /usr/local/lib/opsctl/alerts.py --config /etc/opsctl/monitor.json \\
        --state /var/lib/opsctl/alerts.json
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable

try:  # in the opsctl package
    from opsctl.status import probe
except ImportError:  # the installed copy on the host: probe.py sits next to this file
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import probe  # type: ignore[no-redef]

STALE_DAYS = 7.0
QUOTA_PERCENT = 90.0
DAY = 86400.0


def _size(n: float | None) -> str:
    if n is None:
        return "?"
    for unit in ("B", "K", "M", "G", "T", "P"):
        if abs(n) < 1024 or unit == "P":
            return f"{n:.0f}{unit}" if unit == "B" else f"{n:.1f}{unit}"
        n /= 1024
    return f"{n}"


def _age(seconds: float) -> str:
    if seconds >= DAY:
        return f"{seconds / DAY:.1f} days"
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} hours"
    return f"{seconds / 60:.0f} minutes"


def evaluate(facts: dict, *, stale_days: float = STALE_DAYS, quota_percent: float = QUOTA_PERCENT,
             now: float | None = None) -> dict[str, dict]:
    """``{key: {"firing": bool, "message": str}}`` for every condition checked on one host's facts."""
    now = time.time() if now is None else now
    host = facts.get("host", "?")
    out: dict[str, dict] = {}
    if facts.get("probe_error"):
        out["probe"] = {"firing": True, "message": f"{host}: cannot probe the host: {facts['probe_error']}"}
        return out
    out["probe"] = {"firing": False, "message": f"{host}: probe works again"}
    pool = facts.get("pool") or {}
    name = pool.get("name", "?")
    if not pool.get("exists"):
        out[f"pool:{name}"] = {"firing": True,
                               "message": f"{host}: pool {name} is missing ({pool.get('error', 'no such pool')})"}
    elif pool.get("health") != "ONLINE" or not pool.get("healthy"):
        out[f"pool:{name}"] = {"firing": True, "message": f"{host}: pool {name} is {pool.get('health')}: "
                                                          f"{pool.get('status_x', '')}".strip()}
    else:
        out[f"pool:{name}"] = {"firing": False, "message": f"{host}: pool {name} is ONLINE again"}
    for user in facts.get("users") or []:
        who = user["user"]
        percent = user.get("percent")
        if percent is not None and percent > quota_percent:
            out[f"quota:{who}"] = {"firing": True, "message": (
                f"{host}: user {who} uses {percent:.1f}% of the quota ({_size(user.get('used_bytes'))} of "
                f"{_size(user.get('quota_bytes'))}, above {quota_percent:g}%)")}
        else:
            out[f"quota:{who}"] = {"firing": False, "message": f"{host}: user {who} is below {quota_percent:g}% "
                                                               f"of the quota again"}
        last = user.get("last_backup")
        limit = stale_days * DAY
        if last is not None and now - last > limit:
            out[f"stale:{who}"] = {"firing": True, "message": (
                f"{host}: last Time Machine backup of {who} was {_age(now - last)} ago "
                f"(more than {stale_days:g} days)")}
        elif last is None and user.get("created") is not None and now - user["created"] > limit:
            out[f"stale:{who}"] = {"firing": True, "message": (
                f"{host}: {who} has no Time Machine backup yet, {_age(now - user['created'])} after the dataset "
                "was created")}
        else:
            out[f"stale:{who}"] = {"firing": False, "message": f"{host}: {who} has a recent backup again"}
    return out


def transition(state: dict, current: dict[str, dict], now: float | None = None) -> tuple[dict, list[dict]]:
    """Merge ``current`` conditions into ``state``; return (new state, events to notify).

    An event is due when a key starts firing, or when a key whose firing was notified resolves;
    a due event stays due (``notified: false``) until :func:`mark_notified`.
    """
    now = time.time() if now is None else now
    new: dict = {}
    events = []
    for key, cond in current.items():
        old = state.get(key)
        if old is None:
            record = {"firing": cond["firing"], "since": now, "message": cond["message"],
                      "notified": not cond["firing"]}  # first sighting: only a firing alert is news
        elif old.get("firing") != cond["firing"]:
            # resolving an alert nobody was told about is not news either
            due = cond["firing"] or old.get("notified", False)
            record = {"firing": cond["firing"], "since": now, "message": cond["message"], "notified": not due}
        else:
            record = {**old, "message": cond["message"] if cond["firing"] else old.get("message", "")}
        new[key] = record
        if not record["notified"]:
            events.append({"key": key, "firing": record["firing"], "message": record["message"],
                           "since": record["since"]})
    return new, events


def mark_notified(state: dict, events: list[dict]) -> dict:
    for event in events:
        if event["key"] in state:
            state[event["key"]]["notified"] = True
    return state


def load_state(path: str) -> dict:
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except (FileNotFoundError, json.JSONDecodeError):
        return {}
    return data.get("alerts", {}) if isinstance(data, dict) else {}


def save_state(path: str, state: dict) -> None:
    """Atomic write, 0600 (messages name users and sizes)."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".alerts.", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump({"version": 1, "alerts": state}, fh, indent=1, sort_keys=True)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def event_text(event: dict) -> str:
    return ("opsctl ALERT: " if event["firing"] else "opsctl RESOLVED: ") + event["message"]


def process(facts: dict, state_path: str, send: Callable[[str, dict], dict], *, stale_days: float = STALE_DAYS,
            quota_percent: float = QUOTA_PERCENT, now: float | None = None,
            channels: list[str] | None = None) -> dict:
    """Evaluate, notify due events through ``send(text, fields) -> {channel: "ok"|error}``, save state.

    Returns ``{"firing": [...], "events": [...], "delivery": {key: results}}``.
    """
    current = evaluate(facts, stale_days=stale_days, quota_percent=quota_percent, now=now)
    state, events = transition(load_state(state_path), current, now)
    delivered, delivery = [], {}
    for event in events:
        if channels is not None and not channels:
            delivered.append(event)  # nothing configured: the exit status is the only signal
            continue
        results = send(event_text(event), {"host": facts.get("host"), "alert": event["key"],
                                           "state": "firing" if event["firing"] else "resolved"})
        delivery[event["key"]] = results
        if any(v == "ok" for v in results.values()):
            delivered.append(event)
    mark_notified(state, delivered)
    save_state(state_path, state)
    firing = [{"key": k, "message": v["message"], "since": v["since"]} for k, v in sorted(state.items())
              if v["firing"]]
    return {"host": facts.get("host"), "firing": firing, "events": events, "delivery": delivery}


def load_notifier(path: str):
    spec = importlib.util.spec_from_file_location("opsctl_host_notify", path)
    if spec is None or spec.loader is None:
        raise ImportError(path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(argv: list[str] | None = None) -> int:
    here = os.path.dirname(os.path.abspath(__file__))
    parser = argparse.ArgumentParser(description="probe this backup host, notify alert state changes")
    parser.add_argument("--config", required=True, help="probe config JSON ({host, state, mdns, stale_days, ...})")
    parser.add_argument("--state", default="/var/lib/opsctl/alerts.json", help="alert state file")
    parser.add_argument("--notifier", default=os.path.join(here, "notify.py"), help="charlm's notify.py")
    parser.add_argument("--stale-days", type=float, default=None)
    parser.add_argument("--quota-percent", type=float, default=None)
    parser.add_argument("--facts-out", help="also write the probe facts JSON here (atomically)")
    args = parser.parse_args(argv)
    try:
        with open(args.config, encoding="utf-8") as fh:
            config = json.load(fh)
    except (OSError, json.JSONDecodeError) as exc:
        print(f"opsctl-monitor: cannot read {args.config}: {exc}", file=sys.stderr)
        return 2
    stale = args.stale_days if args.stale_days is not None else float(config.get("stale_days", STALE_DAYS))
    quota = args.quota_percent if args.quota_percent is not None else float(config.get("quota_percent",
                                                                                        QUOTA_PERCENT))
    notifier = load_notifier(args.notifier)
    facts = probe.collect(config)
    if args.facts_out:
        save_json(args.facts_out, facts)
    result = process(facts, args.state, lambda text, fields: notifier.notify(text, fields), stale_days=stale,
                     quota_percent=quota, channels=notifier.configured_channels())
    for event in result["events"]:
        print(event_text(event))
    for key, outcome in result["delivery"].items():
        for channel, status in outcome.items():
            if status != "ok":
                print(f"opsctl-monitor: {key}: notification via {channel} failed: {status}", file=sys.stderr)
    print(f"opsctl-monitor: {len(result['firing'])} alert(s) firing: "
          + (", ".join(a["key"] for a in result["firing"]) or "none"))
    return 1 if result["firing"] else 0


def save_json(path: str, data: dict) -> None:
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".facts.", dir=directory)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(data, fh)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


if __name__ == "__main__":
    raise SystemExit(main())
