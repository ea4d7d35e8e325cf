"""Verify: testinfra checks that each host really does what the spec says.

Example::

    results = verify_site(load().site)
    all(r.ok for r in results)
"""

from __future__ import annotations

from collections.abc import Callable

from opsctl.connections import connection_for
from opsctl.render.context import context_for
from opsctl.spec.models import Site
from opsctl.verify.checks import CHECKS, Check, Probe


def verify_site(site: Site, hosts: list[str] | None = None, passwords: dict | None = None,
                on_check: Callable[[Check], None] | None = None) -> list[Check]:
    results: list[Check] = []
    for name in hosts or [h.name for h in site.hosts]:
        ctx = context_for(site, name)
        conn = connection_for(site.host(name))
        probe = Probe(name, conn.testinfra(), conn, passwords or {})
        for role in ctx["roles"]:
            for check_fn in CHECKS.get(role, []):
                try:
                    checks = list(check_fn(probe, ctx))
                except Exception as exc:  # noqa: BLE001 - an unreachable host is a failed check, not a crash
                    checks = [Check(name, check_fn.__name__, False, f"{type(exc).__name__}: {exc}"[:300])]
                for check in checks:
                    results.append(check)
                    if on_check:
                        on_check(check)
    return results
