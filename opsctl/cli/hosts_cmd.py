"""``opsctl hosts trust NAME``: record a real host's ssh host key in opsctl's known_hosts.

opsctl connects to real hosts with ``StrictHostKeyChecking=yes`` against its own known_hosts file
(``~/.config/opsctl/known_hosts``, mode 0600; ``OPSCTL_KNOWN_HOSTS`` overrides it), so a new host, or
one whose key changed, is refused until its key is trusted here:

1. ``opsctl hosts trust NAME`` scans the key(s) the host offers (``ssh-keyscan`` of its address and
   port) and shows their fingerprints (``ssh-keygen -lf``), and what was trusted before;
2. compare them with the host's own, read on its console: ``ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub``;
3. type ``yes`` to record them, or, without a terminal, pass the fingerprint you checked:
   ``opsctl hosts trust NAME --fingerprint SHA256:...`` records only the key with that fingerprint.

There is no blind mode: without a terminal and without a matching ``--fingerprint`` nothing is
recorded (``--yes`` alone is refused: it would trust whoever answers, the attack this prevents).

Why a file of opsctl's own rather than ``~/.ssh/known_hosts``: every entry in it was confirmed
through this command, so it is exactly the list of hosts opsctl may send Samba passwords and the
munge key to; keys that an interactive ``ssh`` (or ``StrictHostKeyChecking=accept-new``) added to
the personal file are not trusted by accident; and re-trusting a reinstalled host replaces its entry
without editing a file that other tools own.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from opsctl.cli.common import EXIT_BAD_INPUT, SiteOpt, console, err, fail, load_site, styled
from opsctl.errors import HostUnreachable

app = typer.Typer(help="Trust real hosts' ssh host keys (opsctl checks them on every connection).",
                  no_args_is_help=True)

CONSOLE_HINT = "ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub (on the host's console)"


@app.callback()
def _hosts() -> None:
    """Trust real hosts' ssh host keys (opsctl checks them on every connection)."""


@app.command()
def trust(
    name: Annotated[str, typer.Argument(help="the host's name in the site file")],
    site: SiteOpt = None,
    fingerprint: Annotated[str | None, typer.Option(
        "--fingerprint", help="the SHA256:... fingerprint you read on the host's console; records only the key "
                              "with this fingerprint, without asking (for scripts)")] = None,
    yes: Annotated[bool, typer.Option("--yes", help="accepted only with --fingerprint (a bare --yes would "
                                                    "trust whoever answers)")] = False,
    timeout: Annotated[int, typer.Option("--timeout", min=1, max=120, help="seconds to wait for the host")] = 10,
) -> None:
    """Show the host's ssh key fingerprints and, once confirmed, trust them for every opsctl connection."""
    from opsctl.connections import HostKeyError, host_key_name, known_hosts_file, strict_ssh_options
    from opsctl.connections.hostkeys import FINGERPRINT, fingerprints, record, scan, trusted_lines

    loaded = load_site(site, quiet=True)
    names = [h.name for h in loaded.site.hosts]
    if name not in names:
        fail(f"no host {name!r} in the site; hosts: {', '.join(names)}", EXIT_BAD_INPUT)
    host = loaded.site.host(name)
    if host.sandbox or host.connection != "ssh":
        how = f"the sandbox ({host.sandbox})" if host.sandbox else f"connection: {host.connection}"
        fail(f"{name} is reached through {how}, not ssh: it has no host key to trust", EXIT_BAD_INPUT)
    if fingerprint is not None and not FINGERPRINT.match(fingerprint):
        fail(f"--fingerprint {fingerprint!r} is not a SHA256 fingerprint; give it as ssh-keygen -lf prints it, "
             "e.g. SHA256:nThbg6kXUpJWGl7E1IGOCspRomTxdCARLviKw6E5SY8", EXIT_BAD_INPUT)
    if yes and fingerprint is None:
        fail("--yes without --fingerprint would trust whatever key answers (the attack host key checking "
             f"prevents); pass --fingerprint SHA256:... as printed by {CONSOLE_HINT}", EXIT_BAD_INPUT)
    if fingerprint is None and not sys.stdin.isatty():
        fail("no terminal to confirm the fingerprint on; pass --fingerprint SHA256:... as printed by "
             f"{CONSOLE_HINT}", EXIT_BAD_INPUT)
    try:
        known = known_hosts_file()
        strict_ssh_options(known)  # a path ssh can take
    except HostKeyError as exc:
        fail(str(exc), EXIT_BAD_INPUT)
    address = host.address or host.name
    key_name = host_key_name(address, host.port)

    try:
        keys = scan(address, host.port, timeout)
        before = trusted_lines(known, key_name)
        before_prints = set(fingerprints(before))
    except HostUnreachable as exc:
        fail(str(exc))
    table = Table(title=Text(f"{name} ({key_name}) offers"), title_justify="left")
    for col in ("type", "fingerprint", "trusted before"):
        table.add_column(col)
    for key in keys:
        table.add_row(Text(key.type), Text(key.fingerprint), "yes" if key.fingerprint in before_prints else "no")
    err.print(table)
    if before and not before_prints & {k.fingerprint for k in keys}:
        err.print(styled(("warning:", "bold red"), f" {name}'s key CHANGED: none of these is the key trusted "
                         f"before in {known}. Trust the new one only after checking it on the host's console."),
                  soft_wrap=True, highlight=False)

    if fingerprint is not None:
        chosen = [k for k in keys if k.fingerprint == fingerprint]
        if not chosen:
            fail(f"{name} ({key_name}) offers no key with fingerprint {fingerprint}; nothing was recorded. Check "
                 f"it again with {CONSOLE_HINT}: if it really differs, someone may be intercepting the connection")
    else:
        answer = typer.prompt(f"Do these match {CONSOLE_HINT}? Type yes to trust them", default="", err=True,
                              show_default=False)
        if answer.strip() != "yes":
            fail(f"not confirmed; nothing was recorded for {name}")
        chosen = keys
    record(known, key_name, chosen)
    for key in chosen:
        console.print(styled(("trusted", "green"), f" {name} ({key_name}): {key.type} {key.fingerprint} in {known}"),
                      soft_wrap=True, highlight=False)
