"""Ad-hoc commands through Fabric (opsctl/connections/ssh.py), against real sshds: a throwaway one on
127.0.0.1 (tests/connections/test_hostkeys.py's ``Sshd``) and the session OpenZFS VM's.

A command runs; a secret goes on stdin and never into any process's argv; a host whose key is not in
the known_hosts given, or whose key changed, is refused (HostKeyError) before anything is sent.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from opsctl.connections import ExecConnection, SshConnection, connection_for, run_on_all
from opsctl.connections import resolve as resolve_mod
from opsctl.errors import HostKeyError, HostUnreachable
from opsctl.site.models import Host
from tests.connections.test_hostkeys import SSHD, USER, sshd  # noqa: F401  (the fixture)
from tests.support.paths import REPO

#: Reads the secret from stdin into a file, then looks for it in every process's command line while
#: the shell that received it still runs (prints how many command lines hold it).
_SCAN_ARGV = r"""umask 077; cat > /tmp/opsctl-secret-check; python3 - <<'PY'
import glob
secret = open("/tmp/opsctl-secret-check", "rb").read().strip()
hits = 0
for path in glob.glob("/proc/[0-9]*/cmdline"):
    try:
        hits += secret in open(path, "rb").read()
    except OSError:
        pass
print(hits)
PY
rm -f /tmp/opsctl-secret-check"""

needs_sshd = pytest.mark.skipif(not os.path.exists(SSHD), reason="needs openssh-server (scripts/install.sh)")


def _keyscan(port: int, name: str = "127.0.0.1") -> str:
    line = subprocess.run(["ssh-keyscan", "-p", str(port), "-t", "ed25519", "127.0.0.1"], capture_output=True,
                          text=True, timeout=60).stdout.strip()
    assert line, "ssh-keyscan got no key"
    return line.replace("[127.0.0.1]", f"[{name}]", 1) + "\n"


def _other_key(tmp_path: Path, port: int) -> str:
    key = tmp_path / "other"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    kind, blob = (tmp_path / "other.pub").read_text().split()[:2]
    return f"[127.0.0.1]:{port} {kind} {blob}\n"


def _check_refusals(tmp_path: Path, make) -> None:
    """An empty known_hosts, then one with another key for the host: both refused, nothing sent."""
    empty = tmp_path / "empty_known_hosts"
    empty.write_text("")
    with pytest.raises(HostKeyError, match="is not trusted yet") as info:
        make(empty).run_stdin("touch /tmp/opsctl-must-not-exist", "")
    assert "`opsctl hosts trust" in str(info.value)
    changed = tmp_path / "changed_known_hosts"
    changed.write_text(_other_key(tmp_path, make(empty).port))
    with pytest.raises(HostKeyError, match="has CHANGED"):
        make(changed).run_stdin("touch /tmp/opsctl-must-not-exist", "")
    assert changed.read_text().count("\n") == 1  # nothing learned


# ------------------------------------------------------------------------ a local throwaway sshd


@pytest.fixture
def server(sshd, tmp_path):  # noqa: F811 - the sshd fixture imported from test_hostkeys
    """test_hostkeys' throwaway sshd, with a known_hosts that trusts it as 127.0.0.1 and localhost."""
    known = tmp_path / "known_hosts"
    known.write_text(_keyscan(sshd.port) + _keyscan(sshd.port, "localhost"))
    sshd.known = known
    return sshd


def _conn(server, known: Path | None = None, name: str = "backup", address: str = "127.0.0.1") -> SshConnection:
    return SshConnection(name, address=address, port=server.port, user=USER, known_hosts=known or server.known)


@needs_sshd
def test_command_runs_and_the_secret_goes_on_stdin_only(server):
    secret = "s3cret-" + os.urandom(8).hex()
    res = _conn(server).run_stdin(_SCAN_ARGV, secret + "\n")
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "0"  # read from stdin, in no command line
    # the scan does see a secret that is in an argv
    res = _conn(server).run_stdin(f": {secret}; " + _SCAN_ARGV, secret + "\n")
    assert int(res.stdout.strip()) >= 1


