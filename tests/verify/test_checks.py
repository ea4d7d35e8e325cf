"""verify's checks against a fake host: canned command output, files, services and sockets in,
Check results out; every check's pass and fail paths.

The fake stands in for the testinfra host and the connection of :class:`opsctl.verify.checks.Probe`
(``run``, ``file``, ``service``, ``socket``; ``run_stdin`` for logins). The real ones are covered on
the session VM (tests/integration, tests/status/test_vm_ops.py).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import pytest
import yaml

from opsctl.render.context import context_for
from opsctl.site.loader import DEFAULT_SITE
from opsctl.site.models import Site
from opsctl.verify.checks import (
    CHECKS,
    Probe,
    avahi,
    netatalk,
    samba,
    samba_version,
    trainer,
    user_dirs,
    zfs_datasets,
    zfs_pool,
)

GOOD_SAMBA = "Version 4.22.11-Debian-4.22.11+dfsg-1\n"
SHORT = {"alice": "al1ce-pw", "bob": "b0b-pw"}  # at most 8 characters: afparg can log in with them
LONG = {"alice": "alice-Secret-1", "bob": "bob-Secret-2"}


@dataclass
class Result:
    rc: int
    stdout: str = ""
    stderr: str = ""

    @property
    def returncode(self) -> int:  # the connection's results are CompletedProcess-like
        return self.rc


@dataclass
class File:
    exists: bool = True
    is_directory: bool = False
    user: str = "root"
    group: str = "root"
    uid: int = 0
    mode: int = 0o644
    content_string: str = ""


@dataclass
class Flag:
    is_running: bool = False
    is_listening: bool = False


@dataclass
class FakeHost:
    """A testinfra host: ``run`` answers from ``answers`` (anything else: rc 1), ``file`` from
    ``files`` (anything else does not exist), ``service``/``socket`` from the running/listening sets."""

    answers: dict[str, Result] = field(default_factory=dict)
    files: dict[str, File] = field(default_factory=dict)
    running: set[str] = field(default_factory=set)
    listening: set[str] = field(default_factory=set)
    commands: list[str] = field(default_factory=list)

    def run(self, command: str) -> Result:
        self.commands.append(command)
        return self.answers.get(command, Result(1, "", f"unexpected command: {command}"))

    def file(self, path: str) -> File:
        return self.files.get(path, File(exists=False))

    def service(self, name: str) -> Flag:
        return Flag(is_running=name in self.running)

    def socket(self, spec: str) -> Flag:
        return Flag(is_listening=spec in self.listening)


@dataclass
class FakeConn:
    """The connection's ``run_stdin``: ``answer(command, stdin) -> Result``; records every call."""

    answer: object = None
    calls: list[tuple[str, str]] = field(default_factory=list)

    def run_stdin(self, command: str, stdin: str) -> Result:
        self.calls.append((command, stdin))
        return self.answer(command, stdin) if self.answer else Result(0, "ok")


def _probe(answers: dict[str, Result] | None = None, *, conn: FakeConn | None = None, passwords=None,
           **host) -> Probe:
    return Probe("backup", FakeHost(answers or {}, **host), conn or FakeConn(), passwords or {})


def _site(**backup) -> Site:
    data = yaml.safe_load(DEFAULT_SITE.read_text())
    data["backup"].update(backup)
    return Site.model_validate(data)


@pytest.fixture
def ctx() -> dict:
    """The backup host's context of the sandbox site: pool tank (mirror, ashift 12), alice (smb+afp),
    bob (smb), Samba, Netatalk 4 (uams_clrtxt.so) and Avahi."""
    return copy.deepcopy(context_for(_site(), "backup"))


def _by_name(checks) -> dict:
    return {c.name: c for c in checks}


# --------------------------------------------------------------------------- ZFS


def _pool_answers(health: str = "ONLINE", ashift: str = "12", rc: int = 0, stderr: str = "") -> dict:
    return {"zpool list -H -o health tank": Result(rc, f"{health}\n" if health else "", stderr),
            "zpool get -H -o value ashift tank": Result(rc, f"{ashift}\n" if ashift else "", stderr)}


