"""Host keys of real hosts are checked: a real ``sshd`` on 127.0.0.1 (throwaway host key, config and
client key in tmp; the machine's own sshd and port 22 are not touched) plays a site's real host.

`opsctl hosts trust` records its key only after a confirmation (typed ``yes`` on a terminal, or a
matching ``--fingerprint``); then its host key is regenerated and sshd restarted, and `opsctl status`,
`opsctl verify` and Ansible (with the inventory vars connections.py produces) refuse to connect, naming
the fix.
"""

from __future__ import annotations

import json
import os
import pty
import re
import select
import shutil
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from opsctl.cli import app
from opsctl.connections import HostKeyError, connection_for, known_hosts_file
from opsctl.site.loader import load
from tests.support.paths import REPO

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"
pytestmark = pytest.mark.skipif(not os.path.exists(SSHD), reason="needs openssh-server (scripts/install.sh)")
USER = "root" if os.geteuid() == 0 else os.environ.get("USER", "root")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _keygen(path: Path) -> None:
    path.unlink(missing_ok=True)
    Path(str(path) + ".pub").unlink(missing_ok=True)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "", "-f", str(path)], check=True)


def _fingerprint(pub: Path) -> str:
    out = subprocess.run(["ssh-keygen", "-l", "-E", "sha256", "-f", str(pub)], check=True, capture_output=True,
                         text=True).stdout
    return out.split()[1]


class Sshd:
    """A throwaway sshd on 127.0.0.1:port, key auth only, through an ssh-agent of our own."""

    def __init__(self, root: Path):
        self.root = root
        self.port = _free_port()
        self.host_key = root / "host_ed25519"
        self.proc: subprocess.Popen | None = None
        _keygen(self.host_key)
        _keygen(root / "client")
        (root / "authorized_keys").write_text((root / "client.pub").read_text())
        (root / "sshd_config").write_text(
            f"Port {self.port}\nListenAddress 127.0.0.1\nHostKey {self.host_key}\n"
            f"AuthorizedKeysFile {root}/authorized_keys\nPidFile {root}/sshd.pid\n"
            # StrictModes off: the throwaway files live under /tmp (world-writable); only this sshd is affected
            "StrictModes no\nUsePAM no\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n"
            "PermitRootLogin prohibit-password\nLogLevel ERROR\n")
        self.agent_sock = root / "agent.sock"
        self.agent = subprocess.Popen(["ssh-agent", "-D", "-a", str(self.agent_sock)], stdout=subprocess.DEVNULL)
        _wait(lambda: self.agent_sock.exists())
        subprocess.run(["ssh-add", "-q", str(root / "client")], check=True, capture_output=True,
                       env={**os.environ, "SSH_AUTH_SOCK": str(self.agent_sock)})

    @property
    def fingerprint(self) -> str:
        return _fingerprint(Path(str(self.host_key) + ".pub"))

    def start(self) -> None:
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege separation directory
        self.proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(self.root / "sshd_config")],
                                     stderr=open(self.root / "sshd.log", "ab"))  # noqa: SIM115
        _wait(self._listening)

    def _listening(self) -> bool:
        assert self.proc is not None and self.proc.poll() is None, (self.root / "sshd.log").read_text()
        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", self.port)) == 0

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
            self.proc = None

    def new_host_key(self) -> None:
        """The host was "reinstalled": a new host key, sshd restarted on the same port."""
        self.stop()
        _keygen(self.host_key)
        self.start()

    def close(self) -> None:
        self.stop()
        self.agent.terminate()
        self.agent.wait(timeout=10)


