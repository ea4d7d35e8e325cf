"""The interface every host connection has, and the transports that run a local program: this machine
(``sh -c``) and a Docker container (``docker exec -i ... sh -c``).

Real ssh hosts (and the sandbox VM) use :class:`opsctl.connections.ssh.SshConnection` (Fabric).
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field


@dataclass
class Result:
    """What :meth:`Connection.run` returns: exit code and output, as text."""

    rc: int
    stdout: str
    stderr: str

    @property
    def returncode(self) -> int:
        return self.rc

    @property
    def succeeded(self) -> bool:
        return self.rc == 0


@dataclass
class Connection:
    """How to reach one host: its Ansible variables, its testinfra backend and ad-hoc commands.

    Subclasses implement :meth:`run_stdin` and :meth:`popen` (ad-hoc commands); Ansible and testinfra
    keep their own transports, configured by :attr:`ansible` and :attr:`testinfra_url`/``_kwargs``.
    """

    host: str
    ansible: dict = field(default_factory=dict)  # ansible_* host variables
    testinfra_url: str = "local://"
    testinfra_kwargs: dict = field(default_factory=dict)

    def run_stdin(self, command: str, data: str | bytes, timeout: float | None = 60) -> subprocess.CompletedProcess:
        """Run the shell string ``command`` on the host (as root) feeding ``data`` on stdin: secrets go
        this way, never in argv. Output is text when ``data`` is text, else bytes.

        Raises:
            subprocess.TimeoutExpired: the command ran longer than ``timeout`` seconds.
            HostUnreachable: the host cannot be reached (HostKeyError: its key is not the trusted one).
        """
        raise NotImplementedError

    def popen(self, command: str, **kwargs) -> subprocess.Popen:
        """Start ``command`` on the host for streaming its output (``stdout=PIPE``, ``text=True``...)."""
        raise NotImplementedError

    def check_host_key(self) -> None:
        """Raise :class:`~opsctl.errors.HostKeyError` unless the host's key is the trusted one (real ssh
        hosts only; other connections have no host key)."""

    def run(self, command: str, timeout: float | None = None) -> Result:
        """Run a shell command on the host (as root); its exit code and output."""
        res = self.run_stdin(command, "", timeout=timeout)
        return Result(res.returncode, res.stdout, res.stderr)

    def testinfra(self):
        """A ``testinfra.host.Host`` for this host (commands run as root)."""
        import testinfra

        self.check_host_key()  # testinfra would turn a refused key into many failed checks: one clear error
        return testinfra.get_host(self.testinfra_url, **self.testinfra_kwargs)


@dataclass
class ExecConnection(Connection):
    """A host reached by running a local program that ends in ``sh -c``: this machine, or a container
    through ``docker exec -i``. The command string is one argument of that ``sh -c``: no quoting."""

    #: argv prefix that runs one shell command string on the host with our stdin attached
    exec_prefix: list[str] = field(default_factory=lambda: ["sh", "-c"])

    def run_stdin(self, command: str, data: str | bytes, timeout: float | None = 60) -> subprocess.CompletedProcess:
        return subprocess.run([*self.exec_prefix, command], input=data, capture_output=True,
                              text=isinstance(data, str), timeout=timeout)

    def popen(self, command: str, **kwargs) -> subprocess.Popen:
        return subprocess.Popen([*self.exec_prefix, command], **kwargs)
