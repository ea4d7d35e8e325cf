"""Fixtures of the day-2 tests; the helpers live in ``_opsdata`` (imported by the tests by that name)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _opsdata import make_fake_host  # noqa: E402


@pytest.fixture
def fake_host(tmp_path, monkeypatch):
    """A PATH with fake zpool/zfs/systemctl/avahi-browse; ``fake_host(...)`` returns the probe config."""
    return make_fake_host(tmp_path, monkeypatch)