def test_healthy_pool_with_the_planned_ashift_passes(ctx):
    checks = _by_name(zfs_pool(_probe(_pool_answers()), ctx))
    assert list(checks) == ["pool tank ONLINE", "pool tank ashift=12"]
    assert all(c.ok for c in checks.values()), checks
    assert checks["pool tank ONLINE"].detail == "ONLINE"


def test_degraded_pool_fails_naming_its_health(ctx):
    checks = _by_name(zfs_pool(_probe(_pool_answers(health="DEGRADED")), ctx))
    assert not checks["pool tank ONLINE"].ok and checks["pool tank ONLINE"].detail == "DEGRADED"


def test_missing_pool_fails_with_zpools_message(ctx):
    answers = _pool_answers(health="", ashift="", rc=1, stderr="cannot open 'tank': no such pool\n")
    checks = _by_name(zfs_pool(_probe(answers), ctx))
    assert not checks["pool tank ONLINE"].ok
    assert checks["pool tank ONLINE"].detail == "cannot open 'tank': no such pool"
    assert not checks["pool tank ashift=12"].ok


def test_pool_with_another_ashift_fails(ctx):
    checks = _by_name(zfs_pool(_probe(_pool_answers(ashift="9")), ctx))
    assert checks["pool tank ONLINE"].ok
    assert not checks["pool tank ashift=12"].ok and checks["pool tank ashift=12"].detail == "9"


def _dataset_answers(ctx: dict, overrides: dict[str, dict[str, str]] | None = None) -> dict[str, Result]:
    """``zfs get`` answers for every planned dataset with its planned values (sizes in bytes)."""
    answers = {}
    for ds in ctx["state"]["datasets"]:
        names = sorted(ds["properties"])
        values = dict(ds["properties"])
        if "quota" in values:
            values["quota"] = str({"200M": 200 << 20, "100M": 100 << 20, "none": 0}[values["quota"]])
        values.update((overrides or {}).get(ds["name"], {}))
        answers[f"zfs get -Hp -o property,value {','.join(names)} {ds['name']}"] = Result(
            0, "".join(f"{k}\t{values[k]}\n" for k in names))
    return answers


def test_every_planned_dataset_property_is_checked(ctx):
    answers = _dataset_answers(ctx, {"tank/timemachine/bob": {"quota": str(300 << 20)}})  # drifted
    checks = _by_name(zfs_datasets(_probe(answers), ctx))
    assert set(checks) == {f"dataset {d['name']} properties" for d in ctx["state"]["datasets"]}
    assert checks["dataset tank/timemachine/alice properties"].ok
    assert "quota=200M" in checks["dataset tank/timemachine/alice properties"].detail
    bob = checks["dataset tank/timemachine/bob properties"]
    assert not bob.ok and bob.detail == f"quota={300 << 20} (want {100 << 20})"
    missing = list(zfs_datasets(_probe({}), ctx))
    assert len(missing) == len(ctx["state"]["datasets"])
    assert all(not c.ok and c.name.endswith("exists") and c.detail == "missing" for c in missing)


def test_every_dataset_as_planned_passes(ctx):
    checks = list(zfs_datasets(_probe(_dataset_answers(ctx)), ctx))
    assert checks and all(c.ok for c in checks), checks


def test_property_drift_names_each_wrong_property(ctx):
    answers = _dataset_answers(ctx, {"tank/timemachine/alice": {"compression": "off", "atime": "on"}})
    alice = _by_name(zfs_datasets(_probe(answers), ctx))["dataset tank/timemachine/alice properties"]
    assert not alice.ok
    assert alice.detail == "compression=off (want lz4), atime=on (want off)"  # in the plan's order


def test_one_missing_dataset_fails_only_that_dataset(ctx):
    answers = _dataset_answers(ctx)
    del answers[next(k for k in answers if k.endswith(" tank/timemachine/bob"))]
    checks = _by_name(zfs_datasets(_probe(answers), ctx))
    assert not checks["dataset tank/timemachine/bob exists"].ok
    assert checks["dataset tank/timemachine/alice properties"].ok


def test_quota_none_is_zfs_zero(ctx):
    for ds in ctx["state"]["datasets"]:
        if ds["name"].endswith("/bob"):
            ds["properties"]["quota"] = "none"
    bob = _by_name(zfs_datasets(_probe(_dataset_answers(ctx)), ctx))["dataset tank/timemachine/bob properties"]
    assert bob.ok, bob


