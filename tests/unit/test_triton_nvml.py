"""Unit tests for module_utils/triton_nvml.py with FakeNvml profiles injected as the nvml object."""

from __future__ import annotations

import pynvml
import pytest
from ansible.module_utils import triton_nvml as tn
from fakes.fake_nvml import FakeNvml

A100 = {
    "name": "NVIDIA A100-SXM4-80GB",
    "uuid": "GPU-a3c9e7d4-51f2-4b8e-9c6a-7e0f3d2b1c58",
    "pci_bus_id": "00000000:07:00.0",
    "compute_capability": [8, 0],
    "memory_total_bytes": 85899345920,
    "mig_mode": [1, 1],
}
ORIN_NVGPU = {
    "name": "Orin (nvgpu)",
    "uuid": "54d0709b-558d-5a59-9c65-0c5fc14a21a4",
    "unsupported": ["nvmlDeviceGetPciInfo", "nvmlDeviceGetMemoryInfo", "nvmlDeviceGetMigMode"],
    "compute_capability": [8, 7],
}


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        ("LibraryNotFound", "nvmlInit failed: libnvidia-ml.so.1 not found (no NVIDIA driver user-space library) "
         "(NVMLError_LibraryNotFound)"),
        ("DriverNotLoaded", "nvmlInit failed: NVIDIA kernel driver not loaded (NVMLError_DriverNotLoaded)"),
        ("LibRmVersionMismatch", "nvmlInit failed: NVML library and kernel driver versions differ (reboot or reload "
         "the driver) (NVMLError_LibRmVersionMismatch)"),
        ("NoPermission", "nvmlInit failed: no permission to open the NVIDIA device nodes (NVMLError_NoPermission)"),
        ("Unknown", "nvmlInit failed: Unknown Error (NVMLError_Unknown)"),
    ],
    ids=["library-not-found", "driver-not-loaded", "version-mismatch", "no-permission", "other"],
)  # fmt: skip
def test_init_errors_are_reasons_not_exceptions(error, reason):
    fake = FakeNvml({"init_error": error})
    result = tn.probe_nvml(fake)
    assert result == {
        "usable": False,
        "reason": reason,
        "driver_version": None,
        "cuda_driver_version": None,
        "gpus": [],
        "notes": [],
    }
    assert fake.calls == ["nvmlInit"]


def test_two_discrete_gpus():
    second = {**A100, "name": "NVIDIA A10", "uuid": "GPU-2", "pci_bus_id": "00000000:ca:00.0", "mig_mode": [0, 0]}
    fake = FakeNvml({"driver_version": "550.54.15", "cuda_driver_version": 12040, "devices": [A100, second]})
    result = tn.probe_nvml(fake)
    assert result["usable"] is True
    assert result["reason"] == "nvmlInit succeeded, 2 device(s)"
    assert (result["driver_version"], result["cuda_driver_version"]) == ("550.54.15", "12.4")
    assert result["gpus"] == [
        {
            "index": 0,
            "name": "NVIDIA A100-SXM4-80GB",
            "uuid": "GPU-a3c9e7d4-51f2-4b8e-9c6a-7e0f3d2b1c58",
            "pci_bus_id": "00000000:07:00.0",
            "compute_capability": "8.0",
            "memory_mib": 81920,
            "mig_mode": "enabled",
            "integrated": False,
        },
        {
            "index": 1,
            "name": "NVIDIA A10",
            "uuid": "GPU-2",
            "pci_bus_id": "00000000:CA:00.0",
            "compute_capability": "8.0",
            "memory_mib": 81920,
            "mig_mode": "disabled",
            "integrated": False,
        },
    ]
    assert result["notes"] == []
    assert fake.calls[0] == "nvmlInit"
    assert fake.calls[-1] == "nvmlShutdown"


def test_orin_nvgpu_supports_only_a_subset():
    fake = FakeNvml({"driver_version": "N/A", "cuda_driver_version": 12060, "devices": [ORIN_NVGPU]})
    result = tn.probe_nvml(fake)
    assert result["usable"] is True
    assert result["driver_version"] is None
    assert result["cuda_driver_version"] == "12.6"
    assert result["gpus"] == [
        {
            "index": 0,
            "name": "Orin (nvgpu)",
            "uuid": "54d0709b-558d-5a59-9c65-0c5fc14a21a4",
            "pci_bus_id": None,
            "compute_capability": "8.7",
            "memory_mib": None,
            "mig_mode": None,
            "integrated": True,
        }
    ]
    assert result["notes"] == [
        "NVML device 0: nvmlDeviceGetPciInfo: Not Supported (NVMLError_NotSupported); "
        "nvmlDeviceGetMemoryInfo: Not Supported (NVMLError_NotSupported); "
        "nvmlDeviceGetMigMode: Not Supported (NVMLError_NotSupported)"
    ]
    assert fake.calls[-1] == "nvmlShutdown"


