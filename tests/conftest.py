import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from tools import REPO  # noqa: E402

#: The session OpenZFS VM and the xdist grouping that keeps it to one worker.
pytest_plugins = ["support.vm"]


@pytest.fixture
def example_yaml() -> str:
    return (REPO / "inventory" / "sandbox.yml").read_text()


@pytest.fixture
def full_yaml() -> str:
    return (REPO / "tests" / "data" / "full_site.yml").read_text()
