"""Run sandbox lab hosts as systemd containers on the local Docker engine.

Each host is a container ``opsctl-<name>`` (hostname ``<name>``, label ``opsctl.sandbox=1``)
booting systemd from an :mod:`opsctl.sandbox.images` image, with no network (``--network
none``) and a ``dummy0`` interface (192.0.2.10/24, multicast on) so Avahi has a
multicast-capable interface inside the container's own network namespace.

The container flags are exactly those that work on a cgroup-v1 host without ``--privileged``::

    --cap-add SYS_ADMIN --cap-add NET_ADMIN --security-opt seccomp=unconfined --cgroupns=host
    -v /sys/fs/cgroup:/sys/fs/cgroup:rw --tmpfs /run --tmpfs /run/lock --network none
    --stop-signal SIGRTMIN+3  IMAGE /sbin/init [kernel-cmdline-style args...]

Example::

    from opsctl.sandbox.containers import start_host, wait_running, exec, stop_host
    c = start_host("backup", "backup", extra_args=["systemd.mask=nmbd.service"])
    wait_running(c, timeout=120)
    rc, out = exec(c, "systemctl is-active smbd")
    stop_host("backup")
"""

from __future__ import annotations

import contextlib
import dataclasses
import resource
import shlex
import time
from collections.abc import Iterable, Mapping, Sequence

import docker.errors
from docker.models.containers import Container
from docker.types import Ulimit

from opsctl.progress import Progress, say
from opsctl.sandbox.errors import SandboxError
from opsctl.sandbox.images import LABEL, ensure_image
from opsctl.train.engine import ensure_docker

CONTAINER_PREFIX = "opsctl-"
#: Address given to ``dummy0`` inside every sandbox host (TEST-NET-1, never routed).
DUMMY_ADDRESS = "192.0.2.10/24"
#: Wanted open-files limit (Netatalk's cnid_metad asks for 65535); capped to what the host allows.
WANTED_NOFILE = 65536
#: Arguments always passed to systemd (PID 1) before ``extra_args``.  Empty: trixie's systemd
#: 257 still boots on a cgroup-v1 Docker host (it only logs "tainted: cgroupsv1").
BASE_INIT_ARGS: tuple[str, ...] = ()


def container_name(name: str) -> str:
    """Container name for host ``name``: ``opsctl-<name>``."""
    return name if name.startswith(CONTAINER_PREFIX) else f"{CONTAINER_PREFIX}{name}"


def _host_nofile_hard() -> int:
    return resource.getrlimit(resource.RLIMIT_NOFILE)[1]


def default_ulimits() -> list[Ulimit]:
    """The ``nofile`` ulimit given to sandbox hosts: 65536, capped to this host's hard limit.

    Raising a hard limit needs CAP_SYS_RESOURCE on the Docker host, which restricted hosts (CI
    VMs, nested sandboxes) lack; asking for more than ``ulimit -Hn`` there makes
    ``docker run`` fail, so the sandbox asks for ``min(65536, ulimit -Hn)`` instead.
    """
    hard = _host_nofile_hard()
    limit = WANTED_NOFILE if hard == resource.RLIM_INFINITY else min(WANTED_NOFILE, hard)
    return [Ulimit(name="nofile", soft=limit, hard=limit)]


def _as_ulimits(ulimits) -> list[Ulimit]:
    if ulimits is None:
        return default_ulimits()
    if isinstance(ulimits, Mapping):
        out = []
        for key, val in ulimits.items():
            soft, hard = (val, val) if isinstance(val, int) else val
            out.append(Ulimit(name=key, soft=soft, hard=hard))
        return out
    return list(ulimits)



def _get(client, name: str) -> Container | None:
    try:
        return client.containers.get(container_name(name))
    except docker.errors.NotFound:
        return None


