"""opsctl.locks: one process at a time, across processes (what two image builds sharing the .deb
cache, or two pytest workers, rely on)."""

from __future__ import annotations

import subprocess
import sys
import time

from opsctl.locks import folder_lock

HOLD = """
import sys, time
from pathlib import Path
from opsctl.locks import folder_lock
with folder_lock(Path(sys.argv[1])):
    print("held", flush=True)
    time.sleep(float(sys.argv[2]))
"""


def test_folder_lock_makes_a_second_process_wait(tmp_path):
    debs = tmp_path / "debs"
    debs.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(debs), "1.5"], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    started = time.monotonic()
    with folder_lock(debs):
        waited = time.monotonic() - started
    holder.wait(timeout=10)
    assert waited > 1.0, waited  # it got the lock only when the holder let go (after its 1.5 s)
    assert (tmp_path / "debs.lock").exists() and not (debs / "debs.lock").exists()  # beside, not inside
