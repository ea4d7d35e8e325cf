"""Rendering: spec -> config files, from the Jinja templates in ``templates/``."""

from opsctl.render.engine import Rendered, environment, render_host, render_site

__all__ = ["Rendered", "environment", "render_host", "render_site"]
