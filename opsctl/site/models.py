"""The site spec: one YAML file describing every host opsctl manages.

A site has ``hosts`` (how to reach each machine), at most one ``backup`` server
(ZFS pool + Samba + Netatalk + Avahi), an optional ``training`` host (the ML job in
Docker or Apptainer) and an optional ``slurm`` cluster. Cross-references (a section's
``host`` must be a declared host, users/shares/datasets unique, Time Machine size
within quota) are checked here so a bad spec never reaches a machine.

Derived values the templates need (dataset names, mountpoints, sizes in MiB) are
``computed_field`` properties, so ``model_dump()`` carries them and the Jinja templates
(rendered by ``opsctl render`` and by Ansible alike) never recompute them.
"""

from __future__ import annotations

import ipaddress
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, computed_field, field_validator, model_validator

from opsctl.site.types import (
    MAC_DATASET_DEFAULTS,
    UNSTABLE_DISK,
    AbsPath,
    DataRoot,
    DatasetPath,
    DeviceModel,
    Disk,
    FreeText,
    Hostname,
    HostVars,
    Image,
    Interface,
    PoolName,
    PosixUser,
    ShareName,
    Size,
    ZfsProperties,
    check_data_root,
    check_hostname,
    check_no_template,
    check_zfs_properties,
    format_size,
    parse_size,
)


class Strict(BaseModel):
    """Base for every spec section: unknown keys are errors (typos must not pass silently)."""

    model_config = ConfigDict(extra="forbid", frozen=False, validate_default=True)

    @field_validator("*", mode="before")
    @classmethod
    def _no_template_markers(cls, value: object, info: ValidationInfo) -> object:
        """No string anywhere in the spec may hold ``{{``, ``{%`` or ``{#``: the data reaches Jinja
        (opsctl render, Ansible) and must never be evaluated. Nested sections check themselves."""
        if not _holds_model(cls.model_fields[info.field_name].annotation):
            check_no_template(value)
        return value


