"""Load a site YAML file and validate it into a :class:`~opsctl.site.models.Site`.

YAML is read as YAML 1.2 (``on``/``off`` stay strings, as ZFS wants them) with
ruamel.yaml, which also remembers where each key came from, so an error can say
``site.yml:14: backup.users[2].name: 'a;rm -rf /' is not a valid POSIX user name; ...``.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from opsctl import INVENTORY
from opsctl.site.models import Site

#: The embedded default site: the sandbox of local containers and a qemu OpenZFS VM.
DEFAULT_SITE = INVENTORY / "sandbox.yml"


class SpecError(Exception):
    """The site file is unreadable or invalid; ``problems`` lists one line per error."""

    def __init__(self, path: Path | str, problems: list[str]):
        self.path = str(path)
        self.problems = problems
        super().__init__("\n".join(problems))


@dataclass
class Loaded:
    site: Site
    path: Path
    warnings: list[str]


def _yaml() -> YAML:
    yaml = YAML(typ="rt")
    yaml.version = (1, 2)
    yaml.allow_duplicate_keys = False
    return yaml


def _line_of(data, loc: tuple) -> int | None:
    """Best-effort 1-based line of the YAML node at ``loc`` (pydantic error location)."""
    node, line = data, None
    for key in loc:
        lc = getattr(node, "lc", None)
        try:
            if isinstance(key, int) and isinstance(node, list):
                if lc is not None:
                    line = lc.item(key)[0] + 1
                node = node[key]
            elif isinstance(node, dict) and key in node:
                if lc is not None:
                    line = lc.key(key)[0] + 1
                node = node[key]
            else:
                break
        except (KeyError, IndexError, TypeError, AttributeError):
            break
    return line


def _field(loc: tuple) -> str:
    out = ""
    for key in loc:
        if isinstance(key, int):
            out += f"[{key}]"
        else:
            out += ("." if out else "") + str(key)
    return out or "(top level)"


def _message(error: dict) -> str:
    msg = error["msg"]
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, "):]
    kind = error["type"]
    value = error.get("input")
    if kind == "extra_forbidden":
        return "unknown field; remove it or check its spelling against `opsctl schema`"
    if kind == "missing":
        return "required field is missing; add it (see `opsctl schema`)"
    if kind in ("literal_error", "enum"):
        return f"{value!r} is not allowed; {msg[0].lower()}{msg[1:]}"
    if kind.startswith(("greater_than", "less_than")) or kind in ("int_parsing", "float_parsing",
                                                                  "string_pattern_mismatch", "too_short",
                                                                  "bool_parsing", "int_type", "string_type"):
        return f"{value!r} is invalid: {msg[0].lower()}{msg[1:]}"
    return msg


def format_errors(exc: ValidationError, data, path: str) -> list[str]:
    """Turn pydantic errors into ``file:line: field: problem; fix`` lines."""
    lines = []
    for error in exc.errors(include_url=False):
        loc = tuple(k for k in error["loc"] if not (isinstance(k, str) and k.startswith("function-")))
        # Model-level validators report the model's location; name it in the message.
        line = _line_of(data, loc)
        where = f"{path}:{line}" if line else path
        lines.append(f"{where}: {_field(loc)}: {_message(error)}")
    return lines


def parse(text: str, path: str = "<site>") -> Loaded:
    """Validate site YAML ``text``; raise :class:`SpecError` listing every problem."""
    try:
        data = _yaml().load(io.StringIO(text))
    except YAMLError as exc:
        raise SpecError(path, [f"{path}: not valid YAML: {exc}".replace("\n", " ")]) from None
    if data is None:
        raise SpecError(path, [f"{path}: the file is empty; start from `opsctl init`"])
    if not isinstance(data, dict):
        raise SpecError(path, [f"{path}: the top level must be a mapping with 'hosts:' and roles"])
    try:
        site = Site.model_validate(_plain(data))
    except ValidationError as exc:
        raise SpecError(path, format_errors(exc, data, path)) from None
    return Loaded(site=site, path=Path(path), warnings=site.warnings())


def load(path: Path | str | None = None) -> Loaded:
    """Load and validate the site file at ``path`` (default: the embedded sandbox site)."""
    path = Path(path) if path else DEFAULT_SITE
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise SpecError(path, [f"{path}: cannot read the site file: {exc.strerror}; "
                               "create one with `opsctl init`"]) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SpecError(path, [f"{path}: not UTF-8 (byte {exc.start}); save the file as UTF-8"]) from None
    return parse(text, str(path))


def _plain(node):
    """ruamel's commented containers -> plain dicts/lists/scalars for pydantic."""
    if isinstance(node, dict):
        return {str(k) if not isinstance(k, (int, bool)) else k: _plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_plain(v) for v in node]
    if isinstance(node, str):
        return str(node)
    if isinstance(node, bool):
        return bool(node)
    if isinstance(node, int):
        return int(node)
    if isinstance(node, float):
        return float(node)
    return node