def _user_dir_files(**changes) -> dict[str, File]:
    files = {f"/tank/timemachine/{u}": File(is_directory=True, user=u, group=u, mode=0o700) for u in ("alice", "bob")}
    for user, change in changes.items():
        files[f"/tank/timemachine/{user}"] = change
    return files


def test_user_folders_owned_by_their_user_0700_pass(ctx):
    checks = list(user_dirs(_probe(files=_user_dir_files()), ctx))
    # the parent dataset has no owner: not checked
    assert [c.name for c in checks] == ["/tank/timemachine/alice 0700 alice", "/tank/timemachine/bob 0700 bob"]
    assert all(c.ok for c in checks)


@pytest.mark.parametrize(("bob", "detail"), [
    (File(is_directory=True, user="bob", group="bob", mode=0o755), "mode=0o755 owner=bob group=bob"),
    (File(is_directory=True, user="root", group="bob", mode=0o700), "mode=0o700 owner=root group=bob"),
    (File(is_directory=True, user="bob", group="users", mode=0o700), "mode=0o700 owner=bob group=users"),
    (File(is_directory=False, user="bob", group="bob", mode=0o700), "mode=0o700 owner=bob group=bob"),
    (File(exists=False), "mode=- owner=- group=-"),
])
def test_user_folder_with_wrong_mode_owner_or_missing_fails(ctx, bob, detail):
    checks = _by_name(user_dirs(_probe(files=_user_dir_files(bob=bob)), ctx))
    assert checks["/tank/timemachine/alice 0700 alice"].ok
    check = checks["/tank/timemachine/bob 0700 bob"]
    assert not check.ok and check.detail == detail


@pytest.mark.parametrize(("folder", "ok"), [
    (File(is_directory=True, user="root", group="share-projects", mode=0o2770), True),
    (File(is_directory=True, user="root", group="root", mode=0o755), False),  # members could not write
    (File(is_directory=True, user="root", group="share-projects", mode=0o770), False),  # no setgid bit
])
def test_extra_share_folder_belongs_to_its_members_group(ctx, folder, ok):
    ctx = context_for(_site(shares=[{"name": "Projects", "dataset": "projects", "valid_users": ["alice", "bob"]}]),
                      "backup")
    files = {**_user_dir_files(), "/tank/projects": folder}
    check = _by_name(user_dirs(_probe(files=files), ctx))["/tank/projects 2770 root:share-projects"]
    assert check.ok is ok, check


# --------------------------------------------------------------------------- Samba


def _samba_answers(testparm: Result | None = None) -> dict[str, Result]:
    return {"smbd --version": Result(0, GOOD_SAMBA),
            "testparm -s /etc/samba/smb.conf": testparm or Result(0, "[global]\n", "Loaded services file OK.\n")}


def test_samba_running_valid_and_every_smb_user_logs_in(ctx):
    conn = FakeConn()
    checks = _by_name(samba(_probe(_samba_answers(), conn=conn, passwords=LONG, running={"smbd"}), ctx))
    assert list(checks) == ["smbd running", "samba version keeps Time Machine renames working",
                            "testparm accepts smb.conf", "smb login alice@alice", "smb login bob@bob"]
    assert all(c.ok for c in checks.values()), checks
    # each password went on stdin, never into the command line
    assert [stdin for _, stdin in conn.calls] == [f"username = {u}\npassword = {LONG[u]}\n" for u in ("alice", "bob")]
    assert all(LONG[u] not in cmd for cmd, _ in conn.calls for u in LONG)
    assert conn.calls[0][0] == "smbclient //127.0.0.1/alice -p 445 -A /dev/stdin -m SMB3 -c 'ls'"


def test_samba_failures_are_each_reported(ctx):
    testparm = Result(1, "", "Loaded services file OK.\nUnknown parameter encountered: \"fruit:bogus\"\n")
    conn = FakeConn(lambda cmd, stdin: Result(1, "", "session setup failed: NT_STATUS_LOGON_FAILURE\n")
                    if "alice" in stdin else Result(0, "listed"))
    checks = _by_name(samba(_probe(_samba_answers(testparm), conn=conn, passwords={"alice": "wrong"}), ctx))
    assert not checks["smbd running"].ok
    assert not checks["testparm accepts smb.conf"].ok
    assert checks["testparm accepts smb.conf"].detail == 'Unknown parameter encountered: "fruit:bogus"'
    assert not checks["smb login alice@alice"].ok
    assert checks["smb login alice@alice"].detail == "session setup failed: NT_STATUS_LOGON_FAILURE"
    bob = checks["smb login bob@bob"]
    assert not bob.ok and bob.detail == "no password known for the user"
    assert len(conn.calls) == 1  # no login attempted without a password


