"""What every command shares: the Rich consoles, the ``--site`` option, spec loading with
clean errors (exit 2, no traceback), and JSON output.

Text from users and hosts (error messages with spec values, file and mDNS names, probe output) is
never parsed as Rich markup: build output with :func:`styled` / ``rich.text.Text`` or print it with
``markup=False``, so ``[bold red]x`` prints literally and ``[/]`` cannot crash a command."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console
from rich.text import Text

from opsctl.site import DEFAULT_SITE, Loaded, SpecError, load

console = Console()
err = Console(stderr=True)

#: Exit codes: 1 = an operation failed, 2 = bad input (spec, arguments): nothing was applied.
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2

SiteOpt = Annotated[
    Path | None,
    typer.Option("--site", "-s", envvar="OPSCTL_SITE", help=f"site YAML file [default: the embedded sandbox, "
                 f"{DEFAULT_SITE.relative_to(DEFAULT_SITE.parent.parent)}]", show_default=False),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="print machine-readable JSON instead of tables")]


def styled(*parts: str | Text | tuple[str, str]) -> Text:
    """A ``Text`` from plain strings, ``Text`` and ``(text, style)`` pairs; no part is parsed as markup."""
    return Text.assemble(*(p if isinstance(p, Text) else (str(p[0]), p[1]) if isinstance(p, tuple) else str(p)
                           for p in parts))


def fail(message: str, code: int = EXIT_FAILED) -> NoReturn:
    """Print ``error: message`` (``message`` literally: it carries user values) and exit with ``code``."""
    err.print(styled(("error:", "bold red"), " ", str(message)), highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def load_site(path: Path | None, *, quiet: bool = False) -> Loaded:
    """Load and validate the spec once; on any problem print every error and exit 2."""
    try:
        loaded = load(path)
    except SpecError as exc:
        for problem in exc.problems:
            err.print(f"error: {problem}", style="red", highlight=False, soft_wrap=True, markup=False)
        err.print(f"{len(exc.problems)} problem(s) in {exc.path}; nothing was applied.", style="red",
                  soft_wrap=True, highlight=False, markup=False)
        raise typer.Exit(EXIT_BAD_INPUT) from None
    if not quiet:
        for warning in loaded.warnings:
            err.print(f"warning: {warning}", style="yellow", highlight=False, soft_wrap=True, markup=False)
    return loaded


def print_json(data) -> None:
    """JSON to stdout, unstyled (pipe-friendly)."""
    print(json.dumps(data, indent=2, default=str))


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")
