"""``opsctl user add|set-quota|remove``: Time Machine users after the first provision.

Each command edits the site file (comments and order kept, the whole spec re-validated before it
is written atomically) and converges only the backup host with the idempotent backup playbook.
Bad input exits 2 with "nothing was applied"; a failed apply exits 1.
"""

from __future__ import annotations

import contextlib
import sys
from typing import Annotated

import typer

from opsctl.cli.common import EXIT_BAD_INPUT, JsonOpt, SiteOpt, console, err, fail, load_site, print_json, styled
from opsctl.cli.output import live_progress, print_run_summary
from opsctl.errors import HostUnreachable
from opsctl.site.loader import SpecError

app = typer.Typer(help="Add, resize and remove Time Machine users on the backup server.", no_args_is_help=True)

NoApplyOpt = Annotated[bool, typer.Option("--no-apply", help="only edit the site file; run `opsctl provision` "
                                                             "later")]


def _bad(problems: list[str] | str) -> None:
    for problem in [problems] if isinstance(problems, str) else problems:
        err.print(f"error: {problem}", style="red", highlight=False, soft_wrap=True, markup=False)
    err.print("nothing was applied.", style="red", highlight=False, markup=False)
    raise typer.Exit(EXIT_BAD_INPUT)


def _plan(fn, *args):
    from opsctl.users import UserError

    try:
        return fn(*args)
    except SpecError as exc:
        _bad(exc.problems)
    except (ValueError, UserError) as exc:
        _bad(str(exc))


def _save(plan) -> None:
    """--no-apply: only write the edited site file (re-validated; a clash with another edit is bad input)."""
    try:
        plan.doc.save()
    except SpecError as exc:
        _bad(exc.problems)


def _apply(plan, service, *, as_json: bool):
    """Run ``service(on_event=...)`` (one of opsctl.users' services for ``plan``) with progress, and
    turn what can go wrong into one line: bad input exits 2, a failed or interrupted apply exits 1
    (130/143) saying the site file was updated and how to converge. Returns the service's
    :class:`opsctl.users.Applied`."""
    from opsctl.apply.runner import Interrupted
    from opsctl.users import UserError

    try:
        with contextlib.nullcontext(None) if as_json else live_progress([plan.host], transient=True) as on_event:
            result = service(on_event=on_event)
    except SpecError as exc:
        _bad(exc.problems)
    except UserError as exc:
        _bad(str(exc)) if exc.bad_input else fail(str(exc))
    except HostUnreachable as exc:
        fail(f"{exc}; the site file {plan.doc.path} was updated, the host was not: start it and run "
             f"`opsctl provision --limit {plan.host}`")
    except Interrupted as exc:
        fail(f"interrupted ({exc.signal_name}): the site file {plan.doc.path} was updated, applying it was stopped; "
             f"run `opsctl provision --limit {plan.host}`, it converges", 130 if exc.signal_name == "SIGINT" else 143)
    summary = result.summary
    if not as_json:
        print_run_summary(summary)
    if summary.failed:
        if as_json:
            print_json({"ok": False, "action": plan.action, "user": plan.user, "failures": summary.failures})
        fail(f"the site file {plan.doc.path} was updated but applying it to {plan.host} failed; fix the cause and "
             f"run `opsctl provision --limit {plan.host}`")
    return result


def _stdin_password() -> str:
    password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        _bad("--password-stdin: stdin gave an empty password")
    return password


