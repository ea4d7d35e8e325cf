"""``opsctl render``: every config file of every host, into one folder per host."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from opsctl.cli.common import EXIT_BAD_INPUT, JsonOpt, SiteOpt, console, fail, load_site, print_json
from opsctl.cli.spec_cmds import SiteArg, site_path
from opsctl.render import render_site


def render(
    site_file: SiteArg = None,
    site: SiteOpt = None,
    host: Annotated[list[str] | None, typer.Option("--host", "-H", help="only this host (repeatable)")] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="output folder (one subfolder per host)")] = Path("out"),
    as_json: JsonOpt = False,
) -> None:
    """Render the spec into OUT/<host>/...: ZFS plan, smb.conf, afp.conf, Avahi services, containers, sbatch."""
    loaded = load_site(site_path(site_file, site), quiet=as_json)
    names = [h.name for h in loaded.site.hosts]
    for name in host or []:
        if name not in names:
            fail(f"--host {name!r} is not in the site; known hosts: {', '.join(names)}", EXIT_BAD_INPUT)
    files = render_site(loaded.site, out, host or None)
    if as_json:
        print_json([{"host": f.host, "path": str(out / f.host / f.path), "sha256": f.sha256} for f in files])
        return
    table = Table(title=Text(f"rendered into {out}/"))
    table.add_column("host")
    table.add_column("file")
    table.add_column("bytes", justify="right")
    for f in files:
        table.add_row(Text(f.host), Text(str(f.path)), str(len(f.content)))
    console.print(table)
