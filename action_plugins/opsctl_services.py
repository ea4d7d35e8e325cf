"""Action plugin ``opsctl_services``: run library/opsctl_services.py in one ssh command (see _opsctl_lean.py).

Task arguments are the module's: ``packages``, ``update_cache``, ``units`` ([{name, enabled,
masked, state}]). Unknown arguments fail the task with one line, before anything runs on the host.
"""

import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)  # this folder: _opsctl_lean
from _opsctl_lean import lean_action  # noqa: E402

ActionModule = lean_action("opsctl_services", "ServiceError", {"packages", "update_cache", "units"},
                           lists=("packages", "units"))
