"""Ad-hoc commands on ssh hosts through Fabric: one command string, stdin streamed (secrets never in
argv), root through ``sudo -n`` for other users, timeouts, and the host key checked against opsctl's
known_hosts with paramiko's ``RejectPolicy`` (an unknown or changed key is a ``HostKeyError`` and
nothing is sent).

Example::

    conn = SshConnection("backup", address="nas.lab", user="admin", known_hosts=known_hosts_file())
    conn.run_stdin("chpasswd", "alice:secret\\n")          # runs `sudo -n -- sh -c chpasswd` remotely
    run_on_all([conn, other], "zpool list -H", timeout=30)  # several hosts at once (ThreadingGroup)
"""

from __future__ import annotations

import io
import os
import shlex
import subprocess
import threading
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import fabric
import paramiko
from invoke.exceptions import CommandTimedOut

from opsctl.connections.base import Connection
from opsctl.connections.hostkeys import changed_message, host_key_name, ssh_path, untrusted_message
from opsctl.errors import HostKeyError, HostUnreachable
from opsctl.paths import cache_dir

#: seconds to wait for the TCP connection and the ssh handshake
CONNECT_TIMEOUT = 20
#: seconds an idle shared ssh connection (see :func:`multiplex_options`) stays open
CONTROL_PERSIST = 60


def multiplex_options() -> str:
    """ssh options that share one connection per host between the ssh commands of testinfra's checks
    (``opsctl verify``), as Ansible does for its own: one handshake instead of one per check, which
    costs a second or more on a slow host (under TCG: most of a verify's time). The sockets live in
    ``$OPSCTL_CACHE/ssh`` (0700), named by ssh's hash of host, port and user (``%C``); when that
    path would be too long for a unix socket, the options are empty (no sharing).

    Example::

        SshBackend(..., ssh_extra_args=f"{multiplex_options()} -o BatchMode=yes")
    """
    sockets = cache_dir() / "ssh"
    if len(str(sockets)) + 42 > 104:  # "/" + %C's 40 hex digits must fit a unix socket path (108 bytes)
        return ""  # a long $OPSCTL_CACHE: one connection per command, slower but working
    sockets.mkdir(mode=0o700, parents=True, exist_ok=True)
    sockets.chmod(0o700)
    return (f"-o ControlMaster=auto -o ControlPersist={CONTROL_PERSIST}s "
            f"-o ControlPath={ssh_path(sockets)}/%C")


class _Remote(fabric.runners.Remote):
    """Fabric's remote runner, reading a non-terminal ``in_stream`` 64 KiB at a time: invoke reads one
    byte per 10 ms loop from anything that is not a terminal, so a 12 kB probe script took two minutes."""

    def read_our_stdin(self, input_):
        data = input_.read(65536)
        return self.decode(data) if isinstance(data, bytes) else data

    def write_proc_stdin(self, data: str) -> None:
        # run_stdin hands binary data over as UTF-8 with surrogate escapes: this gives back the exact
        # bytes (invoke's own encode would raise on the first byte that is not UTF-8)
        self._write_proc_stdin(data.encode("utf-8", errors="surrogateescape"))


_CONFIG = {"runners": {"remote": _Remote}}


