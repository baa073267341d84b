"""The simulated fleet (tests/fleet): namespace hosts over real SSH, profiles, fake NVML, teardown."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fleet import fakenvml
from fleet.fixtures import adhoc, fleet_factory  # noqa: F401  (fixture import)
from fleet.harness import REPO_ROOT, Fleet, FleetError, gc, netns_list, netns_pids, running, start_time
from fleet.profiles import JETSON_BOARDS, SpecError, parse_spec

pytestmark = pytest.mark.integration

SPEC = {
    "hosts": [
        {"name": "cpu-1", "profile": "cpu"},
        {"name": "orin-1", "profile": "jetson", "board": "agx-orin-jp62"},
        {"name": "gpu-1", "profile": "dgpu", "gpus": 2, "gpu_name": "NVIDIA RTX A4000", "compute_capability": "8.6"},
    ]
}
NVML_PROBE = (
    "import json, pynvml as n; n.nvmlInit(); "
    "hs = [n.nvmlDeviceGetHandleByIndex(i) for i in range(n.nvmlDeviceGetCount())]; "
    "print(json.dumps({'driver': n.nvmlSystemGetDriverVersion(), 'cuda': n.nvmlSystemGetCudaDriverVersion_v2(), "
    "'gpus': [[n.nvmlDeviceGetName(h), n.nvmlDeviceGetUUID(h), n.nvmlDeviceGetPciInfo(h).busId, "
    "list(n.nvmlDeviceGetCudaComputeCapability(h)), n.nvmlDeviceGetMemoryInfo(h).total >> 20, "
    "n.nvmlDeviceGetMigMode(h)[0]] for h in hs]}))"
)
# Run with LD_LIBRARY_PATH at the built library and FAKE_NVML_CONFIG at a gpus.conf.
DIRECT_PROBE = """
import json
import pynvml as n

n.nvmlInit()
h = n.nvmlDeviceGetHandleByIndex(1)
mem = n.nvmlDeviceGetMemoryInfo(h)
try:
    n.nvmlDeviceGetBrand(h)
    missing = None
except n.NVMLError_FunctionNotFound:
    missing = "brand"
print(json.dumps({
    "count": n.nvmlDeviceGetCount(),
    "index": n.nvmlDeviceGetIndex(h),
    "cuda": n.nvmlSystemGetCudaDriverVersion(),
    "nvml": n.nvmlSystemGetNVMLVersion(),
    "mig": n.nvmlDeviceGetMigMode(h),
    "procs": [(p.pid, p.usedGpuMemory >> 20) for p in n.nvmlDeviceGetComputeRunningProcesses(h)],
    "procs0": n.nvmlDeviceGetComputeRunningProcesses(n.nvmlDeviceGetHandleByIndex(0)),
    "used": mem.used >> 20,
    "free": mem.free >> 20,
    "legacy": n.nvmlDeviceGetPciInfo(h).busIdLegacy,
    "missing": missing,
}))
n.nvmlShutdown()
try:
    n.nvmlDeviceGetCount()
except n.NVMLError_Uninitialized:
    print("uninitialized after shutdown")
"""
ORIN_RELEASE_LINE = (
    "# R36 (release), REVISION: 4.3, GCID: 38968081, BOARD: generic, EABI: aarch64, DATE: Wed Jan  8 01:49:37 UTC 2025"
)


def _processes_mentioning(text: str) -> list[int]:
    """Pids whose command line or mount table mentions ``text`` (sshd, ssh masters, overlays)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            mounts = (entry / "mountinfo").read_text(errors="replace")
        except OSError:
            continue
        if text in cmdline or text in mounts:
            found.append(int(entry.name))
    return found


def _assert_gone(workdir: Path, state: dict) -> None:
    assert not [ns for ns in netns_list() if ns.startswith(state["prefix"] + "-")]
    # A zombie counts as gone: PID 1 here reaps orphans (fleetctl's sshd) only lazily.
    assert [h["pid"] for h in state["hosts"].values() if h["pid"] and start_time(h["pid"]) is not None] == []
    assert _processes_mentioning(str(workdir)) == []
    assert str(workdir) not in Path("/proc/self/mountinfo").read_text()
    assert not workdir.exists()


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    with running(parse_spec(SPEC), tmp_path_factory.mktemp("fleet")) as started:
        state = started.read_state()
        yield started
    # After down: an error here fails the module's last test (teardown).
    _assert_gone(started.workdir, state)