def _holds_model(annotation: object) -> bool:
    """Whether a field's type is (or contains) a spec section, which validates its own fields."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return True
    return any(_holds_model(arg) for arg in getattr(annotation, "__args__", ()) or ())


def _duplicates(values: list[str]) -> list[str]:
    seen: set[str] = set()
    dups: list[str] = []
    for value in values:
        if value in seen and value not in dups:
            dups.append(value)
        seen.add(value)
    return dups


def _unique(field: str, values: list[str], fix: str) -> None:
    dups = _duplicates(values)
    if dups:
        raise ValueError(f"duplicate {field}: {', '.join(map(repr, dups))}; {fix}")


# --------------------------------------------------------------------------- hosts


class Host(Strict):
    """A machine opsctl manages.

    ``connection``: ``ssh`` (default), ``docker`` (a local container, by name), or ``local``.
    """

    name: Hostname
    address: str | None = Field(default=None, description="IP or DNS name; defaults to the name")
    connection: Literal["ssh", "docker", "local"] = "ssh"
    port: int = Field(default=22, ge=1, le=65535)
    user: PosixUser | Literal["root"] = "root"
    groups: list[Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")]] = Field(
        default_factory=list, description="extra Ansible groups (role groups are added automatically)")
    vars: HostVars = Field(default_factory=dict, description="extra Ansible host vars (an allow-list of "
                           "connection settings such as ansible_python_interpreter, ansible_become)")
    sandbox: Literal["vm", "container"] | None = Field(
        default=None, description="a sandbox host made by `opsctl sandbox up`; its connection comes from there")

    @field_validator("address")
    @classmethod
    def _address(cls, value: str | None) -> str | None:
        if value is None:
            return value
        try:
            ipaddress.ip_address(value)
        except ValueError:
            check_hostname(value)
        return value


# --------------------------------------------------------------------------- backup server


class Vdev(Strict):
    """One top-level vdev of the pool."""

    type: Literal["mirror", "raidz1", "raidz2", "raidz3", "stripe"] = "mirror"
    disks: list[Disk] = Field(min_length=1)

    @model_validator(mode="after")
    def _enough_disks(self) -> Vdev:
        need = {"mirror": 2, "raidz1": 2, "raidz2": 3, "raidz3": 4, "stripe": 1}[self.type]
        if len(self.disks) < need:
            raise ValueError(
                f"a {self.type} vdev needs at least {need} disks, got {len(self.disks)}; add disks "
                "or change the vdev type"
            )
        return self


class Pool(Strict):
    """The ZFS pool that holds one dataset per user."""

    name: PoolName = "tank"
    vdevs: list[Vdev] = Field(min_length=1)
    ashift: int = Field(default=12, ge=9, le=16, description="log2 of the sector size; 12 = 4 KiB")
    dataset_root: DatasetPath = Field(default="", description="parent of the user datasets, '' = the pool")
    mountpoint_root: DataRoot | None = Field(default=None, description="default: /<pool>/<dataset_root>")
    properties: ZfsProperties = Field(default_factory=dict, description="root dataset (-O) properties")

    @model_validator(mode="after")
    def _disks_unique(self) -> Pool:
        _unique("pool disks", [d for v in self.vdevs for d in v.disks], "each disk may appear in one vdev only")
        if not self.mountpoint_root:
            try:
                check_data_root(self.root_mountpoint)
            except ValueError as exc:
                raise ValueError(f"the pool's mountpoint {exc}; or set mountpoint_root") from None
        return self

    @computed_field
    @property
    def root_dataset(self) -> str:
        return f"{self.name}/{self.dataset_root}" if self.dataset_root else self.name

    @computed_field
    @property
    def root_mountpoint(self) -> str:
        if self.mountpoint_root:
            return self.mountpoint_root
        return "/" + self.root_dataset

    @computed_field
    @property
    def zpool_args(self) -> list[str]:
        """The vdev part of ``zpool create``: ``mirror d1 d2 raidz1 d3 d4 d5``."""
        args: list[str] = []
        for vdev in self.vdevs:
            if vdev.type != "stripe":
                args.append(vdev.type)
            args.extend(vdev.disks)
        return args


#: Default Time Machine size in percent of the quota (the rest is headroom below the ZFS quota).
TM_DEFAULT_PERCENT = 90


class User(Strict):
    """A Mac user with a Time Machine dataset and share."""

    name: PosixUser
    quota: Size
    tm_size: Size | None = Field(default=None, description="advertised Time Machine size; default: 90 % of "
                                 "the quota (whole MiB), so ZFS keeps headroom for snapshots and metadata")
    protocols: list[Literal["smb", "afp"]] = Field(default_factory=lambda: ["smb"], min_length=1)
    uid: int | None = Field(default=None, ge=1000, le=60000)
    full_name: FreeText = ""
    properties: ZfsProperties = Field(default_factory=dict, description="per-user dataset overrides")

    @field_validator("protocols")
    @classmethod
    def _protocols_unique(cls, value: list[str]) -> list[str]:
        _unique("protocols", value, "list each protocol once")
        return value

    @model_validator(mode="after")
    def _tm_within_quota(self) -> User:
        if self.tm_size is not None and parse_size(self.tm_size) > parse_size(self.quota):
            raise ValueError(
                f"tm_size {self.tm_size} is larger than quota {self.quota}; Time Machine would fill the "
                f"dataset and fail; set tm_size <= {self.quota} (or raise the quota)"
            )
        return self

    @computed_field
    @property
    def quota_bytes(self) -> int:
        return parse_size(self.quota)

    @computed_field
    @property
    def tm_size_bytes(self) -> int:
        if self.tm_size is not None:
            return parse_size(self.tm_size)
        mib = 1 << 20
        return self.quota_bytes * TM_DEFAULT_PERCENT // 100 // mib * mib or self.quota_bytes

    def tm_headroom_warning(self) -> str | None:
        """A warning when a given tm_size leaves less than 10 % of the quota free."""
        if self.tm_size is not None and self.tm_size_bytes * 100 > self.quota_bytes * TM_DEFAULT_PERCENT:
            return (f"tm_size {self.tm_size} leaves less than {100 - TM_DEFAULT_PERCENT} % headroom below quota "
                    f"{self.quota}; a full Time Machine backup can then hit the quota and fail; set tm_size <= "
                    f"{format_size(self.quota_bytes * TM_DEFAULT_PERCENT // 100 // (1 << 20) * (1 << 20))} "
                    "or leave it out (default: 90 % of the quota)")
        return None

    @computed_field
    @property
    def tm_size_mib(self) -> int:
        """Netatalk's ``vol size limit`` is in MiB."""
        return self.tm_size_bytes // (1 << 20)

    @computed_field
    @property
    def tm_size_zfs(self) -> str:
        return format_size(self.tm_size_bytes)


