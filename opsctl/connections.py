"""How to reach each host: the one place that turns a spec host (or a running sandbox host)
into Ansible connection variables and a testinfra backend.

``opsctl provision`` (Ansible), ``opsctl verify`` (testinfra) and ``opsctl status`` (read-only
probes) all go through here, so they always talk to the same machine the same way.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field

from opsctl.spec.models import Host


@dataclass
class Connection:
    host: str
    ansible: dict = field(default_factory=dict)  # ansible_* host variables
    testinfra_url: str = "local://"
    testinfra_kwargs: dict = field(default_factory=dict)
    #: argv prefix that runs one shell command string on the host with our stdin attached
    exec_prefix: list[str] = field(default_factory=lambda: ["sh", "-c"])

    def run_stdin(self, command: str, data: str | bytes, timeout: float = 60) -> subprocess.CompletedProcess:
        """Run ``command`` on the host feeding ``data`` on stdin: secrets go this way, never in argv."""
        return subprocess.run(self.argv(command), input=data, capture_output=True,
                              text=isinstance(data, str), timeout=timeout)

    def popen(self, command: str, **kwargs) -> subprocess.Popen:
        """Start ``command`` on the host (stdout/stderr as given in ``kwargs``), for streaming."""
        return subprocess.Popen(self.argv(command), **kwargs)

    def argv(self, command: str) -> list[str]:
        """The local argv that runs the shell string ``command`` on the host."""
        if self.exec_prefix[0] == "ssh" and self.exec_prefix[-1] == "-c":  # ssh ... sudo sh -c: remote re-parses
            command = _q(command)
        return [*self.exec_prefix, command]

    def testinfra(self):
        """A ``testinfra.host.Host`` for this host (commands run as the connection's user)."""
        import testinfra

        return testinfra.get_host(self.testinfra_url, **self.testinfra_kwargs)

    def run(self, command: str, timeout: float | None = None):
        """Run a shell command on the host; returns testinfra's CommandResult (rc, stdout, stderr)."""
        host = self.testinfra()
        return host.run(command) if timeout is None else host.run(f"timeout {int(timeout)} sh -c {_q(command)}")


def _q(text: str) -> str:
    import shlex

    return shlex.quote(text)


_SSH_OPTS = "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR"


def connection_for(host: Host) -> Connection:
    """Connection of a spec host; sandbox hosts are looked up in the running sandbox."""
    if host.sandbox == "vm":
        from opsctl.sandbox.errors import SandboxError
        from opsctl.sandbox.zfsvm import ZfsVM, ansible_host_vars

        try:
            vm = ZfsVM.load(host.name)
        except (FileNotFoundError, SandboxError) as exc:
            raise SandboxError(f"sandbox VM {host.name!r} is not running ({exc})",
                               "start the sandbox with `opsctl sandbox up`") from None
        if not vm.is_running():
            raise SandboxError(f"sandbox VM {host.name!r} is not running", "start it with `opsctl sandbox up`")
        return Connection(host.name, ansible_host_vars(vm), f"ssh://root@127.0.0.1:{vm.ssh_port}",
                          {"ssh_identity_file": vm.key, "ssh_extra_args": _SSH_OPTS},
                          ["ssh", *_SSH_OPTS.split(), "-o", "BatchMode=yes", "-i", vm.key, "-p", str(vm.ssh_port),
                           "root@127.0.0.1"])
    if host.sandbox == "container" or host.connection == "docker":
        from opsctl.sandbox.containers import container_name

        name = container_name(host.name) if host.sandbox else (host.address or host.name)
        return Connection(host.name, {"ansible_connection": "community.docker.docker", "ansible_host": name,
                                      "ansible_user": host.user,
                                      "ansible_python_interpreter": "/usr/bin/python3"},
                          f"docker://{host.user}@{name}",
                          exec_prefix=["docker", "exec", "-i", "-u", host.user, name, "sh", "-c"])
    if host.connection == "local":
        return Connection(host.name, {"ansible_connection": "local",
                                      "ansible_python_interpreter": "/usr/bin/python3"}, "local://")
    address = host.address or host.name
    return Connection(host.name, {"ansible_host": address, "ansible_port": host.port, "ansible_user": host.user,
                                  "ansible_become": host.user != "root"},
                      f"ssh://{host.user}@{address}:{host.port}",
                      {"ssh_extra_args": "-o BatchMode=yes", **({"sudo": True} if host.user != "root" else {})},
                      ["ssh", "-o", "BatchMode=yes", "-p", str(host.port), f"{host.user}@{address}",
                       *(["sudo", "sh", "-c"] if host.user != "root" else [])])
