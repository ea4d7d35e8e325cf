"""Observe the backup hosts: one probe script, run on the host, and its reports.

- :mod:`.probe`      stdlib-only facts collector (run on the host; the monitor timer uses the same file),
- :mod:`.alerts`     alert conditions and their once-per-state-change notification state (stdlib only),
- :mod:`.prometheus` node_exporter textfile format, :mod:`.html` a self-contained status page.

Example::

    facts = probe_site(load().site)          # one dict per backup host
"""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path

from opsctl.connections import connection_for
from opsctl.render.context import context_for
from opsctl.site.models import Site

PROBE_FILE = Path(__file__).resolve().parent / "probe.py"
ALERTS_FILE = Path(__file__).resolve().parent / "alerts.py"


def backup_hosts(site: Site) -> list[str]:
    return [site.backup.host] if site.backup else []


def probe_config(site: Site, host: str, *, mdns: bool = True) -> dict:
    """The probe's input for ``host``: the desired state the roles get as ``opsctl.state``."""
    return {"host": host, "state": context_for(site, host)["state"], "mdns": mdns}


def probe_host(site: Site, host: str, *, mdns: bool = True, timeout: float = 180) -> dict:
    """Run :mod:`.probe` on ``host`` through its connection; facts, or ``{"probe_error": ...}``."""
    config = base64.b64encode(json.dumps(probe_config(site, host, mdns=mdns)).encode()).decode()
    started = time.monotonic()
    try:
        conn = connection_for(site.host(host))
        res = conn.run_stdin(f"python3 - --config-b64 {config}", PROBE_FILE.read_text(), timeout=timeout)
    except Exception as exc:  # unreachable host, missing sandbox VM, timeout: a status, not a crash
        return {"host": host, "probe_error": f"{type(exc).__name__}: {exc}"}
    if res.returncode != 0:
        tail = (res.stderr or res.stdout or "").strip().splitlines()[-3:]
        return {"host": host, "probe_error": f"probe exited {res.returncode}: {' '.join(tail)}"}
    try:
        facts = json.loads(res.stdout)
    except json.JSONDecodeError:
        return {"host": host, "probe_error": f"probe printed no JSON: {res.stdout[-200:]!r}"}
    facts["host"] = host
    facts["round_trip_seconds"] = round(time.monotonic() - started, 3)
    return facts


def probe_site(site: Site, hosts: list[str] | None = None, *, mdns: bool = True) -> list[dict]:
    return [probe_host(site, h, mdns=mdns) for h in (hosts or backup_hosts(site))]
