# SPDX-License-Identifier: Apache-2.0
"""Container engines on a host: what docker or podman would do by default, and how tritonfleet runs them.

``triton_host_facts`` reads the files (``triton_host.probe_container_engines``); the functions
here are pure and decide, once per host, with which settings each engine can start the server's
container and why not when it cannot (``triton_host.container_engines``, docs/containers.md).
The install role, the service's launcher and removal use ``global_args`` and ``run_args``
verbatim; preflight refuses with ``problems``.

Upstream behaviour the rules follow (sources in docs/containers.md):

- podman 4.3 reads ``/usr/share/containers/containers.conf``, ``/etc/containers/containers.conf``
  and ``/etc/containers/containers.conf.d/*.conf`` in that order, later values winning
  (``$CONTAINERS_CONF`` replaces them all). Without ``engine.runtime`` it runs the first OCI runtime
  it finds in the order crun, runc, runj, kata, runsc; without ``engine.cgroup_manager`` it uses
  systemd when ``/proc/1/comm`` is ``systemd``, else cgroupfs.
- runc refuses the systemd cgroup manager when systemd is not running ("systemd not running on
  this host, cannot use systemd cgroups manager").
- crun 1.8 refuses a hybrid cgroup layout (cgroup v1 controllers on ``/sys/fs/cgroup``, cgroup2 on
  ``/sys/fs/cgroup/unified``) whose cgroup2 part has controllers: "cgroups in hybrid mode not
  supported, drop all controllers from cgroupv2".
- podman gives a root container RLIMIT_NOFILE and RLIMIT_NPROC of 1048576 unless ``--ulimit`` or
  ``containers.default_ulimits`` says otherwise; above the hard limit of the calling process and
  without CAP_SYS_RESOURCE the runtime fails ("error setting rlimit type 7: operation not
  permitted"). podman also sets its own RLIMIT_NPROC to the kernel's ``pid_max`` when it starts,
  which caps nproc further. tritonfleet passes both limits, clamped to what can be set, to every
  engine.
- docker runs containers through its daemon (``/run/docker.sock``) with the daemon's
  ``default-runtime`` (runc unless ``/etc/docker/daemon.json`` says otherwise).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

SUPPORTED_ENGINES = ("docker", "podman")
# containers/common v0.50 (podman 4.3) EngineConfig.findRuntime order and default OCIRuntimes paths.
PODMAN_RUNTIME_ORDER = ("crun", "runc", "runj", "kata", "runsc")
OCI_RUNTIME_PATHS: dict[str, tuple[str, ...]] = {
    "crun": (
        "/usr/bin/crun",
        "/usr/sbin/crun",
        "/usr/local/bin/crun",
        "/usr/local/sbin/crun",
        "/sbin/crun",
        "/bin/crun",
        "/run/current-system/sw/bin/crun",
    ),
    "runc": (
        "/usr/bin/runc",
        "/usr/sbin/runc",
        "/usr/local/bin/runc",
        "/usr/local/sbin/runc",
        "/sbin/runc",
        "/bin/runc",
        "/usr/lib/cri-o-runc/sbin/runc",
    ),
}
# The runtimes tritonfleet runs the server with, in order of preference when the default cannot.
USABLE_RUNTIMES = ("runc", "crun")
PODMAN_CONF_FILES = ("usr/share/containers/containers.conf", "etc/containers/containers.conf")
PODMAN_CONF_DIR = "etc/containers/containers.conf.d"
DOCKER_DAEMON_JSON = "etc/docker/daemon.json"
DOCKER_SOCKETS = ("run/docker.sock", "var/run/docker.sock")
# podman's RLimitDefaultValue (libpod/define/config.go): root containers get this nofile and nproc.
PODMAN_DEFAULT_RLIMIT = 1048576
ULIMITS = ("nofile", "nproc")
ENGINE_PACKAGES = {"podman": ("podman",), "docker": ("docker-ce", "docker.io", "moby-engine")}
CAP_SYS_RESOURCE = 24

_LIMIT_NAMES = {"Max open files": "nofile", "Max processes": "nproc"}
_TOML_KEY = re.compile(r"^([A-Za-z0-9_.-]+|\"[^\"]*\")\s*=\s*(.*)$")


# --- host files ------------------------------------------------------------------------------


def parse_cgroup_layout(mounts: str | None) -> str | None:
    """Return ``unified``, ``hybrid`` or ``legacy`` from ``/proc/self/mounts``; None when unknown.

    The rule of crun's ``detect_cgroup_mode``: cgroup2 on ``/sys/fs/cgroup`` is unified; otherwise
    cgroup2 on ``/sys/fs/cgroup/unified`` is hybrid; otherwise cgroup v1 mounts are legacy.
    """
    if not mounts:
        return None
    types: dict[str, str] = {}
    for line in mounts.splitlines():
        fields = line.split()
        if len(fields) >= 3:
            types[fields[1]] = fields[2]
    if types.get("/sys/fs/cgroup") == "cgroup2":
        return "unified"
    if types.get("/sys/fs/cgroup/unified") == "cgroup2":
        return "hybrid"
    if any(kind == "cgroup" and point.startswith("/sys/fs/cgroup/") for point, kind in types.items()):
        return "legacy"
    return None


def parse_hard_limits(limits: str | None) -> dict[str, int | None]:
    """Return the hard ``nofile`` and ``nproc`` limits of ``/proc/self/limits`` (None: unlimited or unknown)."""
    found: dict[str, int | None] = dict.fromkeys(ULIMITS)
    for line in (limits or "").splitlines():
        for label, name in _LIMIT_NAMES.items():
            if line.startswith(label):
                fields = line[len(label) :].split()
                if len(fields) >= 2 and fields[1].isdigit():
                    found[name] = int(fields[1])
    return found


def has_capability(status: str | None, capability: int) -> bool | None:
    """Whether ``CapEff`` of a ``/proc/<pid>/status`` text holds ``capability``; None when unreadable."""
    for line in (status or "").splitlines():
        if line.startswith("CapEff:"):
            try:
                return bool(int(line.split()[1], 16) >> capability & 1)
            except (IndexError, ValueError):
                return None
    return None


def _toml_value(text: str) -> Any:
    text = text.strip()
    if text.startswith('"'):
        match = re.match(r'"([^"]*)"', text)
        return match[1] if match else text
    if text.startswith("["):
        return re.findall(r'"([^"]*)"', text.split("]", 1)[0])
    token = text.split("#", 1)[0].strip()
    if token in ("true", "false"):
        return token == "true"
    return int(token) if re.fullmatch(r"-?\d+", token) else token


def parse_containers_conf(text: str) -> dict[str, Any]:
    """Return the ``section.key`` values of a containers.conf (the TOML subset it uses).

    Strings, integers, booleans and arrays of strings (also over several lines); comments and
    anything else are skipped. ``[engine.runtimes]`` entries come back as ``engine.runtimes.<name>``.
    """
    values: dict[str, Any] = {}
    section = ""
    pending: tuple[str, str] | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if pending:
            key, collected = pending
            collected = f"{collected} {line}"
            if "]" in line.split("#", 1)[0]:
                values[key] = _toml_value(collected)
                pending = None
            else:
                pending = (key, collected)
            continue
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            section = line.split("]", 1)[0].strip("[ ")
            continue
        match = _TOML_KEY.match(line)
        if not match:
            continue
        name = match[1].strip('"')
        key = f"{section}.{name}" if section else name
        value = match[2].strip()
        if value.startswith("[") and "]" not in value.split("#", 1)[0]:
            pending = (key, value)
            continue
        values[key] = _toml_value(value)
    return values


def merge_containers_conf(texts: Sequence[str]) -> dict[str, Any]:
    """Merge containers.conf files in the order podman reads them: later values win."""
    merged: dict[str, Any] = {}
    for text in texts:
        merged.update(parse_containers_conf(text))
    return merged


def package_version(dpkg: Mapping[str, Mapping[str, str]], name: str) -> str | None:
    """The upstream version of the first installed package of engine ``name`` (``4.3.1+ds1-8`` -> ``4.3.1``)."""
    for package in ENGINE_PACKAGES.get(name, ()):
        if package in dpkg:
            match = re.match(r"(?:\d+:)?(\d+(?:\.\d+)*)", dpkg[package]["version"])
            return match[1] if match else dpkg[package]["version"]
    return None


# --- decisions -------------------------------------------------------------------------------


def runtime_problem(runtime: str, host: Mapping[str, Any]) -> str | None:
    """Why OCI runtime ``runtime`` cannot start a container on ``host``, or None when it can.

    ``host`` keys: ``cgroup_layout``, ``unified_controllers`` (the cgroup2 controllers of a
    hybrid layout).
    """
    if runtime not in USABLE_RUNTIMES:
        return f"tritonfleet runs the server with {' or '.join(USABLE_RUNTIMES)}, not {runtime}"
    if runtime == "crun" and host.get("cgroup_layout") == "hybrid" and host.get("unified_controllers"):
        return (
            "crun refuses this hybrid cgroup layout (cgroup2 on /sys/fs/cgroup/unified has controllers "
            f'{", ".join(host["unified_controllers"])}): "cgroups in hybrid mode not supported"'
        )
    return None


def container_ulimits(hard: Mapping[str, int | None], pid_max: int | None = None) -> dict[str, int]:
    """The nofile and nproc limits every container gets: the engines' 1048576, within the hard limits.

    ``pid_max`` caps nproc for podman: it sets its own RLIMIT_NPROC to the kernel's pid_max when it
    starts (containers/common ``getDefaultProcessLimits``), lowering it where the hard limit was
    higher, and no container of it can then be given more.
    """
    limits = {
        name: PODMAN_DEFAULT_RLIMIT if hard.get(name) is None else min(PODMAN_DEFAULT_RLIMIT, int(hard[name]))
        for name in ULIMITS
    }
    if pid_max:
        limits["nproc"] = min(limits["nproc"], pid_max)
    return limits


def ulimit_args(ulimits: Mapping[str, int]) -> list[str]:
    """``--ulimit name=N:N`` for each limit (soft = hard)."""
    args: list[str] = []
    for name in ULIMITS:
        args += ["--ulimit", f"{name}={ulimits[name]}:{ulimits[name]}"]
    return args


def _ulimit_note(engine: str, host: Mapping[str, Any], ulimits: Mapping[str, int]) -> list[str]:
    hard = host["hard_limits"]
    low = [name for name in ULIMITS if hard.get(name) is not None and hard[name] < PODMAN_DEFAULT_RLIMIT]
    capped = engine == "podman" and host.get("pid_max") and ulimits["nproc"] == host["pid_max"]
    if (not low or host.get("sys_resource") is not False) and not capped:
        return []
    limits = ", ".join(f"{name} {hard[name]}" for name in low) or "none lower"
    why = f"hard limits {limits} (/proc/self/limits), CAP_SYS_RESOURCE {host.get('sys_resource')}"
    if capped:
        why += f"; podman lowers its own nproc to the kernel's pid_max {host['pid_max']} (/proc/sys/kernel/pid_max)"
    return [
        f"{engine}: its default container limits (nofile, nproc {PODMAN_DEFAULT_RLIMIT}) can fail here "
        f'("error setting rlimit ... operation not permitted"): {why}; tritonfleet passes '
        f"{' '.join(ulimit_args(ulimits))}"
    ]


def _unknown(host: Mapping[str, Any]) -> bool:
    return host.get("cgroup_layout") is None or all(v is None for v in host["hard_limits"].values())


def cgroup_problem(engine: str, host: Mapping[str, Any]) -> list[str]:
    """On the running host (``host['live']``), no cgroup filesystem means no engine can create a container."""
    if not host.get("live") or host.get("cgroup_layout") is not None:
        return []
    return [
        f"{engine} cannot start the server's container here: no cgroup filesystem is mounted at /sys/fs/cgroup. "
        "Found: no cgroup or cgroup2 mount there in /proc/self/mounts. Supported: cgroup v2, v1 or the hybrid "
        "of both mounted at /sys/fs/cgroup, where OCI runtimes put every container. Fix: mount the cgroup "
        "hierarchy (systemd does at boot; a container or a network namespace with its own /sys needs it "
        "mounted), then rerun."
    ]


def podman_engine(path: str, version: str | None, conf: Mapping[str, Any], host: Mapping[str, Any]) -> dict[str, Any]:
    """The settings podman runs the server's container with on ``host``, with its problems and notes.

    ``conf`` is the merged containers.conf (:func:`merge_containers_conf`); ``host`` keys:
    ``live`` (the root is the running host), ``cgroup_layout``, ``unified_controllers``, ``pid1``
    (``/proc/1/comm``), ``hard_limits``, ``pid_max``,
    ``sys_resource`` (CAP_SYS_RESOURCE held) and ``runtime_paths`` (``{runtime: path}`` of the
    OCI runtimes whose binaries exist, from podman's search paths and ``engine.runtimes``).
    """
    found = dict(host["runtime_paths"])
    configured = conf.get("engine.runtime")
    default = configured or next((name for name in PODMAN_RUNTIME_ORDER if name in found), None)
    notes: list[str] = []
    problems: list[str] = []
    why_not = None
    if default is None:
        why_not = "no OCI runtime is installed"
    elif default not in found:
        why_not = f'its configured runtime {default} is not installed ("default OCI runtime {default} not found")'
    else:
        why_not = runtime_problem(default, host)
    runtime = default
    if why_not:
        runtime = next((name for name in USABLE_RUNTIMES if name in found and not runtime_problem(name, host)), None)
        if runtime:
            notes.append(f"podman: by default {why_not}; tritonfleet runs it with --runtime {runtime}")
        else:
            runtimes = ", ".join(f"{n} ({p})" for n, p in sorted(found.items())) or "none"
            problems.append(
                f"podman cannot start the server's container here: {why_not}. Found: runtimes {runtimes}, "
                f"cgroup layout {host.get('cgroup_layout') or 'unknown'} (/proc/self/mounts). Supported: runc on "
                "any cgroup layout, crun on unified or legacy layouts and on hybrid ones without cgroup2 "
                "controllers. Fix: install runc (apt-get install runc), then rerun."
            )
    default_manager = conf.get("engine.cgroup_manager") or ("systemd" if host.get("pid1") == "systemd" else "cgroupfs")
    manager = default_manager
    if default_manager == "systemd" and host.get("pid1") != "systemd":
        manager = "cgroupfs"
        notes.append(
            f"podman: containers.conf sets cgroup_manager systemd but PID 1 is {host.get('pid1') or 'unknown'} "
            '("systemd not running on this host, cannot use systemd cgroups manager"); tritonfleet passes '
            "--cgroup-manager cgroupfs"
        )
    ulimits = container_ulimits(host["hard_limits"], host.get("pid_max"))
    notes += _ulimit_note("podman", host, ulimits)
    problems += cgroup_problem("podman", host)
    global_args = ["--runtime", runtime, "--cgroup-manager", manager] if runtime else []
    return {
        "name": "podman",
        "path": path,
        "version": version,
        "default_runtime": default,
        "runtime": runtime,
        "runtimes": sorted(found),
        "default_cgroup_manager": default_manager,
        "cgroup_manager": manager,
        "ulimits": ulimits,
        "global_args": global_args,
        "run_args": ulimit_args(ulimits),
        "can_run": None if _unknown(host) and not problems else not problems,
        "problems": problems,
        "notes": notes,
    }


def parse_daemon_json(text: str | None) -> tuple[dict[str, Any], str | None]:
    """Return (settings, why unreadable) of docker's daemon.json; ({}, None) when absent."""
    if text is None:
        return {}, None
    try:
        data = json.loads(text)
    except ValueError as err:
        return {}, f"{DOCKER_DAEMON_JSON} is not JSON ({err})"
    return (data, None) if isinstance(data, dict) else ({}, f"{DOCKER_DAEMON_JSON} is not a JSON object")


def docker_engine(
    path: str, version: str | None, daemon: Mapping[str, Any], daemon_running: bool | None, host: Mapping[str, Any]
) -> dict[str, Any]:
    """The settings docker runs the server's container with on ``host``, with its problems and notes.

    ``daemon`` is daemon.json (:func:`parse_daemon_json`); ``daemon_running`` whether a daemon
    socket answered (None: not asked, the root is not the running host). ``host`` as for
    :func:`podman_engine`.
    """
    registered = sorted({"runc", *(daemon.get("runtimes") or {})})
    default = str(daemon.get("default-runtime") or "runc")
    notes: list[str] = []
    problems: list[str] = []
    run_args: list[str] = []
    runtime: str | None = default
    why_not = runtime_problem(default, host) if default in USABLE_RUNTIMES else None
    if why_not:
        runtime = next((n for n in USABLE_RUNTIMES if n in registered and not runtime_problem(n, host)), None)
        if runtime:
            notes.append(f"docker: by default {why_not}; tritonfleet runs it with --runtime {runtime}")
            run_args += ["--runtime", runtime]
        else:
            problems.append(
                f"docker cannot start the server's container here: {why_not}. Found: daemon runtimes "
                f"{', '.join(registered)} (/{DOCKER_DAEMON_JSON}). Supported: runc on any cgroup layout. "
                'Fix: set "default-runtime": "runc" in /etc/docker/daemon.json and restart docker, then rerun.'
            )
    if daemon_running is False:
        problems.append(
            "docker cannot start the server's container here: its daemon is not running. Found: no answering "
            f"socket at /{DOCKER_SOCKETS[0]} or /{DOCKER_SOCKETS[1]}. Supported: docker with a running dockerd. "
            "Fix: start docker (systemctl enable --now docker), or use podman (triton_container_engine: podman)."
        )
    exec_opts = [str(o) for o in daemon.get("exec-opts") or []]
    driver = next((o.split("=", 1)[1] for o in exec_opts if o.startswith("native.cgroupdriver=")), None)
    if driver is None:
        driver = "systemd" if host.get("cgroup_layout") == "unified" and host.get("pid1") == "systemd" else "cgroupfs"
    ulimits = container_ulimits(host["hard_limits"])
    notes += _ulimit_note("docker", host, ulimits)
    problems += cgroup_problem("docker", host)
    return {
        "name": "docker",
        "path": path,
        "version": version,
        "default_runtime": default,
        "runtime": runtime,
        "runtimes": registered,
        "default_cgroup_manager": driver,
        "cgroup_manager": driver,
        "ulimits": ulimits,
        "global_args": [],
        "run_args": [*run_args, *ulimit_args(ulimits)],
        "can_run": None if (_unknown(host) or daemon_running is None) and not problems else not problems,
        "problems": problems,
        "notes": notes,
    }


def unsupported_engine(name: str, path: str, version: str | None) -> dict[str, Any]:
    """The record of an engine tritonfleet does not drive (nerdctl): found, never used."""
    return {
        "name": name,
        "path": path,
        "version": version,
        "default_runtime": None,
        "runtime": None,
        "runtimes": [],
        "default_cgroup_manager": None,
        "cgroup_manager": None,
        "ulimits": None,
        "global_args": [],
        "run_args": [],
        "can_run": False,
        "problems": [
            f"{name} (found at {path}) is not an engine tritonfleet drives. Supported: "
            f"{', '.join(SUPPORTED_ENGINES)}. Fix: install podman or docker."
        ],
        "notes": [],
    }


def engine_summary(engine: Mapping[str, Any]) -> str:
    """One line for the facts' reasons and the preflight report."""
    name = f"{engine['name']} {engine['version'] or '(version unknown)'} at {engine['path']}"
    if engine["runtime"] is None and engine["can_run"] is False:
        return f"{name}: cannot run containers"
    state = {True: "can run containers", False: "cannot run containers", None: "not judged (no /proc under root)"}
    return f"{name}: runtime {engine['runtime']}, cgroup manager {engine['cgroup_manager']}, {state[engine['can_run']]}"
