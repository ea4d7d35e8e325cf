"""Jinja filters shared by ``opsctl render`` and Ansible (``filter_plugins/opsctl.py`` imports these).

Every value from the spec that lands in a shell line goes through :func:`shquote`, every value in
an XML file through :func:`xmlescape`, every value in an INI-style config through :func:`confval`,
every word of a space-separated config line through :func:`confword`.
"""

from __future__ import annotations

import shlex
from xml.sax.saxutils import escape


def shquote(value: object) -> str:
    """Quote one shell word (POSIX ``sh``): ``a;rm -rf /`` -> ``'a;rm -rf /'``."""
    return shlex.quote(str(value))


def shjoin(values: list) -> str:
    """Quote and join a list of shell words."""
    return " ".join(shquote(v) for v in values)


def xmlescape(value: object) -> str:
    """Escape text for XML element content and double-quoted attributes."""
    return escape(str(value), {'"': "&quot;", "'": "&apos;"})


def confval(value: object) -> str:
    """A value for smb.conf/afp.conf (``key = value`` lines): refuse anything that ends the line.

    The spec's validators already restrict names; this is the last line of defence so a
    value can never add a parameter or a section: a line break or any other control character,
    a leading ``[`` (a new section) and a trailing backslash (smb.conf joins the next line) are
    refused.
    """
    text = str(value)
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F or ch in "\u2028\u2029\x85" for ch in text) \
            or text.lstrip().startswith("[") or text.rstrip().endswith("\\"):
        raise ValueError(f"refusing to write {text!r} into a config line (no line breaks, control "
                         "characters, leading '[' or trailing backslash)")
    return text


def confword(value: object) -> str:
    """One word of a space-separated config line (Netatalk 2's ``afpd.conf`` and ``AppleVolumes.default``):
    refuse what would split it into more words, quote it, escape or end the line."""
    text = str(value)
    if not text or any(ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F or ch in "\"'\\" for ch in text):
        raise ValueError(f"refusing to write {text!r} as one word of a config line (no spaces, quotes, "
                         "backslashes or control characters)")
    return text


def onoff(value: object) -> str:
    """``True`` -> ``yes``; smb.conf and afp.conf booleans."""
    return "yes" if value in (True, "yes", "on") else "no"


def zfs_plan(backup: dict) -> list[dict]:
    """The ordered create-only ZFS plan of a backup section (see :mod:`opsctl.render.zfs_plan`)."""
    from opsctl.render.zfs_plan import plan

    return plan(backup)


def planned_files(state: dict, service: str, dests: dict, templates: str) -> list[dict]:
    """The files the desired state plans for ``service`` (``opsctl.state.files``), as ``opsctl_files``
    entries: ``{template, dest}``. ``dests`` maps each rendered path to where the role installs it; a key
    ending in ``/`` maps every file under it into that folder. Files with no mapping are left out (a
    role installs those its own way, e.g. the nsswitch ``hosts:`` line)."""
    out = []
    for f in state["files"]:
        if f["service"] != service:
            continue
        dest = dests.get(f["path"])
        if dest is None:
            folder = next((k for k in dests if k.endswith("/") and f["path"].startswith(k)), None)
            if folder is None:
                continue
            dest = dests[folder].rstrip("/") + "/" + f["path"][len(folder):]
        out.append({"template": f"{templates}/{f['template']}", "dest": dest})
    return out


FILTERS = {"shquote": shquote, "shjoin": shjoin, "xmlescape": xmlescape, "confval": confval, "confword": confword,
           "yesno": onoff, "zfs_plan": zfs_plan, "planned_files": planned_files}