@dataclass
class SshConnection(Connection):
    """An ssh host reached through ``fabric.Connection``.

    ``known_hosts`` is opsctl's known_hosts file: the host's key must be in it (paramiko
    ``RejectPolicy``, no other file is read). ``None`` skips the check: only for the sandbox VM, a
    loopback port forward to a VM this machine just made with a fresh key. ``key_filename`` pins the
    client key (the sandbox VM's); otherwise the ssh agent and ``~/.ssh`` keys are used.
    """

    address: str = "127.0.0.1"
    port: int = 22
    user: str = "root"
    known_hosts: Path | None = None
    key_filename: str | None = None
    connect_timeout: int = CONNECT_TIMEOUT
    _fabric: fabric.Connection | None = field(default=None, repr=False, compare=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    @property
    def host_key(self) -> str:
        """How known_hosts names this host (``[addr]:port`` unless the port is 22)."""
        return host_key_name(self.address, self.port)

    # -- the Fabric connection ------------------------------------------------------------------
    def fabric(self) -> fabric.Connection:
        """The open ``fabric.Connection`` (opened once, host key checked)."""
        with self._lock:
            if self._fabric is None or not self._fabric.is_connected:
                self._fabric = self._open()
            return self._fabric

    def _new(self) -> fabric.Connection:
        connect_kwargs: dict = {"banner_timeout": self.connect_timeout, "auth_timeout": self.connect_timeout}
        if self.key_filename:
            connect_kwargs.update(key_filename=self.key_filename, look_for_keys=False, allow_agent=False)
        conn = fabric.Connection(self.address, user=self.user, port=self.port, connect_timeout=self.connect_timeout,
                                 connect_kwargs=connect_kwargs, config=fabric.Config(overrides=_CONFIG))
        client = conn.client
        if self.known_hosts is None:
            client.set_missing_host_key_policy(paramiko.MissingHostKeyPolicy())  # accept, remember nothing
        else:
            if self.known_hosts.is_file():
                client.load_host_keys(str(self.known_hosts))
            client.set_missing_host_key_policy(paramiko.RejectPolicy())
        return conn

    def _open(self) -> fabric.Connection:
        conn = self._new()
        where = f"{self.user}@{self.address}:{self.port}"
        try:
            conn.open()
        except paramiko.BadHostKeyException:
            conn.close()
            raise HostKeyError(changed_message(self.host, self.host_key, self.known_hosts)) from None
        except paramiko.SSHException as exc:
            conn.close()
            if self.known_hosts is not None and "not found in known_hosts" in str(exc):
                raise HostKeyError(untrusted_message(self.host, self.host_key, self.known_hosts)) from None
            raise HostUnreachable(f"ssh to {self.host} ({where}) failed: {exc}",
                                  "check the host's address, user and ssh key in the site file") from None
        except OSError as exc:  # refused, no route, timed out
            conn.close()
            raise HostUnreachable(f"cannot reach {self.host} over ssh ({where}): {exc}",
                                  "check that the host is up and its address and port in the site file") from None
        return conn

    def check_host_key(self) -> None:
        self.fabric()

    def close(self) -> None:
        with self._lock:
            if self._fabric is not None:
                self._fabric.close()
                self._fabric = None

    # -- commands -------------------------------------------------------------------------------
    def remote_command(self, command: str) -> str:
        """The line the remote login shell runs: ``command`` itself as root, else under ``sudo -n``
        (never a password prompt: it would read the secret meant for the command's stdin)."""
        if self.user == "root":
            return command
        return f"sudo -n -- sh -c {shlex.quote(command)}"

    def run_stdin(self, command: str, data: str | bytes, timeout: float | None = 60) -> subprocess.CompletedProcess:
        text = isinstance(data, str)
        stream = io.StringIO(data if text else data.decode("utf-8", errors="surrogateescape"))
        try:
            res = self.fabric().run(self.remote_command(command), in_stream=stream, hide=True, warn=True,
                                    pty=False, timeout=int(timeout) if timeout else None)
        except CommandTimedOut:
            raise subprocess.TimeoutExpired(command, timeout) from None
        out, err = res.stdout, res.stderr
        if not text:
            out, err = out.encode(), err.encode()
        return subprocess.CompletedProcess(command, res.exited, out, err)

    def run_stream(self, command: str, chunks: Iterable[bytes], timeout: float | None = None
                   ) -> subprocess.CompletedProcess:
        """Run ``command`` with ``chunks`` (bytes, e.g. ``docker save``'s output) streamed to its stdin,
        never held in memory whole; stdout/stderr come back as text.

        Example::

            conn.run_stream("docker load", client.images.get(tag).save(named=True))
        """
        try:
            res = self.fabric().run(self.remote_command(command), in_stream=_ChunkStdin(chunks), hide=True,
                                    warn=True, pty=False, timeout=int(timeout) if timeout else None)
        except CommandTimedOut:
            raise subprocess.TimeoutExpired(command, timeout) from None
        return subprocess.CompletedProcess(command, res.exited, res.stdout, res.stderr)

    def popen(self, command: str, **kwargs) -> RemoteProcess:
        """Start ``command``; its output comes line by line from ``.stdout`` (stderr merged in), like
        ``subprocess.Popen(..., stdout=PIPE, stderr=STDOUT, text=True)``."""
        return RemoteProcess(self.fabric(), self.remote_command(command))


class RemoteProcess:
    """A command running on an ssh host, shaped like the part of ``subprocess.Popen`` callers use:
    ``stdout`` (text lines, stderr merged), ``wait()``, ``poll()``, ``returncode``."""

    def __init__(self, conn: fabric.Connection, line: str) -> None:
        read_fd, write_fd = os.pipe()
        self.stdout = os.fdopen(read_fd, "r", errors="replace")
        self._writer = os.fdopen(write_fd, "w")
        self.returncode: int | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._work, args=(conn, line), daemon=True)
        self._thread.start()

    def _work(self, conn: fabric.Connection, line: str) -> None:
        try:
            res = conn.run(line, in_stream=False, out_stream=self._writer, err_stream=self._writer, warn=True,
                           pty=False)
            self.returncode = res.exited
        except BaseException as exc:  # handed to wait()
            self._error = exc
        finally:
            self._writer.close()

    def poll(self) -> int | None:
        return None if self._thread.is_alive() else self.wait()

    def wait(self, timeout: float | None = None) -> int:
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise subprocess.TimeoutExpired("remote command", timeout or 0)
        if self._error is not None:
            raise self._error
        assert self.returncode is not None
        return self.returncode


