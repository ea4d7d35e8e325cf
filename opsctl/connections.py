"""How to reach each host: the one place that turns a spec host (or a running sandbox host)
into Ansible connection variables and a testinfra backend.

``opsctl provision`` (Ansible), ``opsctl verify`` (testinfra) and ``opsctl status`` (read-only
probes) all go through here, so they always talk to the same machine the same way.

Host keys: every ssh connection to a real host (Ansible, testinfra, stdin-fed commands) runs with
``StrictHostKeyChecking=yes`` against opsctl's own known_hosts file (:func:`known_hosts_file`,
``~/.config/opsctl/known_hosts``), which only ``opsctl hosts trust NAME`` writes, after the operator
confirmed the fingerprint. An unknown or changed key is a :class:`HostKeyError` naming that fix.
Only the sandbox VM (a loopback port forward to a VM this machine just created with a fresh key)
is reached unchecked.
"""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from opsctl.errors import HostKeyError
from opsctl.spec.models import Host

__all__ = ["Connection", "HostKeyError", "connection_for", "known_hosts_file", "strict_ssh_options"]


def known_hosts_file() -> Path:
    """opsctl's known_hosts: ``$OPSCTL_KNOWN_HOSTS``, else ``$XDG_CONFIG_HOME/opsctl/known_hosts``
    (``~/.config/opsctl/known_hosts``)."""
    if os.environ.get("OPSCTL_KNOWN_HOSTS"):
        return Path(os.environ["OPSCTL_KNOWN_HOSTS"])
    config = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(config) / "opsctl" / "known_hosts"


def _ssh_path(path: Path) -> str:
    # ssh splits UserKnownHostsFile on whitespace and expands % tokens; testinfra passes it through a shell
    if not re.fullmatch(r"[A-Za-z0-9._/+@,=:~\[\]-]+", str(path)):
        raise HostKeyError(f"the known_hosts path {str(path)!r} has characters ssh or a shell would reinterpret",
                           "set OPSCTL_KNOWN_HOSTS (or HOME/XDG_CONFIG_HOME) to a plain path")
    return str(path)


def strict_ssh_options(known_hosts: Path | None = None) -> list[str]:
    """ssh options that refuse any host whose key is not in opsctl's known_hosts (no other file, no
    prompt, no learning new keys)."""
    path = _ssh_path(known_hosts or known_hosts_file())
    return ["-o", "StrictHostKeyChecking=yes", "-o", f"UserKnownHostsFile={path}",
            "-o", "GlobalKnownHostsFile=/dev/null", "-o", "UpdateHostKeys=no", "-o", "BatchMode=yes"]


def host_key_name(address: str, port: int) -> str:
    """How known_hosts names ``address:port`` (``[addr]:port`` unless the port is 22)."""
    return address if port == 22 else f"[{address}]:{port}"


def explain_ssh_failure(name: str, key_name: str, stderr: str | bytes, known_hosts: str | Path) -> str | None:
    """The one-line explanation (with the fix) of an ssh host key refusal in ``stderr``; None otherwise."""
    if isinstance(stderr, bytes):
        stderr = stderr.decode(errors="replace")
    if "Host key verification failed" not in stderr:
        return None
    look = "check the fingerprint on the host's console (ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub)"
    if "IDENTIFICATION HAS CHANGED" in stderr or "has changed" in stderr:
        return (f"the ssh host key of {name} ({key_name}) has CHANGED since it was trusted in {known_hosts}: the "
                f"host was reinstalled, or someone is intercepting the connection; nothing was sent to it. Fix: "
                f"{look} and, only if it matches, run `opsctl hosts trust {name}`")
    return (f"the ssh host key of {name} ({key_name}) is not trusted yet (not in {known_hosts}); nothing was sent "
            f"to it. Fix: {look}, then run `opsctl hosts trust {name}`")


