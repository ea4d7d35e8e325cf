"""opsctl/paths.py: the one reading of $OPSCTL_CACHE."""

from pathlib import Path

import pytest

from opsctl.paths import cache_dir


@pytest.mark.parametrize("value", [None, "", "   "])
def test_unset_or_empty_cache_means_the_home_cache(monkeypatch, tmp_path, value):
    monkeypatch.setenv("HOME", str(tmp_path))
    if value is None:
        monkeypatch.delenv("OPSCTL_CACHE", raising=False)
    else:
        monkeypatch.setenv("OPSCTL_CACHE", value)
    assert cache_dir() == tmp_path / ".cache" / "opsctl"  # an empty value is not the current directory


def test_cache_env_is_used_with_tilde_expanded(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("OPSCTL_CACHE", "~/elsewhere")
    assert cache_dir() == tmp_path / "elsewhere"
    assert not (tmp_path / "elsewhere").exists()


def test_create_makes_the_directory(monkeypatch, tmp_path):
    monkeypatch.setenv("OPSCTL_CACHE", str(tmp_path / "a" / "b"))
    assert cache_dir(create=True) == tmp_path / "a" / "b"
    assert Path(tmp_path / "a" / "b").is_dir()
