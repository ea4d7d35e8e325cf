"""Errors raised by the local sandbox (Docker engine, images, containers)."""

from __future__ import annotations


class SandboxError(RuntimeError):
    """The sandbox cannot do what was asked.

    The message always says *why* and, when there is one, *how to fix it*, e.g.::

        SandboxError: no Docker daemon answered on unix:///var/run/docker.sock within 60 s
        (log: ~/.cache/opsctl/dockerd.log). Fix: start it with `dockerd &` as root ...

    Args:
        reason: what went wrong.
        fix: what the user can do about it (optional).
    """

    def __init__(self, reason: str, fix: str | None = None) -> None:
        self.reason = reason
        self.fix = fix
        super().__init__(f"{reason}. Fix: {fix}" if fix else reason)
