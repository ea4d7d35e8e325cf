"""``opsctl train``: build/ship the job image and run the ML job on the training host."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from opsctl.cli.common import EXIT_BAD_INPUT, JsonOpt, SiteOpt, console, err, fail, load_site, print_json
from opsctl.errors import BadInput, HostUnreachable


def train(
    site: SiteOpt = None,
    names: Annotated[Path | None, typer.Option(
        "--names", help="names file to train on (one name per line); uploaded to the host's data dir. "
                        "Default: keep the file already there")] = None,
    build: Annotated[bool, typer.Option(help="build and ship the job image first")] = True,
    resume: Annotated[bool, typer.Option("--resume", help="continue from the last checkpoint")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Train the name model in a container on the training host; exits with the job's exit code."""
    from opsctl.train.run import train as train_job

    loaded = load_site(site, quiet=as_json)

    def say(line: str) -> None:
        if not as_json:
            err.print(line, style="dim", highlight=False, soft_wrap=True, markup=False)

    def show(line: str) -> None:
        err.print(line, highlight=False, markup=False, soft_wrap=True)

    try:
        result = train_job(loaded.site, names=names, build=build, resume=resume, progress=say,
                           on_line=None if as_json else show)
    except BadInput as exc:
        fail(str(exc), EXIT_BAD_INPUT)
    except HostUnreachable as exc:
        fail(str(exc))
    t = loaded.site.training
    if as_json:
        print_json({"rc": result.rc, "out_dir": result.out_dir, "report": result.report})
    elif result.report:
        r = result.report
        # report.json comes from the host: every value is shown literally
        table = Table(title=Text(f"{r.get('model', t.job.model)} on {t.host}: {r.get('status')}"))
        table.add_column("metric")
        table.add_column("value", justify="right")
        for split in ("train_loss", "test_loss"):
            loss = r.get(split) or {}
            if isinstance(loss, dict):
                for key, value in loss.items():
                    table.add_row(Text(f"{split} {key}"),
                                  Text(f"{value:.4f}" if isinstance(value, float) else str(value)))
        for key in ("steps", "tokens_per_s", "train_time_s"):
            if r.get(key) is not None:
                table.add_row(key, Text(f"{r[key]:.1f}" if isinstance(r[key], float) else str(r[key])))
        console.print(table)
        console.print(f"outputs on {t.host}: {result.out_dir} (loss.png, samples.txt, report.json, checkpoints)",
                      markup=False, highlight=False, soft_wrap=True)
    raise typer.Exit(result.rc)