class Share(Strict):
    """An extra (non Time Machine) share on its own dataset."""

    name: ShareName
    dataset: DatasetPath = Field(min_length=1)
    quota: Size | None = None
    valid_users: list[PosixUser] = Field(min_length=1)
    protocols: list[Literal["smb", "afp"]] = Field(default_factory=lambda: ["smb"], min_length=1)
    read_only: bool = False
    comment: FreeText = ""


class Samba(Strict):
    enabled: bool = True
    workgroup: str = Field(default="WORKGROUP", pattern=r"^[A-Za-z0-9_-]{1,15}$")
    server_string: FreeText = "opsctl Time Machine"
    server_min_protocol: Literal["SMB2", "SMB2_02", "SMB2_10", "SMB3", "SMB3_00", "SMB3_02", "SMB3_11"] = "SMB2"
    port: int = Field(default=445, ge=1, le=65535)
    recycle_bin: bool = False
    interfaces: list[Interface] = Field(default_factory=list, description="bind to these interfaces only "
                                        "(names such as eth0, or IP addresses/CIDRs)")
    log_level: int = Field(default=1, ge=0, le=10)


class Netatalk(Strict):
    enabled: bool = True
    version: Literal[2, 3, 4] = 4
    port: int = Field(default=548, ge=1, le=65535)
    max_clients: int = Field(default=50, ge=1, le=1000)
    uams: list[Literal["uams_dhx2.so", "uams_dhx.so", "uams_guest.so", "uams_clrtxt.so", "uams_randnum.so",
                       "uams_dhx2_pam.so", "uams_dhx_pam.so", "uams_dhx_passwd.so", "uams_dhx2_passwd.so"]] = \
        Field(default_factory=lambda: ["uams_dhx2.so"], min_length=1)
    log_level: Literal["severe", "error", "warn", "note", "info", "debug"] = "note"


class Avahi(Strict):
    enabled: bool = True
    model: DeviceModel = "TimeCapsule8,119"
    name: FreeText = Field(default="%h", description="advertised service name; %h = host name")