def test_cuda_driver_version_falls_back_to_v1_when_libcuda_is_missing():
    fake = FakeNvml({"cuda_driver_version": 13000, "cuda_driver_version_v2_error": "LibraryNotFound", "devices": []})
    result = tn.probe_nvml(fake)
    assert result["cuda_driver_version"] == "13.0"
    assert (
        "nvmlSystemGetCudaDriverVersion_v2: NVML Shared Library Not Found (NVMLError_LibraryNotFound)"
        in (result["notes"])
    )


def test_driver_version_error_is_a_note():
    fake = FakeNvml({"driver_version": {"error": "NotSupported"}, "cuda_driver_version": 12020, "devices": []})
    result = tn.probe_nvml(fake)
    assert result["usable"] is True
    assert result["driver_version"] is None
    assert result["notes"][0] == "nvmlSystemGetDriverVersion: Not Supported (NVMLError_NotSupported)"


def test_handle_error_after_init_still_shuts_down():
    class LostGpu(FakeNvml):
        def nvmlDeviceGetHandleByIndex(self, index):
            raise pynvml.NVMLError_GpuIsLost()

    fake = LostGpu({"driver_version": "550.54.15", "devices": [A100]})
    result = tn.probe_nvml(fake)
    assert result["usable"] is False
    assert result["gpus"] == []
    assert result["reason"] == "NVML query failed: GPU is lost (NVMLError_GpuIsLost)"
    assert fake.calls[-1] == "nvmlShutdown"


@pytest.mark.parametrize(
    ("encoded", "expected"),
    [(12040, "12.4"), (13000, "13.0"), (11080, "11.8"), (12090, "12.9"), (0, None), (-1, None), (None, None),
     (True, None), (999, None)],
    ids=["12.4", "13.0", "11.8", "12.9", "zero", "negative", "none", "bool", "major-zero"],
)  # fmt: skip
def test_format_cuda_driver_version(encoded, expected):
    assert tn.format_cuda_driver_version(encoded) == expected


@pytest.mark.parametrize(
    ("bus_id", "expected"),
    [
        ("00000000:01:00.0", "00000000:01:00.0"),
        (b"00000000:3b:00.0", "00000000:3B:00.0"),
        ("0000:3b:00.0", "00000000:3B:00.0"),
        ("3b:00.0", "00000000:3B:00.0"),
        ("0000:3b:00", None),
        ("zz:00.0", None),
        ("", None),
        (None, None),
    ],
    ids=["nvml", "nvml-bytes-lower", "procfs", "no-domain", "no-function", "garbage", "empty", "none"],
)
def test_normalize_pci_bus_id(bus_id, expected):
    assert tn.normalize_pci_bus_id(bus_id) == expected


@pytest.mark.parametrize(
    ("name", "expected"),
    [("Orin (nvgpu)", True), ("NVIDIA Thor", True), ("NVIDIA A100-SXM4-80GB", False), ("", False), (None, False)],
    ids=["orin", "thor", "a100", "empty", "none"],
)
def test_is_integrated_name(name, expected):
    assert tn.is_integrated_name(name) is expected


def test_load_nvml_returns_the_pynvml_module():
    module, reason = tn.load_nvml()
    assert module is pynvml
    assert reason is None


def test_real_pynvml_on_this_machine_is_unusable_with_a_reason():
    # This machine has no NVIDIA driver: the real library must fail init cleanly, never raise.
    result = tn.probe_nvml(pynvml)
    assert result["usable"] is False
    assert result["reason"].startswith("nvmlInit failed: ")


def test_calls_missing_from_an_old_nvidia_ml_py_are_unsupported():
    class OldPynvml(FakeNvml):
        nvmlDeviceGetMigMode = None
        nvmlSystemGetCudaDriverVersion_v2 = None

    fake = OldPynvml({"driver_version": "470.57.02", "cuda_driver_version": 11040, "devices": [A100]})
    result = tn.probe_nvml(fake)
    assert result["cuda_driver_version"] == "11.4"
    assert result["gpus"][0]["mig_mode"] is None
    assert result["gpus"][0]["memory_mib"] == 81920
    assert result["notes"] == [
        "nvmlSystemGetCudaDriverVersion_v2: not provided by this nvidia-ml-py",
        "NVML device 0: nvmlDeviceGetMigMode: not provided by this nvidia-ml-py",
    ]
