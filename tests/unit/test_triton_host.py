"""Unit tests for module_utils/triton_host.py: parsers (tables), probes under a tmp root, fixtures."""

from __future__ import annotations

import ipaddress
import json
import os
from pathlib import Path

import pytest
from ansible.module_utils import triton_host as th
from fakes.fake_nvml import FakeNvml

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "hosts"
NOT_QUERIED = "not queried: root is not /"


# --------------------------------------------------------------------------------------------
# Fixture hosts: one folder per real board, globbed.


def _fixture_dirs() -> list[Path]:
    return sorted(path for path in FIXTURES.iterdir() if (path / "root").is_dir())


def gather_fixture(host_dir: Path) -> dict:
    """Gather facts for a fixture folder with its nvml.json (FakeNvml) and host.json (arch)."""
    nvml = FakeNvml.from_file(host_dir / "nvml.json") if (host_dir / "nvml.json").exists() else None
    host = json.loads((host_dir / "host.json").read_text()) if (host_dir / "host.json").exists() else {}
    return th.gather_host_facts(host_dir / "root", nvml, host.get("arch"), nvml_reason=NOT_QUERIED)


def test_fixture_set_covers_the_required_boards():
    names = {path.name for path in _fixture_dirs()}
    assert len(names) >= 10
    assert {"x86-cpu-only", "x86-2gpu-driver-550", "jetson-nano-jp461", "jetson-agx-thor-jp70"} <= names


@pytest.mark.parametrize("host_dir", _fixture_dirs(), ids=lambda path: path.name)
def test_fixture_facts_equal_expected(host_dir: Path):
    facts = gather_fixture(host_dir)
    expected = json.loads((host_dir / "expected.json").read_text())
    assert facts.pop("root") == str(host_dir / "root")
    assert facts == expected


@pytest.mark.parametrize("host_dir", _fixture_dirs(), ids=lambda path: path.name)
def test_fixture_facts_have_the_architecture_schema(host_dir: Path):
    facts = gather_fixture(host_dir)
    assert list(facts) == SCHEMA_KEYS
    assert facts["platform"] in {"jetson", "dgpu", "cpu"}
    assert facts["reasons"][0].startswith(f"platform={facts['platform']}: ")
    for gpu in facts["gpus"]:
        assert list(gpu) == GPU_KEYS
    for engine in facts["container_engines"]:
        assert list(engine) == ENGINE_KEYS
    assert list(facts["nvidia_container_runtime"]) == ["present", "paths", "cdi_specs"]
    assert set(facts["nvml"]) == {"usable", "reason", "driver_version"}
    assert set(facts["os"]) == {"id", "version_id", "pretty_name", "glibc_version"}


SCHEMA_KEYS = [
    "schema_version",
    "root",
    "platform",
    "arch",
    "os",
    "kernel_release",
    "l4t_version",
    "l4t_raw",
    "l4t_source",
    "l4t_known",
    "jetpack_version",
    "soc",
    "board",
    "module",
    "module_name",
    "igpu",
    "gpu_device_nodes",
    "gpu_device_nodes_present",
    "driver_version",
    "driver_source",
    "cuda_driver_version",
    "gpus",
    "cuda_version",
    "tensorrt_version",
    "nvml",
    "container_engines",
    "nvidia_container_runtime",
    "service_manager",
    "listening",
    "accounts",
    "reasons",
]
GPU_KEYS = ["index", "name", "uuid", "pci_bus_id", "compute_capability", "memory_mib", "mig_mode", "integrated"]
ENGINE_KEYS = [
    "name",
    "path",
    "version",
    "default_runtime",
    "runtime",
    "runtimes",
    "default_cgroup_manager",
    "cgroup_manager",
    "ulimits",
    "global_args",
    "run_args",
    "can_run",
    "problems",
    "notes",
]


