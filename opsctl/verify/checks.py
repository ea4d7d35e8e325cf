"""Checks of what a host should look like, one small function per resource (testinfra style).

Each check takes a :class:`Probe` (the testinfra host plus the connection) and the host's
template context ``ctx`` and yields :class:`Check` results. Checks never change the host.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterator
from dataclasses import dataclass

from opsctl.site.types import parse_size


@dataclass
class Check:
    host: str
    name: str
    ok: bool
    detail: str = ""


@dataclass
class Probe:
    name: str
    host: object  # testinfra.host.Host
    conn: object  # opsctl.connections.Connection
    passwords: dict

    def run(self, command: str):
        return self.host.run(command)

    def check(self, name: str, ok: bool, detail: str = "") -> Check:
        return Check(self.name, name, bool(ok), detail)


# --------------------------------------------------------------------------- ZFS


def zfs_pool(p: Probe, ctx: dict) -> Iterator[Check]:
    pool = ctx["state"]["pool"]
    out = p.run(f"zpool list -H -o health {shlex.quote(pool['name'])}")
    health = out.stdout.strip()
    yield p.check(f"pool {pool['name']} ONLINE", out.rc == 0 and health == "ONLINE",
                  health or out.stderr.strip())
    out = p.run(f"zpool get -H -o value ashift {shlex.quote(pool['name'])}")
    yield p.check(f"pool {pool['name']} ashift={pool['ashift']}", out.stdout.strip() == str(pool["ashift"]),
                  out.stdout.strip())


def _props(p: Probe, dataset: str, names: list[str]) -> dict[str, str] | None:
    out = p.run(f"zfs get -Hp -o property,value {','.join(names)} {shlex.quote(dataset)}")
    if out.rc != 0:
        return None
    return dict(line.split("\t", 1) for line in out.stdout.strip().splitlines())


def _want(prop: str, value: str) -> str:
    """A planned property as ``zfs get -p`` prints it (sizes in bytes)."""
    if prop in ("quota", "refquota", "reservation", "refreservation"):
        return "0" if value == "none" else str(parse_size(value))
    return value


def zfs_datasets(p: Probe, ctx: dict) -> Iterator[Check]:
    """Every planned dataset (opsctl.state.backup) has every planned property."""
    for ds in ctx["state"]["datasets"]:
        want = {k: _want(k, v) for k, v in ds["properties"].items()}
        have = _props(p, ds["name"], sorted(want))
        if have is None:
            yield p.check(f"dataset {ds['name']} exists", False, "missing")
            continue
        wrong = {k: (have.get(k), v) for k, v in want.items() if have.get(k) != v}
        yield p.check(f"dataset {ds['name']} properties", not wrong,
                      ", ".join(f"{k}={a} (want {w})" for k, (a, w) in wrong.items()) or
                      " ".join(f"{k}={v}" for k, v in ds["properties"].items()))


def user_dirs(p: Probe, ctx: dict) -> Iterator[Check]:
    for ds in ctx["state"]["datasets"]:
        if not ds["owner"]:
            continue
        f = p.host.file(ds["mountpoint"])
        group = ds["group"]
        ok = f.is_directory and f.user == ds["owner"] and f.group == group and f.mode == int(ds["mode"], 8)
        owner = ds["owner"] if group == ds["owner"] else f"{ds['owner']}:{group}"
        yield p.check(f"{ds['mountpoint']} {ds['mode']} {owner}", ok,
                      f"mode={oct(f.mode) if f.exists else '-'} owner={f.user if f.exists else '-'}"
                      f" group={f.group if f.exists else '-'}")


def _tm_shares(state: dict, protocol: str) -> list[dict]:
    """The planned Time Machine shares served over ``protocol``."""
    return [s for s in state["shares"] if s["time_machine"] and protocol in s["protocols"]]


# --------------------------------------------------------------------------- Samba


def samba(p: Probe, ctx: dict) -> Iterator[Check]:
    b, st = ctx["backup"], ctx["state"]
    if "smbd" not in st["services"]:
        return
    yield running(p, st, "smbd")
    container = _container(st, "smbd")
    inside = f"docker exec {shlex.quote(container)} " if container else ""
    yield samba_version(p, inside)
    out = p.run(f"{inside}testparm -s /etc/samba/smb.conf")
    yield p.check("testparm accepts smb.conf", out.rc == 0 and "Unknown parameter" not in out.stderr,
                  out.stderr.strip().splitlines()[-1] if out.rc else "")
    for share in _tm_shares(st, "smb"):
        password = p.passwords.get(share["user"])
        if password is None:
            yield p.check(f"smb login {share['user']}@{share['name']}", False, "no password known for the user")
            continue
        # The password travels on stdin into smbclient's authentication file, never in argv.
        cmd = (f"smbclient //127.0.0.1/{shlex.quote(share['name'])} -p {b['samba']['port']} -A /dev/stdin "
               f"-m SMB3 -c 'ls'")
        res = p.conn.run_stdin(cmd, f"username = {share['user']}\npassword = {password}\n")
        yield p.check(f"smb login {share['user']}@{share['name']}", res.returncode == 0,
                      (res.stdout + res.stderr).strip().splitlines()[-1] if res.returncode else "listed share")


def _container(st: dict, daemon: str) -> str | None:
    """The container ``daemon`` runs in (backup.mode containers), or None where it is a systemd unit."""
    return st.get("in_containers", {}).get(daemon)


def running(p: Probe, st: dict, daemon: str) -> Check:
    """``daemon`` runs: its systemd unit, or in backup.mode containers its container."""
    container = _container(st, daemon)
    if not container:
        return p.check(f"{daemon} running", p.host.service(daemon).is_running)
    out = p.run(f"docker inspect --format '{{{{.State.Status}}}}' {shlex.quote(container)}")
    state = out.stdout.strip() if out.rc == 0 else (out.stderr.strip() or "no such container")
    return p.check(f"{daemon} running (container {container})", state == "running", state)


def samba_version(p: Probe, inside: str = "") -> Check:
    """Fails on a Samba release known to break Time Machine renames (opsctl.verify.samba_version).
    ``inside``: a command prefix that runs it in the Samba container (``docker exec NAME ``)."""
    from opsctl.verify.samba_version import SambaVersionError, advice

    out = p.run(f"{inside}smbd --version")
    try:
        problem = advice(out.stdout) if out.rc == 0 else f"smbd --version failed: {out.stderr.strip()[-200:]}"
    except SambaVersionError as exc:
        problem = str(exc)
    return p.check("samba version keeps Time Machine renames working", problem is None,
                   problem or out.stdout.strip())


# --------------------------------------------------------------------------- Netatalk


def netatalk(p: Probe, ctx: dict) -> Iterator[Check]:
    b, st = ctx["backup"], ctx["state"]
    if "netatalk" not in st["services"] or not _tm_shares(st, "afp"):
        return
    port = b["netatalk"]["port"]
    listening = any(p.host.socket(f"tcp://{addr}:{port}").is_listening for addr in ("0.0.0.0", "::"))  # noqa: S104
    yield p.check(f"afpd listening on {port}", listening)
    cleartext = "uams_clrtxt.so" in b["netatalk"]["uams"]
    for share in _tm_shares(st, "afp"):
        password = p.passwords.get(share["user"])
        if not cleartext or (password is not None and len(password) > 8):
            # afparg (netatalk-tests) logs in with "Cleartxt Passwrd" only, which carries at most 8
            # characters; where it cannot log in, check what afpd serves instead of a login.
            conf = p.host.file("/etc/netatalk/afp.conf")
            ok = conf.exists and f"[{share['name']}]" in conf.content_string
            yield p.check(f"afp volume {share['name']} configured", ok,
                          "login not tested: afparg needs uams_clrtxt.so and a password of at most 8 characters")
            continue
        if password is None:
            yield p.check(f"afp volume {share['name']} opens", False, "no password known for the user")
            continue
        # afparg takes the password only as an argument; it is fed via stdin to the remote shell so it
        # never appears in opsctl's own argv or logs (it is visible to root on the host for ~1 s).
        script = (f'afparg -h 127.0.0.1 -p {port} -u {shlex.quote(share["user"])} -w "$(cat)" '
                  f"-s {shlex.quote(share['name'])} -f FPEnumerate /")
        res = p.conn.run_stdin(script, password)
        text = res.stdout + res.stderr
        ok = res.returncode == 0 and "FAILED" not in text.upper()
        yield p.check(f"afp volume {share['name']} opens", ok,
                      "opened with afparg, which takes the password only as an argument (it reached afparg "
                      "over stdin, but root on the host could see it while afparg ran)" if ok else text.strip()[-300:])


# --------------------------------------------------------------------------- Avahi


def avahi(p: Probe, ctx: dict) -> Iterator[Check]:
    b, st = ctx["backup"], ctx["state"]
    if "avahi-daemon" not in st["services"]:
        return
    yield running(p, st, "avahi-daemon")
    out = p.run("avahi-browse -atrpk --terminate")  # -k: raw service types, not "Apple TimeMachine"
    lines = [line.split(";") for line in out.stdout.splitlines() if line.startswith("=")]
    seen = {fields[4]: fields for fields in lines if len(fields) > 4}
    for service in st["advertised"]:
        yield p.check(f"mDNS advertises {service}", service in seen, "" if service in seen else out.stdout[-300:])
    adisk = seen.get("_adisk._tcp")
    txt = adisk[9] if adisk and len(adisk) > 9 else ""
    for share in (s for s in st["shares"] if s["time_machine"]):
        entry = f"{share['dk']}=adVN={share['name']},adVF=0x82"
        yield p.check(f"_adisk._tcp has {entry}", entry in txt, txt)
    info = seen.get("_device-info._tcp")
    model = f"model={b['avahi']['model']}"
    yield p.check(f"_device-info._tcp {model}", bool(info) and model in info[9], info[9] if info else "")


# --------------------------------------------------------------------------- training host


def trainer(p: Probe, ctx: dict) -> Iterator[Check]:
    t = ctx["training"]
    for path in (t["data_dir"], t["checkpoint_dir"]):
        f = p.host.file(path)
        yield p.check(f"{path} exists, owned by uid {t['user_uid']}", f.is_directory and f.uid == t["user_uid"],
                      f"uid={f.uid if f.exists else '-'}")
    for name in ("Dockerfile.cpu", "docker-run.sh", "charlm.def"):
        path = f"/opt/opsctl/job/{name}"
        yield p.check(f"job file {path}", p.host.file(path).exists)
    if t["runtime"] == "docker":
        out = p.run("docker info --format '{{.ServerVersion}}'")
        yield p.check("docker engine reachable", out.rc == 0, out.stdout.strip() or out.stderr.strip()[-200:])
    else:
        out = p.run("apptainer --version || singularity --version")
        yield p.check("apptainer installed", out.rc == 0, out.stdout.strip())


CHECKS = {
    "backup": [zfs_pool, zfs_datasets, user_dirs, samba, netatalk, avahi],
    "training": [trainer],
}