def run_on_all(connections: Sequence[Connection], command: str, data: str = "",
               timeout: float | None = 60) -> dict[str, subprocess.CompletedProcess | Exception]:
    """Run the same ``command`` (with ``data`` on stdin) on every host at once; by host name, the
    completed process or the exception (unreachable host, refused key, timeout).

    The ssh hosts go through ``fabric.ThreadingGroup`` (one per kind of login: root, or sudo), each
    host checked against its known_hosts first; the others (this machine, containers) run in threads.
    """
    results: dict[str, subprocess.CompletedProcess | Exception] = {}
    groups: dict[bool, list[SshConnection]] = {}
    for conn in connections:
        if isinstance(conn, SshConnection):
            try:
                conn.fabric()  # opens it and checks the host key
                groups.setdefault(conn.user == "root", []).append(conn)
            except Exception as exc:
                results[conn.host] = exc
    for members in groups.values():
        by_fabric = {id(c.fabric()): c for c in members}
        group = fabric.ThreadingGroup.from_connections([c.fabric() for c in members])
        try:  # the group hands every host the same arguments: each thread reads its own copy of stdin
            items = list(group.run(members[0].remote_command(command), in_stream=_PerThreadStdin(data), hide=True,
                                   warn=True, pty=False, timeout=int(timeout) if timeout else None).items())
        except fabric.exceptions.GroupException as exc:
            items = list(exc.result.items())
        for fab, res in items:
            name = by_fabric[id(fab)].host
            if isinstance(res, CommandTimedOut):
                results[name] = subprocess.TimeoutExpired(command, timeout)
            elif isinstance(res, Exception):
                results[name] = res
            else:
                results[name] = subprocess.CompletedProcess(command, res.exited, res.stdout, res.stderr)
    others = [c for c in connections if not isinstance(c, SshConnection)]
    with ThreadPoolExecutor(max_workers=max(1, len(others))) as pool:
        futures = {c.host: pool.submit(c.run_stdin, command, data, timeout) for c in others}
    for name, future in futures.items():
        try:
            results[name] = future.result()
        except Exception as exc:
            results[name] = exc
    return results


class _PerThreadStdin(io.TextIOBase):
    """A stdin that every reading thread reads from the start (the same text for every host)."""

    def __init__(self, data: str) -> None:
        self._data = data
        self._pos: dict[int, int] = {}

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> str:
        me = threading.get_ident()
        pos = self._pos.get(me, 0)
        end = len(self._data) if size is None or size < 0 else pos + size
        self._pos[me] = min(end, len(self._data))
        return self._data[pos:end]


class _ChunkStdin(io.TextIOBase):
    """Binary chunks as the text stdin :class:`_Remote` reads: each byte kept as is (surrogate escapes,
    which ``_Remote.write_proc_stdin`` turns back into the same bytes)."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = iter(chunks)
        self._buffer = b""

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> str:
        want = 1 << 62 if size is None or size < 0 else size
        while len(self._buffer) < want:
            chunk = next(self._chunks, None)
            if chunk is None:
                break
            self._buffer += chunk
        data, self._buffer = self._buffer[:want], self._buffer[want:]
        return data.decode("utf-8", errors="surrogateescape")
