"""Validated scalar types of the site spec.

Every value that ends up in a shell line, a config file or a ZFS command is checked
here, once, before anything touches a host. Each check raises ``ValueError`` with a
message that names the bad value and how to fix it; :mod:`opsctl.spec.loader` adds
the field path and the line of the YAML file.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, BeforeValidator

# --------------------------------------------------------------------------- names

_POSIX_USER = re.compile(r"[a-z_][a-z0-9_-]{0,31}", re.ASCII)
#: Accounts a Time Machine user must never collide with.
RESERVED_USERS = frozenset({
    "root", "daemon", "bin", "sys", "sync", "games", "man", "lp", "mail", "news", "uucp", "proxy", "www-data",
    "backup", "list", "irc", "gnats", "nobody", "systemd-network", "systemd-resolve", "messagebus", "sshd",
    "avahi", "_apt", "admin", "guest", "ftp",
})


def _printable(value: str) -> str:
    """Show a value with any control or non-ASCII character escaped, so the error is readable."""
    return value.encode("unicode_escape").decode("ascii") if not value.isascii() or not value.isprintable() else value


def _match(pattern: re.Pattern, value: str, problem: str) -> str:
    """``value`` if it is a string ``pattern`` matches whole; else ValueError "'value' <problem>"."""
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise ValueError(f"{_printable(str(value))!r} {problem}")
    return value


def check_posix_user(value: str) -> str:
    _match(_POSIX_USER, value, "is not a valid POSIX user name; use 1-32 characters: "
           "lowercase ASCII letters, digits, '_' or '-', starting with a letter or '_' "
           "(no spaces, quotes, shell characters or look-alike unicode letters)")
    if value in RESERVED_USERS:
        raise ValueError(f"{value!r} is a system account name; pick a personal name such as 'alice'")
    return value


_HOSTNAME = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)(\.(?!-)[a-z0-9-]{1,63}(?<!-))*", re.ASCII | re.IGNORECASE)


def check_hostname(value: str) -> str:
    if not isinstance(value, str) or len(value) > 253 or not _HOSTNAME.fullmatch(value):
        raise ValueError(
            f"{_printable(str(value))!r} is not a valid host name; use letters, digits and '-' "
            "(dot-separated labels of at most 63 characters, no leading or trailing '-')"
        )
    return value


_SHARE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", re.ASCII)


def check_share_name(value: str) -> str:
    return _match(_SHARE, value, "is not a valid share name; use 1-64 ASCII letters, digits, "
                  "'.', '_' or '-', starting with a letter or digit")


ZPOOL_RESERVED = frozenset({"log", "cache", "special", "dedup"})
_ZPOOL_RESERVED_PREFIX = ("mirror", "raidz", "draid", "spare")
_POOL = re.compile(r"[A-Za-z][A-Za-z0-9_.:-]{0,254}", re.ASCII)
_DATASET_COMPONENT = re.compile(r"[A-Za-z0-9_.:-]{1,255}", re.ASCII)


def check_pool_name(value: str) -> str:
    if not isinstance(value, str) or not _POOL.fullmatch(value) or value in ZPOOL_RESERVED \
            or value.startswith(_ZPOOL_RESERVED_PREFIX) or re.match(r"c[0-9]", value):
        raise ValueError(
            f"{_printable(str(value))!r} is not a valid ZFS pool name; start with a letter, then letters, "
            "digits, '_', '-', '.' or ':' (not a vdev keyword such as 'mirror'), e.g. 'tank'"
        )
    return value


def check_dataset_path(value: str) -> str:
    """A dataset path relative to its pool: ``a`` or ``a/b`` (empty means the pool's root)."""
    if not isinstance(value, str):
        raise ValueError(f"{value!r} is not a dataset path; use e.g. 'timemachine' or 'ml/data'")
    if value == "":
        return value
    parts = value.split("/")
    for part in parts:
        if part in ("", ".", "..") or not _DATASET_COMPONENT.fullmatch(part):
            raise ValueError(
                f"{_printable(value)!r} is not a valid dataset path; use '/'-separated components of "
                "ASCII letters, digits, '_', '-', '.' or ':' (no leading/trailing '/'), e.g. 'ml/data'"
            )
    return value


_ABS_PATH = re.compile(r"/[A-Za-z0-9/_.:+@-]*", re.ASCII)


def check_abs_path(value: str) -> str:
    if not isinstance(value, str) or not _ABS_PATH.fullmatch(value) or "/../" in value + "/" \
            or "//" in value:
        raise ValueError(
            f"{_printable(str(value))!r} is not a safe absolute path; use '/' followed by ASCII letters, "
            "digits, '/', '_', '.', ':', '+', '@' or '-' (no spaces, quotes, '..' or '//'), e.g. /srv/ml/data"
        )
    return value


def check_disk(value: str) -> str:
    value = check_abs_path(value)
    if not value.startswith("/dev/"):
        raise ValueError(f"{value!r} is not a block device path; use /dev/disk/by-id/<id>")
    return value


#: Disk names that change between boots; a warning, not an error.
UNSTABLE_DISK = re.compile(r"/dev/(sd[a-z]+|hd[a-z]+|vd[a-z]+|xvd[a-z]+|nvme\d+n\d+)(p?\d+)?", re.ASCII)

_IMAGE = re.compile(r"[a-z0-9][a-z0-9._/:@-]{0,254}", re.ASCII)


def check_image(value: str) -> str:
    return _match(_IMAGE, value, "is not a valid container image reference; use e.g. "
                  "'opsctl/charlm:latest' (lowercase, no spaces)")


_MODEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9,._ -]{0,63}", re.ASCII)