def test_podman_fixture_captures_this_machine_kind():
    """Debian 12 with podman, crun and runc, a hybrid cgroup layout, no systemd, hard limits below podman's."""
    (podman,) = gather_fixture(FIXTURES / "x86-podman-hybrid-cgroups")["container_engines"]
    assert (podman["default_runtime"], podman["runtime"], podman["cgroup_manager"]) == ("crun", "runc", "cgroupfs")
    assert podman["can_run"] is True
    assert podman["run_args"] == ["--ulimit", "nofile=20000:20000", "--ulimit", "nproc=32768:32768"]


def test_fixture_device_tree_files_keep_their_real_format():
    # Captured byte-for-byte: the model ends in NUL and compatible is NUL-separated.
    model = (FIXTURES / "jetson-agx-orin-jp62/root/proc/device-tree/model").read_bytes()
    compatible = (FIXTURES / "jetson-agx-orin-jp62/root/proc/device-tree/compatible").read_bytes()
    assert model.endswith(b"\x00")
    assert compatible.count(b"\x00") == 3


# --------------------------------------------------------------------------------------------
# Pure parsers


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("# R36 (release), REVISION: 4.3, GCID: 38968081, BOARD: generic, EABI: aarch64, DATE: x", "36.4.3"),
        ("# R35 (release), REVISION: 3.1, GCID: 32790763, BOARD: t186ref\n# KERNEL_VARIANT: oot\n", "35.3.1"),
        ("# R32 (release), REVISION: 7.1, GCID: 29689809, BOARD: t210ref, EABI: aarch64, DATE: x", "32.7.1"),
        ("# R36 (release), REVISION: 4.0", "36.4.0"),
        ("# R32 (release), REVISION: 5", "32.5"),
        ("# R99 (release), REVISION: 1.0, GCID: 1", "99.1.0"),
        ("", None),
        ("# R35 (rel", None),
        ("# R35 (release), REVISION: ", None),
        ("R35 REVISION 4.1", None),
        ("\x00\xff garbage", None),
        ("\n# R36 (release), REVISION: 4.3", None),
    ],
    ids=[
        "jp62",
        "jp5-multiline",
        "jp4",
        "dot-zero",
        "single-revision",
        "unknown-r99",
        "empty",
        "truncated",
        "no-revision",
        "free-form",
        "garbage",
        "first-line-empty",
    ],
)
def test_parse_nv_tegra_release(text, expected):
    assert th.parse_nv_tegra_release(text) == expected


@pytest.mark.parametrize(
    ("l4t", "jetpack"),
    [
        ("36.4.3", "6.2"),
        ("36.4.0", "6.1"),
        ("35.4.1", "5.1.2"),
        ("32.7.1", "4.6.1"),
        ("38.2.1", "7.0"),
        ("32.5", "4.5"),
        ("36.2.0", "6.0 DP"),
        ("99.1.0", None),
        ("28.2.1", None),
        ("", None),
        (None, None),
    ],
    ids=["jp62", "jp61", "jp512", "jp461", "jp70", "two-part", "dev-preview", "unknown", "pre-r31", "empty", "none"],
)
def test_jetpack_for_l4t(l4t, jetpack):
    assert th.jetpack_for_l4t(l4t) == jetpack


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"NVIDIA Jetson AGX Orin Developer Kit\x00", "NVIDIA Jetson AGX Orin Developer Kit"),
        (b"NVIDIA Jetson Nano Developer Kit", "NVIDIA Jetson Nano Developer Kit"),
        (b"NVIDIA Jetson Xavier NX\x00\x00", "NVIDIA Jetson Xavier NX"),
        (b"\x00", None),
        (b"", None),
        (b"NVIDIA \xff\xfe Jetson\x00", "NVIDIA \ufffd\ufffd Jetson"),
    ],
    ids=["nul-terminated", "no-nul", "double-nul", "only-nul", "empty", "invalid-utf8"],
)
def test_parse_device_tree_string(data, expected):
    assert th.parse_device_tree_string(data) == expected


