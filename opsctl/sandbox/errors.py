"""The sandbox's name for :class:`opsctl.errors.HostUnreachable`.

The sandbox (Docker engine, images, containers, the OpenZFS VM) raises ``SandboxError(reason, fix)``
when it cannot do what was asked; it is the same class as ``HostUnreachable``, so a command that
catches one catches the other, e.g.::

    SandboxError: no Docker daemon answered on unix:///var/run/docker.sock within 60 s
    (log: ~/.cache/opsctl/dockerd.log). Fix: start it with `dockerd &` as root ...
"""

from __future__ import annotations

from opsctl.errors import HostUnreachable

SandboxError = HostUnreachable

__all__ = ["SandboxError"]
