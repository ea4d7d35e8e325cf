"""Action plugin ``opsctl_services``: run library/opsctl_services.py in one ssh command (see _opsctl_lean.py).

Task arguments are the module's: ``packages``, ``update_cache``, ``units`` ([{name, enabled,
masked, state}]). Unknown arguments fail the task with one line, before anything runs on the host.
"""

from __future__ import annotations

import importlib.util
import os

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase

_KEYS = {"packages", "update_cache", "units"}


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _supports_check_mode = True

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        unknown = sorted(set(self._task.args) - _KEYS)
        if unknown:
            raise AnsibleActionFail(f"opsctl_services: unknown argument(s) {', '.join(unknown)}; "
                                    f"allowed: {', '.join(sorted(_KEYS))}")
        for key in ("packages", "units"):
            if not isinstance(self._task.args.get(key) or [], list):
                raise AnsibleActionFail(f"opsctl_services: {key} = {self._task.args.get(key)!r} must be a list")
        spec = importlib.util.spec_from_file_location(
            "opsctl_action_lean", os.path.join(os.path.dirname(os.path.abspath(__file__)), "_opsctl_lean.py"))
        lean = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(lean)
        result.update(lean.run_lean(self, "opsctl_services", "ServiceError", dict(self._task.args), task_vars or {}))
        return result
