"""Validated scalar types of the site spec.

Every value that ends up in a shell line, a config file or a ZFS command is checked
here, once, before anything touches a host. Each check raises ``ValueError`` with a
message that names the bad value and how to fix it; :mod:`opsctl.site.loader` adds
the field path and the line of the YAML file.
"""

from __future__ import annotations

import ipaddress
import re
from decimal import Decimal
from typing import Annotated

from pydantic import AfterValidator, BeforeValidator

# --------------------------------------------------------------------------- names

_POSIX_USER = re.compile(r"[a-z_][a-z0-9_-]{0,31}", re.ASCII)
#: Accounts a Time Machine user must never collide with: Debian's base-passwd users and groups,
#: the accounts common services create, and names with a special meaning on macOS/Samba.
RESERVED_USERS = frozenset({
    # base-passwd users and groups
    "root", "daemon", "bin", "sys", "sync", "games", "man", "lp", "mail", "news", "uucp", "proxy", "www-data",
    "backup", "list", "irc", "gnats", "nobody", "nogroup", "adm", "tty", "disk", "kmem", "dialout", "fax",
    "voice", "cdrom", "floppy", "tape", "sudo", "audio", "dip", "operator", "src", "shadow", "utmp", "video",
    "sasl", "plugdev", "staff", "users", "netdev", "input", "kvm", "render", "sgx", "crontab", "lpadmin",
    "scanner", "bluetooth", "ssl-cert", "wheel", "admin", "ssh", "tss", "rdma", "clock",
    # common service accounts
    "messagebus", "sshd", "avahi", "avahi-autoipd", "polkitd", "dnsmasq", "statd", "rpc", "_rpc", "tcpdump",
    "uuidd", "syslog", "postfix", "postdrop", "ntp", "ntpsec", "chrony", "_chrony", "munge", "slurm",
    "docker", "netatalk", "samba", "sambashare", "winbindd_priv", "lxd", "libvirt", "libvirt-qemu", "qemu",
    "mysql", "postgres", "redis", "nginx", "apache", "http", "ftp", "guest", "_apt", "dbus", "usbmux",
    "geoclue", "pulse", "rtkit", "colord", "saned", "lightdm", "gdm", "sddm", "nvidia-persistenced",
    "apptainer", "zfs",
})
#: Prefixes of system account names (systemd-*, _apt, _chrony, Debian-exim ...).
RESERVED_USER_PREFIXES = ("systemd-", "_", "debian-")
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
    if value in RESERVED_USERS or value.startswith(RESERVED_USER_PREFIXES):
        raise ValueError(f"{value!r} is a system account name; pick a personal name such as 'alice' "
                         "(system accounts and groups such as adm, sudo, staff, docker, systemd-* and _* "
                         "are refused)")
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


#: Section names smb.conf and afp.conf give a special meaning (compared case-insensitively).
RESERVED_SHARES = frozenset({"global", "homes", "printers", "print$", "ipc$", "admin$", "c$", "netlogon",
                             "sysvol", "profiles", "default", "homes$"})


def check_share_name(value: str) -> str:
    _match(_SHARE, value, "is not a valid share name; use 1-64 ASCII letters, digits, "
           "'.', '_' or '-', starting with a letter or digit")
    if value.lower() in RESERVED_SHARES:
        raise ValueError(f"{value!r} is a share name reserved by Samba/Netatalk (" + ", ".join(
            sorted(RESERVED_SHARES)) + "; compared case-insensitively); pick another name such as 'projects'")
    return value


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


#: Folders that must never become a data, checkpoint or mount root (opsctl chowns/chmods its roots).
SYSTEM_PATHS = frozenset({"/", "/etc", "/usr", "/usr/local", "/usr/lib", "/usr/bin", "/usr/sbin", "/usr/share",
                          "/var", "/var/lib", "/var/log", "/var/cache", "/var/spool", "/var/tmp", "/var/run",
                          "/boot", "/root", "/bin", "/sbin", "/dev", "/proc", "/sys", "/run", "/tmp",
                          "/home", "/opt", "/srv", "/mnt", "/media", "/snap", "/lost+found"})


def check_data_root(value: str) -> str:
    """An absolute path that opsctl may own (chown/chmod): not a system folder itself."""
    value = check_abs_path(value)
    stripped = value.rstrip("/") or "/"
    if stripped in SYSTEM_PATHS or re.fullmatch(r"/(usr/)?lib(32|64|x32)?", stripped):
        raise ValueError(f"{value!r} is a system folder; opsctl would take it over (chown/chmod); use a "
                         "folder of its own below it, e.g. /srv/ml/data or /tank/timemachine")
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


# No spaces: the model lands as one word in Netatalk 2's afpd.conf (`-mimicmodel MODEL`).
_MODEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9,._-]{0,63}", re.ASCII)


def check_device_model(value: str) -> str:
    return _match(_MODEL, value, "is not a valid Apple device model; use 1-64 ASCII letters, digits, "
                  "',', '.', '_' or '-' (no spaces), e.g. 'TimeCapsule8,119', 'MacPro7,1' or 'RackMac'")


_IFNAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,14}", re.ASCII)


def check_interface(value: str) -> str:
    """A network interface name (``eth0``, ``br-lan``) or an IP address / CIDR (``192.168.1.0/24``)."""
    if isinstance(value, str) and value.isascii():
        if _IFNAME.fullmatch(value) and not re.fullmatch(r"[0-9.:]+", value):
            return value
        try:
            ipaddress.ip_interface(value)
            return value
        except ValueError:
            pass
    raise ValueError(f"{_printable(str(value))!r} is not an interface; use an interface name (1-15 ASCII "
                     "letters, digits, '_', '.', ':' or '-', e.g. eth0) or an IP address or CIDR "
                     "(e.g. 192.168.1.10 or 192.168.1.0/24)")


