"""Run one of opsctl's standard-library modules (library/opsctl_*.py) on the host in ONE command.

Measured on the sandbox VM (qemu TCG, bench/README.md "provision"): an AnsiballZ module costs
~4.8 s per execution, nearly all of it python importing ``ansible.module_utils.basic`` (which
the 2.19 AnsiballZ wrapper always imports); a "want JSON" module skips that import but needs a
temp dir, two file transfers, a chmod, the run and a cleanup: five ssh commands, ~4.6 s. This
helper does what pipelining does for AnsiballZ modules, for a lean module: one ssh command,
``python3 -c BOOTSTRAP``, with the module's source and its parameters on stdin. Nothing is
written on the host and the parameters (passwords included) never appear on a command line.

The module file must define ``converge(params) -> dict`` and one exception class whose message
is the user-facing error (``ERROR_CLASS``); anything else on the host becomes a failed result
with the remote traceback's last line, never a controller traceback.
"""

from __future__ import annotations

import json
import os
import shlex

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase

#: Runs on the host: read {source, name, error, params, compat} from stdin, run the module, print JSON.
#: With ``compat`` (an ordinary Ansible module: ``main()`` + ``AnsibleModule``) the stand-in of
#: ``_opsctl_compat.py`` runs it; otherwise the module's ``converge(params)``.
BOOTSTRAP = (
    "import json,sys\n"
    "d=json.loads(sys.stdin.buffer.read())\n"
    "g={'__name__':'opsctl_lean_'+d['name']}\n"
    "try:\n"
    " if d.get('compat'):\n"
    "  exec(compile(d['compat'],'_opsctl_compat.py','exec'),g)\n"
    "  r=g['run'](d['source'],d['name'],d['params'])\n"
    " else:\n"
    "  exec(compile(d['source'],d['name']+'.py','exec'),g)\n"
    "  r=g['converge'](d['params'])\n"
    "except g.get(d['error'],()) as e:\n"
    " r={'failed':True,'msg':str(e)}\n"
    "except Exception as e:\n"
    " r={'failed':True,'msg':d['name']+': '+type(e).__name__+(': '+str(e) if d['show'] else '')}\n"
    "sys.stdout.write(json.dumps(r))\n"
)


def run_lean(action, name: str, error: str, params: dict, task_vars: dict, *, show_errors: bool = True,
             compat: bool = False) -> dict:
    """Run module ``name`` (found like any module: ansible.cfg's ``library`` or the role's) with ``params``.

    ``show_errors=False`` keeps unexpected exception texts out of the result (password module).
    ``compat=True`` runs an ordinary Ansible module (``main()`` with ``AnsibleModule``) through the
    stand-in in ``_opsctl_compat.py``.
    """
    found = action._shared_loader_obj.module_loader.find_plugin_with_context(name)
    if not found.resolved:
        raise AnsibleActionFail(f"{name}: module file not found in the library path")
    with open(found.plugin_resolved_path, encoding="utf-8") as f:
        source = f.read()
    params = dict(params, _ansible_check_mode=bool(action._task.check_mode), _ansible_diff=bool(action._task.diff))
    doc = {"source": source, "name": name, "error": error, "params": params, "show": show_errors}
    if compat:
        with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "_opsctl_compat.py"), encoding="utf-8") as f:
            doc["compat"] = f.read()
    payload = json.dumps(doc).encode("utf-8")
    interpreter = action._templar.template(task_vars.get("ansible_python_interpreter") or "/usr/bin/python3")
    cmd = f"{shlex.quote(str(interpreter))} -c {shlex.quote(BOOTSTRAP)}"
    res = action._low_level_execute_command(cmd, in_data=payload, sudoable=True)
    out = res.get("stdout", "")
    try:
        result = json.loads(out)
    except ValueError:
        err = (res.get("stderr") or out or "").strip()
        return {"failed": True, "rc": res.get("rc"),
                "msg": f"{name}: the host's python ({interpreter}) did not return a result (rc={res.get('rc')}): "
                       f"{err[-1500:] if show_errors else '(output hidden)'}"}
    if not isinstance(result, dict):
        return {"failed": True, "msg": f"{name}: unexpected result from the host"}
    return result


def lean_action(name: str, error: str, keys: set[str], *, lists: tuple[str, ...] = (),
                show_errors: bool = True) -> type:
    """The action plugin class of the lean module ``name``: its arguments are checked here (only
    ``keys``; each of ``lists`` must be a list), before anything is sent to the host."""

    class ActionModule(ActionBase):
        TRANSFERS_FILES = False
        _supports_check_mode = True

        def run(self, tmp=None, task_vars=None):
            result = super().run(tmp, task_vars)
            unknown = sorted(set(self._task.args) - keys)
            if unknown:
                raise AnsibleActionFail(f"{name}: unknown argument(s) {', '.join(unknown)}; "
                                        f"allowed: {', '.join(sorted(keys))}")
            for key in lists:
                if not isinstance(self._task.args.get(key) or [], list):
                    raise AnsibleActionFail(f"{name}: {key} = {self._task.args.get(key)!r} must be a list")
            result.update(run_lean(self, name, error, dict(self._task.args), task_vars or {},
                                   show_errors=show_errors))
            return result

    ActionModule.__doc__ = f"Runs {name} in one ssh command (action_plugins/_opsctl_lean.py)."
    return ActionModule


def compat_action(name: str) -> type:
    """The action plugin class that runs the ordinary Ansible module ``name`` on the lean path: one ssh
    command, no AnsiballZ zip, the same arguments, result and check mode (see ``_opsctl_compat.py``)."""

    class ActionModule(ActionBase):
        TRANSFERS_FILES = False
        _supports_check_mode = True

        def run(self, tmp=None, task_vars=None):
            result = super().run(tmp, task_vars)
            result.update(run_lean(self, name, "_NoSuchError", dict(self._task.args), task_vars or {}, compat=True))
            return result

    ActionModule.__doc__ = f"Runs {name} in one ssh command (action_plugins/_opsctl_lean.py)."
    return ActionModule
