"""The training job's notifier (``ml/charlm/notify.py``), reused as is: one source file, no copy.

``charlm.notify`` is standard-library only. It is imported as ``charlm.notify`` when the
``charlm`` package imports without pulling in torch (opsctl must not depend on torch);
otherwise the file is loaded by path with importlib. The monitor role copies the same file
(:data:`NOTIFIER_FILE`) to the backup host.

Example::

    from opsctl.notify import notifier
    notifier().notify("pool tank is DEGRADED", fields={"host": "backup"})
"""

from __future__ import annotations

import importlib.util
import sys
from functools import cache
from pathlib import Path
from types import ModuleType

from opsctl import ROOT

#: The notifier source in the repository (what the monitor role installs on the backup host).
NOTIFIER_FILE = ROOT / "ml" / "charlm" / "notify.py"


def _import_package() -> ModuleType | None:
    """``charlm.notify`` if it imports without torch; None otherwise (torch is never imported)."""
    if importlib.util.find_spec("charlm") is None:
        return None
    had_torch = "torch" in sys.modules
    try:
        module = importlib.import_module("charlm.notify")
    except Exception:  # a broken or half-installed charlm must not break opsctl
        return None
    if not had_torch and "torch" in sys.modules:
        return None  # charlm started importing torch: use the file instead (torch stays loaded, sadly)
    return module


def _load_file(path: Path = NOTIFIER_FILE) -> ModuleType:
    spec = importlib.util.spec_from_file_location("opsctl_charlm_notify", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load the notifier from {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@cache
def notifier() -> ModuleType:
    """The notifier module: ``notify(text, fields, env)``, ``configured_channels(env)``, ``redact``."""
    return _import_package() or _load_file()


def notifier_file() -> Path:
    """The notifier's source file (the imported module's file, else the repository copy)."""
    module = notifier()
    return Path(module.__file__) if getattr(module, "__file__", None) else NOTIFIER_FILE


def notify(text: str, fields: dict | None = None, env=None) -> dict:
    """Send through every configured channel; returns ``{channel: "ok" | error}``, never raises."""
    return notifier().notify(text, fields, env=env)


def configured_channels(env=None) -> list[str]:
    return notifier().configured_channels(env)