def exec(container: Container, cmd: str | Sequence[str], *, user: str = "root",  # noqa: A001
         environment: Mapping[str, str] | None = None) -> tuple[int, str]:
    """Run a command inside a sandbox host and return ``(exit_code, output)``.

    Args:
        container: a container from :func:`start_host` / :func:`list_hosts`.
        cmd: a shell string (run with ``sh -c``) or an argv list.
        user: user to run as (default root).
        environment: extra environment variables.

    Returns:
        ``(rc, out)`` with stdout and stderr combined, decoded as UTF-8 (errors replaced).

    Example::

        rc, out = exec(c, "systemctl is-active smbd avahi-daemon")
    """
    argv = ["sh", "-c", cmd] if isinstance(cmd, str) else list(cmd)
    res = container.exec_run(argv, user=user, environment=dict(environment or {}), demux=False)
    out = res.output.decode("utf-8", errors="replace") if res.output else ""
    return res.exit_code, out


def _setup_dummy_interface(container: Container) -> None:
    """Give the container a multicast-capable ``dummy0`` with :data:`DUMMY_ADDRESS`.

    Uses the ``dummy`` link type; kernels built without it (CONFIG_DUMMY unset, e.g. some CI
    micro-VMs) get a veth pair instead: ``dummy0`` (multicast on, address) and its peer
    ``dummy0-peer`` (up, multicast off so Avahi ignores it).  Either way the link is up with
    carrier, which is what Avahi needs.
    """
    addr = DUMMY_ADDRESS
    script = (
        "set -e\n"
        "if ! ip link show dummy0 >/dev/null 2>&1; then\n"
        "  if ! ip link add dummy0 type dummy 2>/dev/null; then\n"
        "    ip link add dummy0 type veth peer name dummy0-peer\n"
        "    ip link set dummy0-peer up multicast off\n"
        "  fi\n"
        "fi\n"
        "ip link set dummy0 up multicast on\n"
        f"ip -4 addr show dev dummy0 | grep -q ' {addr.split('/')[0]}/' || "
        f"ip addr add {addr} dev dummy0\n"
    )
    rc, out = exec(container, script)
    if rc != 0:
        raise SandboxError(
            f"could not create dummy0 in {container.name} (rc {rc}): {out.strip()}",
            "the Docker host kernel needs the `dummy` or `veth` network driver and the "
            "container CAP_NET_ADMIN",
        )