def check_device_model(value: str) -> str:
    return _match(_MODEL, value, "is not a valid Apple device model; use e.g. 'TimeCapsule8,119', "
                  "'MacPro7,1' or 'RackMac'")


_FREE_TEXT = re.compile(r"[A-Za-z0-9 ,._()%-]{0,64}", re.ASCII)


def check_free_text(value: str) -> str:
    """Short descriptive text that lands in config files (server string, advertised name)."""
    return _match(_FREE_TEXT, value, "contains characters that are not allowed here; use at most 64 "
                  "ASCII letters, digits, spaces and , . _ ( ) % -")


# --------------------------------------------------------------------------- sizes

_SIZE = re.compile(r"(\d+(?:\.\d+)?)([KMGTP]?)", re.ASCII)
_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40, "P": 1 << 50}


def parse_size(value: str | int) -> int:
    """Parse a ZFS-style size (``500G``, ``1.5T``, ``100M``, bytes as an integer) into bytes.

    Units are binary (K = 1024), as in ``zfs set quota``. Spaces, negative numbers, ``GB``
    suffixes and zero are refused.

    >>> parse_size("1.5K")
    1536
    """
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a size; use a number with a unit, e.g. 500G")
    text = str(value)
    match = _SIZE.fullmatch(text)
    if not match:
        hint = ""
        if re.fullmatch(r"\s*\d+(\.\d+)?(\s+[KMGTPkmgtp](i?[Bb])?|\s*[KMGTPkmgtp]i?[Bb])\s*", text):
            hint = " (write '500G', not '500 GB' or '500GiB')"
        elif text.strip().startswith("-"):
            hint = " (sizes cannot be negative)"
        raise ValueError(
            f"{_printable(text)!r} is not a size{hint}; use a positive number with an optional "
            "binary unit K, M, G, T or P and no space, e.g. 500G"
        )
    number, unit = match.groups()
    size = int(float(number) * _UNITS[unit])
    if size <= 0:
        raise ValueError(f"{text!r} is zero; a size must be positive, e.g. 500G")
    return size


def normalize_size(value: str | int) -> str:
    parse_size(value)
    return str(value)


def format_size(size: int) -> str:
    """Format bytes as the shortest exact ZFS size string (``400G``), falling back to bytes."""
    for unit in ("P", "T", "G", "M", "K"):
        if size % _UNITS[unit] == 0:
            return f"{size // _UNITS[unit]}{unit}"
    return str(size)


# --------------------------------------------------------------------------- ZFS properties

_COMPRESSION = {"on", "off", "lz4", "lzjb", "zle", "gzip", "zstd", "zstd-fast"} \
    | {f"gzip-{i}" for i in range(1, 10)} | {f"zstd-{i}" for i in range(1, 20)} \
    | {f"zstd-fast-{i}" for i in (*range(1, 11), 20, 30, 40, 50, 60, 70, 80, 90, 100, 500, 1000)}
_ON_OFF = {"on", "off"}

