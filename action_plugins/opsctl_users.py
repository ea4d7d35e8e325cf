"""Action plugin ``opsctl_users``: roles/zfs/library/opsctl_users.py (the accounts) in ONE ssh command, run by the
stand-in ``AnsibleModule`` of ``_opsctl_compat.py`` instead of an AnsiballZ zip (see ``_opsctl_lean.py``)."""

import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)  # this folder: _opsctl_lean
from _opsctl_lean import compat_action  # noqa: E402

ActionModule = compat_action("opsctl_users")
