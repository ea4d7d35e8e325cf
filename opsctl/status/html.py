"""A single self-contained HTML status page: inline CSS, no scripts, no external assets.

Per host: pool health, capacity and scrub age; services; one row per user with a usage bar
(green / amber above 75 % / red above the alert threshold) and the last backup, highlighted
when older than ``stale_days``. Open it from disk or serve it from any static web server.

Every value from the probe (names, states, numbers) is HTML-escaped (:func:`_e`); numbers used in
attributes and styles are checked to be numbers first, so a host cannot inject markup or CSS.
"""

from __future__ import annotations

import datetime as dt
import time
from html import escape
from pathlib import Path

from opsctl.files import atomic_write
from opsctl.sizes import human_size

CSS = """
body{font-family:-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;margin:24px;color:#1d1d1f;background:#fafafa}
h1{font-size:22px;margin:0 0 4px}h2{font-size:18px;margin:28px 0 8px}
.meta{color:#666;font-size:13px}
.badge{display:inline-block;padding:2px 8px;border-radius:10px;font-size:12px;font-weight:600;color:#fff}
.ok{background:#2e7d32}.bad{background:#c62828}.warn{background:#ef6c00}.muted{background:#888}
table{border-collapse:collapse;width:100%;max-width:1100px;background:#fff;box-shadow:0 1px 2px #0002}
th,td{text-align:left;padding:6px 10px;border-bottom:1px solid #eee;font-size:14px;vertical-align:middle}
th{background:#f0f0f0;font-weight:600}
.bar{position:relative;width:260px;height:14px;background:#e6e6e6;border-radius:7px;overflow:hidden}
.fill{height:100%;background:#43a047}.fill.high{background:#fb8c00}.fill.full{background:#e53935}
tr.stale td{background:#fdecea}tr.stale td.last{color:#b71c1c;font-weight:600}
.errors{color:#b71c1c}
"""


def _e(value: object) -> str:
    """Any value as escaped HTML text (quotes too, so it is safe in attributes)."""
    return escape(str(value), quote=True)


def _num(value: object) -> float | None:
    """``value`` if it is a real number, else None (probe output is data, not trusted markup)."""
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _size(n: int | float | None) -> str:
    return _e(human_size(_num(n), iec=True))


def _when(ts: float | None, now: float) -> str:
    if ts is None:
        return "never"
    stamp = dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    age = now - ts
    if age < 3600:
        rel = f"{max(age, 0) / 60:.0f} min ago"
    elif age < 86400:
        rel = f"{age / 3600:.1f} h ago"
    else:
        rel = f"{age / 86400:.1f} days ago"
    return f"{stamp} ({rel})"


def is_stale(user: dict, stale_days: float, now: float) -> bool:
    last = user.get("last_backup")
    return last is None or now - last > stale_days * 86400


def _user_row(user: dict, *, stale_days: float, quota_percent: float, now: float) -> str:
    percent = _num(user.get("percent"))
    width = min(max(percent or 0.0, 0.0), 100.0)
    level = "full" if (percent or 0) > quota_percent else "high" if (percent or 0) > 75 else ""
    stale = is_stale(user, stale_days, now)
    quota = user.get("quota_bytes")
    bundles = ", ".join(_e(b["name"]) for b in user.get("bundles") or []) or "–"
    return (
        f'<tr class="user{" stale" if stale else ""}" data-user="{_e(user["user"])}" '
        f'data-percent="{percent if percent is not None else ""}">'
        f"<td>{_e(user['user'])}</td><td>{_e(user.get('share', ''))}</td>"
        f"<td>{_size(user.get('used_bytes'))}</td><td>{_size(quota) if quota else 'none'}</td>"
        f'<td><div class="bar" title="{percent if percent is not None else 0}%">'
        f'<div class="fill {level}" style="width:{width:.1f}%"></div></div></td>'
        f"<td>{'' if percent is None else f'{percent:.1f}%'}</td>"
        f'<td class="last">{_e(_when(_num(user.get("last_backup")), now))}</td><td>{bundles}</td></tr>'
    )


def _host(facts: dict, *, stale_days: float, quota_percent: float, now: float) -> str:
    host = _e(facts.get("host", "?"))
    if facts.get("probe_error"):
        return (f'<section class="host" data-host="{host}"><h2>{host} <span class="badge bad">unreachable</span>'
                f'</h2><p class="errors">{_e(facts["probe_error"])}</p></section>')
    pool = facts.get("pool") or {}
    health = pool.get("health") or "missing"
    badge = "ok" if pool.get("healthy") is True else "bad"
    scrub = _num(pool.get("scrub_time"))
    errors = pool.get("errors") or {}
    services = " ".join(
        f'<span class="badge {"ok" if state == "active" else "bad"}">{_e(name)}: {_e(state)}</span>'
        for name, state in (facts.get("services") or {}).items())
    mdns = facts.get("mdns") or {}
    rows = "".join(_user_row(u, stale_days=stale_days, quota_percent=quota_percent, now=now)
                   for u in facts.get("users") or [])
    problems = "".join(f"<li>{_e(e)}</li>" for e in facts.get("errors") or [])
    pool_name = _e(pool.get("name", ""))
    return f"""<section class="host" data-host="{host}">
<h2>{host} <span class="badge {badge}" id="pool-{pool_name}">pool {pool_name} {_e(health)}</span></h2>
<p class="meta">capacity {_size(pool.get('allocated_bytes'))} of {_size(pool.get('size_bytes'))}
 ({_e(pool.get('capacity_percent', '–'))}%) · last scrub {_e(_when(scrub, now))} · errors read
 {_e(errors.get('read', 0))} write {_e(errors.get('write', 0))} cksum {_e(errors.get('cksum', 0))}</p>
<p>{services}</p>
<p class="meta">mDNS: {_e(', '.join(str(t) for t in mdns.get('types') or []) or 'nothing seen')}</p>
<table><thead><tr><th>user</th><th>share</th><th>used</th><th>quota</th><th>usage</th><th>%</th>
<th>last backup</th><th>bundles</th></tr></thead><tbody>{rows}</tbody></table>
{f'<ul class="errors">{problems}</ul>' if problems else ''}
</section>"""


def render(all_facts: list[dict], *, stale_days: float = 7, quota_percent: float = 90, now: float | None = None,
           title: str = "opsctl backup status") -> str:
    now = time.time() if now is None else now
    body = "\n".join(_host(f, stale_days=stale_days, quota_percent=quota_percent, now=now) for f in all_facts)
    generated = dt.datetime.fromtimestamp(now, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>{_e(title)}</title><style>{CSS}</style></head>
<body><h1>{_e(title)}</h1>
<p class="meta">generated {generated} · backups older than {stale_days:g} days are highlighted · quota alert above
 {quota_percent:g}%</p>
{body}
</body></html>
"""


def write(path: Path | str, all_facts: list[dict], **kwargs) -> Path:
    path = Path(path)
    atomic_write(path, render(all_facts, **kwargs), mode=0o644)
    return path
