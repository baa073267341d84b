"""Start and stop a simulated fleet: one network + mount + UTS namespace per host, real sshd.

Each host is one long-lived process started as::

    ip netns exec <ns> unshare --mount --uts --propagation private -- sh -c <init script>

The init script mounts the host's own overlays over /etc /opt /usr /var /srv (upper and
work dirs under the workdir), a fresh root home (from /etc/skel) over /root, tmpfs over
/run /tmp /dev/shm, the profile's files (a tmpfs over /proc/driver or /sys/firmware), sets
the hostname and ``exec``s ``sshd -D``; so the pid we start *is* sshd, and everything SSH
spawns lives in that host's namespaces. Only ``lo`` is up
in each network namespace; Ansible reaches sshd through ``ProxyCommand=ip netns exec <ns> nc``.

Every resource is written to ``fleet-state.json`` in the workdir before it is created, so
``down`` (and ``gc``) can remove a half-created fleet, and only what this fleet created.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import secrets
import shlex
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from fleet import fakenvml
from fleet.profiles import DGPU_GLOBAL_NODES, HostSpec

REPO_ROOT = Path(__file__).resolve().parents[2]
CACHE_DIR = REPO_ROOT / "tests" / ".work"
# The hosts' Python must be visible inside every host: a host masks /tmp, /run, /dev/shm and
# /root with its own, and a clone may live under any of them. Each host sees the real /var
# through its overlay's lower layer, so the venv lives there.
HOST_PYTHON_DIR = Path("/var/cache/tritonfleet-tests")
STATE_FILE = "fleet-state.json"
INVENTORY_FILE = "inventory.yml"
OVERLAID = ("etc", "opt", "usr", "var", "srv")
# Paths each host replaces with its own, hiding what lies beneath them on this machine.
MASKED = ("/tmp", "/run", "/root", "/dev/shm")
PARKED_REPO = "/srv/.tritonfleet-tests-repo"
HOST_PACKAGES = ("nvidia-ml-py", "requests", "pyelftools")
# Char-device major reserved for local/experimental use (Linux devices.txt): opening a node
# gives ENXIO on any machine, also one with a real NVIDIA driver on major 195.
FAKE_NODE_MAJOR = 240
READY_LINE = "Server listening on 127.0.0.1 port 22"
SSHD_CONFIG = """\
# sshd of a simulated tritonfleet test host (tests/fleet); loopback of its own netns only.
ListenAddress 127.0.0.1:22
HostKey /etc/ssh/fleet/ssh_host_ed25519_key
AuthorizedKeysFile /etc/ssh/fleet/authorized_keys
PidFile none
UsePAM no
StrictModes no
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UseDNS no
PrintMotd no
PrintLastLog no
MaxStartups 100:30:200
MaxSessions 100
Subsystem sftp internal-sftp
"""


class FleetError(RuntimeError):
    """A fleet could not be started or stopped; the message says what to do."""


def _run(cmd: list[str], check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if check and proc.returncode != 0:
        raise FleetError(
            f"Command failed: {shlex.join(cmd)} exited {proc.returncode}: {(proc.stderr or proc.stdout).strip()}; "
            "the fleet needs root, iproute2, util-linux and openssh-server (run tests/ensure-system-packages)."
        )
    return proc


def start_time(pid: int) -> int | None:
    """Kernel start time of ``pid`` (field 22 of /proc/<pid>/stat), None when gone or a zombie."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return None if fields[0] == "Z" else int(fields[19])


def _is_ours(pid: int | None, start: int | None) -> bool:
    """True when ``pid`` runs and is the very process recorded (pid not reused)."""
    return pid is not None and start is not None and start_time(pid) == start


def netns_list() -> list[str]:
    """Names of the network namespaces ``ip netns`` knows."""
    return [line.split()[0] for line in _run(["ip", "netns", "list"]).stdout.splitlines() if line.strip()]


def netns_pids(ns: str) -> list[int]:
    """Pids of every process inside network namespace ``ns`` (empty when it does not exist)."""
    proc = _run(["ip", "netns", "pids", ns], check=False)
    return [int(p) for p in proc.stdout.split()] if proc.returncode == 0 else []


