"""The backup server's desired state, computed once from the validated site.

One object says what the backup host must look like: the pool (vdevs, ashift, root dataset
properties), every dataset in creation order with every property it gets (quota and mountpoint
included), the owner and mode of each share's mountpoint, the ``opsctl:user`` tag that marks a
dataset opsctl created for a user, the users' system accounts, the extra shares' groups, the shares and who may
use them over which protocol (with the Time Machine size and the ``dkN`` record each advertises),
the daemons that must run (and, in ``backup.mode: containers``, the container each runs in), the
mDNS service types announced, and which configuration files exist.

Everybody reads this object instead of working the facts out again:

* the roles get it as ``opsctl.state`` (:func:`opsctl.render.context.context_for`): the zfs role
  hands the pool, the datasets and the users to one module call each; samba, netatalk and avahi
  install the ``files`` planned for them and loop over ``shares``;
* ``opsctl render`` writes the same ``files`` (:mod:`opsctl.render.artifacts`) and the pool and
  datasets as ``zfs/plan.json`` and ``zfs/plan.sh`` (:mod:`opsctl.render.zfs_plan`);
* ``opsctl verify`` compares the host with it; ``opsctl status`` probes its shares, services and
  advertisements; ``opsctl user`` takes dataset names and the purge guard's inputs from it.

Example::

    >>> state = backup_state(load().site)          # doctest: +SKIP
    >>> [d.name for d in state.datasets]           # doctest: +SKIP
    ['tank/timemachine', 'tank/timemachine/alice', 'tank/timemachine/bob']
    >>> state.dataset('tank/timemachine/alice').properties['quota']   # doctest: +SKIP
    '200M'
"""

from __future__ import annotations

import posixpath
from dataclasses import asdict, dataclass, field

from opsctl.site.models import Site
from opsctl.site.types import parse_size

#: The ZFS user property that marks a dataset opsctl created for a Time Machine user; only such
#: a dataset may ever be purged (``opsctl user remove --purge``).
USER_TAG = "opsctl:user"
#: Properties ZFS accepts only when a dataset is created; a drifted one is refused, never "fixed".
CREATE_ONLY = ("normalization", "utf8only", "casesensitivity")
#: Mode of a Time Machine dataset's mountpoint (owned user:user).
SHARE_MODE = "0700"
#: Mode of an extra share's mountpoint (owned root:<its group>): its members read and write, the
#: setgid bit gives what they create the share's group.
GROUP_SHARE_MODE = "2770"
#: backup.mode containers: the container each daemon runs in (the compose file's container_name).
CONTAINERS = {"smbd": "opsctl-samba", "avahi-daemon": "opsctl-avahi"}


@dataclass(frozen=True)
class PoolState:
    """The pool: created once on blank disks, imported when it already exists on them."""

    name: str
    vdevs: list[dict]  # [{"type": "mirror", "disks": [...]}, ...] ("stripe": plain disks)
    zpool_args: list[str]  # the vdev part of `zpool create`
    ashift: int
    root_properties: dict[str, str]  # -O properties of the root dataset (mountpoint included)

    @property
    def disks(self) -> list[str]:
        return [d for v in self.vdevs for d in v["disks"]]

    @property
    def disk_dirs(self) -> list[str]:
        """The folders ``zpool import -d`` scans for this pool (e.g. ``/dev/disk/by-id``)."""
        return sorted({posixpath.dirname(d) for d in self.disks})


@dataclass(frozen=True)
class DatasetState:
    """One dataset with every property it is created with and kept at."""

    name: str
    properties: dict[str, str]
    kind: str  # "parent" (below the pool, above the users'), "user" (Time Machine), "share" (extra share)
    user: str | None = None  # Time Machine user: tagged opsctl:user=<user> at creation
    owner: str | None = None  # the mountpoint's owner (and group, unless ``group`` says otherwise)
    mode: str | None = None  # the mountpoint's mode
    group: str | None = None  # the mountpoint's group when it is not the owner's
    parents: bool = False  # create missing parents (zfs create -p)

    @property
    def mountpoint(self) -> str:
        return self.properties.get("mountpoint", "")

    @property
    def quota_bytes(self) -> int | None:
        quota = self.properties.get("quota")
        return parse_size(quota) if quota and quota != "none" else None


