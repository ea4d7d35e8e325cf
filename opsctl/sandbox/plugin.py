"""The sandbox's side of the connection seam: how ``sandbox: vm`` and ``sandbox: container`` hosts are
reached. Importing :mod:`opsctl.sandbox` registers both with :func:`opsctl.connections.register_resolver`;
the product never imports the sandbox.
"""

from __future__ import annotations

from opsctl.connections import Connection, SshConnection, docker_connection, register_resolver
from opsctl.connections.ssh import multiplex_options
from opsctl.sandbox.errors import SandboxError
from opsctl.site.models import Host

#: The sandbox VM only: a VM this machine created, with a fresh host key, behind a loopback port forward.
_SANDBOX_SSH_OPTS = "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR"


def vm_connection(host: Host) -> Connection:
    """The running sandbox VM named like ``host``, over its loopback ssh port (key not checked: see above)."""
    from opsctl.sandbox.vm import ZfsVM, ansible_host_vars

    try:
        vm = ZfsVM.load(host.name)
    except (FileNotFoundError, SandboxError) as exc:
        raise SandboxError(f"sandbox VM {host.name!r} is not running ({exc})",
                           "start the sandbox with `opsctl sandbox up`") from None
    if not vm.is_running():
        raise SandboxError(f"sandbox VM {host.name!r} is not running", "start it with `opsctl sandbox up`")
    return SshConnection(host.name, {**ansible_host_vars(vm), "ansible_host_key_checking": False},
                         f"ssh://root@127.0.0.1:{vm.ssh_port}",
                         {"ssh_identity_file": vm.key, "ssh_extra_args": f"{_SANDBOX_SSH_OPTS} {multiplex_options()}"},
                         address="127.0.0.1", port=vm.ssh_port, user="root", known_hosts=None, key_filename=vm.key)


def container_connection(host: Host) -> Connection:
    """The sandbox's systemd container for ``host``, through ``docker exec``."""
    from opsctl.sandbox.containers import container_name

    return docker_connection(host.name, container_name(host.name), host.user)


def register() -> None:
    register_resolver("vm", vm_connection)
    register_resolver("container", container_connection)


register()
