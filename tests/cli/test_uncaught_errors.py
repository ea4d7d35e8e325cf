"""Any opsctl error a command does not catch itself still ends as one line and its exit code
(opsctl.cli.main), never a Python traceback."""

from __future__ import annotations

import subprocess
import sys

import pytest

SCRIPT = """
import sys
import opsctl.cli as cli
from opsctl.errors import BadInput, HostUnreachable

@cli.app.command("boom")
def boom(kind: str) -> None:
    raise {"bad": BadInput, "host": HostUnreachable}[kind]("the [bold]thing[/] failed", "do x")

sys.argv = ["opsctl", "boom", sys.argv[1]]
cli.main()
"""


@pytest.mark.parametrize(("kind", "code"), [("bad", 2), ("host", 1)])
def test_uncaught_opsctl_error_is_one_line_with_its_exit_code(kind, code):
    proc = subprocess.run([sys.executable, "-c", SCRIPT, kind], capture_output=True, text=True, timeout=60)
    assert proc.returncode == code, proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip() == "error: the [bold]thing[/] failed. Fix: do x"  # literal: no markup
