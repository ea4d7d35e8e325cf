"""Fixtures shared by several test packages (loaded as a plugin by ``tests/conftest.py``)."""

from __future__ import annotations

import pytest

from tests.support.opsdata import make_fake_host
from tests.support.paths import DATA, REPO


@pytest.fixture
def example_yaml() -> str:
    """The sandbox site file shipped in ``inventory/``."""
    return (REPO / "inventory" / "sandbox.yml").read_text()


@pytest.fixture
def full_yaml() -> str:
    """A site file with every section (``tests/data/full_site.yml``)."""
    return (DATA / "full_site.yml").read_text()


@pytest.fixture
def fake_host(tmp_path, monkeypatch):
    """A PATH with fake zpool/zfs/systemctl/avahi-browse; ``fake_host(...)`` returns the probe config."""
    return make_fake_host(tmp_path, monkeypatch)
