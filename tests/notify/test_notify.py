"""opsctl reuses charlm's notifier file without importing torch."""

from __future__ import annotations

import subprocess
import sys

from opsctl import notify
from tests.support.webhook import Webhook


def test_importing_opsctl_notify_never_imports_torch():
    code = ("import sys, opsctl.notify as n; m = n.notifier(); "
            "print(m.__name__, m.__file__, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    name, path, torch = out.stdout.split()
    assert torch == "False"
    assert path.endswith("ml/charlm/notify.py") and name == "charlm.notify"


def test_the_imported_notifier_is_the_file_the_monitor_role_installs():
    module = notify.notifier()
    assert module.__name__ == "charlm.notify"  # a normal import, not a file loaded by path
    assert module.__file__ == str(notify.NOTIFIER_FILE)
    assert notify.notifier_file().resolve() == notify.NOTIFIER_FILE.resolve()


def test_without_charlm_the_error_names_the_fix():
    code = ("import sys; sys.modules['charlm'] = None; import opsctl.notify as n\n"
            "try:\n    n.notify('x')\nexcept RuntimeError as exc:\n    print(exc)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert "charlm package is not installed" in out.stdout and "pip install -e ./ml" in out.stdout


def test_notify_through_a_local_webhook():
    hook = Webhook()
    try:
        results = notify.notify("opsctl ALERT: test", {"alert": "quota:alice"}, env={"CHARLM_WEBHOOK_URL": hook.url})
    finally:
        hook.close()
    assert results == {"webhook": "ok"}
    assert hook.bodies == [{"text": "opsctl ALERT: test", "alert": "quota:alice"}]
    assert notify.configured_channels({}) == []
