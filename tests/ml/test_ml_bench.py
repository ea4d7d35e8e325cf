"""bench/ml_bench.py refuses bad input before it trains anything (exit 2, one line naming the fix)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

BENCH = Path(__file__).resolve().parents[2] / "bench" / "ml_bench.py"


def _bench(*args, **env):
    return subprocess.run(
        [sys.executable, str(BENCH), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **env},
    )


def test_missing_makemore_is_a_clear_error(tiny_names, tmp_path):
    proc = _bench(tiny_names, "--models", "transformer", "--makemore", tmp_path / "nope.py")
    assert proc.returncode == 2
    assert "--makemore" in proc.stderr and "nope.py: no such file" in proc.stderr and "CHARLM_MAKEMORE" in proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "nope.py").exists()
    proc = _bench(tiny_names, "--models", "transformer", CHARLM_MAKEMORE=str(tmp_path / "gone.py"))
    assert proc.returncode == 2 and "gone.py: no such file" in proc.stderr


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device is present")
def test_cuda_bench_without_a_gpu_is_a_clear_error(tiny_names):
    proc = _bench(tiny_names, "--models", "transformer", "--device", "cuda")
    assert proc.returncode == 2 and "--device cuda: no CUDA device here" in proc.stderr
    assert "Traceback" not in proc.stderr
