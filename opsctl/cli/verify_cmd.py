"""``opsctl verify``: testinfra checks on every host; non-zero exit when any fails."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from opsctl.cli.common import EXIT_BAD_INPUT, JsonOpt, SiteOpt, console, err, fail, load_site, print_json, styled
from opsctl.errors import BadInput, HostUnreachable


def verify(
    site: SiteOpt = None,
    limit: Annotated[list[str] | None, typer.Option("--limit", "-l", help="only these hosts (repeatable)")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Check the hosts against the spec: pool, datasets, dirs, smbd + SMB login, afpd + AFP volume, mDNS."""
    from opsctl.verify import verify_site

    loaded = load_site(site, quiet=as_json)

    def show(check) -> None:
        if not as_json:
            # names and details carry share names and host output: printed literally, never as markup
            mark = ("PASS", "green") if check.ok else ("FAIL", "bold red")
            err.print(styled(mark, f" {check.host}: {check.name}",
                             *((" ", (f"({check.detail})", "dim")) if check.detail else ())),
                      highlight=False, soft_wrap=True)

    try:
        results = verify_site(loaded.site, limit, on_check=show)
    except BadInput as exc:  # a password that cannot be had (SecretError): nothing was contacted
        fail(str(exc), EXIT_BAD_INPUT)
    except HostUnreachable as exc:
        fail(str(exc))
    failed = [r for r in results if not r.ok]
    if as_json:
        print_json({"ok": not failed, "checks": [r.__dict__ for r in results]})
    else:
        table = Table(title="verify")
        for col in ("host", "passed", "failed"):
            table.add_column(col)
        for host in dict.fromkeys(r.host for r in results):
            mine = [r for r in results if r.host == host]
            table.add_row(Text(str(host)), str(sum(r.ok for r in mine)), str(sum(not r.ok for r in mine)))
        console.print(table)
    if failed:
        raise typer.Exit(1)
