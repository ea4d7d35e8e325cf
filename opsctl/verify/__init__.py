"""Verify: testinfra checks that each host really does what the spec says.

Example::

    results = verify_site(load().site)
    all(r.ok for r in results)
"""

from __future__ import annotations

from collections.abc import Callable

from opsctl.connections import connection_for
from opsctl.render.context import context_for
from opsctl.site.models import Site
from opsctl.verify.checks import CHECKS, Check, Probe


def verify_site(site: Site, hosts: list[str] | None = None, passwords: dict | None = None,
                on_check: Callable[[Check], None] | None = None) -> list[Check]:
    """Run every check of every host (or of ``hosts``); ``on_check`` sees each result as it comes.

    The SMB/AFP logins use ``passwords`` (user -> password); when None they are fetched from the
    site's secret sources here (:func:`opsctl.apply.secrets.samba_passwords`; a missing one is a
    :class:`~opsctl.apply.secrets.SecretError`, raised before any host is contacted)."""
    if passwords is None:
        from opsctl.apply.secrets import samba_passwords

        passwords = samba_passwords(site)
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
