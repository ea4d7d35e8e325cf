"""The sandbox's ``backup`` host: a qemu VM running real OpenZFS, Samba, Netatalk and Avahi.

Containers on the development and CI machines cannot load the ZFS kernel module, so the
sandbox's backup server is a small Debian trixie VM booted under qemu (TCG: there is no usable
KVM) from the image :mod:`.image` builds.

Every boot runs on a throw-away qcow2 overlay plus blank raw data disks, so the cached image stays
pristine.  A running VM is described by ``$OPSCTL_CACHE/run/<name>.json`` which other processes
(the Ansible inventory, ``opsctl sandbox down``) read through :meth:`ZfsVM.load`.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from opsctl.files import atomic_write
from opsctl.locks import file_lock
from opsctl.sandbox.errors import SandboxError
from opsctl.sandbox.vm.common import Progress, emit, require_tools, run_dir, tail
from opsctl.sandbox.vm.image import KERNEL_CMDLINE, ensure_vm_image

__all__ = ["ZfsVM", "ansible_host_vars"]

#: What the guest kernel prints on the serial console when it panics.  Under TCG with several
#: vCPUs a boot panics now and then (seen once in CI: an invalid opcode in
#: ``hrtimer_start_range_ns`` while the kernel patched its own code, 2 s into the boot); the
#: kernel then hangs with ssh closed, so :meth:`ZfsVM.boot` reads the console to tell a panic
#: from a slow boot and boots again on a fresh overlay instead of waiting out its timeout.
PANIC_MARK = "Kernel panic - not syncing"


class _GuestPanicked(SandboxError):
    """The guest kernel panicked while booting (read from the serial console)."""


def _panicked(console: Path) -> bool:
    """Has the guest kernel printed :data:`PANIC_MARK` on the serial console?"""
    try:
        return PANIC_MARK.encode() in console.read_bytes()
    except OSError:
        return False


def _until_up(name: str, start: Callable[[], ZfsVM], *, timeout: float, attempts: int, keep_files: bool,
              stop_on_error: bool, progress: Progress) -> ZfsVM:
    """``start()`` a qemu and wait until its guest is up; when the kernel panics during boot, kill it
    and start again, up to ``attempts`` times. ``keep_files``: the killed VM's disks stay (a reinstall
    keeps its data disks); ``stop_on_error``: any other failure powers the VM off."""
    for attempt in range(1, max(1, attempts) + 1):
        vm = start()
        try:
            vm._wait_ready(timeout, progress)
            return vm
        except _GuestPanicked as exc:
            vm._kill(keep_files=keep_files)
            if attempt >= attempts:
                raise SandboxError(f"the {name} VM's kernel panicked during boot {attempt} time(s) in a row; "
                                   f"last console:\n{exc}") from None
            emit(progress, f"zfsvm: the {name} VM's kernel panicked during boot (attempt {attempt} of "
                           f"{attempts}); booting it again")
        except BaseException:
            if stop_on_error:
                vm.stop(timeout=5)
            raise
    raise AssertionError("unreachable")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pid_alive(pid: int | None, marker: str | None = None) -> bool:
    if not pid:
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return False
    if "qemu-system" not in cmdline:
        return False
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        if re.search(r"^State:\s+Z", status, re.M):
            return False
    except OSError:
        return False
    return marker is None or marker in cmdline


def _ssh_base(key: str, port: int, user: str = "root", *, connect_timeout: int = 10) -> list[str]:
    return [
        "ssh", "-i", key, "-p", str(port),
        "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
        "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-o", "LogLevel=ERROR",
        "-o", f"ConnectTimeout={connect_timeout}",
        "-o", "ServerAliveInterval=15", "-o", "ServerAliveCountMax=8",
        f"{user}@127.0.0.1",
    ]


class ZfsVM:
    """A running (or stopped) sandbox VM with OpenZFS, described by ``$OPSCTL_CACHE/run/<name>.json``.

    Use :meth:`boot` to start one (or get the one already running) and :meth:`load` to attach to
    one another process started.

    Example::

        vm = ZfsVM.boot("backup", disks=2)
        print(vm.ssh("zfs version").stdout)
        vm.stop()
    """

    def __init__(self, state: dict[str, Any]):
        self.state = state

    # -- state ------------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.state["name"]

    @property
    def pid(self) -> int:
        return int(self.state["pid"])

    @property
    def ssh_port(self) -> int:
        return int(self.state["ssh_port"])

    @property
    def key(self) -> str:
        return self.state["key"]

    @property
    def disk_ids(self) -> list[str]:
        """``/dev/disk/by-id`` paths of the blank data disks as the guest sees them."""
        return [d["by_id"] for d in self.state["disks"]]

    @property
    def forwards(self) -> dict[int, int]:
        """Extra port forwards: guest TCP port -> host port on 127.0.0.1."""
        return {int(k): int(v) for k, v in self.state.get("forwards", {}).items()}

    @staticmethod
    def state_path(name: str) -> Path:
        """Return the state file path for VM ``name``.

        Example::

            >>> ZfsVM.state_path("backup").name
            'backup.json'
        """
        return run_dir() / f"{name}.json"

    def _save(self) -> None:
        path = self.state_path(self.name)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, json.dumps(self.state, indent=2) + "\n")

    @classmethod
    def load(cls, name: str = "backup") -> ZfsVM:
        """Attach to the VM ``name`` from its state file (it may have died since).

        Args:
            name: the VM name given to :meth:`boot`.

        Raises:
            SandboxError: there is no state file for ``name``.

        Example::

            vm = ZfsVM.load("backup")
            if vm.is_running():
                vm.ssh("zpool list")
        """
        path = cls.state_path(name)
        try:
            return cls(json.loads(path.read_text()))
        except FileNotFoundError:
            raise SandboxError(
                f"no sandbox VM named {name!r} ({path} is missing)",
                "start the sandbox with `opsctl sandbox up`"
            ) from None
        except (OSError, ValueError) as exc:
            raise SandboxError(f"cannot read sandbox VM state {path}: {exc}") from exc

    def is_running(self) -> bool:
        """Return True when this VM's qemu process is alive.

        Example::

            ZfsVM.load("backup").is_running()
        """
        return _pid_alive(self.state.get("pid"), self.state.get("overlay"))

    # -- boot -------------------------------------------------------------------------------
    @classmethod
    def boot(
        cls,
        name: str = "backup",
        *,
        disks: int = 2,
        disk_size: str = "1G",
        ssh_port: int | None = None,
        memory: str = "2G",
        smp: int = 2,
        timeout: float = 600,
        forwards: Sequence[int] = (),
        internet: bool = False,
        kernel_args: str = "",
        attempts: int = 3,
        progress: Progress = None,
    ) -> ZfsVM:
        """Boot the VM ``name`` (building the image first if needed) and wait until it is up.

        Idempotent: when ``name`` is already running it is returned as is.  Each boot gets a
        fresh qcow2 overlay over the cached image and fresh blank data disks, seen by the guest
        as ``/dev/disk/by-id/virtio-opsctl-disk-N``.

        Args:
            name: VM name; state goes to ``$OPSCTL_CACHE/run/<name>.json``.
            disks: number of blank raw data disks.
            disk_size: size of each data disk (``qemu-img`` syntax, e.g. ``"1G"``).
            ssh_port: host port for ssh on 127.0.0.1; a free one is picked when None.
            memory: guest memory (qemu ``-m`` syntax).
            smp: guest CPUs.
            timeout: seconds to wait for ssh and ``systemctl is-system-running``.  Boot takes
                about 35-60 s on an idle 2-core host but 4-5 minutes when other builds or VMs
                share the CPUs (TCG), hence the generous default.
            forwards: extra guest TCP ports (e.g. 445, 548) to forward to free host ports.
            internet: let the guest reach the outside network (package mirror); default off.
            kernel_args: extra kernel command-line arguments, appended to the image's own.
            attempts: boots to try when the guest kernel panics during boot (each on a fresh
                overlay and fresh disks); a panic is read from the serial console, so it costs
                seconds, not the ``timeout``.
            progress: optional callable receiving status lines.

        Returns:
            The running VM.

        Raises:
            SandboxError: qemu cannot start, the guest kernel panicked on every attempt, or
                the guest does not come up within ``timeout``.

        Example::

            vm = ZfsVM.boot("backup", disks=2, disk_size="1G")
            vm.ssh("zpool create tank mirror " + " ".join(vm.disk_ids), check=True)
        """
        require_tools("qemu-system-x86_64", "qemu-img", "ssh")
        with file_lock(run_dir() / f".{name}.lock"):
            with contextlib.suppress(SandboxError):
                existing = cls.load(name)
                if existing.is_running():
                    emit(progress, f"zfsvm: {name} already running (pid {existing.pid}, "
                                    f"ssh port {existing.ssh_port})")
                    return existing
                existing._cleanup()
            image = ensure_vm_image(progress=progress)

            def start() -> ZfsVM:
                return cls._start_on_free_port(name, image, disks=disks, disk_size=disk_size, ssh_port=ssh_port,
                                               memory=memory, smp=smp, forwards=forwards, internet=internet,
                                               kernel_args=kernel_args, progress=progress)

            return _until_up(name, start, timeout=timeout, attempts=attempts, keep_files=False,
                             stop_on_error=True, progress=progress)

    @classmethod
    def _start_on_free_port(cls, name: str, image: Path, *, ssh_port: int | None,
                            **kw: Any) -> ZfsVM:
        last: SandboxError | None = None
        for _attempt in range(3):
            try:
                return cls._start(name, image, ssh_port=ssh_port, **kw)
            except _PortTaken as exc:
                last = SandboxError(str(exc))
                if ssh_port is not None:
                    raise last from None
        assert last is not None
        raise last

    @classmethod
    def _start(cls, name: str, image: Path, *, disks: int, disk_size: str, ssh_port: int | None,
               memory: str, smp: int, forwards: Sequence[int], internet: bool,
               kernel_args: str, progress: Progress) -> ZfsVM:
        run = run_dir() / name
        shutil.rmtree(run, ignore_errors=True)
        run.mkdir(parents=True)
        overlay = run / "overlay.qcow2"
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", str(image / "rootfs.img"),
                        "-F", "raw", str(overlay)], check=True, capture_output=True, text=True)
        disk_list = []
        for i in range(disks):
            path = run / f"disk{i}.img"
            subprocess.run(["qemu-img", "create", "-q", "-f", "raw", str(path), disk_size],
                           check=True, capture_output=True, text=True)
            serial = f"opsctl-disk-{i}"
            by_id = f"/dev/disk/by-id/virtio-{serial}"
            disk_list.append({"serial": serial, "path": str(path), "by_id": by_id})
        port = ssh_port or _free_port()
        fwd = {g: _free_port() for g in forwards}
        hostfwd = f",hostfwd=tcp:127.0.0.1:{port}-:22" + "".join(
            f",hostfwd=tcp:127.0.0.1:{h}-:{g}" for g, h in fwd.items())
        pidfile = run / "qemu.pid"
        console = run / "console.log"
        accel = os.environ.get("OPSCTL_QEMU_ACCEL", "tcg,thread=multi")
        cmd = [
            "qemu-system-x86_64", "-name", f"opsctl-{name}",
            "-accel", accel, "-cpu", "max", "-m", memory, "-smp", str(smp),
            "-nodefaults", "-display", "none", "-vga", "none", "-monitor", "none",
            "-serial", f"file:{console}",
            "-daemonize", "-pidfile", str(pidfile),
            "-kernel", str(image / "vmlinuz"), "-initrd", str(image / "initrd.img"),
            "-append", f"{KERNEL_CMDLINE} {kernel_args}".strip(),
            "-drive", f"file={overlay},if=none,id=root,format=qcow2,cache=unsafe",
            "-device", "virtio-blk-pci,drive=root,serial=opsctl-root",
            "-netdev", f"user,id=n0,restrict={'off' if internet else 'on'}{hostfwd}",
            "-device", "virtio-net-pci,netdev=n0",
            "-device", "virtio-rng-pci",
        ]
        for i, d in enumerate(disk_list):
            cmd += ["-drive", f"file={d['path']},if=none,id=data{i},format=raw,cache=unsafe",
                    "-device", f"virtio-blk-pci,drive=data{i},serial={d['serial']}"]
        emit(progress, f"zfsvm: starting qemu for {name} (ssh on 127.0.0.1:{port})")
        started = time.time()
        proc = subprocess.run(cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=120)
        if proc.returncode != 0:
            err = (proc.stderr or proc.stdout).strip()
            shutil.rmtree(run, ignore_errors=True)
            if "hostfwd" in err or "host forwarding" in err or "Address already in use" in err:
                raise _PortTaken(f"qemu could not forward port {port}: {err}")
            raise SandboxError(f"qemu failed to start the {name} VM (exit {proc.returncode}): {err}\n"
                               f"command: {shlex.join(cmd)}")
        pid = int(pidfile.read_text().strip())
        vm = cls({
            "name": name,
            "kind": "zfsvm",
            "pid": pid,
            "ssh_port": port,
            "user": "root",
            "key": str(image / "id_ed25519"),
            "image": str(image),
            "run_dir": str(run),
            "overlay": str(overlay),
            "console_log": str(console),
            "disks": disk_list,
            "forwards": {str(g): h for g, h in fwd.items()},
            "memory": memory,
            "smp": smp,
            "started_at": started,
            "timings": {},
            "command": cmd,
        })
        vm._save()
        return vm

    def _wait_ready(self, timeout: float, progress: Progress) -> None:
        t0 = self.state["started_at"]
        deadline = time.monotonic() + timeout
        while True:
            if not self.is_running():
                raise SandboxError(f"the {self.name} VM's qemu exited during boot; console log "
                                   f"{self.state['console_log']}:\n{tail(Path(self.state['console_log']))}")
            if _panicked(Path(self.state["console_log"])):
                raise _GuestPanicked(tail(Path(self.state["console_log"])))
            try:
                r = self.ssh("true", timeout=30, connect_timeout=5)
                if r.returncode == 0:
                    break
            except subprocess.TimeoutExpired:
                pass
            if time.monotonic() > deadline:
                raise SandboxError(
                    f"the {self.name} VM did not answer ssh on 127.0.0.1:{self.ssh_port} within "
                    f"{timeout:.0f}s (TCG is slow on a busy host: raise timeout); console log "
                    f"{self.state['console_log']}:\n{tail(Path(self.state['console_log']))}")
            time.sleep(2)
        self.state["timings"]["boot_to_ssh_s"] = round(time.time() - t0, 1)
        emit(progress, f"zfsvm: ssh up after {self.state['timings']['boot_to_ssh_s']}s; waiting for systemd")
        left = max(10.0, deadline - time.monotonic())
        try:
            r = self.ssh("systemctl is-system-running --wait", timeout=left)
        except subprocess.TimeoutExpired:
            raise SandboxError(f"the {self.name} VM's systemd did not finish starting within "
                               f"{timeout:.0f}s; see `systemctl list-jobs` in the guest") from None
        status = r.stdout.strip()
        if status not in ("running", "degraded"):
            failed = self.ssh("systemctl --failed --no-legend --plain").stdout
            raise SandboxError(f"the {self.name} VM came up as {status!r}; failed units:\n{failed}")
        # Every client reaches the guest from slirp's one address, so sshd's per-source penalties
        # (OpenSSH >= 9.8: clients that leave before logging in, as ssh-keyscan and refused host keys
        # do) would shut out every later connection at the banner; a sandbox VM turns them off.
        self.ssh("if sshd -T 2>/dev/null | grep -qi '^persourcepenalties'; then "
                 "printf 'PerSourcePenalties no\\nMaxStartups 100:30:200\\n' "
                 "> /etc/ssh/sshd_config.d/opsctl-sandbox.conf && sshd -t && systemctl reload ssh; fi",
                 timeout=120)
        # sshd re-executes itself on reload and resets connections for a moment: wait until it answers
        reload_deadline = time.monotonic() + 120
        while self.ssh("true", timeout=30, connect_timeout=5).returncode != 0:
            if time.monotonic() > reload_deadline:
                raise SandboxError(f"the {self.name} VM's sshd did not answer after its reload")
            time.sleep(1)
        self.state["timings"]["boot_to_running_s"] = round(time.time() - t0, 1)
        self.state["system_state"] = status
        self._save()
        emit(progress, f"zfsvm: {self.name} {status} after {self.state['timings']['boot_to_running_s']}s")

    # -- use --------------------------------------------------------------------------------
    def ssh(self, cmd: str | Sequence[str], *, check: bool = False, timeout: float | None = 600,
            input: str | None = None, connect_timeout: int = 10) -> subprocess.CompletedProcess[str]:
        """Run ``cmd`` in the guest as root over ssh and return the completed process.

        Args:
            cmd: a shell command line (str) or an argument list (quoted for the remote shell).
            check: raise :class:`SandboxError` on a non-zero exit.
            timeout: seconds before :class:`subprocess.TimeoutExpired`; None waits forever.
            input: text fed to the command's standard input.
            connect_timeout: ssh ConnectTimeout in seconds.

        Example::

            r = vm.ssh(["zpool", "get", "-H", "-o", "value", "ashift", "tank"], check=True)
            assert r.stdout.strip() == "12"
        """
        line = cmd if isinstance(cmd, str) else shlex.join(cmd)
        argv = _ssh_base(self.key, self.ssh_port, self.state.get("user", "root"),
                         connect_timeout=connect_timeout) + [line]
        r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, input=input,
                           stdin=None if input is not None else subprocess.DEVNULL)
        if check and r.returncode != 0:
            raise SandboxError(f"`{line}` failed in the {self.name} VM (exit {r.returncode}):\n"
                               f"{r.stdout}{r.stderr}")
        return r

    def reinstall(self, *, timeout: float = 900, attempts: int = 3, progress: Progress = None) -> None:
        """Simulate an OS reinstall: power off, give the VM a fresh root disk from the image (a new
        overlay), keep its data disks, and boot it again on the same ssh port.

        What the data disks hold (a pool, its datasets, the backups) is untouched; everything on
        the root disk (accounts, Samba's database, config files, the pool's import state) is gone,
        as on a host whose operating system was reinstalled. A boot whose kernel panics is tried
        again on a fresh root disk, up to ``attempts`` times (as :meth:`boot` does).

        Example::

            vm.reinstall()
            vm.ssh("zpool import")   # the pool is there, not imported
        """
        self.stop(timeout=60, keep_files=True)
        overlay = Path(self.state["overlay"])
        pidfile = Path(self.state["run_dir"]) / "qemu.pid"

        def start() -> ZfsVM:
            overlay.unlink(missing_ok=True)
            subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-b",
                            str(Path(self.state["image"]) / "rootfs.img"), "-F", "raw", str(overlay)],
                           check=True, capture_output=True, text=True)
            pidfile.unlink(missing_ok=True)
            emit(progress, f"zfsvm: {self.name}: booting a fresh root disk with the same data disks")
            self.state["started_at"] = time.time()
            proc = subprocess.run(self.state["command"], capture_output=True, text=True, stdin=subprocess.DEVNULL,
                                  timeout=120)
            if proc.returncode != 0:
                raise SandboxError(f"qemu failed to restart the {self.name} VM (exit {proc.returncode}): "
                                   f"{(proc.stderr or proc.stdout).strip()}")
            self.state["pid"] = int(pidfile.read_text().strip())
            self.state["timings"] = {}
            self._save()
            return self

        _until_up(self.name, start, timeout=timeout, attempts=attempts, keep_files=True, stop_on_error=False,
                  progress=progress)

    def ssh_command(self) -> list[str]:
        """Return the ssh argv (without a remote command) that logs into this VM as root.

        Example::

            subprocess.run(vm.ssh_command() + ["uptime"])
        """
        return _ssh_base(self.key, self.ssh_port, self.state.get("user", "root"))

    # -- stop -------------------------------------------------------------------------------
    def stop(self, *, timeout: float = 60, keep_files: bool = False) -> None:
        """Power the VM off cleanly (``systemctl poweroff``), killing qemu after ``timeout``.

        Removes the overlay, data disks and state file unless ``keep_files``.  Safe to call
        on a VM that is already gone.

        Args:
            timeout: seconds to wait for a clean poweroff before SIGTERM, then SIGKILL.
            keep_files: keep the run directory (overlay, disks, console.log) for inspection.

        Example::

            ZfsVM.load("backup").stop()
        """
        if self.is_running():
            with contextlib.suppress(subprocess.TimeoutExpired, OSError):
                self.ssh("systemctl --no-block poweroff", timeout=20, connect_timeout=5)
            if not self._wait_exit(timeout):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.pid, signal.SIGTERM)
                if not self._wait_exit(10):
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(self.pid, signal.SIGKILL)
                    self._wait_exit(10)
        if not keep_files:
            self._cleanup()

    def _kill(self, *, keep_files: bool = False) -> None:
        """Kill qemu at once (a panicked guest answers no poweroff) and remove its files unless ``keep_files``."""
        if self.is_running():
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
            self._wait_exit(10)
        if not keep_files:
            self._cleanup()

    def _wait_exit(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.is_running():
                return True
            time.sleep(0.5)
        return not self.is_running()

    def _cleanup(self) -> None:
        run = self.state.get("run_dir")
        # only this VM's own run folder: a state file written under another name for the same VM
        # (the tests' aliases) never removes the files of the VM it points at
        if run and Path(run).parent == run_dir() and Path(run).name == self.name:
            shutil.rmtree(run, ignore_errors=True)
        path = self.state_path(self.name)
        with contextlib.suppress(FileNotFoundError):
            current = json.loads(path.read_text())
            if current.get("pid") == self.state.get("pid"):
                path.unlink()

    def __repr__(self) -> str:
        return (f"ZfsVM(name={self.name!r}, pid={self.state.get('pid')}, "
                f"ssh_port={self.state.get('ssh_port')})")


class _PortTaken(SandboxError):
    pass


def ansible_host_vars(vm: ZfsVM) -> dict[str, Any]:
    """Return the Ansible inventory variables that reach ``vm`` over its forwarded ssh port.

    Args:
        vm: a booted (or loaded) :class:`ZfsVM`.

    Example::

        >>> ansible_host_vars(ZfsVM.load("backup"))  # doctest: +SKIP
        {'ansible_host': '127.0.0.1', 'ansible_port': 40123, 'ansible_user': 'root', ...}
    """
    return {
        "ansible_host": "127.0.0.1",
        "ansible_port": vm.ssh_port,
        "ansible_user": vm.state.get("user", "root"),
        "ansible_ssh_private_key_file": vm.key,
        "ansible_ssh_common_args": "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null "
                                   "-o IdentitiesOnly=yes",
        "ansible_python_interpreter": "/usr/bin/python3",
    }