class Backup(Strict):
    """The Mac backup server."""

    host: Hostname
    pool: Pool
    dataset_defaults: ZfsProperties = Field(default_factory=lambda: dict(MAC_DATASET_DEFAULTS))
    users: list[User] = Field(default_factory=list)
    shares: list[Share] = Field(default_factory=list)
    samba: Samba = Field(default_factory=Samba)
    netatalk: Netatalk = Field(default_factory=Netatalk)
    avahi: Avahi = Field(default_factory=Avahi)
    share_prefix: str = Field(default="", description="share name = prefix + user name",
                              pattern=r"^[A-Za-z0-9._-]{0,32}$")
    mode: Literal["host", "containers"] = Field(
        default="host", description="how Samba and Avahi run: 'host' (daemons installed on the host) or "
        "'containers' (Docker containers with host networking; the ZFS pool, datasets and accounts stay on "
        "the host in both modes)")
    offline_build: bool = Field(
        default=False, description="backup.mode containers without a registry on the host: build the Samba "
        "and Avahi images here from a local Debian base (debootstrap) and load them into the host's Docker "
        "over ssh, instead of letting the host build them from the official base")

    @field_validator("dataset_defaults", mode="before")
    @classmethod
    def _merge_defaults(cls, value: dict) -> dict:
        """Given defaults override the macOS-friendly ones key by key; the rest stay."""
        return {**MAC_DATASET_DEFAULTS, **(value or {})}

    @model_validator(mode="after")
    def _consistent(self) -> Backup:
        _unique("users", [u.name for u in self.users], "list each user once")
        share_names = [s["name"] for s in self.time_machine_shares] + [s.name for s in self.shares]
        _unique("shares", [n.lower() for n in share_names], "share names must differ (case-insensitively)")
        _unique("datasets", [s["dataset"] for s in self.time_machine_shares]
                + [self.share_dataset(s.dataset) for s in self.shares], "give each share its own dataset")
        users = {u.name for u in self.users}
        groups = [self.share_group(s.name) for s in self.shares]
        _unique("share groups", groups, "the group of a share is 'share-' + its name in lower case ('.' read "
                "as '-', at most 32 characters): make the share names differ in their first 26 characters")
        for share, group in zip(self.shares, groups, strict=True):
            if group in users:
                raise ValueError(f"share {share.name!r}: its members' group {group!r} is the name of a user "
                                 "(whose own group has that name); rename the share or the user")
        for share in self.shares:
            unknown = [u for u in share.valid_users if u not in users]
            if unknown:
                raise ValueError(
                    f"share {share.name!r} lists unknown valid_users {unknown}; add them under backup.users"
                )
        for user in self.users:
            check_zfs_properties({**self.dataset_defaults, **user.properties})
        for share in self.other_shares:
            try:
                check_data_root(share["path"])
            except ValueError as exc:
                raise ValueError(f"share {share['name']!r}: its path {exc}") from None
        if self.netatalk.enabled and self.netatalk.version == 2 and self.netatalk.port != 548:
            raise ValueError("netatalk 2 (afpd.conf) is rendered for port 548 only; set netatalk.port: 548")
        if any("afp" in u.protocols for u in self.users) and not self.netatalk.enabled:
            raise ValueError("a user asks for protocol 'afp' but netatalk.enabled is false; enable netatalk "
                             "or drop 'afp' from that user's protocols")
        if any("smb" in u.protocols for u in self.users) and not self.samba.enabled:
            raise ValueError("a user asks for protocol 'smb' but samba.enabled is false; enable samba "
                             "or drop 'smb' from that user's protocols")
        return self

    @computed_field
    @property
    def time_machine_shares(self) -> list[dict]:
        """One Time Machine share per user: name, dataset, mountpoint, sizes, protocols, index ``dk``."""
        shares = []
        for index, user in enumerate(self.users):
            dataset = self.user_dataset(user.name)
            shares.append({
                "name": f"{self.share_prefix}{user.name}",
                "user": user.name,
                "dataset": dataset,
                "path": self.user_path(user.name),
                "quota": user.quota,
                "tm_size": user.tm_size_zfs,
                "tm_size_bytes": user.tm_size_bytes,
                "tm_size_mib": user.tm_size_mib,
                "protocols": list(user.protocols),
                "properties": {**self.dataset_defaults, **user.properties},
                "dk": f"dk{index}",
            })
        return shares

    @computed_field
    @property
    def other_shares(self) -> list[dict]:
        """The extra (non Time Machine) shares with their full dataset name and path."""
        return [{**share.model_dump(mode="json"), "dataset": self.share_dataset(share.dataset),
                 "path": f"/{self.share_dataset(share.dataset)}"} for share in self.shares]

    # The one naming rule of the datasets (opsctl.state.backup builds the desired state with it).
    def user_dataset(self, user: str) -> str:
        """The Time Machine dataset of ``user`` (listed in the site or not: a removed user's too)."""
        return f"{self.pool.root_dataset}/{user}"

    def user_path(self, user: str) -> str:
        return f"{self.pool.root_mountpoint}/{user}"

    def share_group(self, share: str) -> str:
        """The group of an extra share's ``valid_users``: it owns the share's folder (mode 2770), so every
        member can write there and what one writes the others can change."""
        return ("share-" + share.lower().replace(".", "-"))[:32]

    def share_dataset(self, dataset: str) -> str:
        """An extra share's dataset (``dataset`` as given under ``shares:``, below the pool)."""
        return f"{self.pool.name}/{dataset}"


