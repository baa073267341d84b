"""Unit tests for module_utils/triton_device_check.py: device nodes, NVML and CUDA views against the plan."""

from __future__ import annotations

import grp
import os
import pwd
import types
from pathlib import Path

import pytest
from ansible.module_utils.triton_cuda import CudaError, CudaUnavailable
from ansible.module_utils.triton_device_check import access_for, access_for_user, check_devices, device_nodes
from fakes.fake_nvml import FakeNvml
from support.plans import base_host, dgpu_host, gpu, jetson_host, make_plan

# Plans as preflight makes them (tests/support/plans.py runs the real triton_compat).
GPU_PLAN = make_plan(dgpu_host([gpu(0, "NVIDIA A10", "8.6"), gpu(1, "NVIDIA A10", "8.6")]))
CPU_PLAN = make_plan(base_host())
JETSON_PLAN = make_plan(jetson_host("orin-jp6"), "24.08", "tarball")
X86_NODES = ("dev/nvidiactl", "dev/nvidia-uvm", "dev/nvidia0", "dev/nvidia1")
JETSON_NODES = ("dev/nvgpu/igpu0/ctrl", "dev/nvmap")
A10 = {"name": "NVIDIA A10", "compute_capability": "8.6"}
M60 = {"name": "Tesla M60", "compute_capability": "5.2"}
ORIN = {"name": "Orin", "compute_capability": "8.7"}


class FakeCuda:
    """CudaLike answering from data: ``init_error`` is 'missing' or a CUDA error code."""

    def __init__(self, devices=(), init_error=None):
        self._devices = [{"index": i, "uuid": f"GPU-{i}", **d} for i, d in enumerate(devices)]
        self.init_error = init_error

    def init(self):
        if self.init_error == "missing":
            raise CudaUnavailable("libcuda.so.1 not found")
        if self.init_error is not None:
            raise CudaError("cuInit", self.init_error, {100: "CUDA_ERROR_NO_DEVICE"}.get(self.init_error, "CUDA_ERROR"))

    def device_count(self):
        return len(self._devices)

    def devices(self):
        return list(self._devices)


def nvml_with(count: int) -> FakeNvml:
    devices = [
        {
            "name": "NVIDIA A10",
            "uuid": f"GPU-nvml-{i}",
            "pci_bus_id": f"00000000:0{i + 1}:00.0",
            "compute_capability": [8, 6],
            "memory_total_bytes": 24 << 30,
            "mig_mode": [0, 0],
        }
        for i in range(count)
    ]
    return FakeNvml({"driver_version": "550.54.15", "cuda_driver_version": 12040, "devices": devices})


NO_NVML = FakeNvml({"init_error": "LibraryNotFound"})


def make_root(tmp_path: Path, nodes) -> Path:
    for rel in nodes:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).touch()
    return tmp_path


def run(tmp_path, plan, nodes, nvml, cuda, environ=None, denied=()):
    root = make_root(tmp_path, nodes)
    return check_devices(
        plan,
        nvml,
        cuda,
        environ or {},
        str(root),
        access=lambda path, mode: Path(path).relative_to(root).as_posix() not in denied,
        gids={os.getegid()},
    )


def codes(result) -> list[tuple[str, str]]:
    return [(f["severity"], f["code"]) for f in result["findings"]]