@app.command()
def add(
    name: Annotated[str, typer.Argument(help="POSIX user name (lowercase), also the share name")],
    quota: Annotated[str, typer.Option("--quota", "-q", help="ZFS quota, e.g. 500G")],
    protocols: Annotated[str | None, typer.Option("--protocols", "-p", help="comma-separated: smb, afp "
                                                                              "[default: smb]")] = None,
    tm_size: Annotated[str | None, typer.Option("--tm-size", help="advertised Time Machine size "
                                                                  "[default: 90 % of the quota]")] = None,
    password_stdin: Annotated[bool, typer.Option(
        "--password-stdin", help="read the Samba password from the first line of stdin (else "
        "OPSCTL_SMB_PASSWORD_<USER>, OPSCTL_SECRETS_FILE, the sandbox store or a prompt)")] = False,
    site: SiteOpt = None,
    no_apply: NoApplyOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Add a Time Machine user: spec entry, system user, Samba password, dataset with quota (0700), share
    and Avahi entry; then print the Mac onboarding steps."""
    from opsctl.users import add_user, onboarding, plan_add

    loaded = load_site(site, quiet=True)
    protos = [p.strip() for p in protocols.split(",") if p.strip()] if protocols is not None else None
    plan = _plan(plan_add, loaded, name, quota, protos, tm_size)
    if no_apply:
        _save(plan)
    else:
        password = _stdin_password() if password_stdin else None
        _apply(plan, lambda on_event: add_user(plan, password, on_event=on_event), as_json=as_json)
    lines = onboarding(plan.after, name)
    if as_json:
        print_json({"ok": True, "action": "add", "user": name, "applied": not no_apply, "site": str(plan.doc.path),
                    "onboarding": lines})
        return
    console.print(styled(("added", "green"), f" {name} to {plan.doc.path}" + (
        " (not applied: --no-apply)" if no_apply else f" and applied it to {plan.host}")), highlight=False)
    console.print("\n".join(lines), highlight=False, markup=False, soft_wrap=True)


@app.command("set-quota")
def set_quota(
    name: Annotated[str, typer.Argument(help="an existing Time Machine user")],
    quota: Annotated[str, typer.Argument(help="the new ZFS quota, e.g. 600G")],
    tm_size: Annotated[str | None, typer.Option("--tm-size", help="also change the advertised Time Machine "
                                                                  "size")] = None,
    site: SiteOpt = None,
    no_apply: NoApplyOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Change a user's quota; refuses a quota below the dataset's current usage (so does provision)."""
    from opsctl.users import change_quota, plan_set_quota

    loaded = load_site(site, quiet=True)
    plan = _plan(plan_set_quota, loaded, name, quota, tm_size)
    used = None
    if no_apply:
        _save(plan)
    else:
        used = _apply(plan, lambda on_event: change_quota(plan, on_event=on_event), as_json=as_json).used
    if as_json:
        print_json({"ok": True, "action": "set-quota", "user": name, "quota": quota, "used_bytes": used,
                    "applied": not no_apply})
        return
    console.print(styled((f"quota of {name} is now {quota}", "green"),
                         (f" (uses {used} bytes)" if used is not None else "")
                         + (" in the site file (not applied: --no-apply)" if no_apply else "")), highlight=False)


@app.command()
def remove(
    name: Annotated[str, typer.Argument(help="the Time Machine user to remove")],
    purge: Annotated[bool, typer.Option("--purge", help="also DESTROY the user's dataset and backups (asks you "
                                                        "to type the dataset name)")] = False,
    confirm: Annotated[str | None, typer.Option("--confirm", metavar="DATASET",
                                                help="non-interactive --purge: the dataset name, typed back")] = None,
    site: SiteOpt = None,
    no_apply: NoApplyOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Remove a user's access (spec entry, share, Avahi entry, Samba password). The dataset and the backups in it
    are kept unless --purge."""
    from opsctl.site.types import check_posix_user
    from opsctl.users import UserError, dataset_of, plan_remove, purge_dataset, remove_access

    loaded = load_site(site, quiet=True)
    try:
        check_posix_user(name)
    except ValueError as exc:
        _bad(str(exc))
    if loaded.site.backup is None:
        _bad("the site has no backup server (no `backup:` section)")
    in_spec = any(u.name == name for u in loaded.site.backup.users)
    dataset = dataset_of(loaded.site, name)
    if not in_spec and not purge:
        _bad(f"no user {name!r} in backup.users of {loaded.path}")
    if purge and no_apply:
        _bad("--purge destroys data on the host; it cannot be combined with --no-apply")
    if purge:
        if confirm is not None:
            if confirm != dataset:
                _bad(f"--confirm {confirm!r} does not match the dataset {dataset!r}; refusing to destroy it")
        elif sys.stdin.isatty():
            typed = typer.prompt(f"This DESTROYS {dataset} and every backup in it. Type the dataset name to "
                                 "confirm", default="", show_default=False, err=True)
            if typed != dataset:
                _bad(f"you typed {typed!r}, not {dataset!r}; refusing to destroy it")
        else:
            _bad(f"--purge needs confirmation: no terminal to ask on; pass --confirm {dataset} to destroy it")
    result: dict = {"ok": True, "action": "remove", "user": name, "dataset": dataset, "purged": False}
    if in_spec:
        plan = _plan(plan_remove, loaded, name)
        if no_apply:
            _save(plan)
        else:
            result.update(_apply(plan, lambda on_event: remove_access(plan, on_event=on_event),
                                 as_json=as_json).access)
    if purge:
        after = plan.after if in_spec else loaded.site
        try:
            result["purged"] = True if purge_dataset(after, name)["destroyed"] else "dataset did not exist"
        except UserError as exc:
            _bad(str(exc)) if exc.bad_input else fail(str(exc))
        except HostUnreachable as exc:
            fail(str(exc))
    if as_json:
        print_json(result)
        return
    if in_spec:
        console.print(styled(("removed", "green"), f" {name}'s access" + (
            " in the site file (not applied: --no-apply)" if no_apply
            else f" ({result.get('samba')}; {result.get('login')})")),
                      highlight=False)
    if result["purged"] is True:
        console.print(styled(("destroyed", "red"), f" {dataset}"), highlight=False)
    elif not purge:
        console.print(f"kept {dataset} and the backups in it (the system account stays as their owner); "
                      f"`opsctl user remove {name} --purge` destroys it", highlight=False, markup=False)