@pytest.mark.parametrize(
    ("data", "soc", "module"),
    [
        (b"nvidia,p3737-0000+p3701-0005\x00nvidia,tegra234\x00nvidia,tegra23x\x00", "tegra234", "p3701-0005"),
        (b"nvidia,p3768-0000+p3767-0005\x00nvidia,p3767-0005\x00nvidia,tegra234\x00", "tegra234", "p3767-0005"),
        (b"nvidia,p3449-0000-b00+p3448-0000-b00\x00nvidia,jetson-nano\x00nvidia,tegra210", "tegra210", "p3448-0000"),
        (b"nvidia,p3971-0089+p3834-0008\x00nvidia,p3834-0008\x00nvidia,tegra264\x00", "tegra264", "p3834-0008"),
        (b"nvidia,p3450-0000\x00nvidia,tegra210\x00", "tegra210", "p3450-0000"),
        (b"nvidia,p2972-0000\x00nvidia,tegra194\x00", "tegra194", "p2972-0000"),
        (b"raspberrypi,4-model-b\x00brcm,bcm2711\x00", None, None),
        (b"nvidia,p35", None, None),
        (b"", None, None),
    ],
    ids=[
        "agx-orin-l4t",
        "orin-nano",
        "nano-l4t",
        "thor",
        "nano-mainline",
        "agx-xavier",
        "not-nvidia",
        "truncated",
        "empty",
    ],
)
def test_compatible_soc_and_module(data, soc, module):
    compatible = th.parse_device_tree_compatible(data)
    assert th.soc_from_compatible(compatible) == soc
    assert th.module_from_compatible(compatible) == module


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("NVRM version: NVIDIA UNIX x86_64 Kernel Module  515.76  Mon Sep 12 19:21:56 UTC 2022\nGCC x\n", "515.76"),
        (
            "NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  575.57.08  Release Build  (dvs@U16)  2025",
            "575.57.08",
        ),
        ("NVRM version: NVIDIA UNIX Open Kernel Module for aarch64  580.65.06  Release Build  (b@h)", "580.65.06"),
        ("550.54.14\n", "550.54.14"),
        ("", None),
        ("NVRM version: NVIDIA UNIX x86_64 Kernel Mod", None),
        ("garbage\n550.54.14\n", None),
    ],
    ids=["proprietary", "open-x86", "open-aarch64", "sysfs", "empty", "truncated", "version-not-on-first-line"],
)
def test_parse_driver_version(text, expected):
    assert th.parse_driver_version(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"cuda": {"name": "CUDA SDK", "version": "12.6.68"}}', "12.6.68"),
        ('{"cuda": {"version": "12.6.2"}, "cuda_cudart": {"version": "12.6.77"}}', "12.6.2"),
        ('{"cuda": {"ver', None),
        ('{"cuda": "12.6"}', None),
        ("[]", None),
        ("", None),
        ('{"cuda": {"version": "garbage"}}', None),
    ],
    ids=["jetson", "x86", "truncated", "wrong-shape", "list", "empty", "garbage-version"],
)
def test_parse_cuda_version_json(text, expected):
    assert th.parse_cuda_version_json(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [("CUDA Version 10.2.300\n", "10.2.300"), ("CUDA Version 11.0.228", "11.0.228"), ("CUDA Vers", None), ("", None)],
    ids=["jp4", "cuda11", "truncated", "empty"],
)
def test_parse_cuda_version_txt(text, expected):
    assert th.parse_cuda_version_txt(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("/* header */\n#define CUDA_VERSION 13000\n#define CU_IPC_HANDLE_SIZE 64\n", "13.0"),
        ("#define CUDA_VERSION 12060", "12.6"),
        ("#define CUDA_VERSION_MAJOR 12\n", None),
        ("#define CUDA_VERSION 12", None),
        ("", None),
    ],
    ids=["cuda13", "cuda12.6", "other-define", "truncated-number", "empty"],
)
def test_parse_cuda_header(text, expected):
    assert th.parse_cuda_header(text) == expected


