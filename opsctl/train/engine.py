"""Find, install and start this machine's Docker engine: it builds the job image (``opsctl train``),
and the sandbox runs its systemd containers on it.  On a bare
Debian machine (a laptop, a CI runner) nothing is set up yet, so :func:`ensure_docker` does the
minimum to get a working engine: install Debian's ``docker.io`` if needed, start ``dockerd`` in
the background if no daemon answers, and wait for its socket.  It never prompts (safe under
``CI=true`` with no stdin).

Example::

    from opsctl.train.engine import ensure_docker
    client = ensure_docker()
    print(client.version()["Version"])
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterable
from pathlib import Path

import docker
import docker.errors

from opsctl.errors import HostUnreachable
from opsctl.locks import file_lock
from opsctl.paths import cache_dir
from opsctl.progress import Progress, say

#: Default Docker socket that a locally started ``dockerd`` listens on.
DOCKER_SOCKET = Path("/var/run/docker.sock")
#: Seconds :func:`ensure_docker` waits for a freshly started daemon.
DAEMON_START_TIMEOUT = 60.0
#: Client-side API timeout; image imports of ~1 GB root filesystems take a while.
CLIENT_TIMEOUT = 900





def _is_root() -> bool:
    return os.geteuid() == 0


def apt_install(packages: Iterable[str], *, progress: Progress = None) -> None:
    """Install Debian packages on this machine with ``apt-get``, non-interactively.

    Args:
        packages: Debian package names, e.g. ``["docker.io"]``.
        progress: optional callback receiving one human-readable line per step.

    Raises:
        HostUnreachable: not root, no ``apt-get``, or apt failed (its output tail is included).

    Example::

        apt_install(["debootstrap"], progress=print)
    """
    pkgs = list(packages)
    if not pkgs:
        return
    if not shutil.which("apt-get"):
        raise HostUnreachable(
            f"cannot install {' '.join(pkgs)}: this machine has no apt-get (not Debian/Ubuntu)",
            f"install {' '.join(pkgs)} with your system's package manager",
        )
    if not _is_root():
        raise HostUnreachable(
            f"installing {' '.join(pkgs)} needs root",
            f"run `sudo apt-get install -y {' '.join(pkgs)}` once, then retry",
        )
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive", APT_LISTCHANGES_FRONTEND="none")
    for cmd in (
        ["apt-get", "update", "-q"],
        ["apt-get", "install", "-y", "-q", "-o", "Dpkg::Options::=--force-confold", *pkgs],
    ):
        say(progress, f"$ {' '.join(cmd)}")
        res = subprocess.run(
            cmd, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, check=False
        )
        if res.returncode != 0:
            tail = "\n".join((res.stdout + res.stderr).splitlines()[-15:])
            raise HostUnreachable(
                f"`{' '.join(cmd)}` failed with exit code {res.returncode}:\n{tail}",
                "check network access to the Debian mirror and `apt-get` locks, then retry",
            )


def _client(base_url: str | None = None) -> docker.DockerClient:
    if base_url:
        return docker.DockerClient(base_url=base_url, timeout=CLIENT_TIMEOUT)
    return docker.from_env(timeout=CLIENT_TIMEOUT)


def _ping(base_url: str | None = None) -> docker.DockerClient | None:
    try:
        client = _client(base_url)
        client.ping()
        return client
    except (docker.errors.DockerException, OSError, ValueError):
        return None


def _start_dockerd(log_path: Path, progress: Progress) -> subprocess.Popen:
    """Start ``dockerd`` detached from us (own session, no stdin), logging to ``log_path``."""
    say(progress, f"starting dockerd in the background (log: {log_path})")
    log = open(log_path, "ab")  # noqa: SIM115 - handed to the daemon for its lifetime
    try:
        return subprocess.Popen(
            ["dockerd"],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
        )
    finally:
        log.close()


def _log_tail(path: Path, lines: int = 12) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def ensure_docker(
    *, progress: Progress = None, timeout: float = DAEMON_START_TIMEOUT
) -> docker.DockerClient:
    """Return a client for a working local Docker engine, installing/starting it if needed.

    Steps, each skipped when not needed:

    1. a daemon already answers (``$DOCKER_HOST`` or the default socket) -> return a client;
    2. ``dockerd`` is not installed -> ``apt-get install docker.io`` (root, non-interactive);
    3. start the daemon: ``systemctl start docker`` when systemd is PID 1, else ``dockerd``
       detached (own session, stdin closed) logging to ``<cache>/dockerd.log``;
    4. wait up to ``timeout`` seconds for ``/var/run/docker.sock`` to answer a ping.

    Args:
        progress: optional callback receiving one human-readable line per step (e.g. ``print``).
        timeout: seconds to wait for a started daemon to answer.

    Returns:
        A ``docker.DockerClient`` with a long API timeout (suitable for image imports).

    Raises:
        HostUnreachable: with the reason (e.g. not root, apt failed, dockerd exited, socket never
            appeared; the dockerd log tail is included) and the fix.

    Example::

        client = ensure_docker(progress=print)
        client.containers.list()
    """
    client = _ping()
    if client is not None:
        return client
    # Parallel callers (test workers, two opsctl commands) must not both install or start dockerd.
    with file_lock(cache_dir(create=True) / "dockerd.lock"):
        return _ping() or _install_and_start(progress, timeout)


def _install_and_start(progress: Progress, timeout: float) -> docker.DockerClient:
    docker_host = os.environ.get("DOCKER_HOST", "")
    if docker_host and not docker_host.startswith("unix://"):
        raise HostUnreachable(
            f"DOCKER_HOST={docker_host} does not answer and is not a local socket opsctl could start",
            "start that engine, or unset DOCKER_HOST to let opsctl run a local dockerd",
        )

    if not shutil.which("dockerd"):
        say(progress, "dockerd not found: installing Debian's docker.io")
        apt_install(["docker.io"], progress=progress)
        if not shutil.which("dockerd"):
            raise HostUnreachable(
                "docker.io was installed but `dockerd` is still not on PATH",
                "check `dpkg -L docker.io | grep bin/dockerd` and your PATH",
            )

    if not _is_root():
        raise HostUnreachable(
            "no Docker daemon answers and starting dockerd needs root",
            "start Docker yourself (`sudo systemctl start docker` or `sudo dockerd &`) and add "
            "your user to the `docker` group",
        )

    log_path = cache_dir(create=True) / "dockerd.log"
    proc: subprocess.Popen | None = None
    if Path("/run/systemd/system").is_dir() and shutil.which("systemctl"):
        say(progress, "starting docker.service with systemctl")
        subprocess.run(
            ["systemctl", "start", "docker.service"],
            stdin=subprocess.DEVNULL, capture_output=True, check=False, timeout=timeout,
        )
        client = _wait_for_daemon(min(timeout, 20.0), None)
        if client is not None:
            return client
    proc = _start_dockerd(log_path, progress)
    client = _wait_for_daemon(timeout, proc)
    if client is not None:
        say(progress, f"dockerd is up (pid {proc.pid})")
        return client
    if proc.poll() is not None:
        reason = f"dockerd exited with code {proc.returncode} right after starting"
    else:
        reason = f"dockerd (pid {proc.pid}) did not answer on {DOCKER_SOCKET} within {timeout:.0f} s"
    raise HostUnreachable(
        f"{reason}; last lines of {log_path}:\n{_log_tail(log_path)}",
        "read the log above; common causes are another dockerd holding /var/run/docker.pid, "
        "a missing iptables/overlay kernel feature, or no root",
    )


def _wait_for_daemon(timeout: float, proc: subprocess.Popen | None) -> docker.DockerClient | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if DOCKER_SOCKET.exists():
            client = _ping(f"unix://{DOCKER_SOCKET}")
            if client is not None:
                return client
        if proc is not None and proc.poll() is not None:
            return None
        time.sleep(0.5)
    return None
