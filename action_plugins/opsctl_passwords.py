"""Action plugin ``opsctl_passwords``: run library/opsctl_passwords.py in one ssh command (see _opsctl_lean.py).

The passwords travel only on the ssh command's stdin (with the module source), never on a command
line and never in a file on the host; unexpected errors on the host are reported without their
text (it could quote a password). Use the task with ``no_log: true``.
"""

import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)  # this folder: _opsctl_lean
from _opsctl_lean import lean_action  # noqa: E402

ActionModule = lean_action("opsctl_passwords", "PasswordError", {"kind", "passwords", "update"}, show_errors=False)