# --------------------------------------------------------------------------- training host


class Job(Strict):
    """The ML job's model and hyperparameters, passed to ``charlm train``.

    Unset (null) hyperparameters keep charlm's tuned per-model defaults (see ml/README.md).
    """

    model: Literal["bigram", "nbigram", "mlp", "transformer"] = "transformer"
    names_file: str = Field(default="names.txt", pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$",
                            description="file name inside data_dir")
    steps: int | None = Field(default=None, ge=1)
    time_budget: int | None = Field(default=None, ge=1, description="seconds")
    batch_size: int | None = Field(default=None, ge=1, le=65536)
    lr: float | None = Field(default=None, gt=0, le=10)
    optimizer: Literal["sgd", "momentum", "adamw"] | None = None
    weight_decay: float | None = Field(default=None, ge=0, le=1)
    dropout: float | None = Field(default=None, ge=0, lt=1)
    warmup: int | None = Field(default=None, ge=0)
    grad_clip: float | None = Field(default=None, ge=0)
    n_embd: int | None = Field(default=None, ge=1, le=8192)
    n_layer: int | None = Field(default=None, ge=1, le=128)
    n_head: int | None = Field(default=None, ge=1, le=128)
    seed: int = Field(default=3407, ge=0)
    threads: int | None = Field(default=None, ge=1, le=1024)

    @model_validator(mode="after")
    def _heads_divide(self) -> Job:
        if self.model == "transformer" and self.n_embd and self.n_head and self.n_embd % self.n_head:
            raise ValueError(f"n_embd {self.n_embd} is not divisible by n_head {self.n_head}; "
                             "pick n_head that divides n_embd (e.g. n_embd: 64, n_head: 4)")
        return self

    @computed_field
    @property
    def train_args(self) -> list[str]:
        """``charlm train`` arguments (without --data/--out), one list item per token."""
        args = ["--model", self.model, "--seed", str(self.seed)]
        for name in ("steps", "time_budget", "batch_size", "lr", "optimizer", "weight_decay", "dropout", "warmup",
                     "grad_clip", "n_embd", "n_layer", "n_head", "threads"):
            value = getattr(self, name)
            if value is not None:
                args += ["--" + name.replace("_", "-"), repr(value) if isinstance(value, float) else str(value)]
        return args


