"""Action plugin ``opsctl_passwords``: run library/opsctl_passwords.py in one ssh command (see _opsctl_lean.py).

The passwords travel only on the ssh command's stdin (with the module source), never on a command
line and never in a file on the host; unexpected errors on the host are reported without their
text (it could quote a password). Use the task with ``no_log: true``.
"""

from __future__ import annotations

import importlib.util
import os

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase

_KEYS = {"kind", "passwords", "update"}


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _supports_check_mode = True

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        unknown = sorted(set(self._task.args) - _KEYS)
        if unknown:
            raise AnsibleActionFail(f"opsctl_passwords: unknown argument(s) {', '.join(unknown)}; "
                                    f"allowed: {', '.join(sorted(_KEYS))}")
        spec = importlib.util.spec_from_file_location(
            "opsctl_action_lean", os.path.join(os.path.dirname(os.path.abspath(__file__)), "_opsctl_lean.py"))
        lean = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(lean)
        result.update(lean.run_lean(self, "opsctl_passwords", "PasswordError", dict(self._task.args),
                                    task_vars or {}, show_errors=False))
        return result
