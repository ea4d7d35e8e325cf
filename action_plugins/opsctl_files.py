"""Action plugin ``opsctl_files``: render templates on the controller, converge them in ONE remote call.

``ansible.builtin.template`` in a loop costs two remote module executions per file (a stat, then
a copy) even when nothing changes; under TCG each one is seconds. This plugin renders every
template (Jinja with ``trim_blocks`` and ``lstrip_blocks``, as ``opsctl render`` does: the same
template files, one truth) and reads every ``src`` file here, then sends the finished contents
to the ``opsctl_files`` module, which compares checksums and writes only what differs. The
module runs in one ssh command with its source and parameters on stdin (``_opsctl_lean.py``).

Task arguments::

    opsctl_files:
      directories: [{path, owner, group, mode}]
      files:       # each one of template / src / content
        - {dest, template: PATH, owner, group, mode, validate: "testparm -s %s", secret: false}
        - {dest, src: PATH}
        - {dest, content: TEXT}
      lines:       [{path, regexp, line}]
      prune:       [{path, pattern: "*.service", contains: MARKER}]   # keep = the files' names in path

Relative ``template``/``src`` paths are looked up like the builtin modules do (the role's
``templates/`` and ``files/``). Bad arguments fail the task with a one-line message naming the
field and the value; nothing is sent to the host then.
"""

from __future__ import annotations

import base64
import os
import sys

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase
from ansible.template import generate_ansible_template_vars, trust_as_template

_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)  # this folder: _opsctl_lean
from _opsctl_lean import run_lean  # noqa: E402

DOCUMENTATION = """
module: opsctl_files
short_description: Render and converge a set of files in one remote module execution
description: See action_plugins/opsctl_files.py and library/opsctl_files.py.
"""

_FILE_KEYS = {"dest", "template", "src", "content", "owner", "group", "mode", "validate", "secret"}
_TOP_KEYS = {"directories", "files", "lines", "prune"}


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _supports_check_mode = True

    def _fail(self, msg: str):
        raise AnsibleActionFail(f"opsctl_files: {msg}")

    def _render(self, path: str, dest: str, task_vars: dict) -> str:
        source = self._find_needle("templates", path)
        data = trust_as_template(self._loader.get_text_file_contents(source))
        searchpath = [os.path.dirname(source)]
        tvars = dict(task_vars)
        extra = generate_ansible_template_vars(path=path, fullpath=source, dest_path=dest)
        if "ansible_managed" in task_vars:
            extra.pop("ansible_managed", None)
        tvars.update(extra)
        templar = self._templar.copy_with_new_env(searchpath=searchpath, available_variables=tvars)
        out = templar.template(data, escape_backslashes=False,
                               overrides={"trim_blocks": True, "lstrip_blocks": True})
        return "" if out is None else str(out)

    def _file(self, i: int, spec, task_vars: dict) -> dict:
        where = f"files[{i}]"
        if not isinstance(spec, dict):
            self._fail(f"{where} = {spec!r} is not a mapping; give {{dest, template|src|content, owner, group, mode}}")
        unknown = sorted(set(spec) - _FILE_KEYS)
        if unknown:
            self._fail(f"{where}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(_FILE_KEYS))}")
        dest = spec.get("dest")
        if not isinstance(dest, str) or not dest.startswith("/"):
            self._fail(f"{where}.dest = {dest!r} must be an absolute path on the host")
        sources = [k for k in ("template", "src", "content") if spec.get(k) is not None]
        if len(sources) != 1:
            self._fail(f"{where} ({dest}) needs exactly one of template, src, content (got {sources or 'none'})")
        kind = sources[0]
        if kind == "template":
            data = self._render(spec["template"], dest, task_vars).encode("utf-8")
        elif kind == "src":
            with open(self._find_needle("files", spec["src"]), "rb") as f:
                data = f.read()
        else:
            data = str(spec["content"]).encode("utf-8")
        out = {"dest": dest, "content_b64": base64.b64encode(data).decode("ascii"),
               "owner": spec.get("owner", "root"), "group": spec.get("group", "root"),
               "mode": str(spec.get("mode", "0644")), "secret": bool(spec.get("secret", False))}
        if spec.get("validate"):
            out["validate"] = str(spec["validate"])
        return out

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        task_vars = task_vars or {}
        args = self._task.args
        unknown = sorted(set(args) - _TOP_KEYS)
        if unknown:
            self._fail(f"unknown argument(s) {', '.join(unknown)}; allowed: {', '.join(sorted(_TOP_KEYS))}")
        for key in _TOP_KEYS:
            if not isinstance(args.get(key) or [], list):
                self._fail(f"{key} = {args.get(key)!r} must be a list")
        files = [self._file(i, spec, task_vars) for i, spec in enumerate(args.get("files") or [])]
        dests = [f["dest"] for f in files]
        if len(set(dests)) != len(dests):
            self._fail(f"files: a dest appears twice ({sorted(d for d in set(dests) if dests.count(d) > 1)})")
        prune = []
        for i, spec in enumerate(args.get("prune") or []):
            if not isinstance(spec, dict) or not spec.get("path") or not spec.get("contains"):
                self._fail(f"prune[{i}] = {spec!r} needs a path and a non-empty contains marker")
            directory = str(spec["path"]).rstrip("/")
            keep = [os.path.basename(d) for d in dests if os.path.dirname(d) == directory]
            prune.append({"path": directory, "pattern": spec.get("pattern", "*"), "contains": spec["contains"],
                          "keep": keep})
        module_args = {"directories": list(args.get("directories") or []), "files": files,
                       "lines": list(args.get("lines") or []), "prune": prune}
        result.update(run_lean(self, "opsctl_files", "FileError", module_args, task_vars))
        return result
