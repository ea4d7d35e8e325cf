"""``opsctl status``: read-only health of the backup hosts, as a table, JSON, Prometheus text or HTML;
``--alert`` notifies state changes (pool not ONLINE, quota above 90 %, stale backups) and exits 1
while any alert fires.

Everything the probe reports (pool, service, user, bundle and mDNS names, error text) comes from the
host and is printed literally (``Text``, never Rich markup)."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from opsctl.cli.common import EXIT_BAD_INPUT, JsonOpt, SiteOpt, console, err, fail, load_site, print_json, styled
from opsctl.sizes import human_size


def _ago(ts: float | None, now: float) -> str:
    if ts is None:
        return "never"
    age = now - ts
    stamp = dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d %H:%M")
    if age < 3600:
        return f"{stamp} ({max(age, 0) / 60:.0f} min ago)"
    if age < 86400:
        return f"{stamp} ({age / 3600:.1f} h ago)"
    return f"{stamp} ({age / 86400:.1f} d ago)"


def _show(facts: dict, stale_days: float, quota_percent: float, now: float) -> None:
    host = str(facts["host"])
    if facts.get("probe_error"):
        console.print(styled((f"{host}: cannot probe", "bold red"), ": ", str(facts["probe_error"])), highlight=False,
                      soft_wrap=True)
        return
    pool = facts["pool"]
    style = "green" if pool.get("healthy") else "bold red"
    errors = pool.get("errors") or {}
    scrub = _ago(pool.get("scrub_time"), now)
    console.print(styled(
        (host, "bold"), "  pool ", (str(pool["name"]), "bold"), " ", (str(pool.get("health") or "missing"), style),
        f"  {human_size(pool.get('allocated_bytes'))} of {human_size(pool.get('size_bytes'))}"
        f" ({pool.get('capacity_percent', '–')}%)  scrub: {scrub}"
        f"  errors r/w/c: {errors.get('read', 0)}/{errors.get('write', 0)}/{errors.get('cksum', 0)}"),
        highlight=False, soft_wrap=True)
    if pool.get("status_x") and not pool.get("healthy"):
        console.print(f"  {pool['status_x']}", style="red", highlight=False, markup=False)
    services = Text("  ").join(styled((f"{name}: {s}", "green" if s == "active" else "red"))
                               for name, s in (facts.get("services") or {}).items())
    console.print(styled("  services: ", services if services else "none"), highlight=False, soft_wrap=True)
    mdns = facts.get("mdns") or {}
    if not mdns.get("skipped"):
        types = ", ".join(str(t) for t in mdns.get("types") or [])
        volumes = ", ".join(str(v) for v in mdns.get("adisk_volumes") or [])
        console.print(styled("  mDNS: ", (types, "") if types else ("nothing seen", "red"),
                             f"  adisk volumes: {volumes or '–'}"), highlight=False, soft_wrap=True)
    table = Table(title=Text(f"{host}: Time Machine users"), title_justify="left")
    for col, justify in (("user", "left"), ("used", "right"), ("quota", "right"), ("%", "right"),
                         ("last backup", "left"), ("bundles", "left"), ("mDNS", "left")):
        table.add_column(col, justify=justify)
    for user in facts.get("users", []):
        percent = user.get("percent")
        pstyle = "red" if (percent or 0) > quota_percent else "yellow" if (percent or 0) > 75 else ""
        last = user.get("last_backup")
        stale = last is None or now - last > stale_days * 86400
        table.add_row(
            styled(str(user["user"]), *(() if user.get("exists") else (" ", ("(no dataset)", "red")))),
            Text(human_size(user.get("used_bytes"))),
            Text(human_size(user.get("quota_bytes")) if user.get("quota_bytes") else "none"),
            Text(f"{percent:.1f}" if percent is not None else "–", style=pstyle),
            Text(_ago(last, now), style="red" if stale else ""),
            Text(", ".join(str(b["name"]) for b in user.get("bundles", [])) or "–"),
            Text("–") if mdns.get("skipped") else (Text("yes") if user.get("advertised") else Text("no", style="red")))
    console.print(table)
    for problem in facts.get("errors", []):
        console.print(styled("  ", ("problem:", "red"), " ", str(problem)), highlight=False, soft_wrap=True)


def _alerts(all_facts: list[dict], state_dir: Path, stale_days: float, quota_percent: float) -> list[dict]:
    from opsctl import notify
    from opsctl.status import alerts

    try:
        channels = notify.configured_channels()
    except RuntimeError as exc:  # charlm (the notifier) is not installed
        fail(str(exc))
    results = []
    for facts in all_facts:
        state = state_dir / f"alerts-{facts['host']}.json"
        results.append(alerts.process(facts, str(state), notify.notify, stale_days=stale_days,
                                      quota_percent=quota_percent, channels=channels))
    return results


def status(
    site: SiteOpt = None,
    limit: Annotated[list[str] | None, typer.Option("--limit", "-l", help="only these backup hosts")] = None,
    as_json: JsonOpt = False,
    prometheus: Annotated[Path | None, typer.Option(
        "--prometheus", help="write node_exporter textfile metrics to this file (atomically)",
        dir_okay=False)] = None,
    html: Annotated[Path | None, typer.Option("--html", help="write a self-contained HTML page to this file",
                                              dir_okay=False)] = None,
    alert: Annotated[bool, typer.Option(
        "--alert", help="notify alert state changes (CHARLM_WEBHOOK_URL / TELEGRAM_*) and exit 1 while any "
                        "alert fires")] = False,
    stale_days: Annotated[float, typer.Option("--stale-days", min=0.0, help="a backup older than this is stale")] = 7,
    quota_percent: Annotated[float, typer.Option("--quota-percent", min=0.0, max=100.0,
                                                 help="alert above this share of the quota")] = 90,
    state_dir: Annotated[Path | None, typer.Option(
        "--state-dir", help="where alert state is kept [default: $OPSCTL_CACHE]", file_okay=False)] = None,
    mdns: Annotated[bool, typer.Option("--mdns/--no-mdns", help="browse mDNS advertisements on the host")] = True,
) -> None:
    """Show pool health, capacity, per-user usage and last backup, services and mDNS of each backup host
    (read-only)."""
    from opsctl.paths import cache_dir
    from opsctl.status import backup_hosts, probe_site

    loaded = load_site(site, quiet=as_json)
    hosts = backup_hosts(loaded.site)
    if not hosts:
        fail("this site has no backup server; nothing to show", EXIT_BAD_INPUT)
    for name in limit or []:
        if name not in hosts:
            fail(f"--limit {name!r} is not a backup host; backup hosts: {', '.join(hosts)}", EXIT_BAD_INPUT)
    for path in (prometheus, html):
        if path is not None and not path.parent.is_dir():
            fail(f"{path.parent} does not exist; create it first", EXIT_BAD_INPUT)
    now = time.time()
    if as_json:
        all_facts = probe_site(loaded.site, limit, mdns=mdns)
    else:
        with console.status(escape(f"probing {', '.join(limit or hosts)}")):
            all_facts = probe_site(loaded.site, limit, mdns=mdns)
    if prometheus:
        from opsctl.status import prometheus as prom

        prom.write(prometheus, all_facts)
    if html:
        from opsctl.status import html as html_report

        html_report.write(html, all_facts, stale_days=stale_days, quota_percent=quota_percent, now=now)
    alert_results = _alerts(all_facts, state_dir or cache_dir(), stale_days, quota_percent) if alert else []
    if as_json:
        out: dict = {"hosts": all_facts}
        if alert:
            out["alerts"] = alert_results
        print_json(out)
    else:
        for facts in all_facts:
            _show(facts, stale_days, quota_percent, now)
        for result in alert_results:
            for event in result["events"]:
                mark = ("ALERT", "bold red") if event["firing"] else ("RESOLVED", "green")
                outcome = result["delivery"].get(event["key"])
                sent = ("notified: " + ", ".join(f"{c} {o}" for c, o in outcome.items())) if outcome else \
                    "no notification channel configured"
                err.print(styled(mark, " ", str(event["message"]), " ", (f"({sent})", "dim")), highlight=False,
                          soft_wrap=True)
            for firing in result["firing"]:
                err.print(styled(("firing", "red"), f" {firing['key']}: {firing['message']}"), highlight=False,
                          soft_wrap=True)
        for path in (prometheus, html):
            if path:
                err.print(f"wrote {path}", style="dim", highlight=False, markup=False)
    probe_failed = any(f.get("probe_error") for f in all_facts)
    # A pool that is missing or not healthy (DEGRADED, FAULTED, errors) fails the command like an
    # unreachable host: the backups it holds are at risk.
    pool_failed = any(f.get("pool") is not None and not f["pool"].get("healthy") for f in all_facts)
    if alert and any(r["firing"] for r in alert_results):
        raise typer.Exit(1)
    if probe_failed or pool_failed:
        raise typer.Exit(1)
