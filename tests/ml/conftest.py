"""Fixtures for the charlm (ML core) tests.

The shared names dataset is ``tests.support.paths.NAMES`` ($CHARLM_NAMES, else
../shared/data/names.txt next to the repository); tests that need it skip when it is absent (fail
under CI=true). Other tests generate small data sets of their own.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys

import pytest

from tests.support.ci import need
from tests.support.paths import NAMES, REPO


@pytest.fixture(scope="session")
def names_path() -> str:
    if not NAMES.is_file():
        need(f"the names file {NAMES} is missing (set CHARLM_NAMES)")
    return str(NAMES)


def synthetic_names(n: int, seed: int = 0) -> list[str]:
    """Pronounceable names from a small syllable grammar: learnable structure, not random."""
    rng = random.Random(seed)
    onsets = ["b", "d", "k", "l", "m", "n", "r", "s", "t", "v", "j", "sh", "br", "kl"]
    vowels = ["a", "e", "i", "o", "u", "ia", "ea"]
    codas = ["", "", "", "n", "l", "r", "s", "th"]
    out = []
    for _ in range(n):
        k = rng.choice([1, 2, 2, 3])
        name = "".join(rng.choice(onsets) + rng.choice(vowels) for _ in range(k)) + rng.choice(codas)
        out.append(name)
    return out


@pytest.fixture
def tiny_names(tmp_path) -> str:
    p = tmp_path / "tiny.txt"
    p.write_text("\n".join(synthetic_names(1500)) + "\n")
    return str(p)


def _env() -> dict:
    env = dict(os.environ)
    for k in ("CHARLM_WEBHOOK_URL", "TELEGRAM_BOT_TOKEN", "TELEGRAM_CHAT_ID"):
        env.pop(k, None)
    env["PYTHONPATH"] = str(REPO / "ml") + os.pathsep + env.get("PYTHONPATH", "")
    return env


@pytest.fixture
def run_charlm():
    """Run `python -m charlm ARGS` in a subprocess; returns CompletedProcess (text)."""

    def run(*args, env_extra=None, timeout=300):
        env = _env()
        env.update(env_extra or {})
        return subprocess.run(
            [sys.executable, "-m", "charlm", *map(str, args)],
            capture_output=True,
            text=True,
            env=env,
            timeout=timeout,
        )

    return run


@pytest.fixture
def popen_charlm():
    def start(*args, env_extra=None):
        env = _env()
        env.update(env_extra or {})
        return subprocess.Popen(
            [sys.executable, "-m", "charlm", *map(str, args)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )

    return start


@pytest.fixture(autouse=True)
def _no_notify_env(monkeypatch):
    for k in ("CHARLM_WEBHOOK_URL", "TELEGRAM_BOT_TOKEN", "TELEGRAM_CHAT_ID", "TELEGRAM_API_BASE"):
        monkeypatch.delenv(k, raising=False)


@pytest.fixture
def make_names():
    return synthetic_names
