"""Unit tests for module_utils/triton_container_engine.py: host files parsed, engine settings decided.

The inputs are the files as the kernel, podman, docker and dpkg write them (the hybrid layout,
limits and CapEff are this development machine's); the expected decisions follow podman 4.3.1,
runc and crun 1.8.1 as docs/containers.md cites them.
"""

from __future__ import annotations

import pytest
from ansible.module_utils import triton_container_engine as tce

HYBRID_MOUNTS = """\
tmpfs /sys/fs/cgroup tmpfs rw,relatime,mode=755 0 0
cgroup /sys/fs/cgroup/cpu cgroup rw,relatime,cpu 0 0
cgroup /sys/fs/cgroup/memory cgroup rw,relatime,memory 0 0
cgroup /sys/fs/cgroup/systemd cgroup rw,relatime,name=systemd 0 0
cgroup2 /sys/fs/cgroup/unified cgroup2 rw,relatime 0 0
"""
UNIFIED_MOUNTS = "cgroup2 /sys/fs/cgroup cgroup2 rw,nosuid,nodev,noexec,relatime,nsdelegate 0 0\n"
LEGACY_MOUNTS = "tmpfs /sys/fs/cgroup tmpfs ro 0 0\ncgroup /sys/fs/cgroup/memory cgroup rw,memory 0 0\n"
LIMITS = """\
Limit                     Soft Limit           Hard Limit           Units
Max cpu time              unlimited            unlimited            seconds
Max processes             96363                96363                processes
Max open files            20000                20000                files
Max locked memory         8388608              8388608              bytes
"""
UNLIMITED = "Max processes             unlimited            unlimited            processes\n"
# CapEff of root on the development machine: every capability but CAP_SYS_RESOURCE (bit 24).
STATUS_NO_SYS_RESOURCE = "Name:\tcat\nCapInh:\t0000000000000000\nCapEff:\t000001fffeffffff\n"
STATUS_FULL = "CapEff:\t000001ffffffffff\n"

HERE = {
    "live": True,
    "cgroup_layout": "hybrid",
    "unified_controllers": ["hugetlb"],
    "pid1": "process_api",
    "hard_limits": {"nofile": 20000, "nproc": 96363},
    "pid_max": 32768,
    "sys_resource": False,
    "runtime_paths": {"runc": "/usr/bin/runc"},
}
SYSTEMD_HOST = {
    "cgroup_layout": "unified",
    "unified_controllers": [],
    "pid1": "systemd",
    "hard_limits": {"nofile": 1048576, "nproc": None},
    "pid_max": 4194304,
    "sys_resource": True,
    "runtime_paths": {"crun": "/usr/bin/crun", "runc": "/usr/bin/runc"},
}
DEBIAN_CONF = """\
[containers]
# default_ulimits = [
#  "nofile=1280:2560",
#]
[engine]
#runtime = "crun"
#cgroup_manager = "systemd"
"""


@pytest.mark.parametrize(
    ("mounts", "layout"),
    [(HYBRID_MOUNTS, "hybrid"), (UNIFIED_MOUNTS, "unified"), (LEGACY_MOUNTS, "legacy"), ("", None), (None, None)],
    ids=["hybrid", "unified", "legacy", "empty", "unreadable"],
)
def test_cgroup_layout_follows_crun_detection(mounts, layout):
    assert tce.parse_cgroup_layout(mounts) == layout


def test_hard_limits_and_capabilities():
    assert tce.parse_hard_limits(LIMITS) == {"nofile": 20000, "nproc": 96363}
    assert tce.parse_hard_limits(UNLIMITED) == {"nofile": None, "nproc": None}
    assert tce.parse_hard_limits(None) == {"nofile": None, "nproc": None}
    assert tce.has_capability(STATUS_NO_SYS_RESOURCE, tce.CAP_SYS_RESOURCE) is False
    assert tce.has_capability(STATUS_FULL, tce.CAP_SYS_RESOURCE) is True
    assert tce.has_capability("Name:\tx\n", tce.CAP_SYS_RESOURCE) is None


def test_containers_conf_subset():
    text = """\
# comment
[containers]
default_ulimits = [
  "nofile=1280:2560",  # a comment
  "nproc=4096:4096",
]
netns = "host"   # inline comment
[engine]
runtime = "runc"
cgroup_manager="cgroupfs"
num_locks = 2048
no_pivot_root = false
[engine.runtimes]
nvidia = ["/usr/bin/nvidia-container-runtime"]
"""
    assert tce.parse_containers_conf(text) == {
        "containers.default_ulimits": ["nofile=1280:2560", "nproc=4096:4096"],
        "containers.netns": "host",
        "engine.runtime": "runc",
        "engine.cgroup_manager": "cgroupfs",
        "engine.num_locks": 2048,
        "engine.no_pivot_root": False,
        "engine.runtimes.nvidia": ["/usr/bin/nvidia-container-runtime"],
    }
    assert tce.parse_containers_conf(DEBIAN_CONF) == {}