def test_cuda_header_when_the_toolkit_has_no_version_json(tmp_path):
    write(tmp_path, "usr/local/cuda-13.0/include/cuda.h", "#ifndef __cuda_cuda_h__\n#define CUDA_VERSION 13000\n")
    os.symlink("/usr/local/cuda-13.0", tmp_path / "usr/local/cuda")
    reasons: list[str] = []
    assert th.probe_cuda_toolkit(tmp_path, reasons) == "13.0"
    assert reasons == ["cuda=13.0: /usr/local/cuda/include/cuda.h"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("#define NV_TENSORRT_MAJOR 8 //!< x\n#define NV_TENSORRT_MINOR 5\n#define NV_TENSORRT_PATCH 2\n", "8.5.2"),
        (
            "#define TRT_MAJOR_ENTERPRISE 10\n#define TRT_MINOR_ENTERPRISE 13\n#define TRT_PATCH_ENTERPRISE 3\n"
            "#define NV_TENSORRT_MAJOR TRT_MAJOR_ENTERPRISE //!< major\n"
            "#define NV_TENSORRT_MINOR TRT_MINOR_ENTERPRISE\n#define NV_TENSORRT_PATCH TRT_PATCH_ENTERPRISE\n",
            "10.13.3",
        ),
        ("#define NV_TENSORRT_MAJOR 8\n#define NV_TENS", None),
        ("#define NV_TENSORRT_MAJOR UNDEFINED_MACRO\n#define NV_TENSORRT_MINOR 1\n#define NV_TENSORRT_PATCH 0\n", None),
        ("", None),
    ],
    ids=["trt8", "trt10-indirect", "truncated", "unresolved-macro", "empty"],
)
def test_parse_tensorrt_header(text, expected):
    assert th.parse_tensorrt_header(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            'ID=ubuntu\nVERSION_ID="22.04"\nPRETTY_NAME="Ubuntu 22.04.5 LTS"\n',
            {"ID": "ubuntu", "VERSION_ID": "22.04", "PRETTY_NAME": "Ubuntu 22.04.5 LTS"},
        ),
        ("# comment\nID='debian'\n\nbroken line\n=novalue\n", {"ID": "debian"}),
        ("ID=ubu", {"ID": "ubu"}),
        ("", {}),
    ],
    ids=["ubuntu", "comments-and-garbage", "truncated", "empty"],
)
def test_parse_os_release(text, expected):
    assert th.parse_os_release(text) == expected


def _stanza(name: str, version: str, status: str = "install ok installed", arch: str = "arm64") -> str:
    return f"Package: {name}\nStatus: {status}\nArchitecture: {arch}\nVersion: {version}\nDescription: d\n long\n\n"


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (_stanza("nvidia-l4t-core", "36.4.3-1"), {"nvidia-l4t-core": {"version": "36.4.3-1", "architecture": "arm64"}}),
        (_stanza("nvidia-l4t-core", "36.4.3-2025", status="deinstall ok config-files"), {}),
        (
            _stanza("nvidia-l4t-core", "35.1", status="deinstall ok config-files")
            + _stanza("nvidia-l4t-core", "36.4.0"),
            {"nvidia-l4t-core": {"version": "36.4.0", "architecture": "arm64"}},
        ),
        (_stanza("nvidia-l4t-core-dev", "36.4.3-2025"), {}),
        (_stanza("xnvidia-l4t-core", "36.4.3-2025"), {}),
        ("Package: nvidia-l4t-core\nStatus: install ok installed\nVers", {}),
        ("", {}),
    ],
    ids=[
        "installed",
        "config-files-only",
        "second-stanza-installed",
        "longer-name",
        "name-suffix",
        "truncated",
        "empty",
    ],
)
def test_scan_dpkg_status(status, expected):
    assert th.scan_dpkg_status(status.encode(), ("nvidia-l4t-core",)) == expected