def test_hosts_answer_over_ssh_with_their_own_hostnames(fleet: Fleet) -> None:
    pings = adhoc(fleet.inventory_path, "all", "ansible.builtin.ping")
    assert {host: result.get("ping") for host, result in pings.items()} == {
        h: "pong" for h in ("cpu-1", "orin-1", "gpu-1")
    }
    names = adhoc(fleet.inventory_path, "all", "ansible.builtin.command", "hostname")
    assert {host: result["stdout"] for host, result in names.items()} == {
        "cpu-1": "cpu-1",
        "orin-1": "orin-1",
        "gpu-1": "gpu-1",
    }


def test_inventory_groups_and_ssh_args(fleet: Fleet) -> None:
    inventory = fleet.inventory_path.read_text()
    prefix = fleet.read_state()["prefix"]
    for host in ("cpu-1", "orin-1", "gpu-1"):
        assert f'ProxyCommand="ip netns exec {prefix}-{host} nc 127.0.0.1 22"' in inventory
    assert "triton_host_arch: aarch64" in inventory
    out = subprocess.run(
        [str(REPO_ROOT / ".venv" / "bin" / "ansible-inventory"), "-i", str(fleet.inventory_path), "--list"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    groups = json.loads(out)
    assert (
        groups["jetson"]["hosts"] == ["orin-1"]
        and groups["dgpu"]["hosts"] == ["gpu-1"]
        and groups["cpu"]["hosts"] == ["cpu-1"]
    )
    assert groups["_meta"]["hostvars"]["orin-1"]["triton_host_arch"] == "aarch64"
    assert "triton_host_arch" not in groups["_meta"]["hostvars"]["gpu-1"]


def test_etc_written_on_one_host_is_private_to_it(fleet: Fleet) -> None:
    marker = f"/etc/tf-isolation-{os.getpid()}"
    written = adhoc(fleet.inventory_path, "cpu-1", "ansible.builtin.copy", f"dest={marker} content=cpu-1 mode=0644")
    assert written["cpu-1"]["changed"] is True
    seen = adhoc(fleet.inventory_path, "all", "ansible.builtin.stat", f"path={marker}")
    assert {host: result["stat"]["exists"] for host, result in seen.items()} == {
        "cpu-1": True,
        "orin-1": False,
        "gpu-1": False,
    }
    assert not Path(marker).exists()


def test_only_the_network_of_its_own_loopback(fleet: Fleet) -> None:
    links = adhoc(fleet.inventory_path, "all", "ansible.builtin.command", "ip -o link show")
    for host, result in links.items():
        names = [line.split(":")[1].strip() for line in result["stdout"].splitlines()]
        assert names == ["lo"], host


def test_dgpu_host_sees_its_gpus_through_pynvml(fleet: Fleet) -> None:
    spec = {h.name: h for h in parse_spec(SPEC)}["gpu-1"]
    probe = adhoc(
        fleet.inventory_path,
        "all",
        "ansible.builtin.command",
        f'"{{{{ ansible_python_interpreter }}}}" -c "{NVML_PROBE}"',
    )
    report = json.loads(probe["gpu-1"]["stdout"])
    assert report == {
        "driver": "550.54.15",
        "cuda": 12040,
        "gpus": [[g.name, g.uuid, g.pci_bus_id, [8, 6], g.memory_mib, 0] for g in spec.gpus],
    }
    assert len(report["gpus"]) == 2
    # The library exists only in gpu-1's /usr: the other hosts get the production "not found".
    for host in ("cpu-1", "orin-1"):
        assert probe[host]["rc"] == 1 and "NVMLError_LibraryNotFound" in probe[host]["stderr"], host
    version = adhoc(fleet.inventory_path, "gpu-1", "ansible.builtin.slurp", "src=/proc/driver/nvidia/version")
    assert base64.b64decode(version["gpu-1"]["content"]).startswith(
        b"NVRM version: NVIDIA UNIX x86_64 Kernel Module  550.54.15 "
    )


def test_jetson_host_sees_its_release_device_tree_and_dpkg(fleet: Fleet) -> None:
    board = JETSON_BOARDS["agx-orin-jp62"]
    files = {}
    for path in (
        "/etc/nv_tegra_release",
        "/sys/firmware/devicetree/base/model",
        "/sys/firmware/devicetree/base/compatible",
    ):
        result = adhoc(fleet.inventory_path, "orin-1", "ansible.builtin.slurp", f"src={path}")["orin-1"]
        files[path] = base64.b64decode(result["content"])
    assert files["/etc/nv_tegra_release"].decode().splitlines()[0] == ORIN_RELEASE_LINE
    assert files["/sys/firmware/devicetree/base/model"] == b"NVIDIA Jetson AGX Orin Developer Kit\0"
    assert files["/sys/firmware/devicetree/base/compatible"].split(b"\0")[:-1] == [c.encode() for c in board.compatible]
    dpkg = adhoc(
        fleet.inventory_path,
        "all",
        "ansible.builtin.command",
        "dpkg-query --showformat=${Version} --show nvidia-l4t-core",
    )
    assert dpkg["orin-1"]["stdout"] == "36.4.3-20250107174145"
    assert dpkg["cpu-1"]["rc"] == 1 and dpkg["gpu-1"]["rc"] == 1
    # Device nodes are absent unless the spec asks for them.
    nodes = adhoc(fleet.inventory_path, "orin-1", "ansible.builtin.stat", "path=/dev/nvgpu/igpu0/ctrl")
    assert nodes["orin-1"]["stat"]["exists"] is False


def test_device_nodes_when_asked_and_down_leaves_nothing(fleet_factory) -> None:  # noqa: F811
    started = fleet_factory(
        {"hosts": [{"name": "gpu-2", "profile": "dgpu", "gpus": 2, "device_nodes": True, "nvml": False}]}
    )
    result = adhoc(
        started.inventory_path, "gpu-2", "ansible.builtin.shell",
        "stat -c '%F %t' /dev/nvidia0 /dev/nvidia1 /dev/nvidiactl; ls /usr/lib/x86_64-linux-gnu/libnvidia-ml.so.1",
    )["gpu-2"]  # fmt: skip
    assert result["stdout_lines"] == ["character special file f0"] * 3
    assert "No such file" in result["stderr"]
    assert not Path("/dev/nvidia0").exists()

    state = started.read_state()
    sshd = state["hosts"]["gpu-2"]["pid"]
    # Before down the overlays are visible in sshd's mount table: the check below can fail.
    assert str(started.workdir) in Path(f"/proc/{sshd}/mountinfo").read_text()
    assert (started.workdir / "cp" / "gpu-2").is_socket()
    started.down()
    _assert_gone(started.workdir, state)
    assert started.down() == []


def test_down_cleans_after_a_killed_sshd_and_a_half_created_host(fleet_factory) -> None:  # noqa: F811
    started = fleet_factory({"hosts": [{"name": "cpu-2", "profile": "cpu"}, {"name": "cpu-3", "profile": "cpu"}]})
    # A daemon left running inside cpu-2, as a service role would leave one.
    adhoc(started.inventory_path, "cpu-2", "ansible.builtin.shell", "setsid sleep 600 </dev/null >/dev/null 2>&1 &")
    state = started.read_state()
    os.kill(state["hosts"]["cpu-2"]["pid"], signal.SIGKILL)
    # A crash between `ip netns add` and the host's start leaves a namespace with no process.
    ghost = f"{state['prefix']}-ghost"
    subprocess.run(["ip", "netns", "add", ghost], check=True)
    state["hosts"]["ghost"] = {
        "name": "ghost",
        "netns": ghost,
        "profile": "cpu",
        "pid": None,
        "pid_start": None,
        "mnt_ns": None,
    }
    started.state_path.write_text(json.dumps(state))
    in_cpu2 = netns_pids(f"{state['prefix']}-cpu-2")
    assert any(b"sleep\x00600" in Path(f"/proc/{pid}/cmdline").read_bytes() for pid in in_cpu2)

    removed = started.down()
    assert f"deleted netns {ghost}" in removed
    _assert_gone(started.workdir, state)
    assert started.down() == []


def test_failed_up_removes_what_it_started(tmp_path: Path) -> None:
    fleet = Fleet(tmp_path / "fleet")
    before = set(netns_list())
    # sshd cannot be ready within zero seconds: up fails after starting the host process.
    with pytest.raises(FleetError, match=r"not ready after 0 s"):
        fleet.up(parse_spec({"hosts": [{"name": "gpu-3", "profile": "dgpu"}]}), timeout=0)
    # Other runs may add namespaces meanwhile; none of ours (named ...-gpu-3) may stay.
    assert [ns for ns in set(netns_list()) - before if ns.endswith("-gpu-3")] == []
    assert not fleet.workdir.exists()
    assert _processes_mentioning(str(fleet.workdir)) == []


def test_fleetctl_up_status_down_and_gc(tmp_path: Path) -> None:
    spec = tmp_path / "spec.yml"
    spec.write_text("hosts:\n  - {name: nano-1, profile: jetson, board: orin-nano-jp61}\n")
    fleetctl = str(REPO_ROOT / "tests" / "fleet" / "fleetctl")
    root = tmp_path / "fleets"
    workdir = root / "one"
    t0 = time.monotonic()
    up = subprocess.run(
        [fleetctl, "up", "--spec", str(spec), "--workdir", str(workdir)], capture_output=True, text=True
    )
    assert up.returncode == 0, up.stderr
    assert time.monotonic() - t0 < 10
    status = subprocess.run([fleetctl, "status", "--workdir", str(workdir)], capture_output=True, text=True, check=True)
    assert "ssh_answering: true" in status.stdout
    state = json.loads((workdir / "fleet-state.json").read_text())
    # No owner pid was given: the fleet counts as a leftover for gc.
    collected = subprocess.run([fleetctl, "gc", "--root", str(root)], capture_output=True, text=True, check=True)
    assert str(workdir) in collected.stdout
    _assert_gone(workdir, state)
    down = subprocess.run([fleetctl, "down", "--workdir", str(workdir)], capture_output=True, text=True, check=True)
    assert down.stdout.strip() == "nothing to remove"


def test_gc_keeps_a_fleet_whose_owner_runs(fleet: Fleet) -> None:
    assert gc(fleet.workdir.parent) == {}
    assert fleet.read_state() is not None


def test_spec_errors_name_the_key_and_the_choices() -> None:
    with pytest.raises(SpecError, match=r"host orin-9 key board is invalid: found 'tx9'.*agx-orin-jp62"):
        parse_spec({"hosts": [{"name": "orin-9", "profile": "jetson", "board": "tx9"}]})
    with pytest.raises(SpecError, match=r"keys for profile cpu"):
        parse_spec({"hosts": [{"name": "cpu-9", "profile": "cpu", "gpus": 1}]})
    with pytest.raises(SpecError, match=r"unique host names"):
        parse_spec({"hosts": [{"name": "a", "profile": "cpu"}, {"name": "a", "profile": "cpu"}]})
    with pytest.raises(FleetError, match=r"lies under /var, which every simulated host overlays"):
        Fleet(Path("/var/tmp/fleet")).up(parse_spec({"hosts": [{"name": "a", "profile": "cpu"}]}))


def test_fake_nvml_through_pynvml_without_a_namespace(tmp_path: Path) -> None:
    library = fakenvml.build_library(tmp_path / "build")
    host = parse_spec(
        {"hosts": [{"name": "g", "profile": "dgpu", "gpus": 2, "mig_mode": "enabled", "cuda_driver_version": "12.6"}]}
    )[0]
    config = tmp_path / "gpus.conf"
    config.write_text(fakenvml.render_config(host) + "process: 1 | 4242 | 1024\n")
    env = {**os.environ, "LD_LIBRARY_PATH": str(library.parent), "FAKE_NVML_CONFIG": str(config)}
    out = subprocess.run(
        [sys.executable, "-c", DIRECT_PROBE], capture_output=True, text=True, env=env, check=True
    ).stdout.splitlines()
    assert json.loads(out[0]) == {
        "count": 2, "index": 1, "cuda": 12060, "nvml": "12.550.54.15", "mig": [1, 1], "procs": [[4242, 1024]],
        "used": 1024, "free": 40960 - 1024, "legacy": "0000:27:00.0", "missing": "brand", "procs0": [],
    }  # fmt: skip
    assert out[1] == "uninitialized after shutdown"

    config.write_text("driver_version: 550.54.15\ninit_error: 9\n")
    failed = subprocess.run(
        [sys.executable, "-c", "import pynvml as n; n.nvmlInit()"], capture_output=True, text=True, env=env
    )
    assert "NVMLError_DriverNotLoaded" in failed.stderr
    config.write_text("gpu: 0 | only four | fields | here\n")
    broken = subprocess.run(
        [sys.executable, "-c", "import pynvml as n; n.nvmlInit()"], capture_output=True, text=True, env=env
    )
    assert "line 1 is not valid" in broken.stderr and "NVMLError_Unknown" in broken.stderr
