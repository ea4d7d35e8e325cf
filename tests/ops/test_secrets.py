"""Samba password sources (env, secrets file, sandbox store, none) and the locked sandbox store."""

from __future__ import annotations

import json
import multiprocessing
import stat
import time

import pytest
import yaml

from opsctl.apply import secrets
from opsctl.locks import file_lock
from opsctl.spec.loader import DEFAULT_SITE
from opsctl.spec.models import Site


def _site(sandbox: bool) -> Site:
    data = yaml.safe_load(DEFAULT_SITE.read_text())
    if not sandbox:
        for host in data["hosts"]:
            host.pop("sandbox", None)
            host["address"] = "192.0.2.10"
    return Site.model_validate(data)


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("OPSCTL_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("OPSCTL_SECRETS_FILE", raising=False)
    for user in ("alice", "bob"):
        monkeypatch.delenv(secrets.env_name(user), raising=False)


def _users(site: Site) -> list[str]:
    return [u.name for u in site.backup.users]


def test_env_then_file_then_sandbox_store(tmp_path, monkeypatch):
    site = _site(sandbox=True)
    first, second = _users(site)[:2]
    monkeypatch.setenv(secrets.env_name(first), "from-env")
    secret_file = tmp_path / "secrets.yml"
    secret_file.write_text(yaml.safe_dump({"samba_passwords": {first: "from-file", "someone-else": "x"}}))
    monkeypatch.setenv("OPSCTL_SECRETS_FILE", str(secret_file))
    found = secrets.samba_passwords(site, interactive=False)
    assert found[first] == "from-env"  # the environment wins over the file
    # the rest come from the sandbox store: 8 characters (the AFP cleartext UAM's limit), kept 0600
    assert len(found[second]) == secrets.SANDBOX_PASSWORD_CHARS
    store = secrets.sandbox_store()
    assert stat.S_IMODE(store.stat().st_mode) == 0o600
    assert "from-env" not in store.read_text() and "someone-else" not in found
    assert secrets.samba_passwords(site, interactive=False) == found  # stable across runs


def test_secrets_file_serves_a_real_site(tmp_path, monkeypatch):
    site = _site(sandbox=False)
    secret_file = tmp_path / "secrets.yml"
    secret_file.write_text(yaml.safe_dump({"samba_passwords": {u: f"{u}-pw" for u in _users(site)}}))
    monkeypatch.setenv("OPSCTL_SECRETS_FILE", str(secret_file))
    assert secrets.samba_passwords(site, interactive=False) == {u: f"{u}-pw" for u in _users(site)}


def test_real_site_without_a_source_names_the_fix():
    site = _site(sandbox=False)
    with pytest.raises(secrets.SecretError) as err:
        secrets.samba_passwords(site, interactive=False)
    msg = str(err.value)
    for user in _users(site):
        assert secrets.env_name(user) in msg
    assert "OPSCTL_SECRETS_FILE" in msg
    assert not secrets.sandbox_store().exists()  # a real site never gets generated passwords


def _fill(users, queue):
    queue.put(secrets._sandbox_passwords(users))


def test_parallel_processes_get_the_same_sandbox_passwords():
    """Two test workers filling the store at once must agree (the store is filled under a lock)."""
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_fill, args=(["alice", "bob", "carol"], queue)) for _ in range(4)]
    for p in procs:
        p.start()
    results = [queue.get(timeout=30) for _ in procs]
    for p in procs:
        p.join(timeout=30)
    assert all(r == results[0] for r in results)
    assert json.loads(secrets.sandbox_store().read_text()) == results[0]


def _hold(path, seconds, queue):
    with file_lock(path):
        queue.put(("in", time.monotonic()))
        time.sleep(seconds)
        queue.put(("out", time.monotonic()))


def test_file_lock_serialises_processes(tmp_path):
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    path = tmp_path / "deep" / "dir" / "x.lock"
    procs = [ctx.Process(target=_hold, args=(path, 0.3, queue)) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=30)
    events = sorted((queue.get(timeout=5) for _ in range(4)), key=lambda e: e[1])
    assert [e[0] for e in events] == ["in", "out", "in", "out"]