CASES = [
    # (id, plan, nodes, nvml gpus (None: no NVML), cuda, environ, expected findings)
    ("gpu-plan-all-good", GPU_PLAN, X86_NODES, 2, FakeCuda([A10, A10]), {}, []),
    (
        "nvml-sees-gpus-cuda-none",
        GPU_PLAN,
        X86_NODES,
        2,
        FakeCuda(init_error=100),
        {"CUDA_VISIBLE_DEVICES": ""},
        [("error", "nvml_gpus_cuda_none")],
    ),
    ("libcuda-missing", GPU_PLAN, X86_NODES, None, FakeCuda(init_error="missing"), {}, [("error", "cuda_unavailable")]),
    ("no-device-at-all", GPU_PLAN, X86_NODES, None, FakeCuda(), {}, [("error", "gpu_plan_no_cuda_device")]),
    (
        "plan-gpu-not-visible",
        {**GPU_PLAN, "gpu_ids": [0, 2]},
        X86_NODES,
        2,
        FakeCuda([A10, A10]),
        {},
        [("error", "plan_gpu_not_visible")],
    ),
    (
        "unused-gpu-below-min-cc",
        {**GPU_PLAN, "gpu_ids": [0]},
        X86_NODES,
        2,
        FakeCuda([A10, M60]),
        {},
        [("warning", "gpu_below_min_cc")],
    ),
    ("planned-gpu-below-min-cc", GPU_PLAN, X86_NODES, 2, FakeCuda([A10, M60]), {}, [("error", "gpu_below_min_cc")]),
    (
        "nvml-cuda-count-mismatch",
        {**GPU_PLAN, "gpu_ids": [0]},
        X86_NODES,
        2,
        FakeCuda([A10]),
        {},
        [("warning", "nvml_cuda_count_mismatch")],
    ),
    (
        "visible-devices-explains-count",
        {**GPU_PLAN, "gpu_ids": [0]},
        X86_NODES,
        2,
        FakeCuda([A10]),
        {"CUDA_VISIBLE_DEVICES": "1"},
        [],
    ),
    (
        "cpu-plan-gpus-visible",
        CPU_PLAN,
        X86_NODES,
        2,
        FakeCuda([A10, A10]),
        {},
        [("error", "cpu_plan_gpus_visible")],
    ),
    ("cpu-plan-gpus-hidden", CPU_PLAN, X86_NODES, 2, FakeCuda(init_error=100), {"CUDA_VISIBLE_DEVICES": ""}, []),
    ("cpu-host", CPU_PLAN, (), None, FakeCuda(init_error="missing"), {}, []),
    (
        "uvm-node-missing",
        GPU_PLAN,
        ("dev/nvidiactl", "dev/nvidia0", "dev/nvidia1"),
        2,
        FakeCuda([A10, A10]),
        {},
        [("error", "device_node_missing")],
    ),
    (
        "jetson-nvgpu-nodes",
        JETSON_PLAN,
        JETSON_NODES,
        None,
        FakeCuda([ORIN]),
        {},
        [],
    ),
    (
        "jetson-legacy-ctrl-node",
        JETSON_PLAN,
        ("dev/nvhost-ctrl-gpu", "dev/nvmap"),
        None,
        FakeCuda([ORIN]),
        {},
        [],
    ),
    (
        "jetson-no-nodes",
        JETSON_PLAN,
        (),
        None,
        FakeCuda(init_error=100),
        {},
        [("error", "device_node_missing"), ("error", "device_node_missing"), ("error", "gpu_plan_no_cuda_device")],
    ),
    (
        "jetson-nano-below-min-cc",
        JETSON_PLAN,
        JETSON_NODES,
        None,
        FakeCuda([{"name": "NVIDIA Tegra X1", "compute_capability": "5.3"}]),
        {},
        [("error", "gpu_below_min_cc")],
    ),
]