@dataclass(frozen=True)
class AccountState:
    """The system account of a Time Machine user (no login shell; home = its dataset's mountpoint)."""

    name: str
    uid: int | None
    full_name: str
    home: str


@dataclass(frozen=True)
class GroupState:
    """The group of an extra share: exactly its ``valid_users`` (opsctl owns the group)."""

    name: str
    members: list[str]


@dataclass(frozen=True)
class ShareState:
    """One served folder: a user's Time Machine share, or an extra share."""

    name: str  # the share (SMB) and volume (AFP) name
    dataset: str
    path: str
    protocols: list[str]  # "smb", "afp"
    valid_users: list[str]
    time_machine: bool
    user: str | None = None  # the Time Machine share's user
    tm_size: str | None = None  # the size Time Machine is told (below the quota: headroom)
    tm_size_mib: int | None = None
    dk: str | None = None  # its record in the _adisk._tcp advertisement
    read_only: bool = False
    comment: str = ""
    group: str | None = None  # an extra share's group (owns its folder)


@dataclass(frozen=True)
class FileState:
    """A configuration file that must exist on the backup host, rendered from one template.

    ``path`` is where ``opsctl render`` writes it (under the host's folder); each role maps it to
    the place its distribution reads it from (e.g. ``avahi/services/smb.service`` into
    ``avahi_services_dir``)."""

    service: str  # zfs | samba | netatalk | avahi
    template: str  # under templates/
    path: str


@dataclass(frozen=True)
class BackupState:
    host: str
    pool: PoolState
    datasets: list[DatasetState]
    users: list[AccountState]
    shares: list[ShareState] = field(default_factory=list)
    groups: list[GroupState] = field(default_factory=list)  # the extra shares' groups
    services: list[str] = field(default_factory=list)  # daemons that must run (systemd units in host mode)
    mode: str = "host"  # backup.mode: how Samba and Avahi run (host daemons, or containers)
    containers: dict[str, str] = field(default_factory=dict)  # daemon -> its container (containers mode)
    advertised: list[str] = field(default_factory=list)  # mDNS service types announced
    files: list[FileState] = field(default_factory=list)
    create_only: list[str] = field(default_factory=lambda: list(CREATE_ONLY))

    def dataset(self, name: str) -> DatasetState:
        for d in self.datasets:
            if d.name == name:
                return d
        raise KeyError(name)

    def user_dataset(self, user: str) -> DatasetState | None:
        return next((d for d in self.datasets if d.user == user), None)

    def share_users(self, protocol: str) -> list[str]:
        """Everyone who logs in over ``protocol`` ("smb" or "afp"), sorted: who needs a password."""
        return sorted({u for s in self.shares if protocol in s.protocols for u in s.valid_users})

    @property
    def in_containers(self) -> dict[str, str]:
        """The daemons that run as a container in this mode, with the container's name (empty in host mode)."""
        return dict(self.containers) if self.mode == "containers" else {}

    def planned(self, path: str) -> bool:
        """Whether the configuration file ``path`` (as rendered) is part of this state."""
        return any(f.path == path for f in self.files)

    def referenced(self) -> list[str]:
        """Every dataset the site still declares (what a purge must never destroy)."""
        return [self.pool.name, *(d.name for d in self.datasets)]

    def as_dict(self) -> dict:
        """Plain JSON-able data: the Ansible host variable ``opsctl.state`` and ``plan.json``."""
        data = asdict(self)
        data["pool"]["disks"] = self.pool.disks
        data["pool"]["disk_dirs"] = self.pool.disk_dirs
        for d, obj in zip(data["datasets"], self.datasets, strict=True):
            d["mountpoint"] = obj.mountpoint
        data["user_tag"] = USER_TAG
        data["share_mode"] = SHARE_MODE
        data["in_containers"] = self.in_containers
        data["smb_users"] = self.share_users("smb")
        data["afp_users"] = self.share_users("afp")
        return data


def _str(value: object) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    return str(value)


def dataset_of(site: Site, user: str) -> str:
    """The Time Machine dataset of ``user`` (whether or not the site lists the user)."""
    assert site.backup is not None
    return site.backup.user_dataset(user)


