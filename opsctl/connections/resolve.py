"""``connection_for(host)``: the one place that turns a site file's host into its connection.

Real hosts: ssh through Fabric (:class:`~opsctl.connections.ssh.SshConnection`, key checked against
opsctl's known_hosts), this machine (``connection: local``) or a container (``connection: docker``).
Sandbox hosts (``sandbox: vm`` / ``container``) are made on this machine by the sandbox, which is not
part of the product: it registers a resolver per kind (:func:`register_resolver`) when it is loaded
(the CLI loads it at start). Without one, a sandbox host is a clear HostUnreachable naming the fix.
"""

from __future__ import annotations

from collections.abc import Callable

from opsctl.connections.base import Connection, ExecConnection
from opsctl.connections.hostkeys import known_hosts_file, strict_ssh_options
from opsctl.connections.ssh import SshConnection, multiplex_options
from opsctl.errors import HostUnreachable
from opsctl.site.models import Host

Resolver = Callable[[Host], Connection]
_RESOLVERS: dict[str, Resolver] = {}


def register_resolver(kind: str, resolver: Resolver) -> None:
    """Resolve hosts with ``sandbox: <kind>`` through ``resolver`` (the sandbox plug-in calls this)."""
    _RESOLVERS[kind] = resolver


def registered_kinds() -> list[str]:
    return sorted(_RESOLVERS)


def connection_for(host: Host) -> Connection:
    """Connection of a site file's host."""
    if host.sandbox:
        resolver = _RESOLVERS.get(host.sandbox)
        if resolver is None:
            raise HostUnreachable(f"host {host.name!r} is a sandbox {host.sandbox} (sandbox: {host.sandbox}), "
                                  "but the sandbox plug-in is not loaded in this process",
                                  "run it through the `opsctl` command (it loads the sandbox), or "
                                  "`import opsctl.sandbox.plugin` first")
        return resolver(host)
    if host.connection == "docker":
        return docker_connection(host.name, host.address or host.name, host.user)
    if host.connection == "local":
        return ExecConnection(host.name, {"ansible_connection": "local",
                                          "ansible_python_interpreter": "/usr/bin/python3"}, "local://")
    # a real host over ssh: its key must be the one `opsctl hosts trust` recorded
    address = host.address or host.name
    known = known_hosts_file()
    opts = " ".join(strict_ssh_options(known))
    return SshConnection(host.name, {"ansible_host": address, "ansible_port": host.port, "ansible_user": host.user,
                                     "ansible_become": host.user != "root", "ansible_host_key_checking": True,
                                     "ansible_ssh_common_args": opts},
                         f"ssh://{host.user}@{address}:{host.port}",
                         {"ssh_extra_args": f"{opts} {multiplex_options()}",
                          **({"sudo": True} if host.user != "root" else {})},
                         address=address, port=host.port, user=host.user, known_hosts=known)


def docker_connection(name: str, container: str, user: str) -> ExecConnection:
    """A container on this machine's Docker engine, reached with ``docker exec`` (Ansible:
    ``community.docker.docker``)."""
    return ExecConnection(name, {"ansible_connection": "community.docker.docker", "ansible_host": container,
                                 "ansible_user": user, "ansible_python_interpreter": "/usr/bin/python3"},
                          f"docker://{user}@{container}",
                          exec_prefix=["docker", "exec", "-i", "-u", user, container, "sh", "-c"])