#: Dataset properties opsctl knows, with their allowed values (None: a size or free-form number).
ZFS_PROPERTIES: dict[str, set[str] | None] = {
    "normalization": {"none", "formC", "formD", "formKC", "formKD"},
    "utf8only": _ON_OFF,
    "casesensitivity": {"sensitive", "insensitive", "mixed"},
    "aclinherit": {"discard", "noallow", "restricted", "passthrough", "passthrough-x"},
    "acltype": {"off", "noacl", "nfsv4", "posix", "posixacl"},
    "aclmode": {"discard", "groupmask", "passthrough", "restricted"},
    "nbmand": _ON_OFF,
    "compression": _COMPRESSION,
    "atime": _ON_OFF,
    "relatime": _ON_OFF,
    "xattr": {"on", "off", "sa", "dir"},
    "dnodesize": {"legacy", "auto", "1k", "2k", "4k", "8k", "16k"},
    "sync": {"standard", "always", "disabled"},
    "checksum": {"on", "off", "fletcher2", "fletcher4", "sha256", "sha512", "skein", "edonr", "blake3"},
    "dedup": {"on", "off", "verify", "sha256", "sha256,verify", "sha512", "skein", "blake3"},
    "exec": _ON_OFF,
    "setuid": _ON_OFF,
    "devices": _ON_OFF,
    "readonly": _ON_OFF,
    "snapdir": {"hidden", "visible"},
    "copies": {"1", "2", "3"},
    "recordsize": {str(1 << i) for i in range(9, 25)} | {"512", "4K", "8K", "16K", "32K", "64K", "128K",
                                                         "256K", "512K", "1M", "2M", "4M", "8M", "16M"},
    "logbias": {"latency", "throughput"},
    "primarycache": {"all", "none", "metadata"},
    "secondarycache": {"all", "none", "metadata"},
    "redundant_metadata": {"all", "most", "some", "none"},
    "canmount": {"on", "off", "noauto"},
}

#: Properties ZFS only accepts at dataset creation; never "fixed" by recreating.
CREATE_ONLY = frozenset({"normalization", "utf8only", "casesensitivity"})

#: macOS-friendly defaults for every Time Machine dataset.
MAC_DATASET_DEFAULTS: dict[str, str] = {
    "normalization": "formD",
    "utf8only": "on",
    "casesensitivity": "insensitive",
    "aclinherit": "passthrough",
    "nbmand": "off",
    "compression": "lz4",
    "atime": "off",
}


def zfs_value(value: object) -> str:
    """YAML 1.1 readers turn ``on``/``off`` into booleans; map them back to ZFS words."""
    if value is True:
        return "on"
    if value is False:
        return "off"
    return str(value)


def check_zfs_properties(props: dict) -> dict[str, str]:
    if not isinstance(props, dict):
        raise ValueError(f"{props!r} is not a mapping of ZFS properties; use e.g. {{compression: lz4}}")
    out: dict[str, str] = {}
    for name, raw in props.items():
        value = zfs_value(raw)
        if name not in ZFS_PROPERTIES:
            raise ValueError(
                f"unknown ZFS property {_printable(str(name))!r}; known properties: "
                + ", ".join(sorted(ZFS_PROPERTIES))
            )
        allowed = ZFS_PROPERTIES[name]
        if allowed is not None and value not in allowed:
            raise ValueError(
                f"{_printable(value)!r} is not a valid value for ZFS property {name!r}; use one of: "
                + ", ".join(sorted(allowed, key=lambda v: (len(v), v))[:24])
            )
        out[name] = value
    norm = out.get("normalization")
    if out.get("utf8only") == "off" and norm not in (None, "none"):
        raise ValueError(
            f"utf8only=off cannot be combined with normalization={norm}; ZFS requires utf8only=on "
            "whenever a normalization is set (set utf8only: 'on' or normalization: none)"
        )
    return out


# --------------------------------------------------------------------------- annotated types

PosixUser = Annotated[str, AfterValidator(check_posix_user)]
Hostname = Annotated[str, AfterValidator(check_hostname)]
ShareName = Annotated[str, AfterValidator(check_share_name)]
PoolName = Annotated[str, AfterValidator(check_pool_name)]
DatasetPath = Annotated[str, AfterValidator(check_dataset_path)]
AbsPath = Annotated[str, AfterValidator(check_abs_path)]
Disk = Annotated[str, AfterValidator(check_disk)]
Image = Annotated[str, AfterValidator(check_image)]
DeviceModel = Annotated[str, AfterValidator(check_device_model)]
FreeText = Annotated[str, AfterValidator(check_free_text)]
Size = Annotated[str, BeforeValidator(lambda v: v if isinstance(v, str) else str(v) if isinstance(v, int)
                                      and not isinstance(v, bool) else v),
                 AfterValidator(normalize_size)]
ZfsProperties = Annotated[dict[str, str], BeforeValidator(check_zfs_properties)]
OnOff = Annotated[str, BeforeValidator(zfs_value)]