#: Jinja's statement/expression/comment openers: a spec string must never become a template.
TEMPLATE_MARKERS = ("{{", "{%", "{#")


def check_no_template(value: object, where: str = "") -> object:
    """Refuse any string (also inside lists/dicts, keys included) holding a Jinja marker."""
    if isinstance(value, str):
        for marker in TEMPLATE_MARKERS:
            if marker in value:
                raise ValueError(f"{_printable(value)!r}{where} contains the template marker {marker!r}; "
                                 "spec values are data, never templates: remove the braces")
    elif isinstance(value, dict):
        for key, item in value.items():
            check_no_template(key, where)
            check_no_template(item, f" (in {key!r})" if isinstance(key, str) else where)
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            check_no_template(item, f" (item {index})")
    return value


# --------------------------------------------------------------------------- host vars

_INTERPRETER = re.compile(r"auto|auto_silent|auto_legacy|auto_legacy_silent|/[A-Za-z0-9/_.+-]+", re.ASCII)
_BECOME_USER = re.compile(r"[a-z_][a-z0-9_-]{0,31}", re.ASCII)

#: ``hosts[].vars`` keys opsctl passes to Ansible, each with a check of its value. Keys that make
#: Ansible run a command of the spec's choosing (ansible_ssh_common_args/extra_args,
#: ansible_*_executable, ansible_connection, become flags ...) are not on this list.
HOST_VARS: dict[str, tuple[type | tuple[type, ...], re.Pattern | None, str]] = {
    "ansible_python_interpreter": (str, _INTERPRETER, "an absolute path or auto/auto_silent"),
    "ansible_become": (bool, None, "true or false"),
    "ansible_become_method": (str, re.compile(r"sudo|su|doas|runas", re.ASCII), "sudo, su or doas"),
    "ansible_become_user": (str, _BECOME_USER, "a POSIX user name"),
    "ansible_port": (int, None, "a port number 1-65535"),
    "ansible_user": (str, _BECOME_USER, "a POSIX user name"),
    "ansible_ssh_private_key_file": (str, _ABS_PATH, "an absolute path without spaces"),
    "ansible_timeout": (int, None, "seconds"),
    "ansible_ssh_timeout": (int, None, "seconds"),
    "ansible_ssh_retries": (int, None, "a count"),
    "ansible_pipelining": (bool, None, "true or false"),
    "ansible_ssh_pipelining": (bool, None, "true or false"),
}


def check_host_vars(value: dict) -> dict:
    if not isinstance(value, dict):
        raise ValueError(f"{value!r} is not a mapping of host variables; use e.g. "
                         "{ansible_python_interpreter: /usr/bin/python3}")
    for key, item in value.items():
        if key not in HOST_VARS:
            raise ValueError(f"host variable {_printable(str(key))!r} is not allowed; allowed: "
                             + ", ".join(HOST_VARS) + " (connection commands and options come from opsctl)")
        kind, pattern, what = HOST_VARS[key]
        ok = isinstance(item, kind) and not (kind is int and isinstance(item, bool))
        if ok and kind is int:
            ok = 1 <= item <= (65535 if key == "ansible_port" else 3600)
        if ok and pattern is not None:
            ok = bool(pattern.fullmatch(item))
        if not ok:
            raise ValueError(f"{key}: {_printable(str(item))!r} is not valid; use {what}")
    return value


_FREE_TEXT = re.compile(r"[A-Za-z0-9 ,._()%-]{0,64}", re.ASCII)


def check_free_text(value: str) -> str:
    """Short descriptive text that lands in config files (server string, advertised name)."""
    return _match(_FREE_TEXT, value, "contains characters that are not allowed here; use at most 64 "
                  "ASCII letters, digits, spaces and , . _ ( ) % -")


# --------------------------------------------------------------------------- sizes

_SIZE = re.compile(r"(\d+(?:\.\d+)?)([KMGTP]?)", re.ASCII)
_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40, "P": 1 << 50}
#: 16 EiB: the largest size ZFS (64-bit byte counts) can hold.
MAX_SIZE = 1 << 64


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
    size = int(Decimal(number) * _UNITS[unit])  # exact: a float would round 16E + 1 down to 16E
    if size <= 0:
        raise ValueError(f"{text!r} is zero; a size must be positive, e.g. 500G")
    if size > MAX_SIZE:
        raise ValueError(f"{_printable(text)!r} is larger than ZFS can hold (16E = 16384P); use at most 16384P")
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
DataRoot = Annotated[str, AfterValidator(check_data_root)]
"""A folder opsctl owns (pool mount root, share path, training data/checkpoint dir): not a system folder."""
Interface = Annotated[str, AfterValidator(check_interface)]
HostVars = Annotated[dict[str, str | int | bool], BeforeValidator(check_host_vars)]
Size = Annotated[str, BeforeValidator(lambda v: v if isinstance(v, str) else str(v) if isinstance(v, int)
                                      and not isinstance(v, bool) else v),
                 AfterValidator(normalize_size)]
ZfsProperties = Annotated[dict[str, str], BeforeValidator(check_zfs_properties)]
OnOff = Annotated[str, BeforeValidator(zfs_value)]
