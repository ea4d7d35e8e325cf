"""The ``opsctl`` command line (Typer + Rich). One module per command group."""

from __future__ import annotations

import typer

from opsctl import __version__
from opsctl.cli import (
    hosts_cmd,
    job_cmd,
    provision_cmd,
    render_cmd,
    sandbox_cmd,
    spec_cmds,
    status_cmd,
    train_cmd,
    user_cmd,
    verify_cmd,
)

app = typer.Typer(
    name="opsctl",
    help="Set up a lab's Mac backup server (ZFS, Samba, Netatalk, Avahi) and GPU training hosts "
    "from one declarative site file: spec -> render -> provision -> verify -> status.",
    no_args_is_help=True,
    rich_markup_mode=None,  # help text is shown as written: "[default: smb]" is not a Rich tag
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        print(f"opsctl {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="print the version"),
) -> None:
    """opsctl: spec -> render -> provision -> verify -> status."""


app.command()(spec_cmds.init)
app.command()(spec_cmds.validate)
app.command()(spec_cmds.schema)
app.command()(render_cmd.render)
app.add_typer(sandbox_cmd.app, name="sandbox")
app.command()(provision_cmd.provision)
app.command()(verify_cmd.verify)
app.command()(train_cmd.train)
app.add_typer(job_cmd.app, name="job")
app.add_typer(user_cmd.app, name="user")
app.command()(status_cmd.status)
app.add_typer(hosts_cmd.app, name="hosts")


def main() -> None:
    """The console entry point. Commands catch the errors they expect; any other
    :class:`~opsctl.errors.OpsctlError` still ends as one line on stderr and its exit code, never a traceback."""
    from opsctl.cli.common import err
    from opsctl.errors import OpsctlError

    try:
        app(standalone_mode=True)
    except OpsctlError as exc:
        err.print(f"error: {exc}", markup=False, highlight=False, soft_wrap=True)
        raise SystemExit(exc.exit_code) from None
