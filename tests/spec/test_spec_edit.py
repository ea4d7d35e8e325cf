"""Round-trip spec editing: comments, order, quotes and indentation survive; the edited spec is
validated whole before anything is written; writes are atomic and keep the file's mode."""

from __future__ import annotations

import os
import stat

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from opsctl.site import SpecError, load
from opsctl.site.edit import SpecDocument, atomic_write
from tests.support.paths import REPO

SANDBOX = (REPO / "inventory" / "sandbox.yml").read_text()
FULL = (REPO / "tests" / "data" / "full_site.yml").read_text()


@pytest.fixture
def site_file(tmp_path):
    path = tmp_path / "site.yml"
    path.write_text(SANDBOX)
    path.chmod(0o640)
    return path


def comments(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip().startswith("#")]


@pytest.mark.parametrize("text", [SANDBOX, FULL], ids=["sandbox", "full"])
def test_unchanged_document_round_trips_byte_for_byte(tmp_path, text):
    path = tmp_path / "site.yml"
    path.write_text(text)
    assert SpecDocument.open(path).text() == text


def test_add_user_keeps_comments_order_and_style(site_file):
    doc = SpecDocument.open(site_file)
    doc.add_user("carol", "500M", ["smb", "afp"], "400M")
    doc.save()
    text = site_file.read_text()
    assert comments(text) == comments(SANDBOX)
    assert text.startswith(SANDBOX.split("  users:")[0])  # everything before users untouched
    assert "    - name: carol\n      quota: 500M\n      tm_size: 400M\n      protocols: [smb, afp]\n" in text
    assert text.index("name: bob") < text.index("name: carol") < text.index("samba:")
    assert "%YAML" not in text
    site = load(site_file).site
    assert [u.name for u in site.backup.users] == ["alice", "bob", "carol"]
    assert site.backup.time_machine_shares[2]["dk"] == "dk2"
    assert stat.S_IMODE(site_file.stat().st_mode) == 0o640


def test_yaml_12_on_off_words_stay_strings(tmp_path):
    path = tmp_path / "site.yml"
    path.write_text(SANDBOX.replace("  # dataset_defaults:", "  dataset_defaults:\n    atime: off\n"
                                    "    utf8only: on\n  # dataset_defaults:"))
    doc = SpecDocument.open(path)
    doc.add_user("dave", "1G")
    doc.save()
    assert "    atime: off\n    utf8only: on\n" in path.read_text()
    assert load(path).site.backup.dataset_defaults["atime"] == "off"


def test_set_quota_and_remove(site_file):
    doc = SpecDocument.open(site_file)
    doc.set_quota("bob", "300M")
    doc.remove_user("alice")
    doc.save()
    text = site_file.read_text()
    assert "name: alice" not in text and "quota: 300M" in text
    assert comments(text) == comments(SANDBOX)


@pytest.mark.parametrize(("name", "quota", "tm_size", "needle"), [
    ("Bad;Name", "1G", None, "not a valid POSIX user name"),
    ("root", "1G", None, "system account"),
    ("carol", "1 GB", None, "not a size"),
    ("carol", "1G", "2G", "larger than quota"),
    ("alice", "1G", None, "already in backup.users"),
])
def test_bad_input_never_touches_the_file(site_file, name, quota, tm_size, needle):
    before = site_file.read_bytes()
    with pytest.raises(SpecError) as info:
        doc = SpecDocument.open(site_file)
        doc.add_user(name, quota, None, tm_size)
        doc.save()
    assert needle in str(info.value)
    assert site_file.read_bytes() == before


def test_whole_spec_is_validated_before_writing(site_file):
    """A change that is only invalid in context (bob's share lists a removed user) is refused."""
    site_file.write_text(SANDBOX.replace("  samba:\n", "  shares:\n    - name: common\n      dataset: common\n"
                                                       "      valid_users: [alice, bob]\n  samba:\n"))
    before = site_file.read_bytes()
    doc = SpecDocument.open(site_file)
    doc.remove_user("alice")
    with pytest.raises(SpecError, match="unknown valid_users"):
        doc.save()
    assert site_file.read_bytes() == before


def test_concurrent_change_is_refused(site_file):
    doc = SpecDocument.open(site_file)
    doc.add_user("carol", "1G")
    site_file.write_text(SANDBOX + "\n# edited by someone else\n")
    with pytest.raises(SpecError, match="changed on disk"):
        doc.save()
    assert site_file.read_text().endswith("# edited by someone else\n")


def test_atomic_write_leaves_no_temp_file_on_failure(tmp_path, monkeypatch):
    target = tmp_path / "f.yml"
    target.write_text("old")

    def boom(*a):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        atomic_write(target, "new")
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["f.yml"]


@settings(max_examples=40, deadline=None)
@given(names=st.lists(st.from_regex(r"[a-z][a-z0-9]{0,6}", fullmatch=True), min_size=1, max_size=5, unique=True),
       quota=st.integers(1, 999))
def test_add_then_remove_restores_the_original(tmp_path_factory, names, quota):
    path = tmp_path_factory.mktemp("rt") / "site.yml"
    path.write_text(SANDBOX)
    names = [n for n in names if n not in ("alice", "bob", "root", "daemon", "bin", "sys", "sync", "games", "man",
                                           "lp", "mail", "news", "uucp", "proxy", "backup", "list", "irc", "gnats",
                                           "nobody", "sshd", "avahi", "admin", "guest", "ftp")]
    for name in names:
        doc = SpecDocument.open(path)
        doc.add_user(name, f"{quota}M")
        doc.save()
    for name in reversed(names):
        doc = SpecDocument.open(path)
        doc.remove_user(name)
        doc.save()
    assert path.read_text() == SANDBOX
