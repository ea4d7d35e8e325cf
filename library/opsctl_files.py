#!/usr/bin/python3
# WANT_JSON
"""Ansible module ``opsctl_files``: converge a set of files in ONE remote execution.

Normally called through the ``opsctl_files`` action plugin (``action_plugins/opsctl_files.py``),
which renders the templates on the controller and passes the finished contents here. This
module compares each file by checksum, owner, group and mode, writes only what differs
(atomically: a temp file in the same directory, optionally validated, then renamed), removes
stale managed files from a directory, and edits single lines. It honours check mode and returns
one diff per changed file in diff mode.

It imports only the standard library and defines ``converge(params)``: the action plugins run
it in ONE ssh command with its source and parameters on stdin (action_plugins/_opsctl_lean.py),
so the host's python starts without ``ansible.module_utils.basic`` (the import that makes an
AnsiballZ module cost ~4.8 s under TCG) and without the temp files and five ssh commands of a
"want JSON" module. It stays a valid "want JSON" module (``main()``) for use without the plugin.
See bench/README.md ("provision") for the measured figures.

Arguments:

- ``directories``: ``[{path, owner, group, mode}]`` created (or fixed) first, in order;
- ``files``: ``[{dest, content_b64, owner, group, mode, validate, secret}]``; ``validate`` is a
  command with ``%s`` for the candidate file (e.g. ``testparm -s %s``); ``secret`` keeps the
  content out of the diff;
- ``lines``: ``[{path, regexp, line}]``: the last line matching ``regexp`` becomes ``line``
  (appended when none matches; the file must exist);
- ``prune``: ``[{path, pattern, contains, keep}]``: files in directory ``path`` whose name
  matches the glob ``pattern`` and whose text contains ``contains`` are removed unless their
  name is in ``keep``.
"""

from __future__ import annotations

import base64
import fnmatch
import grp
import hashlib
import json
import os
import pwd
import re
import shlex
import subprocess
import sys
import tempfile


class FileError(Exception):
    """A file cannot be converged; the message says which one and why."""


def _ids(spec: dict) -> tuple[int, int]:
    owner, group = spec.get("owner", "root"), spec.get("group", "root")
    try:
        uid = pwd.getpwnam(owner).pw_uid
    except KeyError:
        raise FileError(f"{spec.get('dest') or spec.get('path')}: owner {owner!r} does not exist on the host") from None
    try:
        gid = grp.getgrnam(group).gr_gid
    except KeyError:
        raise FileError(f"{spec.get('dest') or spec.get('path')}: group {group!r} does not exist on the host") from None
    return uid, gid


def _mode(spec: dict, default: str) -> int:
    raw = str(spec.get("mode") or default)
    if not re.fullmatch(r"0?[0-7]{3,4}", raw):
        raise FileError(f"{spec.get('dest') or spec.get('path')}: mode {raw!r} is not an octal mode like '0644'")
    return int(raw, 8)


def _attrs_differ(st: os.stat_result, uid: int, gid: int, mode: int) -> bool:
    return st.st_uid != uid or st.st_gid != gid or (st.st_mode & 0o7777) != mode


def _text(data: bytes | None) -> str:
    if data is None:
        return ""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return "(binary content)\n"


def _diff(path: str, before: bytes | None, after: bytes | None, secret: bool) -> dict:
    if secret:
        hidden = "(content hidden: secret file)\n"
        return {"before_header": path, "after_header": path,
                "before": hidden if before is not None else "", "after": hidden if after is not None else ""}
    return {"before_header": path, "after_header": path, "before": _text(before), "after": _text(after)}


def _read(path: str) -> bytes | None:
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        return None


def _write_atomic(dest: str, data: bytes, uid: int, gid: int, mode: int, validate: str | None) -> None:
    directory = os.path.dirname(dest) or "."
    if not os.path.isdir(directory):
        raise FileError(f"{dest}: directory {directory} does not exist")
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(dest)}.", suffix=".opsctl", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chown(tmp, uid, gid)
        os.chmod(tmp, mode)
        if validate:
            if "%s" not in validate:
                raise FileError(f"{dest}: validate command {validate!r} has no %s for the candidate file")
            argv = shlex.split(validate.replace("%s", shlex.quote(tmp)))
            try:
                proc = subprocess.run(argv, capture_output=True, text=True, stdin=subprocess.DEVNULL)
            except OSError as exc:
                raise FileError(f"{dest}: validate command {argv[0]!r} cannot run: {exc}") from None
            if proc.returncode != 0:
                out = (proc.stderr or proc.stdout).strip()[-1500:]
                raise FileError(f"{dest}: validate command {validate!r} failed (rc={proc.returncode}); "
                                f"the file was left unchanged: {out}")
        os.replace(tmp, dest)
        tmp = None
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)