@needs_sshd
def test_unknown_or_changed_host_key_is_refused(server, tmp_path):
    Path("/tmp/opsctl-must-not-exist").unlink(missing_ok=True)
    _check_refusals(tmp_path, lambda known: _conn(server, known))
    assert not Path("/tmp/opsctl-must-not-exist").exists()


@needs_sshd
def test_large_stdin_timeout_bytes_and_exit_codes(server):
    conn = _conn(server)
    data = "x" * 200_000
    started = time.monotonic()
    res = conn.run_stdin("wc -c", data, timeout=30)  # invoke's own reader takes 1 byte per 10 ms: 2000 s
    assert res.stdout.strip() == "200000" and time.monotonic() - started < 20
    raw = conn.run_stdin("cat; exit 3", b"\x00bytes\n")
    assert raw.returncode == 3 and raw.stdout == b"\x00bytes\n"
    blob = bytes(range(256)) * 512 + os.urandom(65536)  # not UTF-8: every byte value, across 64 KiB reads
    digest = conn.run_stdin("sha256sum", blob, timeout=30)
    assert digest.returncode == 0 and digest.stdout.split()[0].decode() == hashlib.sha256(blob).hexdigest()
    with pytest.raises(subprocess.TimeoutExpired):
        conn.run_stdin("sleep 30", "", timeout=1)
    result = conn.run("echo out; echo err >&2; exit 4")
    assert (result.rc, result.stdout, result.stderr) == (4, "out\n", "err\n")


@needs_sshd
def test_run_stream_sends_every_byte_without_holding_it_whole(server):
    # docker save's output, shipped to a training host: binary, in chunks of any size
    blob = bytes(range(256)) * 4096 + os.urandom(3 << 20)
    chunks = (blob[i:i + n] for i, n in _cuts(len(blob)))
    res = _conn(server).run_stream("sha256sum; exit 7", chunks, timeout=120)
    assert res.returncode == 7 and res.stdout.split()[0] == hashlib.sha256(blob).hexdigest()
    assert _conn(server).run_stream("wc -c", iter([])).stdout.strip() == "0"  # EOF on an empty stream


def _cuts(total: int):
    """(offset, size) pairs with sizes 1 B .. 1 MiB, covering ``total`` bytes."""
    pos, sizes = 0, itertools.cycle([1, 7, 65535, 65536, 65537, 1 << 20, 300_000])
    while pos < total:
        size = next(sizes)
        yield pos, size
        pos += size


@needs_sshd
def test_ship_image_goes_over_the_checked_ssh_connection(server, tmp_path, monkeypatch):
    # a real ssh training host (this machine through the loopback sshd): its engine is this one, so
    # nothing is shipped; an untrusted key is refused before anything is sent
    import yaml

    from opsctl.site import load
    from opsctl.train.image import ship_image

    site_file = tmp_path / "site.yml"
    site_file.write_text(yaml.safe_dump({
        "site": "lab", "hosts": [{"name": "gpu", "address": "127.0.0.1", "port": server.port, "user": USER}],
        "training": {"host": "gpu", "runtime": "docker", "gpus": 0, "image": "opsctl/charlm:latest",
                     "data_dir": str(tmp_path / "data"), "checkpoint_dir": str(tmp_path / "ckpt")}}))
    site = load(str(site_file)).site
    monkeypatch.setenv("OPSCTL_KNOWN_HOSTS", str(server.known))
    assert ship_image(site, "opsctl/charlm:latest") is False  # the host's engine ID is this engine's
    monkeypatch.setenv("OPSCTL_KNOWN_HOSTS", str(tmp_path / "empty"))
    with pytest.raises(HostKeyError, match="is not trusted yet"):
        ship_image(site, "opsctl/charlm:latest")


@needs_sshd
def test_popen_streams_lines(server):
    proc = _conn(server).popen("for i in 1 2 3; do echo line$i; sleep 0.2; done; exit 5")
    assert [line.strip() for line in proc.stdout] == ["line1", "line2", "line3"]
    assert proc.wait() == 5 and proc.returncode == 5


