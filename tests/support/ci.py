"""The one "skip here, fail in CI" rule, for tests that need something this machine may lack
(a tool, a Docker engine, root and qemu for the VM, the names file).

A missing piece is a skip on a developer machine but a failure in CI (``CI=true``): CI installs
everything through ``scripts/test.sh``, so a missing piece there is a bug.
"""

from __future__ import annotations

import os
import shutil
from typing import NoReturn

import pytest

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def need(reason: str) -> NoReturn:
    """This test cannot run here because of ``reason``: skip it, or under ``CI=true`` fail it."""
    if IN_CI:
        pytest.fail(f"required in CI: {reason}", pytrace=False)
    pytest.skip(reason)


def require(tool: str) -> str:
    """The path of ``tool`` on PATH; :func:`need` when it is not installed."""
    path = shutil.which(tool)
    if not path:
        need(f"{tool} is not installed (scripts/test.sh installs it)")
    return path
