"""opsctl/files.py: atomic_write."""

import os
import stat

import pytest

from opsctl.files import atomic_write


def _mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_new_file_is_0644_and_holds_the_text(tmp_path):
    target = tmp_path / "a.txt"
    assert atomic_write(target, "héllo\n") == target
    assert target.read_bytes() == "héllo\n".encode() and _mode(target) == 0o644


def test_existing_file_keeps_its_mode(tmp_path):
    target = tmp_path / "site.yml"
    target.write_text("old")
    os.chmod(target, 0o640)
    atomic_write(target, b"new")
    assert target.read_text() == "new" and _mode(target) == 0o640


def test_explicit_mode_wins_even_with_an_open_umask(tmp_path):
    target = tmp_path / "secrets.json"
    target.write_text("{}")
    os.chmod(target, 0o644)
    old = os.umask(0)
    try:
        atomic_write(target, "{}", mode=0o600)
    finally:
        os.umask(old)
    assert _mode(target) == 0o600


def test_temp_file_is_private_before_the_rename(tmp_path, monkeypatch):
    seen = {}
    real_chmod = os.chmod

    def spy(path, mode, *a, **kw):
        seen["before"] = _mode(type(tmp_path)(path))
        return real_chmod(path, mode, *a, **kw)

    monkeypatch.setattr(os, "chmod", spy)
    old = os.umask(0)
    try:
        atomic_write(tmp_path / "pw", "secret", mode=0o600)
    finally:
        os.umask(old)
    assert seen["before"] == 0o600


def test_failure_leaves_the_old_file_and_no_temp_file(tmp_path, monkeypatch):
    target = tmp_path / "f.yml"
    target.write_text("old")

    def boom(*a):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        atomic_write(target, "new")
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["f.yml"]