def _mount_ns_pids(mnt_ns: str) -> list[int]:
    """Pids whose mount namespace link reads ``mnt_ns`` (e.g. ``mnt:[4026532301]``)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if os.readlink(entry / "ns" / "mnt") == mnt_ns:
                    pids.append(int(entry.name))
    return pids


def _terminate(pids: set[int], grace: float = 3.0) -> list[int]:
    """SIGTERM ``pids``, SIGKILL what is left after ``grace`` s; return pids still alive.

    Each pid is signalled only while it is the process seen at the start (same start time),
    so a pid that exits and is reused meanwhile by another process is left alone.
    """
    alive = {pid: start for pid in pids if (start := start_time(pid)) is not None}
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 2.0)):
        for pid, start in alive.items():
            if start_time(pid) == start:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            for pid in alive:
                # Reap our own children (pytest fixture case), or they stay as zombies.
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(pid, os.WNOHANG)
            alive = {pid: start for pid, start in alive.items() if start_time(pid) == start}
            if not alive:
                return []
            time.sleep(0.02)
    return sorted(alive)


def ensure_host_python(
    cache_dir: Path = HOST_PYTHON_DIR, requirements: Path = REPO_ROOT / "requirements-controller.txt"
) -> Path:
    """Build (once) the managed-host venv from /usr/bin/python3 with the pinned HOST_PACKAGES.

    Returns ``<cache_dir>/hostpy-<pins hash>/bin/python``. A marker file holds the pins; a change rebuilds.
    Parallel callers serialise on a lock file.
    """
    pins = sorted(
        line.strip()
        for line in requirements.read_text().splitlines()
        if line.split("==")[0].strip() in HOST_PACKAGES and "==" in line
    )
    if len(pins) != len(HOST_PACKAGES):
        raise FleetError(
            f"Host Python pins not found: {requirements} lists {pins}; expected {', '.join(HOST_PACKAGES)} "
            "pinned with ==; add the pins to requirements-controller.txt."
        )
    # One venv per set of pins: branches with other pins never rebuild each other's venv.
    venv = cache_dir / f"hostpy-{hashlib.sha256(chr(10).join(pins).encode()).hexdigest()[:12]}"
    marker = venv / ".fleet-pins"
    cache_dir.mkdir(parents=True, exist_ok=True)
    with (cache_dir / "hostpy.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if marker.is_file() and marker.read_text() == "\n".join(pins):
            return venv / "bin" / "python"
        shutil.rmtree(venv, ignore_errors=True)
        _run(["/usr/bin/python3", "-m", "venv", str(venv)])
        _run([str(venv / "bin" / "pip"), "install", "--quiet", "--disable-pip-version-check", *pins])
        marker.write_text("\n".join(pins))
    return venv / "bin" / "python"


@dataclass
class Host:
    """A host of a running (or half-created) fleet, as recorded in the state file."""

    name: str
    netns: str
    profile: str
    pid: int | None = None
    pid_start: int | None = None
    mnt_ns: str | None = None


class Fleet:
    """A simulated fleet rooted at ``workdir``; ``up`` starts it, ``down`` removes every trace."""

    def __init__(self, workdir: Path, cache_dir: Path = CACHE_DIR) -> None:
        self.workdir = Path(os.path.abspath(workdir))
        self.cache_dir = cache_dir
        self.state_path = self.workdir / STATE_FILE
        self.inventory_path = self.workdir / INVENTORY_FILE

    # ---- state -------------------------------------------------------------------------
    def read_state(self) -> dict[str, Any] | None:
        """The state file's content, or None when this workdir holds no fleet."""
        try:
            return json.loads(self.state_path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as err:
            raise FleetError(
                f"Fleet state {self.state_path} is unreadable: {err}; it is written by fleetctl up; "
                "remove leftovers by hand (ip netns list | grep the prefix) and delete the workdir."
            ) from err

    def _write_state(self, state: dict[str, Any]) -> None:
        tmp = self.state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2, sort_keys=True))
        tmp.replace(self.state_path)

    # ---- up ----------------------------------------------------------------------------
    def up(self, hosts: list[HostSpec], owner_pid: int | None = None, timeout: float = 15.0) -> Path:
        """Start ``hosts``; return the inventory path. On failure everything started is removed.

        ``owner_pid``: a process whose death makes the fleet a leftover for ``gc`` (None: any gc).
        """
        self._check_workdir()
        if self.read_state() is not None:
            raise FleetError(
                f"Fleet workdir {self.workdir} already holds a fleet ({self.state_path}); one workdir holds one "
                "fleet; run fleetctl down on it first or use another workdir."
            )
        self.workdir.mkdir(parents=True, exist_ok=True)
        prefix = self._new_prefix()
        state: dict[str, Any] = {
            "version": 1,
            "prefix": prefix,
            "workdir": str(self.workdir),
            "owner_pid": owner_pid,
            "owner_start": start_time(owner_pid) if owner_pid else None,
            "hosts": {h.name: Host(h.name, f"{prefix}-{h.name}", h.profile).__dict__ for h in hosts},
        }
        self._write_state(state)
        try:
            self._up(hosts, state, timeout)
        except BaseException:
            self.down()
            raise
        return self.inventory_path

    def _check_workdir(self) -> None:
        under = next((f"/{d}" for d in OVERLAID if self.workdir.is_relative_to(f"/{d}")), None)
        if under:
            raise FleetError(
                f"Fleet workdir {self.workdir} lies under {under}, which every simulated host overlays (a layer "
                f"cannot sit inside its own lower dir); expected a path outside /{', /'.join(OVERLAID)}; "
                "pass --workdir under /tmp or tests/.work."
            )
        unsafe = sorted(set(str(self.workdir)) & set(",: \t\n\\\"'"))
        if unsafe:
            raise FleetError(
                f"Fleet workdir {self.workdir} has characters {unsafe} that overlay mount options cannot carry; "
                "expected a plain path (letters, digits, '/', '.', '-', '_'); choose another --workdir."
            )
        if len(str(self.workdir)) > 80:
            raise FleetError(
                f"Fleet workdir {self.workdir} is {len(str(self.workdir))} characters long; SSH control sockets "
                "live under it and a socket path is at most 107 bytes; use a workdir path of at most 80 characters."
            )

    def _new_prefix(self) -> str:
        existing = netns_list()
        while True:
            prefix = f"tf-{secrets.token_hex(3)}"
            if not any(name.startswith(prefix + "-") for name in existing):
                return prefix

    def _up(self, hosts: list[HostSpec], state: dict[str, Any], timeout: float) -> None:
        host_python = ensure_host_python()
        library = fakenvml.build_library(self.cache_dir / "fake-nvml") if any(h.nvml for h in hosts) else None
        key = self.workdir / "id_ed25519"
        _run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "tritonfleet-test", "-f", str(key)])
        (self.workdir / "cp").mkdir(exist_ok=True)
        known_hosts = []
        for spec in hosts:
            known_hosts.append(f"{spec.name} {self._prepare_host(spec, key, library)}")
        (self.workdir / "known_hosts").write_text("\n".join(known_hosts) + "\n")

        started: dict[str, tuple[subprocess.Popen[bytes], Path]] = {}
        for spec in hosts:
            record = state["hosts"][spec.name]
            _run(["ip", "netns", "add", record["netns"]])
            _run(["ip", "-n", record["netns"], "link", "set", "lo", "up"])
            log = self.workdir / "hosts" / spec.name / "sshd.log"
            with log.open("wb") as out:
                proc = subprocess.Popen(
                    ["ip", "netns", "exec", record["netns"], "unshare", "--mount", "--uts", "--propagation",
                     "private", "--", "sh", "-c", self._init_script(spec)],
                    stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True,
                )  # fmt: skip
            record["pid"], record["pid_start"] = proc.pid, start_time(proc.pid)
            self._write_state(state)
            started[spec.name] = (proc, log)
        self._wait_ready(started, state, timeout)
        self._write_inventory(hosts, state, key, host_python)

    def _prepare_host(self, spec: HostSpec, client_key: Path, library: Path | None) -> str:
        """Create the host's layer dirs and profile files; return its public host key line."""
        hdir = self.workdir / "hosts" / spec.name
        for d in (*OVERLAID, "dev") if self._device_nodes(spec) else OVERLAID:
            (hdir / "upper" / d).mkdir(parents=True, exist_ok=True)
            (hdir / "work" / d).mkdir(parents=True, exist_ok=True)
        # A fresh root home as on a new Debian install: this machine's /root holds developer
        # shell setup (pyenv init in .bashrc) that every SSH command would run.
        shutil.copytree("/etc/skel", hdir / "root-home")
        (hdir / "root-home").chmod(0o700)
        etc = hdir / "upper" / "etc"
        fleet_ssh = etc / "ssh" / "fleet"
        fleet_ssh.mkdir(parents=True)
        (fleet_ssh / "sshd_config").write_text(SSHD_CONFIG)
        host_key = fleet_ssh / "ssh_host_ed25519_key"
        _run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", spec.name, "-f", str(host_key)])
        shutil.copyfile(client_key.with_suffix(".pub"), fleet_ssh / "authorized_keys")
        (etc / "hostname").write_text(spec.name + "\n")
        (etc / "hosts").write_text(Path("/etc/hosts").read_text().rstrip("\n") + f"\n127.0.1.1\t{spec.name}\n")

        board = spec.jetson_board
        if board is not None:
            if spec.l4t_release_file:
                (etc / "nv_tegra_release").write_text(board.nv_tegra_release)
            status = hdir / "upper" / "var" / "lib" / "dpkg" / "status"
            status.parent.mkdir(parents=True)
            status.write_text(
                Path("/var/lib/dpkg/status").read_text().rstrip("\n")
                + "\n\nPackage: nvidia-l4t-core\nStatus: install ok installed\nPriority: standard\nSection: misc\n"
                "Installed-Size: 5700\nMaintainer: NVIDIA Corporation\nArchitecture: arm64\n"
                f"Version: {board.dpkg_version}\nDescription: NVIDIA Core Package (simulated by tests/fleet)\n\n"
            )
            base = hdir / "sys-firmware" / "devicetree" / "base"
            base.mkdir(parents=True)
            (base / "model").write_bytes(board.model.encode() + b"\0")
            (base / "compatible").write_bytes(b"".join(c.encode() + b"\0" for c in board.compatible))
        if spec.profile == "dgpu":
            version = hdir / "proc-driver" / "nvidia" / "version"
            version.parent.mkdir(parents=True)
            version.write_text(
                f"NVRM version: NVIDIA UNIX x86_64 Kernel Module  {spec.driver_version}  Release Build  "
                "(tritonfleet-sim)  Thu Jan  1 00:00:00 UTC 2026\nGCC version:  gcc version 12.2.0 (Debian 12.2.0-14)\n"
            )
            if library is not None and spec.nvml:
                libdir = hdir / "upper" / "usr" / "lib" / "x86_64-linux-gnu"
                libdir.mkdir(parents=True)
                shutil.copyfile(library, libdir / fakenvml.LIBRARY_NAME)
                conf = hdir / "upper" / fakenvml.CONFIG_PATH
                conf.parent.mkdir(parents=True)
                conf.write_text(fakenvml.render_config(spec))
        public = host_key.with_suffix(".pub").read_text().split()
        return f"{public[0]} {public[1]}"

    def _device_nodes(self, spec: HostSpec) -> list[str]:
        if not spec.device_nodes:
            return []
        if spec.jetson_board is not None:
            return list(spec.jetson_board.device_nodes)
        if spec.profile == "dgpu":
            return [f"/dev/nvidia{g.index}" for g in spec.gpus] + list(DGPU_GLOBAL_NODES)
        return []

    def _init_script(self, spec: HostSpec) -> str:
        """The shell script that turns the new namespaces into host ``spec.name`` and execs sshd."""
        hdir = self.workdir / "hosts" / spec.name
        q = shlex.quote
        lines = ["set -eu"]
        for d in OVERLAID:
            opts = f"lowerdir=/{d},upperdir={hdir}/upper/{d},workdir={hdir}/work/{d}"
            lines.append(f"mount -t overlay overlay -o {q(opts)} /{d}")
        # A clone under a path each host masks (/tmp, /run, /root, /dev/shm) would vanish inside
        # the hosts, with the test caches (wheels, venvs) the tests install from: park a bind of
        # it in the host's private /srv now and move it back over the mask at the end.
        repo_masked = any(REPO_ROOT.is_relative_to(m) for m in MASKED)
        if repo_masked:
            lines += [f"mkdir -p {PARKED_REPO}", f"mount --bind {q(str(REPO_ROOT))} {PARKED_REPO}"]
        lines += [
            f"mount --bind {q(str(hdir))}/root-home /root",
            "mount -t tmpfs -o mode=0755 tmpfs /run",
            "mkdir -m 0755 /run/sshd",
        ]
        nodes = self._device_nodes(spec)
        if nodes:
            # Nodes need a writable /dev: an overlay, with a fresh devpts since the overlay hides
            # the host's /dev/pts submount.
            opts = f"lowerdir=/dev,upperdir={hdir}/upper/dev,workdir={hdir}/work/dev"
            lines += [
                f"mount -t overlay overlay -o {q(opts)} /dev",
                "mount -t devpts -o newinstance,ptmxmode=0666,mode=0620 devpts /dev/pts",
                "ln -sf pts/ptmx /dev/ptmx",
            ]
            for minor, node in enumerate(nodes):
                lines += [
                    f"mkdir -p {q(str(Path(node).parent))}",
                    f"mknod -m 0666 {q(node)} c {FAKE_NODE_MAJOR} {minor}",
                ]
        lines.append("mount -t tmpfs -o mode=1777 tmpfs /dev/shm")
        if (hdir / "proc-driver").is_dir():
            lines += [
                "mount -t tmpfs -o mode=0755 tmpfs /proc/driver",
                f"cp -R {q(str(hdir))}/proc-driver/. /proc/driver/",
            ]
        if (hdir / "sys-firmware").is_dir():
            lines += [
                "mount -t tmpfs -o mode=0755 tmpfs /sys/firmware",
                f"cp -R {q(str(hdir))}/sys-firmware/. /sys/firmware/",
            ]
        # /tmp goes last: the workdir may live under /tmp and is hidden from here on.
        lines += ["mount -t tmpfs -o mode=1777 tmpfs /tmp", f"hostname {q(spec.name)}"]
        if repo_masked:
            lines += [f"mkdir -p {q(str(REPO_ROOT))}", f"mount --move {PARKED_REPO} {q(str(REPO_ROOT))}"]
        if spec.nvml:
            lines.append("ldconfig")
        lines.append("exec /usr/sbin/sshd -D -e -f /etc/ssh/fleet/sshd_config")
        return "\n".join(lines) + "\n"

    def _wait_ready(
        self, started: dict[str, tuple[subprocess.Popen[bytes], Path]], state: dict[str, Any], timeout: float
    ) -> None:
        pending = dict(started)
        deadline = time.monotonic() + timeout
        while pending:
            for name, (proc, log) in list(pending.items()):
                text = log.read_text(errors="replace")
                if READY_LINE in text:
                    state["hosts"][name]["mnt_ns"] = os.readlink(f"/proc/{proc.pid}/ns/mnt")
                    del pending[name]
                elif proc.poll() is not None:
                    raise FleetError(
                        f"Simulated host {name} did not start: its init exited {proc.returncode}; log {log}: "
                        f"{text.strip()[-800:]}; expected sshd listening on 127.0.0.1:22 in netns "
                        f"{state['hosts'][name]['netns']}; fix the cause shown in the log."
                    )
            if pending and time.monotonic() > deadline:
                raise FleetError(
                    f"Simulated hosts {sorted(pending)} not ready after {timeout:.0f} s: no '{READY_LINE}' in their "
                    f"sshd.log under {self.workdir}/hosts; expected sshd to start in well under a second; "
                    "read the logs, then run fleetctl down."
                )
            time.sleep(0.01)
        self._write_state(state)

    def _write_inventory(self, hosts: list[HostSpec], state: dict[str, Any], key: Path, python: Path) -> None:
        groups: dict[str, dict[str, Any]] = {"cpu": {}, "dgpu": {}, "jetson": {}}
        for spec in hosts:
            netns = state["hosts"][spec.name]["netns"]
            host_vars: dict[str, Any] = {
                "ansible_host": spec.name,
                "ansible_connection": "ssh",
                "ansible_user": "root",
                "ansible_ssh_private_key_file": str(key),
                "ansible_ssh_common_args": (
                    f'-o ProxyCommand="ip netns exec {netns} nc 127.0.0.1 22" '
                    f"-o UserKnownHostsFile={self.workdir}/known_hosts -o StrictHostKeyChecking=yes "
                    f"-o ControlPath={self.workdir}/cp/%h"
                ),
                "ansible_python_interpreter": str(python),
            }
            if spec.profile == "jetson":
                host_vars["triton_host_arch"] = "aarch64"
            groups[spec.group][spec.name] = host_vars
        inventory = {"all": {"children": {group: {"hosts": members} for group, members in groups.items() if members}}}
        header = (
            f"# Simulated fleet {state['prefix']}: written by tests/fleet (fleetctl up); removed by fleetctl down.\n"
        )
        self.inventory_path.write_text(header + yaml.safe_dump(inventory, sort_keys=False, width=1000))

    # ---- down --------------------------------------------------------------------------
    def down(self) -> list[str]:
        """Stop every process, namespace and mount of this fleet and remove the workdir.

        Works on a half-created fleet and when nothing is left (then it does nothing).
        Returns a list of what was removed, for logs.
        """
        state = self.read_state()
        if state is None:
            return []
        done = self.close_control_masters()
        prefix = state["prefix"]
        hosts = [Host(**record) for record in state["hosts"].values()]
        namespaces = {h.netns for h in hosts} | {ns for ns in netns_list() if ns.startswith(prefix + "-")}
        pids: set[int] = set()
        for ns in namespaces:
            pids.update(netns_pids(ns))
        for h in hosts:
            if _is_ours(h.pid, h.pid_start):
                pids.add(h.pid)  # type: ignore[arg-type]
            if h.mnt_ns and _is_ours(h.pid, h.pid_start):
                pids.update(_mount_ns_pids(h.mnt_ns))
        pids.discard(os.getpid())
        left = _terminate(pids)
        if left:
            raise FleetError(
                f"Fleet {prefix}: processes {left} survived SIGKILL; expected none in the fleet's namespaces; "
                "check `ps -o pid,stat,cmd -p` for uninterruptible sleep (D), then rerun fleetctl down."
            )
        done += [f"killed {len(pids)} processes"] if pids else []
        current = set(netns_list())
        for ns in sorted(namespaces & current):
            _run(["ip", "netns", "del", ns])
            done.append(f"deleted netns {ns}")
        shutil.rmtree(self.workdir)
        done.append(f"removed {self.workdir}")
        return done

    def close_control_masters(self) -> list[str]:
        """Close the fleet's SSH ControlPersist masters (they outlive ansible-playbook by ControlPersist)."""
        closed = []
        cp_dir = self.workdir / "cp"
        for sock in sorted(cp_dir.iterdir()) if cp_dir.is_dir() else []:
            proc = subprocess.run(
                ["ssh", "-o", f"ControlPath={sock}", "-O", "exit", sock.name],
                capture_output=True, text=True, timeout=10, check=False,
            )  # fmt: skip
            if proc.returncode == 0:
                closed.append(f"closed SSH master {sock.name}")
        return closed

    # ---- status ------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        """Per-host state: netns present, sshd running, SSH port answering; ``{}`` with no fleet."""
        state = self.read_state()
        if state is None:
            return {}
        current = set(netns_list())
        hosts = {}
        for record in state["hosts"].values():
            h = Host(**record)
            present = h.netns in current
            answering = (
                present
                and _run(
                    ["ip", "netns", "exec", h.netns, "nc", "-z", "-w", "1", "127.0.0.1", "22"], check=False
                ).returncode
                == 0
            )
            hosts[h.name] = {
                "profile": h.profile,
                "netns": h.netns,
                "netns_present": present,
                "sshd_pid": h.pid if _is_ours(h.pid, h.pid_start) else None,
                "ssh_answering": answering,
            }
        return {
            "prefix": state["prefix"],
            "workdir": state["workdir"],
            "inventory": str(self.inventory_path),
            "hosts": hosts,
        }


def gc(root: Path, include_live: bool = False) -> dict[str, list[str]]:
    """Run ``down`` on every fleet whose state file is ``root`` or a direct child of it.

    A fleet whose recorded owner process still runs is skipped unless ``include_live``.
    Returns ``{workdir: [what was removed]}``.
    """
    removed: dict[str, list[str]] = {}
    candidates = [root, *sorted(p for p in root.iterdir() if p.is_dir())] if root.is_dir() else []
    for workdir in candidates:
        fleet = Fleet(workdir)
        state = fleet.read_state()
        if state is None:
            continue
        if not include_live and _is_ours(state.get("owner_pid"), state.get("owner_start")):
            continue
        removed[str(workdir)] = fleet.down()
    return removed


@contextlib.contextmanager
def running(hosts: list[HostSpec], workdir: Path, cache_dir: Path = CACHE_DIR) -> Iterator[Fleet]:
    """Context manager: a fleet that is up inside the ``with`` block and down after it."""
    fleet = Fleet(workdir, cache_dir)
    fleet.up(hosts, owner_pid=os.getpid())
    try:
        yield fleet
    finally:
        fleet.down()