@dataclass
class Connection:
    host: str
    ansible: dict = field(default_factory=dict)  # ansible_* host variables
    testinfra_url: str = "local://"
    testinfra_kwargs: dict = field(default_factory=dict)
    #: argv prefix that runs one shell command string on the host with our stdin attached
    exec_prefix: list[str] = field(default_factory=lambda: ["sh", "-c"])
    #: for a real ssh host: its known_hosts name (``[addr]:port``) and the known_hosts file checked
    host_key: str | None = None
    known_hosts: str | None = None
    _key_checked: bool = field(default=False, repr=False)

    def run_stdin(self, command: str, data: str | bytes, timeout: float = 60) -> subprocess.CompletedProcess:
        """Run ``command`` on the host feeding ``data`` on stdin: secrets go this way, never in argv."""
        res = subprocess.run(self.argv(command), input=data, capture_output=True,
                             text=isinstance(data, str), timeout=timeout)
        if res.returncode == 255:
            self._raise_host_key(res.stderr)
        return res

    def popen(self, command: str, **kwargs) -> subprocess.Popen:
        """Start ``command`` on the host (stdout/stderr as given in ``kwargs``), for streaming."""
        self.check_host_key()
        return subprocess.Popen(self.argv(command), **kwargs)

    def check_host_key(self) -> None:
        """For a real ssh host: connect once (``true``) and raise :class:`HostKeyError` if its key is not
        the trusted one. Other connections, and later calls, do nothing."""
        if self.known_hosts is None or self._key_checked:
            return
        res = subprocess.run(self.argv("true"), capture_output=True, stdin=subprocess.DEVNULL, timeout=120)
        if res.returncode == 255:
            self._raise_host_key(res.stderr)
        self._key_checked = True

    def _raise_host_key(self, stderr: str | bytes) -> None:
        if self.known_hosts is None or self.host_key is None:
            return
        message = explain_ssh_failure(self.host, self.host_key, stderr or "", self.known_hosts)
        if message:
            raise HostKeyError(message)

    def argv(self, command: str) -> list[str]:
        """The local argv that runs the shell string ``command`` on the host."""
        if self.exec_prefix[0] == "ssh" and self.exec_prefix[-1] == "-c":  # ssh ... sudo sh -c: remote re-parses
            command = _q(command)
        return [*self.exec_prefix, command]

    def testinfra(self):
        """A ``testinfra.host.Host`` for this host (commands run as the connection's user)."""
        import testinfra

        self.check_host_key()  # testinfra would turn a refused key into many failed checks: one clear error
        return testinfra.get_host(self.testinfra_url, **self.testinfra_kwargs)

    def run(self, command: str, timeout: float | None = None):
        """Run a shell command on the host; returns testinfra's CommandResult (rc, stdout, stderr)."""
        host = self.testinfra()
        return host.run(command) if timeout is None else host.run(f"timeout {int(timeout)} sh -c {_q(command)}")


def _q(text: str) -> str:
    import shlex

    return shlex.quote(text)


#: The sandbox VM only: a VM this machine created, with a fresh host key, behind a loopback port forward.
_SANDBOX_SSH_OPTS = "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR"


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
        return Connection(host.name, {**ansible_host_vars(vm), "ansible_host_key_checking": False},
                          f"ssh://root@127.0.0.1:{vm.ssh_port}",
                          {"ssh_identity_file": vm.key, "ssh_extra_args": _SANDBOX_SSH_OPTS},
                          ["ssh", *_SANDBOX_SSH_OPTS.split(), "-o", "BatchMode=yes", "-i", vm.key, "-p",
                           str(vm.ssh_port), "root@127.0.0.1"])
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
    # a real host over ssh: its key must be the one `opsctl hosts trust` recorded
    address = host.address or host.name
    known = known_hosts_file()
    opts = strict_ssh_options(known)
    return Connection(host.name, {"ansible_host": address, "ansible_port": host.port, "ansible_user": host.user,
                                  "ansible_become": host.user != "root", "ansible_host_key_checking": True,
                                  "ansible_ssh_common_args": " ".join(opts)},
                      f"ssh://{host.user}@{address}:{host.port}",
                      {"ssh_extra_args": " ".join(opts), **({"sudo": True} if host.user != "root" else {})},
                      ["ssh", *opts, "-p", str(host.port), f"{host.user}@{address}",
                       *(["sudo", "sh", "-c"] if host.user != "root" else [])],
                      host_key=host_key_name(address, host.port), known_hosts=str(known))