@pytest.mark.parametrize(
    ("plan", "nodes", "nvml_gpus", "cuda", "environ", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_findings_compare_views_with_plan(tmp_path, plan, nodes, nvml_gpus, cuda, environ, expected):
    nvml = NO_NVML if nvml_gpus is None else nvml_with(nvml_gpus)
    result = run(tmp_path, plan, nodes, nvml, cuda, environ)
    assert codes(result) == expected
    for finding in result["findings"]:
        assert finding["message"] and finding["fix"]


def test_nvml_gpus_but_no_cuda_names_the_causes(tmp_path):
    result = run(tmp_path, GPU_PLAN, X86_NODES, nvml_with(2), FakeCuda(init_error=100), {"CUDA_VISIBLE_DEVICES": ""})
    (finding,) = result["findings"]
    assert "NVML sees 2 GPU(s) but CUDA sees no device (cuInit: CUDA_ERROR_NO_DEVICE" in finding["message"]
    assert "CUDA_VISIBLE_DEVICES=''" in finding["message"]
    assert "container runtime" in finding["message"] and "no GPUs are available" in finding["message"]
    assert "CUDA_VISIBLE_DEVICES" in finding["fix"]


def test_min_supported_compute_capability_lowers_the_bar(tmp_path):
    plan = make_plan(jetson_host("nano-jp4"), "2.19.0", "tarball")
    assert plan["runtime"]["min_compute_capability"] == "5.3"
    nano = FakeCuda([{"name": "NVIDIA Tegra X1", "compute_capability": "5.3"}])
    assert run(tmp_path, plan, JETSON_NODES, NO_NVML, nano)["findings"] == []


def test_cc_comparison_is_numeric(tmp_path):
    plan = {**GPU_PLAN, "gpu_ids": [0], "runtime": {**GPU_PLAN["runtime"], "min_compute_capability": "8.9"}}
    future = FakeCuda([{"name": "future", "compute_capability": "8.10"}])
    assert run(tmp_path, plan, X86_NODES[:3], nvml_with(1), future)["findings"] == []


def test_denied_node_reports_group_and_membership(tmp_path):
    result = run(tmp_path, GPU_PLAN, X86_NODES, nvml_with(2), FakeCuda([A10, A10]), denied={"dev/nvidia-uvm"})
    (finding,) = result["findings"]
    group = grp.getgrgid(os.getegid()).gr_name
    assert finding["code"] == "device_node_denied"
    assert f"/dev/nvidia-uvm (mode 0644, group {group}) is not readable and writable" in finding["message"]
    assert f"(member of {group}: True)" in finding["message"]
    assert finding["fix"] == f"add the service user to group {group} and restart the service"


def test_views_are_returned(tmp_path):
    result = run(tmp_path, GPU_PLAN, X86_NODES, nvml_with(2), FakeCuda([A10, A10]), {"CUDA_VISIBLE_DEVICES": "0,1"})
    devices = result["devices"]
    assert [n["path"] for n in devices["nodes"]] == [
        "/dev/nvidiactl",
        "/dev/nvidia-uvm",
        "/dev/nvidia0",
        "/dev/nvidia1",
    ]
    assert all(n["exists"] and n["accessible"] and n["required"] for n in devices["nodes"])
    assert devices["nvml"]["count"] == 2
    assert devices["nvml"]["uuids"] == ["GPU-nvml-0", "GPU-nvml-1"]
    assert devices["cuda"]["count"] == 2
    assert devices["cuda"]["cuda_visible_devices"] == "0,1"
    assert [d["compute_capability"] for d in devices["cuda"]["devices"]] == ["8.6", "8.6"]


def test_no_nvml_module_is_reported_not_raised(tmp_path):
    root = make_root(tmp_path, ())
    result = check_devices(CPU_PLAN, None, FakeCuda(init_error="missing"), {}, str(root), nvml_reason="no pynvml")
    assert result["devices"]["nvml"] == {"usable": False, "reason": "no pynvml", "count": 0, "uuids": [], "gpus": []}
    assert result["devices"]["cuda"]["reason"] == "unavailable: libcuda.so.1 not found"
    assert result["findings"] == []


def test_cpu_plan_lists_only_present_nodes(tmp_path):
    make_root(tmp_path, ("dev/nvidiactl",))
    nodes = device_nodes("cpu", str(tmp_path), gids=set())
    assert [(n["path"], n["required"], n["user_in_group"]) for n in nodes] == [("/dev/nvidiactl", False, False)]


def test_jetpack7_jetson_uses_dgpu_style_nodes(tmp_path):
    make_root(tmp_path, ("dev/nvidiactl", "dev/nvidia-uvm", "dev/nvidia0"))
    nodes = device_nodes("jetson", str(tmp_path))
    assert [n["path"] for n in nodes] == ["/dev/nvidiactl", "/dev/nvidia-uvm", "/dev/nvidia0"]


@pytest.mark.parametrize(
    ("mode", "owner_is_user", "group_is_users", "expected"),
    [
        (0o666, False, False, True),
        (0o660, False, False, False),
        (0o660, False, True, True),
        (0o600, True, False, True),
        (0o640, False, True, False),
        (0o000, True, True, False),
    ],
    ids=["world-rw", "other-denied", "group-rw", "owner-rw", "group-read-only", "nothing"],
)
def test_access_for_user_reads_mode_bits(tmp_path, monkeypatch, mode, owner_is_user, group_is_users, expected):
    node = tmp_path / "nvidiactl"
    node.write_bytes(b"")
    node.chmod(mode)
    st = node.stat()
    user = types.SimpleNamespace(
        pw_uid=st.st_uid if owner_is_user else st.st_uid + 4242,
        pw_gid=st.st_gid if group_is_users else st.st_gid + 4242,
    )
    monkeypatch.setattr(pwd, "getpwnam", lambda name: user)
    access, gids = access_for_user("svc")
    assert (st.st_gid in gids) is group_is_users
    assert access(str(node), os.R_OK | os.W_OK) is expected


def test_access_for_user_unknown_user_raises():
    with pytest.raises(KeyError):
        access_for_user("no-such-user-tritonfleet")


def _me() -> str:
    return pwd.getpwuid(os.geteuid()).pw_name


def test_access_for_an_absent_account_judges_the_running_user_and_says_so():
    access, gids, user = access_for("no-such-user-tritonfleet")
    assert access is os.access and gids is None
    assert user == {"requested": "no-such-user-tritonfleet", "exists": False, "judged": _me()}
    access, gids, user = access_for(None)
    assert access is os.access and gids is None
    assert user == {"requested": None, "exists": None, "judged": _me()}


def test_access_for_an_existing_account_judges_it_from_mode_bits(tmp_path, monkeypatch):
    node = tmp_path / "nvidia0"
    node.write_text("")
    node.chmod(0o660)
    st = node.stat()
    svc = types.SimpleNamespace(pw_uid=st.st_uid + 4242, pw_gid=st.st_gid + 4242, pw_name="svc")
    monkeypatch.setattr(pwd, "getpwnam", lambda name: svc)
    access, gids, user = access_for("svc")
    assert user == {"requested": "svc", "exists": True, "judged": "svc"}
    assert st.st_gid not in gids
    # Neither owner nor in the group: mode 0660 grants nothing, though the test runs as the owner.
    assert access(str(node), os.R_OK | os.W_OK) is False