def _wait(cond, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise TimeoutError("sshd/ssh-agent did not come up")
        time.sleep(0.05)


@pytest.fixture
def sshd(tmp_path, monkeypatch):
    root = tmp_path / "sshd"
    root.mkdir(mode=0o700)
    server = Sshd(root)
    server.start()
    monkeypatch.setenv("SSH_AUTH_SOCK", str(server.agent_sock))
    monkeypatch.delenv("OPSCTL_KNOWN_HOSTS", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    for user in ("alice", "bob"):
        monkeypatch.setenv(f"OPSCTL_SMB_PASSWORD_{user.upper()}", f"{user}-password")
    yield server
    server.close()


def _site(tmp_path, port: int) -> str:
    data = {
        "site": "realhost",
        "hosts": [{"name": "backup", "address": "127.0.0.1", "port": port, "user": USER}],
        "backup": {"host": "backup",
                   "pool": {"name": "tank", "vdevs": [{"type": "mirror", "disks": ["/dev/disk/by-id/virtio-a",
                                                                                   "/dev/disk/by-id/virtio-b"]}],
                            "dataset_root": "timemachine", "mountpoint_root": str(tmp_path / "tm")},
                   "users": [{"name": "alice", "quota": "100M", "protocols": ["smb"]}]},
    }
    path = tmp_path / "site.yml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


def run(*args: str):
    result = CliRunner().invoke(app, list(args), env={"COLUMNS": "400"})
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    return result.exit_code, result.output


def _status(site: str) -> tuple[int, dict]:
    code, out = run("status", "--site", site, "--json", "--no-mdns")
    return code, json.loads(out)["hosts"][0]


def _ansible_ping(tmp_path, site: str, tag: str) -> subprocess.CompletedProcess:
    """``ansible -m ping`` with exactly the connection vars connections.py gives the site's host."""
    conn = connection_for(load(Path(site)).site.host("backup"))
    inventory = tmp_path / f"inventory-{tag}.yml"
    inventory.write_text(yaml.safe_dump({"all": {"hosts": {"backup": conn.ansible}}}))
    env = {**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
           # no ControlPersist master: it would outlive the test and let a later run skip the key check
           "ANSIBLE_SSH_ARGS": "-o ControlMaster=no",
           "ANSIBLE_LOCAL_TEMP": str(tmp_path / "ansible-tmp"), "ANSIBLE_NOCOLOR": "1",
           "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    return subprocess.run(["ansible", "backup", "-i", str(inventory), "-m", "ping", "-o"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)


def test_trust_then_a_changed_key_is_refused_everywhere_with_the_fix(sshd, tmp_path):
    site = _site(tmp_path, sshd.port)
    known = tmp_path / "config" / "opsctl" / "known_hosts"
    assert known_hosts_file() == known

    # not trusted yet: status refuses, naming the fix; nothing was recorded by connecting
    code, facts = _status(site)
    assert code == 1
    assert "is not trusted yet" in facts["probe_error"] and "`opsctl hosts trust backup`" in facts["probe_error"]
    assert not known.exists()

    # no terminal, no fingerprint: refused (a blind trust is what an attacker wants), also with --yes
    assert run("hosts", "trust", "backup", "--site", site)[0] == 2
    code, out = run("hosts", "trust", "backup", "--site", site, "--yes")
    assert code == 2 and "--yes without --fingerprint" in out
    assert run("hosts", "trust", "backup", "--site", site, "--fingerprint", "md5:ab:cd")[0] == 2
    wrong = "SHA256:" + "A" * 43
    code, out = run("hosts", "trust", "backup", "--site", site, "--fingerprint", wrong)
    assert code == 1 and f"offers no key with fingerprint {wrong}; nothing was recorded" in out
    assert not known.exists()

    # the fingerprint read "on the console" records exactly that key, 0600 in a 0700 directory
    first = sshd.fingerprint
    code, out = run("hosts", "trust", "backup", "--site", site, "--fingerprint", first)
    assert code == 0, out
    assert f"trusted backup ([127.0.0.1]:{sshd.port}): ssh-ed25519 {first}" in out
    assert stat.S_IMODE(known.stat().st_mode) == 0o600 and stat.S_IMODE(known.parent.stat().st_mode) == 0o700
    assert known.read_text().startswith(f"[127.0.0.1]:{sshd.port} ssh-ed25519 ")

    code, facts = _status(site)
    assert "probe_error" not in facts, facts  # connected: the probe ran on the host
    assert "SUCCESS" in _ansible_ping(tmp_path, site, "trusted").stdout

    # the host key changes: every path refuses and names the fix
    sshd.new_host_key()
    assert sshd.fingerprint != first
    code, facts = _status(site)
    assert code == 1
    assert "has CHANGED since it was trusted" in facts["probe_error"]
    assert "`opsctl hosts trust backup`" in facts["probe_error"]
    code, out = run("verify", "--site", site)
    assert code == 1
    lines = [line for line in out.splitlines() if line.strip()]
    assert len(lines) == 1 and "has CHANGED" in lines[0] and "`opsctl hosts trust backup`" in lines[0], lines
    code, out = run("provision", "--site", site, "--check")
    flat = " ".join(out.split())
    assert code == 1 and "has CHANGED" in flat and "`opsctl hosts trust backup`" in flat, out
    assert "nothing was applied" in flat and "PLAY" not in out  # refused before Ansible ran
    ping = _ansible_ping(tmp_path, site, "changed")
    assert ping.returncode != 0 and "UNREACHABLE" in ping.stdout and "Host key verification failed" in ping.stdout
    assert known.read_text().count("\n") == 1  # nothing learned behind the operator's back

    # re-trust after checking the new fingerprint: the old entry is replaced
    code, out = run("hosts", "trust", "backup", "--site", site, "--fingerprint", sshd.fingerprint)
    assert code == 0 and "key CHANGED" in out
    assert known.read_text().count("\n") == 1
    assert "probe_error" not in _status(site)[1]


def _trust_on_a_terminal(site: str, answer: str) -> tuple[int, str]:
    """Run `opsctl hosts trust` on a real pseudo-terminal and type ``answer`` at its prompt."""
    main, sub = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "opsctl", "hosts", "trust", "backup", "--site", site],
                            stdin=sub, stdout=sub, stderr=sub, env={**os.environ, "COLUMNS": "200"})
    os.close(sub)
    out = b""
    answered = False
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        ready, _, _ = select.select([main], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(main, 4096)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
        if not answered and b"Type yes" in out:
            os.write(main, answer.encode() + b"\n")
            answered = True
        if proc.poll() is not None and not ready:
            break
    os.close(main)
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", out.decode(errors="replace"))  # the terminal gets colours
    return proc.wait(timeout=10), text


def test_trust_on_a_terminal_shows_the_fingerprint_and_needs_yes(sshd, tmp_path):
    site = _site(tmp_path, sshd.port)
    known = tmp_path / "config" / "opsctl" / "known_hosts"
    code, out = _trust_on_a_terminal(site, "y")
    assert code == 1 and sshd.fingerprint in out and "nothing was recorded" in out
    assert not known.exists()
    code, out = _trust_on_a_terminal(site, "yes")
    assert code == 0 and f"trusted backup ([127.0.0.1]:{sshd.port}): ssh-ed25519 {sshd.fingerprint}" in out
    assert "probe_error" not in _status(site)[1]


def test_the_connection_of_a_real_host_checks_keys_and_the_sandbox_vm_does_not(tmp_path, monkeypatch):
    monkeypatch.setenv("OPSCTL_KNOWN_HOSTS", str(tmp_path / "kh"))
    conn = connection_for(load(Path(_site(tmp_path, 2222))).site.host("backup"))
    assert conn.ansible["ansible_host_key_checking"] is True
    for args in (conn.ansible["ansible_ssh_common_args"], conn.testinfra_kwargs["ssh_extra_args"]):
        assert "StrictHostKeyChecking=yes" in args and f"UserKnownHostsFile={tmp_path / 'kh'}" in args
        assert "GlobalKnownHostsFile=/dev/null" in args
    assert conn.known_hosts == tmp_path / "kh"  # Fabric's ad-hoc commands check that file (RejectPolicy)
    monkeypatch.setenv("OPSCTL_KNOWN_HOSTS", str(tmp_path / "a dir" / "kh"))  # ssh would split this path
    with pytest.raises(HostKeyError, match="OPSCTL_KNOWN_HOSTS"):
        connection_for(load(Path(_site(tmp_path, 2222))).site.host("backup"))
    assert "host_key_checking = True" in (REPO / "ansible.cfg").read_text()


def test_trust_refuses_hosts_without_an_ssh_key(tmp_path):
    code, out = run("hosts", "trust", "backup")  # the embedded sandbox: its VM is reached unchecked
    assert code == 2 and "reached through the sandbox (vm)" in out
    code, out = run("hosts", "trust", "nosuch")
    assert code == 2 and "no host 'nosuch' in the site" in out


def test_trust_of_a_host_that_does_not_answer_records_nothing(tmp_path, monkeypatch):
    # a port nobody listens on (bound, then closed): the scan finds no key, one line says so, exit 1
    known = tmp_path / "known_hosts"
    monkeypatch.setenv("OPSCTL_KNOWN_HOSTS", str(known))
    site = _site(tmp_path, _free_port())
    code, out = run("hosts", "trust", "backup", "--site", site, "--fingerprint", "SHA256:" + "A" * 43,
                    "--timeout", "2")
    flat = " ".join(out.split())
    assert code == 1, out
    assert "no ssh host key from 127.0.0.1 port" in flat and "Fix: check that the host is up" in flat, out
    assert not known.exists()


def test_testinfra_checks_share_one_ssh_connection(sshd, tmp_path, monkeypatch):
    # verify's checks are many small ssh commands; each used to pay a full handshake (seconds under TCG)
    import tempfile

    cache = Path(tempfile.mkdtemp(prefix="oc-", dir="/tmp"))  # short: a unix socket path has 108 bytes
    monkeypatch.setenv("OPSCTL_CACHE", str(cache))
    site = _site(tmp_path, sshd.port)
    assert run("hosts", "trust", "backup", "--site", site, "--fingerprint", sshd.fingerprint)[0] == 0
    host = connection_for(load(site).site.host("backup")).testinfra()
    try:
        assert [host.run("echo %s", n).stdout for n in ("one", "two")] == ["one\n", "two\n"]
        sockets = list((cache / "ssh").iterdir())
        assert len(sockets) == 1 and stat.S_ISSOCK(sockets[0].stat().st_mode), sockets
        assert stat.S_IMODE((cache / "ssh").stat().st_mode) == 0o700
        check = subprocess.run(["ssh", "-o", f"ControlPath={sockets[0]}", "-O", "check", "backup"],
                               capture_output=True, text=True)
        assert check.returncode == 0 and "Master running" in check.stderr, check.stderr
    finally:
        for sock in (cache / "ssh").glob("*"):
            subprocess.run(["ssh", "-o", f"ControlPath={sock}", "-O", "exit", "backup"], capture_output=True)
        shutil.rmtree(cache, ignore_errors=True)
