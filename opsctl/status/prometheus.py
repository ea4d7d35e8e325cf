"""Probe facts in the Prometheus text exposition format, for node_exporter's textfile collector.

Point node_exporter at a directory (``--collector.textfile.directory``) and write
``opsctl status --prometheus DIR/opsctl.prom`` from a timer; the file is replaced atomically
so the collector never reads half a file. Metric names carry their unit (``_bytes``,
``_seconds``, ``_ratio``); labels are ``host``, ``pool``, ``user``, ``service``, ``type``.
"""

from __future__ import annotations

from pathlib import Path

from opsctl.site.edit import atomic_write

#: name -> (type, help)
METRICS: dict[str, tuple[str, str]] = {
    "opsctl_probe_success": ("gauge", "1 if the host could be probed"),
    "opsctl_probe_timestamp_seconds": ("gauge", "Unix time of the probe"),
    "opsctl_probe_duration_seconds": ("gauge", "how long the probe took on the host"),
    "opsctl_pool_healthy": ("gauge", "1 if the pool is ONLINE and zpool status -x reports it healthy"),
    "opsctl_pool_state": ("gauge", "1 for the pool's current health state"),
    "opsctl_pool_size_bytes": ("gauge", "pool size"),
    "opsctl_pool_allocated_bytes": ("gauge", "pool space allocated"),
    "opsctl_pool_free_bytes": ("gauge", "pool space free"),
    "opsctl_pool_errors": ("gauge", "read/write/checksum error counts summed over the pool's config rows"),
    "opsctl_pool_last_scrub_timestamp_seconds": ("gauge", "Unix time the last scrub finished (absent: never)"),
    "opsctl_user_used_bytes": ("gauge", "space used by the user's Time Machine dataset"),
    "opsctl_user_quota_bytes": ("gauge", "quota of the user's Time Machine dataset (0: none)"),
    "opsctl_user_quota_used_ratio": ("gauge", "used / quota of the user's dataset"),
    "opsctl_user_bundle_bytes": ("gauge", "apparent size of the user's backup bundles"),
    "opsctl_last_backup_timestamp_seconds": ("gauge", "Unix time of the user's newest completed backup"),
    "opsctl_user_advertised": ("gauge", "1 if the user's share is in the _adisk._tcp mDNS record"),
    "opsctl_service_up": ("gauge", "1 if the systemd service is active"),
    "opsctl_mdns_service_advertised": ("gauge", "1 for each mDNS service type seen by avahi-browse"),
}


def escape(value: object) -> str:
    """A label value: backslash, double quote and newline escaped."""
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _fmt(value: float | int | bool) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    return repr(float(value)) if value == value else "NaN"


def render(all_facts: list[dict]) -> str:
    """Text exposition of the facts of every probed host (one HELP/TYPE block per metric)."""
    samples: dict[str, list[tuple[dict, float | int | bool]]] = {name: [] for name in METRICS}

    def add(name: str, labels: dict, value) -> None:
        if value is not None:
            samples[name].append((labels, value))

    for facts in all_facts:
        host = facts.get("host", "")
        ok = not facts.get("probe_error")
        add("opsctl_probe_success", {"host": host}, ok)
        if not ok:
            continue
        add("opsctl_probe_timestamp_seconds", {"host": host}, facts.get("probed_at"))
        add("opsctl_probe_duration_seconds", {"host": host}, facts.get("duration_seconds"))
        pool = facts.get("pool") or {}
        pl = {"host": host, "pool": pool.get("name", "")}
        add("opsctl_pool_healthy", pl, bool(pool.get("healthy")))
        if pool.get("health"):
            add("opsctl_pool_state", {**pl, "state": pool["health"]}, 1)
        add("opsctl_pool_size_bytes", pl, pool.get("size_bytes"))
        add("opsctl_pool_allocated_bytes", pl, pool.get("allocated_bytes"))
        add("opsctl_pool_free_bytes", pl, pool.get("free_bytes"))
        for kind, count in (pool.get("errors") or {}).items():
            add("opsctl_pool_errors", {**pl, "kind": kind}, count)
        add("opsctl_pool_last_scrub_timestamp_seconds", pl, pool.get("scrub_time"))
        for user in facts.get("users") or []:
            ul = {**pl, "user": user["user"]}
            add("opsctl_user_used_bytes", ul, user.get("used_bytes"))
            if user.get("exists"):
                add("opsctl_user_quota_bytes", ul, user.get("quota_bytes") or 0)
            if user.get("quota_bytes") and user.get("used_bytes") is not None:
                add("opsctl_user_quota_used_ratio", ul, round(user["used_bytes"] / user["quota_bytes"], 6))
            add("opsctl_user_bundle_bytes", ul, sum(b["bytes"] for b in user.get("bundles") or []))
            add("opsctl_last_backup_timestamp_seconds", ul, user.get("last_backup"))
            if not (facts.get("mdns") or {}).get("skipped"):
                add("opsctl_user_advertised", ul, bool(user.get("advertised")))
        for service, state in (facts.get("services") or {}).items():
            add("opsctl_service_up", {"host": host, "service": service}, state == "active")
        for stype in (facts.get("mdns") or {}).get("types") or []:
            add("opsctl_mdns_service_advertised", {"host": host, "type": stype}, 1)
    lines = []
    for name, (kind, help_text) in METRICS.items():
        if not samples[name]:
            continue
        lines.append(f"# HELP {name} {help_text}")
        lines.append(f"# TYPE {name} {kind}")
        for labels, value in samples[name]:
            label_text = ",".join(f'{k}="{escape(v)}"' for k, v in labels.items())
            lines.append(f"{name}{{{label_text}}} {_fmt(value)}")
    return "\n".join(lines) + "\n"


def write(path: Path | str, all_facts: list[dict]) -> Path:
    """Atomically replace ``path`` (0644: node_exporter runs as its own user)."""
    path = Path(path)
    atomic_write(path, render(all_facts), mode=0o644)
    return path
