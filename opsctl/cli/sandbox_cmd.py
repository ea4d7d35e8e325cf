"""``opsctl sandbox up|down|status|build-image``: the embedded default site's hosts on this machine."""

from __future__ import annotations

import typer
from rich.table import Table
from rich.text import Text

import opsctl.sandbox  # noqa: F401  (the sandbox plug-in: registers how `sandbox:` hosts are reached)
from opsctl.cli.common import JsonOpt, SiteOpt, console, err, fail, load_site, print_json
from opsctl.sandbox.errors import SandboxError

app = typer.Typer(help="Local sandbox hosts: systemd containers and a qemu VM with real OpenZFS.",
                  no_args_is_help=True)


def _say(line: str) -> None:
    err.print(line, style="dim", highlight=False, soft_wrap=True, markup=False)


@app.command()
def up(site: SiteOpt = None, as_json: JsonOpt = False) -> None:
    """Build (cached) images and start every `sandbox:` host of the site. Idempotent."""
    from opsctl.sandbox import lab

    loaded = load_site(site, quiet=as_json)
    if not lab.sandbox_hosts(loaded.site):
        fail("this site has no `sandbox:` hosts; `opsctl sandbox` only manages local sandbox hosts", 2)
    try:
        with err.status("starting sandbox hosts (first run builds images: several minutes)"):
            states = lab.up(loaded.site, progress=_say)
    except SandboxError as exc:
        fail(str(exc))
    _show(states, as_json)


@app.command()
def down(site: SiteOpt = None) -> None:
    """Stop and remove the sandbox hosts (the VM's pool disks are throw-away)."""
    from opsctl.sandbox import lab

    loaded = load_site(site, quiet=True)
    try:
        stopped = lab.down(loaded.site, progress=_say)
    except SandboxError as exc:
        fail(str(exc))
    console.print(f"stopped: {', '.join(stopped) or 'nothing was running'}", markup=False, highlight=False)


@app.command()
def status(site: SiteOpt = None, as_json: JsonOpt = False) -> None:
    """Show which sandbox hosts run."""
    from opsctl.sandbox import lab

    loaded = load_site(site, quiet=True)
    _show(lab.status(loaded.site), as_json)


@app.command("build-image")
def build_image(
    print_hash: bool = typer.Option(False, "--hash", help="only print the image's content hash (its cache key)"),
) -> None:
    """Build (or reuse) the OpenZFS VM image and print its directory. The first build takes 10-20 minutes."""
    from opsctl.sandbox.vm import image

    if print_hash:
        print(image.vm_image_hash())
        return
    try:
        path = image.ensure_vm_image(progress=_say)
    except SandboxError as exc:
        fail(str(exc))
    print(path)


def _show(states, as_json: bool) -> None:
    if as_json:
        print_json([s.__dict__ for s in states])
        return
    table = Table()
    for col in ("host", "kind", "running", "detail"):
        table.add_column(col)
    for s in states:
        table.add_row(Text(str(s.name)), Text(str(s.kind)),
                      Text("yes", style="green") if s.running else Text("no", style="red"), Text(str(s.detail or "")))
    console.print(table)