def test_testparm_warning_about_an_unknown_parameter_fails_even_with_rc_0(ctx):
    testparm = Result(0, "", "Unknown parameter encountered: \"vfs objects2\"\n")
    check = _by_name(samba(_probe(_samba_answers(testparm), passwords=LONG, running={"smbd"}), ctx))
    assert not check["testparm accepts smb.conf"].ok


def test_samba_in_containers_mode_is_checked_in_its_container(ctx):
    """backup.mode containers: smbd's container must run, testparm and the version check run inside
    it (the host has no smbd), the logins still go to the host's port."""
    ctx = copy.deepcopy(context_for(_site(mode="containers"), "backup"))
    inside = "docker exec opsctl-samba "
    state = "docker inspect --format '{{.State.Status}}' opsctl-samba"
    answers = {f"{inside}{cmd}": res for cmd, res in _samba_answers().items()}
    conn = FakeConn()
    checks = _by_name(samba(_probe({**answers, state: Result(0, "running\n")}, conn=conn, passwords=LONG), ctx))
    assert list(checks) == ["smbd running (container opsctl-samba)", "samba version keeps Time Machine renames working",
                            "testparm accepts smb.conf", "smb login alice@alice", "smb login bob@bob"]
    assert all(c.ok for c in checks.values()), checks
    assert conn.calls[0][0].startswith("smbclient //127.0.0.1/alice -p 445 ")
    # a stopped container, or none, fails naming its state; the host's smbd unit is not what counts
    for answer, detail in ((Result(0, "exited\n"), "exited"), (Result(1, "", "Error: No such object"),
                                                                "Error: No such object")):
        check = _by_name(samba(_probe({**answers, state: answer}, passwords=LONG, running={"smbd"}), ctx))
        assert not check["smbd running (container opsctl-samba)"].ok
        assert check["smbd running (container opsctl-samba)"].detail == detail


def test_avahi_in_containers_mode_is_its_container(ctx):
    ctx = copy.deepcopy(context_for(_site(mode="containers"), "backup"))
    state = "docker inspect --format '{{.State.Status}}' opsctl-avahi"
    probe = _probe({"avahi-browse -atrpk --terminate": Result(0, _browse()), state: Result(0, "running\n")})
    checks = _by_name(avahi(probe, ctx))
    assert checks["avahi-daemon running (container opsctl-avahi)"].ok
    assert all(c.ok for c in checks.values()), checks


def test_samba_not_served_is_not_checked(ctx):
    ctx["state"]["services"].remove("smbd")
    assert list(samba(_probe(), ctx)) == []


def test_samba_release_that_breaks_time_machine_fails_verify():
    bad = samba_version(_probe({"smbd --version": Result(0, "Version 4.22.3-Debian-4.22.3+dfsg-4\n")}))
    assert not bad.ok and "upgrade Samba to 4.22.6 or later" in bad.detail
    good = samba_version(_probe({"smbd --version": Result(0, GOOD_SAMBA)}))
    assert good.ok and good.detail == GOOD_SAMBA.strip(), good
    broken = samba_version(_probe({"smbd --version": Result(127, "", "smbd: not found")}))
    assert not broken.ok and "smbd --version failed" in broken.detail
    odd = samba_version(_probe({"smbd --version": Result(0, "something else\n")}))
    assert not odd.ok and odd.detail


# --------------------------------------------------------------------------- Netatalk


AFP_CONF = "[Global]\n\n[alice]\npath = /tank/timemachine/alice\ntime machine = yes\n"


def test_afp_login_with_a_short_cleartext_password_opens_the_volume(ctx):
    conn = FakeConn()
    checks = _by_name(netatalk(_probe(conn=conn, passwords=SHORT, listening={"tcp://0.0.0.0:548"}), ctx))
    assert list(checks) == ["afpd listening on 548", "afp volume alice opens"]  # bob is smb only
    assert all(c.ok for c in checks.values()), checks
    (cmd, stdin), = conn.calls
    assert stdin == SHORT["alice"] and SHORT["alice"] not in cmd  # the password reaches afparg over stdin
    assert cmd.startswith("afparg -h 127.0.0.1 -p 548 -u alice -w \"$(cat)\" -s alice")


