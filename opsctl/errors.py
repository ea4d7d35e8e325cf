"""The errors the CLI catches: each says *why* and, when there is one, *how to fix it*.

Every command reports them as one clean line (``error: <reason>. Fix: <fix>``), never a traceback:

* :class:`HostUnreachable`: a host (or this machine's Docker, or the sandbox) cannot be reached or
  cannot do what was asked; exit 1.
* :class:`HostKeyError`: a real host's ssh key is not trusted yet, or changed; nothing was sent. A
  :class:`HostUnreachable`, so every command that reaches hosts reports it the same way.
* :class:`BadInput`: a value the user gave is wrong (field, value, fix); exit 2, nothing applied.
* :class:`Refused`: the operation would do something unsafe (destroy data, overwrite a pool) and was
  refused; exit 1, nothing applied.

All of them are :class:`OpsctlError`, so ``except OpsctlError`` catches every one with its ``fix``.
The sandbox raises its own subclass (``opsctl.sandbox.errors.SandboxError``, a :class:`HostUnreachable`).
"""

from __future__ import annotations


class OpsctlError(RuntimeError):
    """Something opsctl cannot do, with the reason and (optional) fix.

    Args:
        reason: what went wrong.
        fix: what the user can do about it (optional).
    """

    #: the process exit code a CLI uses for this error
    exit_code = 1

    def __init__(self, reason: str, fix: str | None = None) -> None:
        self.reason = reason
        self.fix = fix
        super().__init__(f"{reason}. Fix: {fix}" if fix else reason)


class HostUnreachable(OpsctlError):
    """A host, this machine's Docker, or the sandbox cannot be reached or cannot do what was asked, e.g.::

        HostUnreachable: sandbox VM 'backup' is not running. Fix: start it with `opsctl sandbox up`
    """


class HostKeyError(HostUnreachable):
    """A real host's ssh key is not trusted yet, or changed since it was; nothing was sent to it."""


class BadInput(OpsctlError):
    """A value the user gave is wrong; the message names the field, the value and the fix."""

    exit_code = 2


class Refused(OpsctlError):
    """The operation was refused because it would be unsafe; nothing was done."""