def backup_state(site: Site) -> BackupState | None:
    """The desired state of the site's backup server; None when the site has none."""
    b = site.backup
    if b is None:
        return None
    pool = b.pool
    root_props = {k: _str(v) for k, v in {**b.dataset_defaults, **pool.properties}.items()}
    root_props["mountpoint"] = f"/{pool.name}"
    pool_state = PoolState(
        name=pool.name,
        vdevs=[{"type": v.type, "disks": list(v.disks)} for v in pool.vdevs],
        zpool_args=list(pool.zpool_args),
        ashift=pool.ashift,
        root_properties=root_props,
    )
    datasets: list[DatasetState] = []
    if pool.dataset_root:
        parts = pool.dataset_root.split("/")
        for depth in range(1, len(parts) + 1):
            props = {"mountpoint": pool.root_mountpoint} if depth == len(parts) else {}
            datasets.append(DatasetState("/".join([pool.name, *parts[:depth]]), props, "parent"))
    users = {u.name: u for u in b.users}
    accounts = []
    shares: list[ShareState] = []
    for share in b.time_machine_shares:
        props = {k: _str(v) for k, v in share["properties"].items()}
        props["quota"] = _str(share["quota"])
        props["mountpoint"] = share["path"]
        datasets.append(DatasetState(share["dataset"], props, "user", user=share["user"], owner=share["user"],
                                     group=share["user"], mode=SHARE_MODE))
        user = users[share["user"]]
        accounts.append(AccountState(user.name, user.uid, user.full_name or "", share["path"]))
        shares.append(ShareState(share["name"], share["dataset"], share["path"], list(share["protocols"]),
                                 [share["user"]], True, user=share["user"], tm_size=share["tm_size"],
                                 tm_size_mib=share["tm_size_mib"], dk=share["dk"],
                                 comment=f"Time Machine for {share['user']}"))
    groups: list[GroupState] = []
    for share in b.other_shares:
        props = {k: _str(v) for k, v in b.dataset_defaults.items()}
        if share["quota"]:
            props["quota"] = _str(share["quota"])
        props["mountpoint"] = share["path"]
        group = b.share_group(share["name"])
        groups.append(GroupState(group, list(share["valid_users"])))
        datasets.append(DatasetState(share["dataset"], props, "share", owner="root", group=group,
                                     mode=GROUP_SHARE_MODE, parents=True))
        shares.append(ShareState(share["name"], share["dataset"], share["path"], list(share["protocols"]),
                                 list(share["valid_users"]), False, read_only=share["read_only"],
                                 comment=share["comment"], group=group))
    services, advertised, files = _daemons(b, shares)
    containers = {d: c for d, c in CONTAINERS.items() if d in services}
    return BackupState(host=b.host, pool=pool_state, datasets=datasets, users=accounts, shares=shares,
                       groups=groups, services=services, mode=b.mode, containers=containers,
                       advertised=advertised, files=files)


def _daemons(b, shares: list[ShareState]) -> tuple[list[str], list[str], list[FileState]]:
    """The units that must run, the mDNS types announced and the configuration files, with the one
    set of conditions (render, the roles, verify and status all read these)."""
    advertise_afp = b.netatalk.enabled and any("afp" in s.protocols for s in shares if s.time_machine)
    services, advertised = [], []
    files = [FileState("zfs", "zfs/plan.sh.j2", "zfs/plan.sh")]
    if b.samba.enabled:
        services.append("smbd")
        files.append(FileState("samba", "samba/smb.conf.j2", "samba/smb.conf"))
    if b.netatalk.enabled:
        services.append("netatalk")
        names = ["afp.conf"] if b.netatalk.version >= 3 else ["AppleVolumes.default", "afpd.conf"]
        files += [FileState("netatalk", f"netatalk/{n}.j2", f"netatalk/{n}") for n in names]
        if b.netatalk.version == 2:
            files.append(FileState("netatalk", "netatalk/netatalk.default.j2", "netatalk/default-netatalk"))
    if b.avahi.enabled:
        services.append("avahi-daemon")
        wanted = [("smb", "_smb._tcp", b.samba.enabled), ("afpd", "_afpovertcp._tcp", advertise_afp),
                  ("adisk", "_adisk._tcp", any(s.time_machine for s in shares)),
                  ("device-info", "_device-info._tcp", True)]
        for name, kind, on in wanted:
            if on:
                advertised.append(kind)
                files.append(FileState("avahi", f"avahi/{name}.service.j2", f"avahi/services/{name}.service"))
        files.append(FileState("avahi", "avahi/nsswitch-hosts.j2", "avahi/nsswitch.hosts"))
    return services, advertised, files