def start_host(
    name: str,
    kind: str,
    *,
    extra_args: Iterable[str] = (),
    ulimits=None,
    volumes: Mapping[str, dict] | None = None,
    environment: Mapping[str, str] | None = None,
    image: str | None = None,
    client=None,
    progress: Progress | None = None,
) -> Container:
    """Start (or return the already running) sandbox host ``opsctl-<name>``.

    Idempotent: if ``opsctl-<name>`` is running it is returned untouched; a stopped/exited one
    is removed and recreated.  The image is built/reused with
    :func:`~opsctl.sandbox.images.ensure_image` unless ``image`` is given.

    Args:
        name: host name; the container is ``opsctl-<name>`` with hostname ``<name>``.
        kind: image kind, ``"backup"``, ``"trainer"`` or ``"slurm"``.
        extra_args: extra arguments for systemd as PID 1, kernel-command-line style, e.g.
            ``["systemd.mask=nmbd.service", "systemd.log_level=debug"]``.
        ulimits: ``{"nofile": (soft, hard)}`` or a list of ``docker.types.Ulimit``; default
            :func:`default_ulimits` (nofile 65536 capped to the host's hard limit).
        volumes: extra docker-py volume mapping, ``{"/host/path": {"bind": "/x", "mode": "rw"}}``.
        environment: extra environment for PID 1.
        image: explicit image tag instead of ``ensure_image(kind)``.
        client: a ``docker.DockerClient``; default :func:`~opsctl.train.engine.ensure_docker`.
        progress: optional callback receiving progress lines.

    Returns:
        The running ``docker.models.containers.Container`` (systemd may still be booting; call
        :func:`wait_running`).

    Example::

        c = start_host("backup", "backup", extra_args=["systemd.mask=nmbd.service"])
        wait_running(c)
    """
    client = client or ensure_docker(progress=progress)
    cname = container_name(name)
    hostname = cname[len(CONTAINER_PREFIX):]
    existing = _get(client, cname)
    if existing is not None:
        if existing.status == "running":
            say(progress, f"{cname} already running")
            return existing
        say(progress, f"{cname} is {existing.status}: recreating")
        with contextlib.suppress(docker.errors.NotFound):
            existing.remove(force=True)
    tag = image or ensure_image(kind, progress=progress, client=client)
    vols = {"/sys/fs/cgroup": {"bind": "/sys/fs/cgroup", "mode": "rw"}}
    vols.update(volumes or {})
    command = ["/sbin/init", *BASE_INIT_ARGS, *extra_args]
    say(progress, f"starting {cname} from {tag}: {shlex.join(command)}")
    run_kwargs = dict(
        command=command,
        name=cname,
        hostname=hostname,
        labels={LABEL: "1", f"{LABEL}.kind": kind, f"{LABEL}.host": hostname},
        detach=True,
        tty=True,  # gives systemd a /dev/console: the journal shows up in `docker logs`
        cap_add=["SYS_ADMIN", "NET_ADMIN"],
        security_opt=["seccomp=unconfined"],
        cgroupns="host",
        volumes=vols,
        tmpfs={"/run": "rw,nosuid,nodev,mode=755", "/run/lock": "rw,nosuid,nodev,noexec"},
        network_mode="none",
        stop_signal="SIGRTMIN+3",
        ulimits=_as_ulimits(ulimits),
        environment={"container": "docker", **dict(environment or {})},
    )
    try:
        try:
            container = client.containers.run(tag, **run_kwargs)
        except docker.errors.APIError as exc:
            # The daemon may have a lower hard limit than this process (remote/other user):
            # with default ulimits, fall back to the daemon's own limit instead of failing.
            if ulimits is not None or "rlimit" not in str(exc):
                raise
            say(progress, "daemon refused the nofile ulimit; retrying with the daemon's default")
            with contextlib.suppress(docker.errors.DockerException):
                client.containers.get(cname).remove(force=True)
            run_kwargs.pop("ulimits")
            container = client.containers.run(tag, **run_kwargs)
    except docker.errors.APIError as exc:
        with contextlib.suppress(docker.errors.DockerException):
            client.containers.get(cname).remove(force=True)
        raise SandboxError(
            f"docker could not start {cname} from {tag}: {exc.explanation or exc}",
            "see `docker info`; if it mentions rlimit, pass a lower `ulimits` "
            "(the Docker host's `ulimit -Hn` is the maximum without CAP_SYS_RESOURCE)",
        ) from exc
    container.reload()
    if container.status != "running":
        logs = container.logs(tail=30).decode(errors="replace")
        raise SandboxError(f"{cname} exited right after start ({container.status}):\n{logs}",
                           "read the systemd output above")
    _setup_dummy_interface(container)
    return container


@dataclasses.dataclass
class BootStatus:
    """Result of :func:`wait_running`.

    Attributes:
        state: ``"running"`` or ``"degraded"`` (output of ``systemctl is-system-running``).
        failed_units: units in failed state (empty when running).
        seconds: how long the wait took.
    """

    state: str
    failed_units: list[str]
    seconds: float

    @property
    def ok(self) -> bool:
        return self.state in ("running", "degraded")


def failed_units(container: Container) -> list[str]:
    """Names of the units systemd reports as failed in ``container``."""
    _, out = exec(container, "systemctl list-units --failed --no-legend --plain --no-pager")
    return [line.split()[0] for line in out.splitlines() if line.strip() and "." in line.split()[0]]