class Training(Strict):
    """The GPU training host: where and how the ML job runs."""

    host: Hostname
    runtime: Literal["docker", "apptainer"] = "docker"
    gpus: int | Literal["all"] = Field(default=0, description="0 = CPU only; N or 'all'")
    gpu_request: Literal["gpus", "cdi"] = Field(default="gpus",
                                                description="docker --gpus or CDI --device nvidia.com/gpu=")
    image: Image = "opsctl/charlm:latest"
    base_image: Image | None = Field(default=None, description="default: python:3.11-slim / CUDA runtime")
    cuda_image: Image = "nvidia/cuda:12.4.1-cudnn-runtime-ubuntu22.04"
    data_dir: DataRoot = "/srv/ml/data"
    checkpoint_dir: DataRoot = "/srv/ml/checkpoints"
    data_dataset: DatasetPath | None = Field(default=None, description="ZFS dataset for data (pool/...)")
    checkpoint_dataset: DatasetPath | None = None
    user_uid: int = Field(default=1000, ge=1, le=60000, description="uid the job runs as (non-root)")
    shm_size: Size = "1G"
    network: bool = Field(default=False, description="true: the job container may use the network (needed "
                                                     "for notifications); default --network none")
    memory_limit: Size = Field(default="16G", description="memory limit of the job container")
    pids_limit: int = Field(default=4096, ge=64, le=4194304,
                            description="most processes + threads in the job container (torch starts many threads)")
    tmp_size: Size = Field(default="1G", description="size of the job container's writable /tmp (a tmpfs; its root "
                                                     "file system is read-only)")
    offline_build: bool = Field(default=False, description="build the image from local wheels only "
                                                           "(pip --no-index), for hosts without a registry")
    job: Job = Field(default_factory=Job)

    @field_validator("gpus")
    @classmethod
    def _gpus(cls, value: int | str) -> int | str:
        if isinstance(value, int) and not 0 <= value <= 64:
            raise ValueError(f"gpus {value} is out of range; use 0..64 or 'all'")
        return value

    @computed_field
    @property
    def base_images(self) -> dict[str, str]:
        """The FROM image of each Dockerfile variant."""
        return {"cpu": self.base_image or "python:3.11-slim-bookworm", "cuda": self.cuda_image}

    @computed_field
    @property
    def use_gpu(self) -> bool:
        return self.gpus == "all" or (isinstance(self.gpus, int) and self.gpus > 0)

    @computed_field
    @property
    def gpu_flags(self) -> list[str]:
        """Docker flags that hand the GPUs to the job container."""
        if not self.use_gpu:
            return []
        if self.gpu_request == "cdi":
            if self.gpus == "all":
                return ["--device", "nvidia.com/gpu=all"]
            return [arg for i in range(int(self.gpus)) for arg in ("--device", f"nvidia.com/gpu={i}")]
        return ["--gpus", "all" if self.gpus == "all" else str(self.gpus)]


# --------------------------------------------------------------------------- slurm


class SlurmNode(Strict):
    name: Hostname
    cpus: int = Field(default=1, ge=1, le=4096)
    memory_mb: int = Field(default=1024, ge=64)
    gpus: int = Field(default=0, ge=0, le=64)
    gpu_type: str | None = Field(default=None, pattern=r"^[a-z0-9_]{1,32}$")


class Partition(Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_-]{1,32}$")
    nodes: list[Hostname] = Field(min_length=1)
    default: bool = False
    max_time: str = Field(default="INFINITE", pattern=r"^(INFINITE|UNLIMITED|(\d+-)?\d{1,2}(:\d{2}){0,2})$")


class Slurm(Strict):
    cluster_name: str = Field(default="lab", pattern=r"^[a-z][a-z0-9_]{0,39}$")
    controller: Hostname
    nodes: list[SlurmNode] = Field(min_length=1)
    partitions: list[Partition] = Field(min_length=1)
    shared_dir: AbsPath = "/shared"
    slurmctld_port: int = Field(default=6817, ge=1, le=65535)
    slurmd_port: int = Field(default=6818, ge=1, le=65535)
    rdzv_port: int = Field(default=29500, ge=1024, le=64535,
                           description="base c10d rendezvous port of multi-node jobs: each job uses "
                                       "rdzv_port + (job id % 1000); one-node jobs use torchrun --standalone")
    requeue_delay: int = Field(default=120, ge=5, le=86400,
                               description="seconds a requeued job waits before it may start again "
                                           "(slurm.conf AuthInfo=cred_expire, Slurm's default 120; also "
                                           "how long a job-step credential is valid, so keep it above the "
                                           "slowest job launch on your nodes; Slurm refuses < 5)")
    container: Literal["apptainer", "docker", "none"] = "apptainer"
    image: AbsPath = "/shared/images/charlm.sif"
    submit_user: PosixUser = Field(default="charlm", description="non-root account `opsctl job submit` submits "
                                                                "as (the role creates it on every host)")
    submit_uid: int = Field(default=3000, ge=1000, le=60000, description="its uid, the same on every host")
    users_group: str = Field(default="slurmusers", pattern=r"^[a-z_][a-z0-9_-]{0,31}$",
                             description="group of the cluster users: owns the shared folders (mode 2770)")
    users_gid: int = Field(default=3000, ge=1000, le=60000, description="its gid, the same on every host")

    @model_validator(mode="after")
    def _consistent(self) -> Slurm:
        _unique("slurm nodes", [n.name for n in self.nodes], "list each node once")
        _unique("slurm partitions", [p.name for p in self.partitions], "name each partition once")
        names = {n.name for n in self.nodes}
        for part in self.partitions:
            unknown = [n for n in part.nodes if n not in names]
            if unknown:
                raise ValueError(f"partition {part.name!r} names unknown nodes {unknown}; declare them "
                                 "under slurm.nodes")
        if sum(p.default for p in self.partitions) > 1:
            raise ValueError("more than one partition has default: true; mark exactly one")
        from opsctl.site.types import RESERVED_USERS

        if self.users_group in RESERVED_USERS or self.users_group == self.submit_user:
            raise ValueError(f"slurm.users_group {self.users_group!r} is a system group or the submit user; "
                             "pick a group of its own such as 'slurmusers'")
        return self


