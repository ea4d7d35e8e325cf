"""``opsctl init``, ``validate``, ``schema``: write, check and describe the site spec."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from opsctl.cli.common import EXIT_BAD_INPUT, JsonOpt, SiteOpt, console, fail, load_site, print_json, styled
from opsctl.site import DEFAULT_SITE
from opsctl.site.models import Site


def init(
    path: Annotated[Path, typer.Argument(help="where to write the new site file")] = Path("site.yml"),
    force: Annotated[bool, typer.Option("--force", help="overwrite an existing file")] = False,
) -> None:
    """Write a commented example site file to start from (the embedded sandbox site)."""
    if path.exists() and not force:
        fail(f"{path} exists; pass --force to overwrite it", EXIT_BAD_INPUT)
    shutil.copyfile(DEFAULT_SITE, path)
    console.print(styled(f"wrote {path}; edit it, then run ", (f"opsctl validate {path}", "bold")), highlight=False)


#: The site file as an optional positional argument (``opsctl validate site.yml``), same as --site.
SiteArg = Annotated[Path | None, typer.Argument(help="site YAML file (same as --site)", show_default=False)]


def site_path(positional: Path | None, option: Path | None) -> Path | None:
    """The site file named either way; naming two different files is bad input (exit 2).

    The positional file wins over ``OPSCTL_SITE`` from the environment."""
    from_env = option is not None and str(option) == os.environ.get("OPSCTL_SITE")
    if positional is not None and option is not None and positional != option and not from_env:
        fail(f"two site files given ({positional} and --site {option}); name one", EXIT_BAD_INPUT)
    return positional if positional is not None else option


def validate(site_file: SiteArg = None, site: SiteOpt = None, as_json: JsonOpt = False) -> None:
    """Check the site file: every error names the field, the bad value and the fix (exit 2)."""
    loaded = load_site(site_path(site_file, site), quiet=as_json)
    s = loaded.site
    if as_json:
        print_json({"valid": True, "path": str(loaded.path), "warnings": loaded.warnings,
                    "hosts": {h.name: s.roles_of(h.name) for h in s.hosts}})
        return
    table = Table(title=Text(f"site {s.site} ({loaded.path})"))
    table.add_column("host")
    table.add_column("connection")
    table.add_column("roles")
    for host in s.hosts:
        conn = f"sandbox {host.sandbox}" if host.sandbox else host.connection
        table.add_row(Text(host.name), Text(conn), Text(", ".join(s.roles_of(host.name)) or "-"))
    console.print(table)
    if s.backup:
        console.print(styled("backup: pool ", (s.backup.pool.name, "bold"), f" ({len(s.backup.pool.vdevs)} vdev(s)), "
                             f"{len(s.backup.users)} user(s), {len(s.backup.shares)} extra share(s)"), highlight=False)
    console.print(styled(("valid", "green")), highlight=False)


def schema() -> None:
    """Print the JSON Schema of the site file (for editor completion, e.g. yaml-language-server)."""
    print(json.dumps(Site.model_json_schema(mode="validation"), indent=2))