def wait_running(container: Container, timeout: float = 120.0) -> BootStatus:
    """Wait until systemd in ``container`` has finished booting.

    Runs ``systemctl is-system-running --wait`` (retrying while the system bus is not up yet).
    ``running`` and ``degraded`` are accepted; for ``degraded`` the failed units are listed in
    the result so callers can report them.

    Args:
        container: a container from :func:`start_host`.
        timeout: seconds to wait overall.

    Returns:
        A :class:`BootStatus` (``state``, ``failed_units``, ``seconds``).

    Raises:
        SandboxError: the container stopped, systemd reported another final state
            (``maintenance``, ``stopping``...), or the timeout expired; includes failed units and
            the tail of the container's console log.

    Example::

        st = wait_running(c, timeout=90)
        if st.failed_units:
            print("degraded:", ", ".join(st.failed_units))
    """
    start = time.monotonic()
    deadline = start + timeout
    state = "unknown"
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        container.reload()
        if container.status != "running":
            state = f"container {container.status}"
            break
        rc, out = exec(container, f"timeout {max(1, int(remaining))} systemctl is-system-running --wait")
        lines = [ln.strip() for ln in out.splitlines() if ln.strip()]
        state = lines[-1] if lines else "unknown"
        if state in ("running", "degraded"):
            failed = failed_units(container) if state == "degraded" else []
            return BootStatus(state=state, failed_units=failed, seconds=time.monotonic() - start)
        # "offline" is not final here: PID 1 is always systemd, and systemctl says "offline" until it
        # answers, which under load (another container's cgroups torn down at the same moment) took
        # longer than the first few tries (CI 2026-12-02: failed in 10 s, "last state: offline")
        if state in ("maintenance", "stopping"):
            break
        time.sleep(0.5)
    failed: list[str] = []
    logs = ""
    with contextlib.suppress(docker.errors.DockerException):
        container.reload()
        logs = container.logs(tail=40).decode(errors="replace")
        if container.status == "running":
            failed = failed_units(container)
    raise SandboxError(
        f"{container.name} did not boot within {timeout:.0f} s (last state: {state}; failed units: "
        f"{', '.join(failed) or 'none'}); console tail:\n{logs}",
        f"inspect with `docker exec -it {container.name} journalctl -b` and "
        f"`systemctl --failed`",
    )


def stop_host(name: str, *, client=None, timeout: int = 20) -> bool:
    """Stop and remove the sandbox host ``opsctl-<name>``.

    systemd gets SIGRTMIN+3 (clean shutdown); after ``timeout`` seconds Docker kills it.

    Args:
        name: host name (``"backup"``) or container name (``"opsctl-backup"``).
        client: a ``docker.DockerClient``; default :func:`~opsctl.train.engine.ensure_docker`.
        timeout: seconds to wait for a clean shutdown before killing.

    Returns:
        ``True`` if a container was removed, ``False`` if there was none.

    Example::

        stop_host("backup")
    """
    client = client or ensure_docker()
    container = _get(client, name)
    if container is None:
        return False
    with contextlib.suppress(docker.errors.APIError):
        if container.status == "running":
            container.stop(timeout=timeout)
    with contextlib.suppress(docker.errors.NotFound):
        container.remove(force=True, v=True)
    return True


def list_hosts(*, client=None, all: bool = True) -> list[Container]:  # noqa: A002
    """All sandbox host containers (label ``opsctl.sandbox=1``), running or not.

    Args:
        client: a ``docker.DockerClient``; default :func:`~opsctl.train.engine.ensure_docker`.
        all: include stopped containers (default ``True``).

    Example::

        for c in list_hosts():
            print(c.name, c.status, c.labels["opsctl.sandbox.kind"])
    """
    client = client or ensure_docker()
    # ignore_removed: a container removed between the listing and its inspection (another opsctl or
    # test stopping its host at that moment) is left out instead of failing the whole call (CI
    # 2026-12-02: `sandbox up` failed while another worker's role test removed its containers)
    return client.containers.list(all=all, filters={"label": f"{LABEL}=1"}, ignore_removed=True)