# --------------------------------------------------------------------------- site


class Site(Strict):
    """The whole site: hosts and the roles they play."""

    site: str = Field(default="lab", pattern=r"^[a-z][a-z0-9_-]{0,39}$", description="site name")
    hosts: list[Host] = Field(min_length=1)
    backup: Backup | None = None
    training: Training | None = None
    slurm: Slurm | None = None

    @model_validator(mode="after")
    def _references(self) -> Site:
        names = [h.name for h in self.hosts]
        _unique("hosts", names, "list each host once")
        known = set(names)
        for section in ("backup", "training"):
            part = getattr(self, section)
            if part is not None and part.host not in known:
                raise ValueError(f"{section}.host {part.host!r} is not a declared host; add it under hosts "
                                 f"(known: {', '.join(names)})")
        if self.slurm is not None:
            for name in [self.slurm.controller, *(n.name for n in self.slurm.nodes)]:
                if name not in known:
                    raise ValueError(f"slurm host {name!r} is not a declared host; add it under hosts")
        if self.training and self.backup:
            for attr in ("data_dataset", "checkpoint_dataset"):
                ds = getattr(self.training, attr)
                if ds and self.training.host == self.backup.host and ds.split("/")[0] != self.backup.pool.name:
                    raise ValueError(f"training.{attr} {ds!r} is not in pool {self.backup.pool.name!r}")
        return self

    def host(self, name: str) -> Host:
        for host in self.hosts:
            if host.name == name:
                return host
        raise KeyError(name)

    def roles_of(self, name: str) -> list[str]:
        """The roles a host plays: backup, training, slurm_controller, slurm_node."""
        roles = []
        if self.backup and self.backup.host == name:
            roles.append("backup")
        if self.training and self.training.host == name:
            roles.append("training")
        if self.slurm and self.slurm.controller == name:
            roles.append("slurm_controller")
        if self.slurm and any(n.name == name for n in self.slurm.nodes):
            roles.append("slurm_node")
        return roles

    def warnings(self) -> list[str]:
        """Things that are allowed but probably wrong."""
        out = []
        if self.backup:
            for i, vdev in enumerate(self.backup.pool.vdevs):
                for j, disk in enumerate(vdev.disks):
                    if UNSTABLE_DISK.fullmatch(disk):
                        out.append(f"backup.pool.vdevs[{i}].disks[{j}]: {disk} may change name between boots; "
                                   "prefer a stable /dev/disk/by-id/... path")
            for i, user in enumerate(self.backup.users):
                warning = user.tm_headroom_warning()
                if warning:
                    out.append(f"backup.users[{i}].tm_size: {warning}")
            if self.backup.pool.ashift < 12:
                out.append(f"backup.pool.ashift: {self.backup.pool.ashift} is below 12; modern disks have 4 KiB "
                           "sectors and ashift cannot be changed after creation")
        return out
