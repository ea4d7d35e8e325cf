"""Render the spec into one folder per host.

Templates live in ``templates/`` and use StrictUndefined: a missing value is an error,
never an empty string in a config file.

Example::

    from opsctl.site import load
    from opsctl.render.engine import render_site
    files = render_site(load("inventory/sandbox.yml").site, Path("out"))
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import jinja2

from opsctl import TEMPLATES
from opsctl.files import atomic_write
from opsctl.render.artifacts import artifacts_for
from opsctl.render.context import context_for
from opsctl.render.filters import FILTERS
from opsctl.render.zfs_plan import plan
from opsctl.site.models import Site


@dataclass
class Rendered:
    host: str
    path: str  # relative to the host folder
    content: str
    mode: int = 0o644

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.content.encode()).hexdigest()


def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,  # noqa: S701 - these are config files, not HTML; values are escaped per format by filters
    )
    env.filters.update(FILTERS)
    return env


def render_host(site: Site, host: str, env: jinja2.Environment | None = None) -> list[Rendered]:
    """Every artifact of ``host`` (empty when the host plays no role with files)."""
    env = env or environment()
    ctx = context_for(site, host)
    out: list[Rendered] = []
    for art in artifacts_for(ctx):
        text = env.get_template(art.template).render(opsctl=ctx, **art.extra)
        out.append(Rendered(host, art.output, text, art.mode))
    if ctx["state"] is not None:
        # The desired state the zfs role applies, and the steps plan.sh runs to build it.
        doc = {"state": ctx["state"], "steps": plan(ctx["state"])}
        out.append(Rendered(host, "zfs/plan.json", json.dumps(doc, indent=2) + "\n"))
    return out


def render_site(site: Site, out_dir: Path | None = None, hosts: list[str] | None = None) -> list[Rendered]:
    """Render all (or the named) hosts; write them under ``out_dir/<host>/`` when given.

    Files are written atomically and never world-readable where they may carry
    account names (mode from the artifact table, group/other read at most).
    """
    names = hosts or [h.name for h in site.hosts]
    env = environment()
    files = [f for name in names for f in render_host(site, name, env)]
    if out_dir is not None:
        for f in files:
            target = out_dir / f.host / f.path
            target.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(target, f.content, mode=f.mode)
    return files