def test_afpd_listening_on_ipv6_only_passes(ctx):
    check = _by_name(netatalk(_probe(passwords=SHORT, listening={"tcp://:::548"}), ctx))["afpd listening on 548"]
    assert check.ok


def test_afp_failures_are_each_reported(ctx):
    conn = FakeConn(lambda cmd, stdin: Result(0, "FPLogin ... FAILED (user authentication failed)\n"))
    checks = _by_name(netatalk(_probe(conn=conn, passwords=SHORT), ctx))
    assert not checks["afpd listening on 548"].ok
    assert not checks["afp volume alice opens"].ok and "FAILED" in checks["afp volume alice opens"].detail
    rc = FakeConn(lambda cmd, stdin: Result(1, "", "connection refused\n"))
    assert not _by_name(netatalk(_probe(conn=rc, passwords=SHORT), ctx))["afp volume alice opens"].ok
    none = _by_name(netatalk(_probe(passwords={}), ctx))["afp volume alice opens"]
    assert not none.ok and none.detail == "no password known for the user"


@pytest.mark.parametrize("case", ["long password", "no cleartext uam"])
def test_where_afparg_cannot_log_in_the_volume_must_be_configured(ctx, case):
    passwords = LONG if case == "long password" else SHORT
    if case == "no cleartext uam":
        ctx["backup"]["netatalk"]["uams"] = ["uams_dhx2.so"]
    conn = FakeConn()
    configured = {"/etc/netatalk/afp.conf": File(content_string=AFP_CONF)}
    check = _by_name(netatalk(_probe(conn=conn, passwords=passwords, files=configured), ctx))
    assert check["afp volume alice configured"].ok and "login not tested" in check["afp volume alice configured"].detail
    assert conn.calls == []  # no login attempted
    unconfigured = {"/etc/netatalk/afp.conf": File(content_string="[Global]\n")}
    for files in (unconfigured, {}):  # the volume is not in afp.conf; there is no afp.conf
        assert not _by_name(netatalk(_probe(passwords=passwords, files=files), ctx))["afp volume alice configured"].ok


def test_netatalk_not_served_or_without_afp_shares_is_not_checked(ctx):
    no_afp = copy.deepcopy(ctx)
    for share in no_afp["state"]["shares"]:
        share["protocols"] = ["smb"]
    assert list(netatalk(_probe(), no_afp)) == []
    ctx["state"]["services"].remove("netatalk")
    assert list(netatalk(_probe(), ctx)) == []


# --------------------------------------------------------------------------- Avahi


def _browse(*, types=("_smb._tcp", "_afpovertcp._tcp", "_adisk._tcp", "_device-info._tcp"),
            adisk='"sys=waMa=0,adVF=0x100" "dk0=adVN=alice,adVF=0x82" "dk1=adVN=bob,adVF=0x82"',
            model="TimeCapsule8,119") -> str:
    txt = {"_adisk._tcp": adisk, "_device-info._tcp": f'"model={model}"'}
    lines = ["+;eth0;IPv4;backup;_smb._tcp;local"]
    lines += [f"=;eth0;IPv4;backup;{t};local;backup.local;10.0.2.15;9;{txt.get(t, '')}" for t in types]
    return "\n".join(lines) + "\n"


def _avahi_probe(browse: str, running=("avahi-daemon",)) -> Probe:
    return _probe({"avahi-browse -atrpk --terminate": Result(0, browse)}, running=set(running))


def test_every_planned_advertisement_seen_passes(ctx):
    checks = _by_name(avahi(_avahi_probe(_browse()), ctx))
    assert list(checks) == ["avahi-daemon running", "mDNS advertises _smb._tcp", "mDNS advertises _afpovertcp._tcp",
                            "mDNS advertises _adisk._tcp", "mDNS advertises _device-info._tcp",
                            "_adisk._tcp has dk0=adVN=alice,adVF=0x82", "_adisk._tcp has dk1=adVN=bob,adVF=0x82",
                            "_device-info._tcp model=TimeCapsule8,119"]
    assert all(c.ok for c in checks.values()), checks


