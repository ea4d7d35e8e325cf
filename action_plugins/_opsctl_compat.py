"""Runs ON THE HOST, standard library only: an ``AnsibleModule`` for opsctl's own Ansible modules
(``roles/zfs/library/opsctl_*.py``) when the lean path (:mod:`_opsctl_lean`) runs them in one ssh
command instead of an AnsiballZ zip.

Those modules are ordinary Ansible modules (``from ansible.module_utils.basic import AnsibleModule``,
``main()``) and still run under plain ``ansible`` or ``ansible-doc``. The lean bootstrap executes this
file first and calls :func:`run`, which puts a stand-in ``ansible.module_utils.basic`` into
``sys.modules`` and runs the module as ``__main__``. The stand-in covers what the modules use:
``params`` (checked against the argument spec: unknown or missing arguments and wrong types fail
before anything runs), ``check_mode``, ``run_command`` (argv only, never a shell, C locale),
``get_bin_path``, ``warn``, ``fail_json`` and ``exit_json``. Importing the real
``ansible.module_utils.basic`` is what makes an AnsiballZ execution cost ~4.8 s on the TCG sandbox
VM; this file costs nothing measurable.
"""

import os
import shutil
import subprocess
import sys
import types

_TRUE = ("1", "true", "yes", "on", "y", "t")
_FALSE = ("0", "false", "no", "off", "n", "f", "")


class _Done(Exception):
    def __init__(self, result):
        super().__init__("module finished")
        self.result = result


def _convert(name, value, spec):
    kind = spec.get("type", "raw")
    if kind == "str":
        if isinstance(value, (dict, list)):
            raise TypeError(f"argument {name!r} is of type {type(value).__name__}; it must be a string")
        return str(value)
    if kind == "bool":
        if isinstance(value, bool):
            return value
        if str(value).strip().lower() in _TRUE:
            return True
        if str(value).strip().lower() in _FALSE:
            return False
        raise TypeError(f"argument {name!r} = {value!r} is not a boolean")
    if kind == "int":
        if isinstance(value, bool):
            raise TypeError(f"argument {name!r} = {value!r} is not an integer")
        try:
            return int(str(value), 10) if not isinstance(value, int) else value
        except ValueError:
            raise TypeError(f"argument {name!r} = {value!r} is not an integer") from None
    if kind == "dict":
        if not isinstance(value, dict):
            raise TypeError(f"argument {name!r} is of type {type(value).__name__}; it must be a mapping")
        return value
    if kind == "list":
        if not isinstance(value, list):
            raise TypeError(f"argument {name!r} is of type {type(value).__name__}; it must be a list")
        elements = spec.get("elements")
        return [_convert(f"{name}[{i}]", v, {"type": elements}) for i, v in enumerate(value)] if elements else value
    return value


class AnsibleModule:
    """The part of ``ansible.module_utils.basic.AnsibleModule`` that opsctl's modules use."""

    def __init__(self, argument_spec, supports_check_mode=False, **_ignored):
        given = dict(_PARAMS)
        self.check_mode = bool(given.pop("_ansible_check_mode", False))
        self._diff = bool(given.pop("_ansible_diff", False))
        self._warnings = []
        self.params = {}
        unknown = sorted(set(given) - set(argument_spec))
        if unknown:
            self.fail_json(msg=f"Unsupported parameters: {', '.join(unknown)}; supported: "
                               f"{', '.join(sorted(argument_spec))}")
        for name, spec in argument_spec.items():
            value = given.get(name)
            if value is None:
                if spec.get("required"):
                    self.fail_json(msg=f"missing required arguments: {name}")
                value = spec.get("default")
                self.params[name] = list(value) if isinstance(value, list) else value
                continue
            try:
                self.params[name] = _convert(name, value, spec)
            except TypeError as exc:
                self.fail_json(msg=str(exc))
        if self.check_mode and not supports_check_mode:
            self.exit_json(skipped=True, msg="this module does not support check mode")

    def run_command(self, args, data=None):
        """Run ``args`` (a list: no shell); (rc, stdout, stderr) as text, in the C locale."""
        if isinstance(args, str):
            raise TypeError("run_command takes an argv list here, never a shell string")
        env = {**os.environ, "LANG": "C", "LC_ALL": "C", "LC_MESSAGES": "C"}
        try:
            proc = subprocess.run(args, input=data, capture_output=True, text=True, env=env,
                                  stdin=None if data is not None else subprocess.DEVNULL)
        except FileNotFoundError as exc:
            return 2, "", f"[Errno 2] {exc.strerror}: {args[0]!r}"
        return proc.returncode, proc.stdout, proc.stderr

    def get_bin_path(self, name, required=False, opt_dirs=None):
        path = os.pathsep.join([*(opt_dirs or []), os.environ.get("PATH", ""), "/sbin", "/usr/sbin", "/usr/local/sbin"])
        found = shutil.which(name, path=path)
        if found is None and required:
            self.fail_json(msg=f"Failed to find required executable {name!r} in paths: {path}")
        return found

    def warn(self, warning):
        self._warnings.append(str(warning))

    def _result(self, kwargs):
        if self._warnings:
            kwargs["warnings"] = [*kwargs.get("warnings", []), *self._warnings]
        kwargs.setdefault("changed", False)
        return kwargs

    def exit_json(self, **kwargs):
        raise _Done(self._result(kwargs))

    def fail_json(self, msg, **kwargs):
        kwargs["failed"] = True
        kwargs["msg"] = msg
        raise _Done(self._result(kwargs))


_PARAMS = {}


def run(source, name, params):
    """Run the module ``source`` (file ``name``.py) with ``params``; its result dict."""
    global _PARAMS
    _PARAMS = params
    basic = types.ModuleType("ansible.module_utils.basic")
    basic.AnsibleModule = AnsibleModule
    for mod, obj in (("ansible", types.ModuleType("ansible")),
                     ("ansible.module_utils", types.ModuleType("ansible.module_utils")),
                     ("ansible.module_utils.basic", basic)):
        sys.modules[mod] = obj
    try:
        exec(compile(source, name + ".py", "exec"), {"__name__": "__main__"})  # noqa: S102 - our own module file
    except _Done as done:
        return done.result
    return {"failed": True, "msg": f"{name}: the module ended without exit_json or fail_json"}