@pytest.mark.parametrize(
    ("version", "expected"),
    [
        ("32.7.1-20220219090432", "32.7.1"),
        ("36.4.3-20250107174145", "36.4.3"),
        ("36.4", "36.4"),
        ("garbage", None),
        ("", None),
    ],
    ids=["jp4", "jp6", "no-build", "garbage", "empty"],
)
def test_l4t_from_package_version(version, expected):
    assert th.l4t_from_package_version(version) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "Model: \t\t NVIDIA L4\nGPU UUID: \t GPU-6e1b\nBus Location: \t 0000:3b:00.0\n",
            {"Model": "NVIDIA L4", "GPU UUID": "GPU-6e1b", "Bus Location": "0000:3b:00.0"},
        ),
        ("Model: Tesla T4\nIRQ:", {"Model": "Tesla T4", "IRQ": ""}),
        ("", {}),
    ],
    ids=["l4", "truncated", "empty"],
)
def test_parse_proc_gpu_information(text, expected):
    assert th.parse_proc_gpu_information(text) == expected


# --------------------------------------------------------------------------------------------
# Probes under a tmp root


def write(root: Path, rel: str, data: bytes | str) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


def test_resolve_under_keeps_absolute_links_inside_root(tmp_path):
    write(tmp_path, "usr/local/cuda-12.6/version.json", '{"cuda": {"version": "12.6.68"}}')
    os.symlink("/usr/local/cuda-12.6", tmp_path / "usr/local/cuda")
    resolved = th.resolve_under(tmp_path, "usr/local/cuda/version.json")
    assert resolved == str(tmp_path / "usr/local/cuda-12.6/version.json")
    assert th.probe_cuda_toolkit(tmp_path, []) == "12.6.68"


def test_resolve_under_clamps_dotdot_at_root(tmp_path):
    os.symlink("../../../../etc", tmp_path / "escape")
    assert th.resolve_under(tmp_path, "escape/os-release") == str(tmp_path / "etc/os-release")


def test_symlink_loop_reads_as_unreadable(tmp_path):
    os.symlink("/b", tmp_path / "a")
    os.symlink("/a", tmp_path / "b")
    data, why = th.read_bytes(tmp_path, "a")
    assert data is None
    assert why.startswith("unreadable: too many symbolic links")


def test_unreadable_file_is_reported_not_raised(tmp_path):
    (tmp_path / "etc" / "nv_tegra_release").mkdir(parents=True)
    data, why = th.read_bytes(tmp_path, "etc/nv_tegra_release")
    assert data is None
    assert why.startswith("unreadable: ")


def test_newest_versioned_cuda_dir_when_no_cuda_link(tmp_path):
    write(tmp_path, "usr/local/cuda-11.8/version.json", '{"cuda": {"version": "11.8.0"}}')
    write(tmp_path, "usr/local/cuda-12.10/version.json", '{"cuda": {"version": "12.10.1"}}')
    write(tmp_path, "usr/local/cuda-12.9/version.json", '{"cuda": {"version": "12.9.0"}}')
    reasons: list[str] = []
    assert th.probe_cuda_toolkit(tmp_path, reasons) == "12.10.1"
    assert reasons == ["cuda=12.10.1: /usr/local/cuda-12.10/version.json"]


def test_glibc_from_libc_link_under_root(tmp_path):
    write(tmp_path, "lib/x86_64-linux-gnu/libc-2.31.so", b"\x7fELF")
    os.symlink("libc-2.31.so", tmp_path / "lib/x86_64-linux-gnu/libc.so.6")
    facts = th.gather_host_facts(tmp_path, None, "x86_64")
    assert facts["os"]["glibc_version"] == "2.31"


