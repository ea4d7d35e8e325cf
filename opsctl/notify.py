"""The training job's notifier, ``charlm.notify``, reused as is: one source file, no copy.

``charlm.notify`` is standard-library only and the ``charlm`` package imports nothing on its own, so
this import never pulls in torch (tests/notify checks it). charlm is installed next to opsctl
(``scripts/install.sh``: ``pip install -e ./ml``); it is not in opsctl's declared dependencies
because charlm's own are torch and numpy. The monitor role copies the same file
(:data:`NOTIFIER_FILE`) to the backup host, where ``alerts.py`` loads it beside itself.

Example::

    from opsctl.notify import notify
    notify("pool tank is DEGRADED", {"host": "backup"})
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

from opsctl import ROOT

#: The notifier source in the repository (what the monitor role installs on the backup host).
NOTIFIER_FILE = ROOT / "ml" / "charlm" / "notify.py"


def notifier() -> ModuleType:
    """The notifier module: ``notify(text, fields, env)``, ``configured_channels(env)``, ``redact``."""
    try:
        from charlm import notify as module
    except ImportError as exc:
        raise RuntimeError(f"cannot send notifications: the charlm package is not installed ({exc}); "
                           "install it next to opsctl with `pip install -e ./ml`") from None
    return module


def notifier_file() -> Path:
    """The notifier's source file (the imported module's file)."""
    return Path(notifier().__file__)


def notify(text: str, fields: dict | None = None, env=None) -> dict:
    """Send through every configured channel; returns ``{channel: "ok" | error}``, never raises."""
    return notifier().notify(text, fields, env=env)


def configured_channels(env=None) -> list[str]:
    return notifier().configured_channels(env)