def test_avahi_failures_are_each_reported(ctx):
    browse = _browse(types=("_smb._tcp", "_adisk._tcp", "_device-info._tcp"),
                     adisk='"sys=waMa=0,adVF=0x100" "dk0=adVN=alice,adVF=0x82"', model="Xserve")
    checks = _by_name(avahi(_avahi_probe(browse, running=()), ctx))
    assert not checks["avahi-daemon running"].ok
    assert not checks["mDNS advertises _afpovertcp._tcp"].ok and checks["mDNS advertises _smb._tcp"].ok
    assert checks["_adisk._tcp has dk0=adVN=alice,adVF=0x82"].ok
    assert not checks["_adisk._tcp has dk1=adVN=bob,adVF=0x82"].ok
    model = checks["_device-info._tcp model=TimeCapsule8,119"]
    assert not model.ok and model.detail == '"model=Xserve"'


def test_nothing_advertised_fails_every_advertisement(ctx):
    checks = list(avahi(_avahi_probe(""), ctx))[1:]
    assert checks and not any(c.ok for c in checks), checks


def test_avahi_not_served_is_not_checked(ctx):
    ctx["state"]["services"].remove("avahi-daemon")
    assert list(avahi(_probe(), ctx)) == []


# --------------------------------------------------------------------------- training host


JOB = "/opt/opsctl/job"
ENGINE = Result(0, "27.5.1\n")
APPTAINER = Result(0, "apptainer version 1.3.6\n")


@pytest.fixture
def tctx() -> dict:
    return copy.deepcopy(context_for(_site(), "trainer"))


def _trainer_probe(tctx, *, uid=None, job_files=("Dockerfile.cpu", "docker-run.sh", "charlm.def"),
                   engine=ENGINE, apptainer=APPTAINER) -> Probe:
    t = tctx["training"]
    owner = t["user_uid"] if uid is None else uid
    files = {p: File(is_directory=True, uid=owner) for p in (t["data_dir"], t["checkpoint_dir"])}
    files.update({f"{JOB}/{name}": File() for name in job_files})
    return _probe({"docker info --format '{{.ServerVersion}}'": engine,
                   "apptainer --version || singularity --version": apptainer}, files=files)


def test_trainer_ready_passes(tctx):
    checks = _by_name(trainer(_trainer_probe(tctx), tctx))
    t = tctx["training"]
    assert list(checks) == [f"{t['data_dir']} exists, owned by uid 1000",
                            f"{t['checkpoint_dir']} exists, owned by uid 1000",
                            f"job file {JOB}/Dockerfile.cpu", f"job file {JOB}/docker-run.sh",
                            f"job file {JOB}/charlm.def", "docker engine reachable"]
    assert all(c.ok for c in checks.values()), checks
    assert checks["docker engine reachable"].detail == "27.5.1"


def test_trainer_failures_are_each_reported(tctx):
    probe = _trainer_probe(tctx, uid=0, job_files=("Dockerfile.cpu",),
                           engine=Result(1, "", "Cannot connect to the Docker daemon at unix:///var/run/docker.sock\n"))
    checks = _by_name(trainer(probe, tctx))
    t = tctx["training"]
    assert not checks[f"{t['data_dir']} exists, owned by uid 1000"].ok
    assert checks[f"{t['data_dir']} exists, owned by uid 1000"].detail == "uid=0"
    assert checks[f"job file {JOB}/Dockerfile.cpu"].ok and not checks[f"job file {JOB}/docker-run.sh"].ok
    engine = checks["docker engine reachable"]
    assert not engine.ok and "Cannot connect to the Docker daemon" in engine.detail


def test_apptainer_runtime_checks_apptainer(tctx):
    tctx["training"]["runtime"] = "apptainer"
    assert _by_name(trainer(_trainer_probe(tctx), tctx))["apptainer installed"].ok
    missing = _trainer_probe(tctx, apptainer=Result(127, "", "sh: apptainer: not found\n"))
    assert not _by_name(trainer(missing, tctx))["apptainer installed"].ok


def test_each_role_has_its_checks():
    assert {"backup": [zfs_pool, zfs_datasets, user_dirs, samba, netatalk, avahi], "training": [trainer]} == CHECKS
