"""How to reach each host: ``connection_for(host)`` gives its Ansible variables, its testinfra backend
and ad-hoc commands (Fabric for ssh hosts). ``provision``, ``verify`` and ``status`` all go through
here, so they always talk to the same machine the same way. See :mod:`.resolve`, :mod:`.ssh`,
:mod:`.base` and :mod:`.hostkeys` (opsctl's own known_hosts)."""

from opsctl.connections.base import Connection, ExecConnection, Result
from opsctl.connections.hostkeys import (
    explain_ssh_failure,
    host_key_name,
    known_hosts_file,
    strict_ssh_options,
)
from opsctl.connections.resolve import connection_for, docker_connection, register_resolver
from opsctl.connections.ssh import SshConnection, run_on_all
from opsctl.errors import HostKeyError

__all__ = ["Connection", "ExecConnection", "HostKeyError", "Result", "SshConnection", "connection_for",
           "docker_connection", "explain_ssh_failure", "host_key_name", "known_hosts_file", "register_resolver",
           "run_on_all", "strict_ssh_options"]
