"""Round-trip editing of the site file: change one user, keep every comment, key order and quote.

The file is loaded with ruamel.yaml's round-trip loader (YAML 1.2, as :mod:`opsctl.site.loader`
reads it), edited in place, dumped with the indentation style that reproduces the original
file byte for byte, and the *whole* edited text is validated by :func:`opsctl.site.loader.parse`
before anything is written. Writes are atomic (temp file in the same directory, fsync,
``os.replace``), keep the file's mode, and refuse if the file changed since it was read.

Example::

    doc = SpecDocument.open("site.yml")
    doc.add_user("carol", quota="500G", protocols=["smb"])
    loaded = doc.validate()        # SpecError if the edited spec is invalid
    doc.save()
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

from pydantic import ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import YAMLError

from opsctl.files import atomic_write
from opsctl.site.loader import Loaded, SpecError, parse
from opsctl.site.models import User
from opsctl.site.types import parse_size

#: (mapping, sequence, offset) indentation, and whether nulls are written `null`: the dump styles tried
#: (most common first); the first that reproduces the file byte for byte is used for the edit.
_STYLES = tuple((*indent, null) for null in (False, True)
                for indent in ((2, 4, 2), (2, 2, 0), (4, 4, 2), (4, 6, 4), (4, 4, 0), (2, 2, 2)))


def _loader() -> YAML:
    yaml = YAML(typ="rt")
    yaml.version = (1, 2)
    yaml.allow_duplicate_keys = False
    yaml.preserve_quotes = True
    return yaml


def _dumper(style: tuple[int, int, int, bool]) -> YAML:
    yaml = YAML(typ="rt")
    mapping, sequence, offset, null_word = style
    if null_word:  # write None as `null` (ruamel's default is an empty value); this instance only
        rep = yaml.representer
        rep.yaml_representers = {**rep.yaml_representers,
                                 type(None): lambda r, _data: r.represent_scalar("tag:yaml.org,2002:null", "null")}
    yaml.indent(mapping=mapping, sequence=sequence, offset=offset)
    yaml.preserve_quotes = True
    yaml.width = 4096
    return yaml


def _dump(data, style: tuple[int, int, int, bool]) -> str:
    buf = io.StringIO()
    _dumper(style).dump(data, buf)
    return buf.getvalue()


def check_user_entry(entry: dict) -> User:
    """Validate one ``backup.users`` entry with the spec's own model; raise ``SpecError`` on problems."""
    try:
        return User.model_validate(entry)
    except ValidationError as exc:
        problems = []
        for error in exc.errors(include_url=False):
            msg = error["msg"].removeprefix("Value error, ")
            field = ".".join(str(k) for k in error["loc"]) or "user"
            problems.append(f"{field}: {msg}")
        raise SpecError("<arguments>", problems) from None


class SpecDocument:
    """A site file opened for editing."""

    def __init__(self, path: Path, text: str):
        self.path = Path(path)
        self.original = text
        self._digest = hashlib.sha256(text.encode()).hexdigest()
        try:
            self.data = _loader().load(io.StringIO(text))
        except YAMLError as exc:
            raise SpecError(path, [f"{path}: not valid YAML: {exc}".replace("\n", " ")]) from None
        if not isinstance(self.data, CommentedMap):
            raise SpecError(path, [f"{path}: the top level must be a mapping with 'hosts:' and roles"])
        self.style = next((s for s in _STYLES if _dump(self.data, s) == text), _STYLES[0])

    @classmethod
    def open(cls, path: Path | str) -> SpecDocument:
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise SpecError(path, [f"{path}: cannot read the site file: {exc.strerror}"]) from None
        except UnicodeDecodeError as exc:
            raise SpecError(path, [f"{path}: not UTF-8 (byte {exc.start}); save the file as UTF-8"]) from None
        return cls(path, text)

    # ------------------------------------------------------------------ reading

    def _backup(self) -> CommentedMap:
        backup = self.data.get("backup")
        if not isinstance(backup, CommentedMap):
            raise SpecError(self.path, [f"{self.path}: the site has no `backup:` section; add a backup server first"])
        return backup

    def _users(self, create: bool = False) -> CommentedSeq:
        backup = self._backup()
        users = backup.get("users")
        if users is None and create:
            users = CommentedSeq()
            backup["users"] = users
        if users is None:
            users = CommentedSeq()
        if not isinstance(users, CommentedSeq):
            raise SpecError(self.path, [f"{self.path}: backup.users must be a list"])
        return users

    def _index(self, name: str) -> int | None:
        for i, entry in enumerate(self._users()):
            if isinstance(entry, dict) and entry.get("name") == name:
                return i
        return None

    def has_user(self, name: str) -> bool:
        return self._index(name) is not None

    def _flow_lists(self) -> bool:
        """Whether existing users write ``protocols: [smb, afp]`` (flow) rather than a block list."""
        for entry in self._users():
            protocols = entry.get("protocols") if isinstance(entry, dict) else None
            if isinstance(protocols, CommentedSeq):
                return protocols.fa.flow_style()
        return True

    # ------------------------------------------------------------------ edits

    def add_user(self, name: str, quota: str, protocols: list[str] | None = None,
                 tm_size: str | None = None) -> None:
        """Append a user (validated with the spec's ``User`` model first)."""
        entry: dict = {"name": name, "quota": quota}
        if tm_size is not None:
            entry["tm_size"] = tm_size
        if protocols is not None:
            entry["protocols"] = list(protocols)
        check_user_entry(entry)
        if self.has_user(name):
            raise SpecError(self.path, [f"{self.path}: user {name!r} is already in backup.users; use "
                                        "`opsctl user set-quota` to change it"])
        item = CommentedMap()
        item["name"] = name
        item["quota"] = quota
        if tm_size is not None:
            item["tm_size"] = tm_size
        if protocols is not None:
            seq = CommentedSeq(protocols)
            if self._flow_lists():
                seq.fa.set_flow_style()
            item["protocols"] = seq
        self._users(create=True).append(item)

    def set_quota(self, name: str, quota: str, tm_size: str | None = None) -> None:
        parse_size(quota)  # a clear message before the whole-spec validation
        index = self._index(name)
        if index is None:
            raise SpecError(self.path, [f"{self.path}: no user {name!r} in backup.users"])
        entry = self._users()[index]
        entry["quota"] = quota
        if tm_size is not None:
            entry["tm_size"] = tm_size

    def remove_user(self, name: str) -> None:
        index = self._index(name)
        if index is None:
            raise SpecError(self.path, [f"{self.path}: no user {name!r} in backup.users"])
        del self._users()[index]

    # ------------------------------------------------------------------ output

    def text(self) -> str:
        return _dump(self.data, self.style)

    def validate(self) -> Loaded:
        """Validate the edited document exactly as ``opsctl validate`` would read it from disk."""
        return parse(self.text(), str(self.path))

    def save(self) -> Loaded:
        """Validate, then atomically replace the file; refuse if it changed on disk meanwhile."""
        loaded = self.validate()
        text = self.text()
        try:
            current = self.path.read_text(encoding="utf-8")
        except OSError:
            current = None
        if current is None or hashlib.sha256(current.encode()).hexdigest() != self._digest:
            raise SpecError(self.path, [f"{self.path}: the file changed on disk while opsctl was editing it; "
                                        "nothing was written, run the command again"])
        atomic_write(self.path, text)
        return loaded


__all__ = ["SpecDocument", "atomic_write", "check_user_entry"]