def test_sysfs_driver_version_when_procfs_is_absent(tmp_path):
    write(tmp_path, "sys/module/nvidia/version", "550.54.14\n")
    facts = th.gather_host_facts(tmp_path, None, "x86_64")
    assert (facts["platform"], facts["driver_version"], facts["driver_source"]) == (
        "dgpu",
        "550.54.14",
        "/sys/module/nvidia/version",
    )


def test_proc_device_tree_wins_over_sysfs(tmp_path):
    write(tmp_path, "proc/device-tree/model", b"From procfs\x00")
    write(tmp_path, "sys/firmware/devicetree/base/model", b"From sysfs\x00")
    assert th.probe_device_tree(tmp_path, [])["board"] == "From procfs"


def test_tegra_device_tree_alone_makes_a_jetson(tmp_path):
    write(tmp_path, "sys/firmware/devicetree/base/compatible", b"nvidia,p3767-0000\x00nvidia,tegra234\x00")
    facts = th.gather_host_facts(tmp_path, None, "aarch64")
    assert facts["platform"] == "jetson"
    assert facts["l4t_version"] is None and facts["l4t_known"] is None
    assert facts["igpu"] == {"name": "Orin", "compute_capability": "8.7"}


def test_empty_root_is_cpu_with_every_key(tmp_path):
    facts = th.gather_host_facts(tmp_path, None, None, nvml_reason=NOT_QUERIED)
    assert list(facts) == SCHEMA_KEYS
    assert facts["platform"] == "cpu"
    assert facts["os"] == {"id": None, "version_id": None, "pretty_name": None, "glibc_version": None}
    assert facts["arch"] == os.uname().machine
    assert facts["nvml"] == {"usable": False, "reason": NOT_QUERIED, "driver_version": None}
    assert "os: no /etc/os-release or /usr/lib/os-release" in facts["reasons"]


def test_nvml_integrated_only_gpu_does_not_make_a_dgpu_host(tmp_path):
    nvml = FakeNvml({"cuda_driver_version": 12060, "devices": [{"name": "Orin (nvgpu)", "uuid": "u"}]})
    facts = th.gather_host_facts(tmp_path, nvml, "aarch64")
    assert facts["platform"] == "cpu"
    assert facts["gpus"][0]["integrated"] is True


def test_nvml_discrete_gpu_without_driver_file_makes_a_dgpu_host(tmp_path):
    nvml = FakeNvml({"driver_version": "570.86.10", "devices": [{"name": "Tesla T4", "uuid": "GPU-1"}]})
    facts = th.gather_host_facts(tmp_path, nvml, "x86_64")
    assert (facts["platform"], facts["driver_version"], facts["driver_source"]) == ("dgpu", "570.86.10", "nvml")
    assert facts["reasons"][0] == "platform=dgpu: NVML lists 1 discrete GPU(s)"


def test_host_root_reads_kernel_and_confstr_glibc():
    facts = th.gather_host_facts(Path("/"), None, None, nvml_reason="test")
    assert facts["kernel_release"] == os.uname().release
    assert facts["os"]["glibc_version"] == os.confstr("CS_GNU_LIBC_VERSION").split()[-1]


def test_nvml_is_not_queried_under_a_mounted_root(tmp_path):
    write(tmp_path, "dev/nvidiactl", "")
    assert th.nvml_skip_reason(tmp_path) == NOT_QUERIED


def test_nvml_skip_reason_follows_this_hosts_driver_state():
    # Either branch is checked, depending on the machine: a GPU host must be queried.
    driver = ("/dev/nvidiactl", "/dev/nvgpu/igpu0/ctrl", "/dev/nvhost-ctrl-gpu", "/proc/driver/nvidia")
    reason = th.nvml_skip_reason(Path("/"))
    if any(os.path.exists(path) for path in driver):
        assert reason is None
    else:
        assert reason.startswith("not queried: no GPU control node (/dev/nvhost-ctrl-gpu, ")


ORIN_NVML = [{"integrated": True}]
A100_NVML = [{"integrated": False}]