def converge(params: dict) -> dict:
    """Converge everything in ``params``; return the module result (``changed``, ``files``, ``diff``)."""
    check = bool(params.get("_ansible_check_mode"))
    want_diff = bool(params.get("_ansible_diff"))
    changed: list[dict] = []
    diffs: list[dict] = []

    for spec in params.get("directories") or []:
        path = spec["path"]
        uid, gid = _ids(spec)
        mode = _mode(spec, "0755")
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            st = None
        if st is not None and not os.path.isdir(path):
            raise FileError(f"{path}: exists and is not a directory")
        if st is None:
            changed.append({"path": path, "action": "created directory"})
            if not check:
                os.makedirs(path, mode=mode)
                os.chown(path, uid, gid)
                os.chmod(path, mode)
        elif _attrs_differ(st, uid, gid, mode):
            changed.append({"path": path, "action": "fixed owner/group/mode"})
            if not check:
                os.chown(path, uid, gid)
                os.chmod(path, mode)

    for spec in params.get("files") or []:
        dest = spec["dest"]
        data = base64.b64decode(spec["content_b64"])
        uid, gid = _ids(spec)
        mode = _mode(spec, "0644")
        secret = bool(spec.get("secret"))
        if os.path.islink(dest) or (os.path.exists(dest) and not os.path.isfile(dest)):
            raise FileError(f"{dest}: exists and is not a regular file")
        before = _read(dest)
        if before is None or hashlib.sha256(before).digest() != hashlib.sha256(data).digest():
            changed.append({"path": dest, "action": "written" if before is not None else "created"})
            if want_diff:
                diffs.append(_diff(dest, before, data, secret))
            if not check:
                _write_atomic(dest, data, uid, gid, mode, spec.get("validate"))
        elif _attrs_differ(os.lstat(dest), uid, gid, mode):
            changed.append({"path": dest, "action": "fixed owner/group/mode"})
            if not check:
                os.chown(dest, uid, gid)
                os.chmod(dest, mode)

    for spec in params.get("lines") or []:
        path, line = spec["path"], spec["line"]
        try:
            regexp = re.compile(spec["regexp"])
        except re.error as exc:
            raise FileError(f"{path}: regexp {spec['regexp']!r} is not a valid regular expression: {exc}") from None
        before = _read(path)
        if before is None:
            raise FileError(f"{path}: does not exist (lines only edits existing files)")
        text = before.decode("utf-8")
        lines = text.splitlines(keepends=True)
        hits = [i for i, current in enumerate(lines) if regexp.search(current.rstrip("\n"))]
        if hits:
            i = hits[-1]
            lines[i] = line + ("\n" if lines[i].endswith("\n") else "")
        else:
            if lines and not lines[-1].endswith("\n"):
                lines[-1] += "\n"
            lines.append(line + "\n")
        after = "".join(lines).encode("utf-8")
        if after != before:
            changed.append({"path": path, "action": "line replaced" if hits else "line added"})
            if want_diff:
                diffs.append(_diff(path, before, after, False))
            if not check:
                st = os.stat(path)
                _write_atomic(path, after, st.st_uid, st.st_gid, st.st_mode & 0o7777, None)

    for spec in params.get("prune") or []:
        directory, pattern, marker = spec["path"], spec.get("pattern", "*"), spec["contains"]
        if not marker:
            raise FileError(f"{directory}: prune needs a non-empty 'contains' marker (it would remove foreign files)")
        keep = set(spec.get("keep") or [])
        try:
            names = sorted(os.listdir(directory))
        except FileNotFoundError:
            continue
        for name in names:
            path = os.path.join(directory, name)
            if name in keep or not fnmatch.fnmatch(name, pattern) or not os.path.isfile(path) or os.path.islink(path):
                continue
            before = _read(path) or b""
            if marker.encode("utf-8") not in before:
                continue
            changed.append({"path": path, "action": "removed (stale)"})
            if want_diff:
                diffs.append(_diff(path, before, None, False))
            if not check:
                os.unlink(path)

    result: dict = {"changed": bool(changed), "files": changed}
    if want_diff:
        result["diff"] = diffs
    return result


def main() -> None:
    try:
        with open(sys.argv[1], encoding="utf-8") as f:
            params = json.load(f)
        result = converge(params)
    except FileError as exc:
        result = {"failed": True, "msg": str(exc)}
    except (OSError, KeyError, ValueError) as exc:
        result = {"failed": True, "msg": f"opsctl_files: {type(exc).__name__}: {exc}"}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
