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
from opsctl.site.loader import DEFAULT_SITE
from opsctl.site.models import Site


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


# --------------------------------------------------------------------------- hostile passwords and broken sources


@pytest.mark.parametrize("password, what", [
    ("pw\nroot:x", "a newline"),            # the chpasswd reproduction: a second line sets root's password
    ("pw\rroot", "a carriage return"),
    ("pw\x00x", "a NUL byte"),  # an environment variable cannot hold NUL: it comes from the secrets file
    ("pw:x", "':'"),
])
def test_password_with_a_line_break_nul_or_colon_is_refused_naming_user_and_source(tmp_path, monkeypatch, password,
                                                                                    what):
    site = _site(sandbox=False)
    first = _users(site)[0]
    if "\x00" in password:
        source = str(tmp_path / "secrets.yml")
        (tmp_path / "secrets.yml").write_text(yaml.safe_dump({"samba_passwords": {first: password}}))
        monkeypatch.setenv("OPSCTL_SECRETS_FILE", source)
    else:
        source = secrets.env_name(first)
        monkeypatch.setenv(source, password)
    with pytest.raises(secrets.SecretError) as err:
        secrets.samba_passwords(site, [first], interactive=False)
    msg = str(err.value)
    assert first in msg and source in msg and what in msg
    assert password not in msg and "root:x" not in msg and "\n" not in msg


def test_hostile_password_in_the_secrets_file_is_refused_naming_the_file(tmp_path, monkeypatch):
    site = _site(sandbox=False)
    first = _users(site)[0]
    secret_file = tmp_path / "secrets.yml"
    secret_file.write_text(yaml.safe_dump({"samba_passwords": {first: "pw\nroot:x"}}))
    monkeypatch.setenv("OPSCTL_SECRETS_FILE", str(secret_file))
    with pytest.raises(secrets.SecretError, match=f"for {first} from OPSCTL_SECRETS_FILE {secret_file} contains "
                                                  "a newline and ':'"):
        secrets.samba_passwords(site, [first], interactive=False)


def test_sandbox_store_passwords_are_checked_too():
    secrets.sandbox_store().parent.mkdir(parents=True)
    secrets.sandbox_store().write_text(json.dumps({"alice": "ab:\ncdef"}))  # 8 characters, so it is kept
    with pytest.raises(secrets.SecretError, match="alice from the sandbox password store .* contains a newline"):
        secrets._sandbox_passwords(["alice"])


def _file_site(tmp_path, monkeypatch, content: bytes | None, *, as_dir: bool = False):
    path = tmp_path / "secrets.yml"
    if as_dir:
        path.mkdir()
    elif content is not None:
        path.write_bytes(content)
    monkeypatch.setenv("OPSCTL_SECRETS_FILE", str(path))
    return path


@pytest.mark.parametrize("content, as_dir, expected", [
    (None, False, "does not exist"),
    (None, True, "cannot read"),
    (b"samba_passwords: {alice: [unclosed\n", False, r"is not valid YAML \(line 2\)"),
    (b"samba_passwords: \x80\x81 not utf-8\n", False, "is not valid YAML"),
    (b"- alice\n- bob\n", False, "holds a YAML list, not a mapping"),
    (b"just a string\n", False, "holds a YAML str, not a mapping"),
    (b"samba_passwords: [alice, bob]\n", False, "samba_passwords in OPSCTL_SECRETS_FILE .* is a YAML list"),
    (b"samba_passwords: {alice: 12345}\n", False, "alice from OPSCTL_SECRETS_FILE .* is a int, not a string"),
    (b"samba_passwords: {alice: null}\n", False, "alice from OPSCTL_SECRETS_FILE .* is nothing, not a string"),
    (b"samba_passwords: {alice: ''}\n", False, "alice from OPSCTL_SECRETS_FILE .* is empty"),
])
def test_broken_secrets_file_is_one_secret_error(tmp_path, monkeypatch, content, as_dir, expected):
    path = _file_site(tmp_path, monkeypatch, content, as_dir=as_dir)
    with pytest.raises(secrets.SecretError, match=expected) as err:
        secrets.samba_passwords(_site(sandbox=False), interactive=False)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("content", ["{not json", "[1, 2]", '{"alice": 12345678}', "\udcff"])