@needs_sshd
def test_run_on_all_runs_at_once_and_reports_each_host(server, tmp_path):
    empty = tmp_path / "none"
    conns = [_conn(server, name="a"), _conn(server, name="b", address="localhost"), _conn(server, empty, name="c"),
             ExecConnection("here")]
    started = time.monotonic()
    results = run_on_all(conns, "sleep 2; cat | wc -c", "12345", timeout=60)
    assert time.monotonic() - started < 6  # not one after another
    for name in ("a", "b", "here"):
        assert results[name].returncode == 0 and results[name].stdout.strip() == "5", results[name]
    assert isinstance(results["c"], HostKeyError)


def test_sudo_for_other_users_and_root_as_is():
    assert SshConnection("h", user="root").remote_command("cd /x && ls") == "cd /x && ls"
    # never a password prompt: sudo -S would read the secret meant for the command's stdin
    assert SshConnection("h", user="admin").remote_command("cd /x && ls") == "sudo -n -- sh -c 'cd /x && ls'"


def test_real_hosts_get_fabric_with_opsctl_known_hosts(tmp_path, monkeypatch):
    monkeypatch.setenv("OPSCTL_KNOWN_HOSTS", str(tmp_path / "kh"))
    conn = connection_for(Host(name="nas", address="10.0.0.5", port=2200, user="alice"))
    assert isinstance(conn, SshConnection) and conn.known_hosts == tmp_path / "kh"
    assert (conn.address, conn.port, conn.user, conn.host_key) == ("10.0.0.5", 2200, "alice", "[10.0.0.5]:2200")


def test_unreachable_host_is_one_clear_error():
    with pytest.raises(HostUnreachable, match="cannot reach nas over ssh") as info:
        SshConnection("nas", address="127.0.0.1", port=1, connect_timeout=5).run_stdin("true", "")
    assert not isinstance(info.value, HostKeyError) and info.value.fix


# ----------------------------------------------------------------------------------- the seam


def test_sandbox_host_without_the_plugin_names_the_fix(monkeypatch):
    monkeypatch.setattr(resolve_mod, "_RESOLVERS", {})
    with pytest.raises(HostUnreachable, match="sandbox plug-in is not loaded") as info:
        connection_for(Host(name="backup", sandbox="vm"))
    assert "opsctl" in info.value.fix


def test_sandbox_registers_its_resolvers():
    import opsctl.sandbox  # noqa: F401

    assert {"vm", "container"} <= set(resolve_mod.registered_kinds())
    conn = connection_for(Host(name="trainer", sandbox="container"))
    assert isinstance(conn, ExecConnection)
    assert conn.exec_prefix == ["docker", "exec", "-i", "-u", "root", "opsctl-trainer", "sh", "-c"]


def test_the_product_never_imports_the_sandbox():
    product = ["opsctl.connections", "opsctl.site.loader", "opsctl.render.engine", "opsctl.apply.provision",
               "opsctl.apply.inventory", "opsctl.verify", "opsctl.status", "opsctl.users", "opsctl.train.image",
               "opsctl.train.run", "opsctl.slurm.jobs", "opsctl.state.backup"]
    code = (f"import importlib, sys\nfor m in {product!r}: importlib.import_module(m)\n"
            "print(sorted(m for m in sys.modules if m.startswith('opsctl.sandbox')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


# ----------------------------------------------------------------------------- the sandbox VM


@pytest.mark.vm
def test_fabric_against_the_sandbox_vm(session_vm, tmp_path):
    vm = session_vm
    known = tmp_path / "known_hosts"
    known.write_text(_keyscan(vm.ssh_port))

    def make(kh: Path) -> SshConnection:
        return SshConnection("vmtest", address="127.0.0.1", port=vm.ssh_port, user="root", known_hosts=kh,
                             key_filename=vm.key)

    conn = make(known)
    assert conn.run("hostname").stdout.strip() == "backup"
    secret = "vm-s3cret-" + os.urandom(8).hex()
    res = conn.run_stdin(_SCAN_ARGV, secret + "\n")
    assert res.returncode == 0 and res.stdout.strip() == "0", res
    # and the scan would have found it in an argv
    assert int(conn.run_stdin(f": {secret}; " + _SCAN_ARGV, secret + "\n").stdout.strip()) >= 1
    _check_refusals(tmp_path, make)
    assert conn.run("test -e /tmp/opsctl-must-not-exist").rc == 1