def test_later_containers_conf_wins():
    merged = tce.merge_containers_conf(['[engine]\nruntime = "crun"\n', '[engine]\nruntime = "runc"\n'])
    assert merged == {"engine.runtime": "runc"}


def test_package_versions():
    dpkg = {"podman": {"version": "4.3.1+ds1-8+deb12u1+b3", "architecture": "amd64"}}
    assert tce.package_version(dpkg, "podman") == "4.3.1"
    assert tce.package_version({"docker-ce": {"version": "5:27.3.1-1~debian.12~bookworm"}}, "docker") == "27.3.1"
    assert tce.package_version({}, "docker") is None


def test_podman_here_runs_with_runc_cgroupfs_and_clamped_limits():
    engine = tce.podman_engine("/usr/bin/podman", "4.3.1", {}, HERE)
    assert engine["can_run"] is True
    assert engine["problems"] == []
    assert engine["default_runtime"] == "runc"  # crun is not installed: podman's search finds runc
    assert engine["global_args"] == ["--runtime", "runc", "--cgroup-manager", "cgroupfs"]
    # nofile: the hard limit; nproc: podman lowers its own to pid_max (32768), below the hard 96363.
    assert engine["run_args"] == ["--ulimit", "nofile=20000:20000", "--ulimit", "nproc=32768:32768"]
    assert len(engine["notes"]) == 1
    assert "CAP_SYS_RESOURCE False" in engine["notes"][0]
    assert "nofile 20000" in engine["notes"][0] and "pid_max 32768" in engine["notes"][0]


def test_docker_limits_are_not_capped_by_pid_max():
    engine = tce.docker_engine("/usr/bin/docker", None, {}, True, HERE)
    assert engine["run_args"] == ["--ulimit", "nofile=20000:20000", "--ulimit", "nproc=96363:96363"]


def test_podman_default_crun_on_hybrid_with_controllers_switches_to_runc():
    host = dict(HERE, runtime_paths={"crun": "/usr/bin/crun", "runc": "/usr/bin/runc"})
    engine = tce.podman_engine("/usr/bin/podman", "4.3.1", {}, host)
    assert engine["default_runtime"] == "crun"
    assert engine["runtime"] == "runc"
    assert engine["can_run"] is True
    assert any("cgroups in hybrid mode not supported" in note and "--runtime runc" in note for note in engine["notes"])


def test_crun_on_hybrid_without_cgroup2_controllers_is_fine():
    host = dict(HERE, unified_controllers=[], runtime_paths={"crun": "/usr/bin/crun"})
    engine = tce.podman_engine("/usr/bin/podman", "4.3.1", {}, host)
    assert engine["runtime"] == "crun"
    assert engine["can_run"] is True


def test_podman_with_only_crun_on_hybrid_is_refused_with_the_fix():
    host = dict(HERE, runtime_paths={"crun": "/usr/bin/crun"})
    engine = tce.podman_engine("/usr/bin/podman", "4.3.1", {}, host)
    assert engine["can_run"] is False
    assert engine["global_args"] == []
    (problem,) = engine["problems"]
    assert problem.startswith("podman cannot start the server's container here: crun refuses this hybrid")
    assert "Found: runtimes crun (/usr/bin/crun), cgroup layout hybrid" in problem
    assert "Supported: runc on any cgroup layout" in problem
    assert "Fix: install runc (apt-get install runc)" in problem


def test_podman_without_any_runtime_is_refused():
    engine = tce.podman_engine("/usr/bin/podman", None, {}, dict(HERE, runtime_paths={}))
    assert engine["can_run"] is False
    assert "no OCI runtime is installed" in engine["problems"][0]


def test_podman_configured_runtime_missing_falls_back():
    engine = tce.podman_engine("/usr/bin/podman", "4.3.1", {"engine.runtime": "crun"}, HERE)
    assert engine["default_runtime"] == "crun"
    assert engine["runtime"] == "runc"
    assert "default OCI runtime crun not found" in engine["notes"][0]


