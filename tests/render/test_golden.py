"""Golden files: the example sites render exactly to tests/golden/<site>/<host>/...

After an intended template change: ``OPSCTL_UPDATE_GOLDEN=1 pytest tests/render/test_golden.py``
and review the diff like any code change.
"""

from __future__ import annotations

import os

import pytest

from opsctl.render import render_site
from opsctl.site import load
from tests.support.paths import REPO

GOLDEN = REPO / "tests" / "golden"
SITES = {"sandbox": REPO / "inventory" / "sandbox.yml", "full": REPO / "tests" / "data" / "full_site.yml"}


@pytest.mark.parametrize("name", sorted(SITES))
def test_golden(name):
    files = render_site(load(SITES[name]).site)
    root = GOLDEN / name
    if os.environ.get("OPSCTL_UPDATE_GOLDEN"):
        for f in files:
            target = root / f.host / f.path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(f.content)
    expected = {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}
    assert expected == {f"{f.host}/{f.path}" for f in files}, "rendered file set changed"
    for f in files:
        assert (root / f.host / f.path).read_text() == f.content, f"{f.host}/{f.path} differs from golden"