@pytest.mark.parametrize(
    ("l4t_source", "soc", "driver_file", "nvml_gpus", "platform"),
    [
        ("/etc/nv_tegra_release", "tegra234", None, [], "jetson"),
        ("dpkg:nvidia-l4t-core", None, None, [], "jetson"),
        (None, "tegra194", None, [], "jetson"),
        ("/etc/nv_tegra_release", "tegra264", "/proc/driver/nvidia/version", ORIN_NVML, "jetson"),
        (None, "tegra124", None, [], "cpu"),
        (None, None, "/proc/driver/nvidia/version", [], "dgpu"),
        (None, None, None, A100_NVML, "dgpu"),
        (None, None, None, ORIN_NVML, "cpu"),
        (None, None, None, [], "cpu"),
    ],
    ids=["l4t-file", "l4t-package", "soc-only", "thor-with-driver", "unknown-soc", "driver-file", "nvml-discrete",
         "nvml-integrated-only", "nothing"],
)  # fmt: skip
def test_decide_platform(l4t_source, soc, driver_file, nvml_gpus, platform):
    decided, reason = th.decide_platform(l4t_source, "raw", soc, driver_file, "550.54.15", nvml_gpus, "nvml why")
    assert decided == platform
    assert reason.startswith(f"platform={platform}: ")


# --------------------------------------------------------------------------------------------
# Service manager: the service_mgr fact's rule, decided once for the service and pull roles.


def fake_init_root(tmp_path: Path, comm: str | None, canary: bool = False, systemctl: bool = True) -> Path:
    if comm is not None:
        (tmp_path / "proc" / "1").mkdir(parents=True)
        (tmp_path / "proc" / "1" / "comm").write_text(f"{comm}\n")
    if canary:
        (tmp_path / "run" / "systemd" / "system").mkdir(parents=True)
    if systemctl:
        (tmp_path / "usr" / "bin").mkdir(parents=True)
        (tmp_path / "usr" / "bin" / "systemctl").write_text("")
    return tmp_path


@pytest.mark.parametrize(
    ("comm", "canary", "systemctl", "expected"),
    [
        ("systemd", False, True, "systemd"),
        ("process_api", True, True, "other"),  # an identifiable other init wins, as in setup
        ("init", True, True, "systemd"),
        ("bash", True, True, "systemd"),
        (None, True, True, "systemd"),
        ("init", True, False, "other"),  # no systemctl: not a systemd host
        ("sh", False, True, "other"),
    ],
)
def test_service_manager_follows_pid1_then_systemds_canaries(tmp_path, comm, canary, systemctl, expected):
    manager, reason = th.probe_service_manager(fake_init_root(tmp_path, comm, canary, systemctl))
    assert manager == expected
    assert reason.startswith(f"service_manager={expected}: ")


def test_service_manager_reads_an_init_link_to_systemd(tmp_path: Path):
    root = fake_init_root(tmp_path, "init")
    (root / "sbin").mkdir()
    (root / "sbin" / "init").symlink_to("/lib/systemd/systemd")
    assert th.probe_service_manager(root) == (
        "systemd",
        "service_manager=systemd: systemctl and /sbin/init links to systemd",
    )


def test_service_manager_is_a_fact(tmp_path: Path):
    facts = th.gather_host_facts(fake_init_root(tmp_path, "systemd"), None, "x86_64", nvml_reason=NOT_QUERIED)
    assert facts["service_manager"] == "systemd"
    assert "service_manager=systemd: /proc/1/comm is systemd" in facts["reasons"]


def test_container_host_reads_this_machines_pid_max():
    """sysctl files refuse a large read buffer: the probe must still get pid_max (it caps podman's nproc)."""
    expected = int(Path("/proc/sys/kernel/pid_max").read_text())
    assert th.probe_container_host(Path("/"), live=True)["pid_max"] == expected


# Listening ports and accounts (what the service step will meet)