def test_podman_configured_systemd_manager_without_systemd_gets_cgroupfs():
    engine = tce.podman_engine("/usr/bin/podman", "4.3.1", {"engine.cgroup_manager": "systemd"}, HERE)
    assert engine["default_cgroup_manager"] == "systemd"
    assert engine["cgroup_manager"] == "cgroupfs"
    assert any("systemd not running on this host" in note for note in engine["notes"])


def test_podman_on_a_systemd_host_keeps_its_defaults():
    engine = tce.podman_engine("/usr/bin/podman", "4.9.3", {}, SYSTEMD_HOST)
    assert engine["global_args"] == ["--runtime", "crun", "--cgroup-manager", "systemd"]
    assert engine["run_args"] == ["--ulimit", "nofile=1048576:1048576", "--ulimit", "nproc=1048576:1048576"]
    assert engine["notes"] == []
    assert tce.container_ulimits({"nofile": None, "nproc": None}, 32768) == {"nofile": 1048576, "nproc": 32768}
    assert engine["can_run"] is True


def test_the_running_host_without_a_cgroup_filesystem_is_refused_with_the_fix():
    """A simulated fleet host: `ip netns exec` gives it a /sys of its own, without the cgroup mounts."""
    host = dict(HERE, cgroup_layout=None, unified_controllers=[])
    for engine in (
        tce.podman_engine("/usr/bin/podman", None, {}, host),
        tce.docker_engine("/usr/bin/docker", None, {}, True, host),
    ):
        assert engine["can_run"] is False
        (problem,) = engine["problems"]
        assert "no cgroup filesystem is mounted at /sys/fs/cgroup" in problem
        assert "Supported: cgroup v2, v1 or the hybrid" in problem and "Fix: mount the cgroup hierarchy" in problem


def test_not_the_running_host_is_not_judged():
    host = dict(HERE, live=False, cgroup_layout=None, hard_limits={"nofile": None, "nproc": None}, sys_resource=None)
    assert tce.podman_engine("/usr/bin/podman", None, {}, host)["can_run"] is None
    assert tce.docker_engine("/usr/bin/docker", None, {}, None, host)["can_run"] is None


def test_docker_without_daemon_is_refused_with_the_fix():
    engine = tce.docker_engine("/usr/local/bin/docker", None, {}, False, HERE)
    assert engine["can_run"] is False
    (problem,) = engine["problems"]
    assert "its daemon is not running" in problem
    assert "Found: no answering socket at /run/docker.sock" in problem
    assert "Fix: start docker" in problem


def test_docker_daemon_runtimes_and_cgroup_driver():
    daemon = {
        "default-runtime": "crun",
        "runtimes": {"nvidia": {"path": "nvidia-container-runtime"}},
        "exec-opts": ["native.cgroupdriver=systemd"],
    }
    engine = tce.docker_engine("/usr/bin/docker", "27.3.1", daemon, True, dict(HERE, sys_resource=True))
    assert engine["runtimes"] == ["nvidia", "runc"]
    assert engine["runtime"] == "runc"  # crun refuses the hybrid layout; runc is always registered
    assert engine["run_args"][:2] == ["--runtime", "runc"]
    assert engine["cgroup_manager"] == "systemd"
    assert engine["global_args"] == []
    assert engine["can_run"] is True


def test_daemon_json_errors_are_reported_not_raised():
    assert tce.parse_daemon_json(None) == ({}, None)
    assert tce.parse_daemon_json('{"default-runtime": "runc"}') == ({"default-runtime": "runc"}, None)
    assert tce.parse_daemon_json("{oops")[1].startswith("etc/docker/daemon.json is not JSON")
    assert tce.parse_daemon_json("[]")[1] == "etc/docker/daemon.json is not a JSON object"


def test_unsupported_engine_is_listed_never_used():
    engine = tce.unsupported_engine("nerdctl", "/usr/local/bin/nerdctl", None)
    assert engine["can_run"] is False
    assert "Supported: docker, podman" in engine["problems"][0]


def test_engine_records_have_one_schema():
    records = [
        tce.podman_engine("/usr/bin/podman", "4.3.1", {}, HERE),
        tce.docker_engine("/usr/bin/docker", None, {}, False, HERE),
        tce.unsupported_engine("nerdctl", "/usr/bin/nerdctl", None),
    ]
    assert {tuple(record) for record in records} == {tuple(records[0])}
    assert [tce.engine_summary(r) for r in records] == [
        "podman 4.3.1 at /usr/bin/podman: runtime runc, cgroup manager cgroupfs, can run containers",
        "docker (version unknown) at /usr/bin/docker: runtime runc, cgroup manager cgroupfs, cannot run containers",
        "nerdctl (version unknown) at /usr/bin/nerdctl: cannot run containers",
    ]