def test_corrupt_sandbox_store_is_one_secret_error_naming_the_fix(content):
    store = secrets.sandbox_store()
    store.parent.mkdir(parents=True)
    store.write_bytes(content.encode(errors="surrogateescape"))
    with pytest.raises(secrets.SecretError, match=f"sandbox password store {store} is .*corrupt.*; delete {store}"):
        secrets.samba_passwords(_site(sandbox=True), interactive=False)
    assert store.read_bytes() == content.encode(errors="surrogateescape")  # left for the operator to look at


def test_vault_decrypt_failure_is_one_secret_error(tmp_path, monkeypatch):
    path = _file_site(tmp_path, monkeypatch, b"$ANSIBLE_VAULT;1.1;AES256\n6162636465\n")
    monkeypatch.delenv("ANSIBLE_VAULT_PASSWORD_FILE", raising=False)
    monkeypatch.setenv("ANSIBLE_VAULT_PASSWORD_FILE", str(tmp_path / "no-such-vault-pass"))
    with pytest.raises(secrets.SecretError, match=f"cannot decrypt OPSCTL_SECRETS_FILE {path}: set "
                                                  "ANSIBLE_VAULT_PASSWORD_FILE") as err:
        secrets.samba_passwords(_site(sandbox=False), interactive=False)
    assert "\n" not in str(err.value)


def test_vault_encrypted_file_is_decrypted(tmp_path, monkeypatch):
    """The vault path works end to end (ansible-vault from the virtualenv, even without it on PATH)."""
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    site = _site(sandbox=False)
    vault_pass = tmp_path / "vault-pass"
    vault_pass.write_text("s3cret-vault\n")
    path = tmp_path / "secrets.yml"
    path.write_text(yaml.safe_dump({"samba_passwords": {u: f"{u}-pw" for u in _users(site)}}))
    exe = shutil.which("ansible-vault") or str(Path(sys.executable).parent / "ansible-vault")
    subprocess.run([exe, "encrypt", "--vault-password-file", str(vault_pass), str(path)], check=True,
                   capture_output=True)
    assert path.read_bytes().startswith(b"$ANSIBLE_VAULT")
    monkeypatch.setenv("OPSCTL_SECRETS_FILE", str(path))
    monkeypatch.setenv("ANSIBLE_VAULT_PASSWORD_FILE", str(vault_pass))
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    assert secrets.samba_passwords(site, interactive=False) == {u: f"{u}-pw" for u in _users(site)}


# --------------------------------------------------------------------------- through the CLI: one line, exit 2


def _real_site_file(tmp_path):
    data = yaml.safe_load(DEFAULT_SITE.read_text())
    for host in data["hosts"]:
        host.pop("sandbox", None)
        host["address"] = "192.0.2.10"
    path = tmp_path / "site.yml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize("command", [["verify"], ["provision", "--check"]])
@pytest.mark.parametrize("case", ["hostile-env", "missing-file", "not-a-mapping", "corrupt-store"])
def test_cli_secret_errors_are_one_line_exit_2_without_traceback(tmp_path, monkeypatch, command, case):
    from typer.testing import CliRunner

    from opsctl.cli import app

    site = _site(sandbox=case == "corrupt-store")
    site_file = DEFAULT_SITE if case == "corrupt-store" else _real_site_file(tmp_path)
    first = _users(site)[0]
    if case == "hostile-env":
        monkeypatch.setenv(secrets.env_name(first), "pw\nroot:x")
        expected = f"{first} from {secrets.env_name(first)} contains a newline and ':'"
    elif case == "missing-file":
        monkeypatch.setenv("OPSCTL_SECRETS_FILE", str(tmp_path / "nope.yml"))
        expected = f"OPSCTL_SECRETS_FILE {tmp_path / 'nope.yml'} does not exist"
    elif case == "not-a-mapping":
        (tmp_path / "s.yml").write_text("- a\n")
        monkeypatch.setenv("OPSCTL_SECRETS_FILE", str(tmp_path / "s.yml"))
        expected = "holds a YAML list, not a mapping"
    else:
        secrets.sandbox_store().parent.mkdir(parents=True)
        secrets.sandbox_store().write_text("{corrupt")
        expected = f"{secrets.sandbox_store()} is unreadable or corrupt"
    result = CliRunner().invoke(app, [*command, "--site", str(site_file)], env={"COLUMNS": "400"})
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output and "root:x" not in result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], lines