# /proc/net/tcp and tcp6 in their real format: sshd on 0.0.0.0:22 and [::]:22, tritonserver on
# 127.0.0.1:8000, an established connection (state 01), a socket on [::1]:8001 with inode 0.
PROC_NET = Path(__file__).resolve().parents[1] / "fixtures" / "proc-net"


def test_proc_net_addresses_decode_per_32_bit_word():
    assert th.parse_proc_net_address("0100007F:1F40") == ("127.0.0.1", 8000)
    assert th.parse_proc_net_address("00000000000000000000000001000000:1F41") == ("::1", 8001)
    mapped = th.parse_proc_net_address("0000000000000000FFFF00000100007F:0016")
    assert mapped == (str(ipaddress.ip_address("::ffff:127.0.0.1")), 22)


def test_only_listening_sockets_are_parsed():
    assert th.parse_proc_net_tcp((PROC_NET / "tcp").read_text()) == [
        ("0.0.0.0", 22, 23017),
        ("127.0.0.1", 8000, 45123),
    ]
    assert th.parse_proc_net_tcp("garbage\n 0: zz:zz 00 0A x x x x x 1\n") == []


def _proc_root(tmp_path: Path) -> Path:
    net = tmp_path / "proc" / "net"
    net.mkdir(parents=True)
    for name in ("tcp", "tcp6"):
        (net / name).write_text((PROC_NET / name).read_text())
    for pid, exe, inodes in ((611, "/usr/sbin/sshd", (23017, 23019)), (4242, "/opt/t/bin/tritonserver", (45123,))):
        fd = tmp_path / "proc" / str(pid) / "fd"
        fd.mkdir(parents=True)
        (tmp_path / "proc" / str(pid) / "exe").symlink_to(exe)
        for number, inode in enumerate(inodes, start=3):
            (fd / str(number)).symlink_to(f"socket:[{inode}]")
        (fd / "0").symlink_to("/dev/null")
    return tmp_path


def test_listening_ports_name_the_process_holding_them(tmp_path):
    assert th.probe_listening(_proc_root(tmp_path)) == [
        {"address": "0.0.0.0", "port": 22, "pid": 611, "exe": "/usr/sbin/sshd"},
        {"address": "::", "port": 22, "pid": 611, "exe": "/usr/sbin/sshd"},
        {"address": "127.0.0.1", "port": 8000, "pid": 4242, "exe": "/opt/t/bin/tritonserver"},
        # The kernel holds this one (inode 0): no process to name.
        {"address": "::1", "port": 8001, "pid": None, "exe": None},
    ]


def test_listening_ports_of_this_host_include_a_socket_we_open():
    import socket

    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        found = [entry for entry in th.probe_listening(Path("/")) if entry["port"] == port]
    assert found == [{"address": "127.0.0.1", "port": port, "pid": os.getpid(), "exe": os.readlink("/proc/self/exe")}]


def test_accounts_come_from_passwd_under_a_mounted_root(tmp_path):
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "passwd").write_text(
        "root:x:0:0:root:/root:/bin/bash\n"
        "tritonserver:x:998:998:Triton Inference Server (tritonfleet):/var/lib/tritonfleet:/usr/sbin/nologin\n"
        "broken line\n"
    )
    assert th.probe_accounts(tmp_path, False, ["root", "tritonserver", "nobody"]) == {
        "root": {"uid": 0, "gid": 0, "comment": "root", "home": "/root", "shell": "/bin/bash"},
        "tritonserver": {
            "uid": 998,
            "gid": 998,
            "comment": "Triton Inference Server (tritonfleet)",
            "home": "/var/lib/tritonfleet",
            "shell": "/usr/sbin/nologin",
        },
        "nobody": None,
    }


def test_accounts_of_this_host_come_from_the_name_service():
    found = th.probe_accounts(Path("/"), True, ["root", "tf-no-such-user"])
    assert found["root"]["uid"] == 0 and found["tf-no-such-user"] is None
