"""FakeNvml: the pynvml calls ``module_utils/triton_nvml.py`` makes, answered from an nvml.json profile.

Profile (all keys optional)::

    {
      "init_error": "LibraryNotFound",          # nvmlInit raises pynvml.NVMLError_LibraryNotFound
      "driver_version": "550.54.15",            # or {"error": "NotSupported"}
      "cuda_driver_version": 12040,             # nvmlSystemGetCudaDriverVersion(_v2), or {"error": ...}
      "cuda_driver_version_v2_error": "LibraryNotFound",   # only _v2 fails (libcuda missing)
      "devices": [
        {"name": "NVIDIA A100-SXM4-80GB", "uuid": "GPU-...", "pci_bus_id": "00000000:07:00.0",
         "compute_capability": [8, 0], "memory_total_bytes": 85899345920, "mig_mode": [1, 1],
         "unsupported": ["nvmlDeviceGetPciInfo"]}   # calls that raise NVMLError_NotSupported,
      ]                                             # as does any device key left out
    }

Errors are pynvml's own classes, so the probe's ``except nvml.NVMLError`` is exercised as on a
real host. ``calls`` records every call in order, for tests that check init/shutdown pairing.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pynvml


def nvml_error(name: str) -> pynvml.NVMLError:
    """Instantiate pynvml's ``NVMLError_<name>`` (``"LibraryNotFound"``, ``"NotSupported"``, ...)."""
    cls = getattr(pynvml, f"NVMLError_{name}")
    return cls()


class FakeNvml:
    """Stands in for the ``pynvml`` module; build it from a dict or an nvml.json file."""

    NVMLError = pynvml.NVMLError

    def __init__(self, profile: dict[str, Any]) -> None:
        self.profile = profile
        self.calls: list[str] = []
        self.initialized = False

    @classmethod
    def from_file(cls, path: Path | str) -> FakeNvml:
        """Load a profile from an nvml.json file."""
        return cls(json.loads(Path(path).read_text(encoding="utf-8")))

    def _record(self, call: str) -> None:
        self.calls.append(call)
        if call != "nvmlInit" and not self.initialized:
            raise nvml_error("Uninitialized")

    def _system_value(self, key: str) -> Any:
        value = self.profile.get(key)
        if isinstance(value, dict) and "error" in value:
            raise nvml_error(value["error"])
        if value is None:
            raise nvml_error("NotSupported")
        return value

    def _device(self, handle: int, call: str, key: str) -> Any:
        """The device's ``key``; NotSupported when listed in ``unsupported`` or absent from the profile."""
        self._record(call)
        device = self.profile["devices"][handle]
        if call in device.get("unsupported", ()) or key not in device:
            raise nvml_error("NotSupported")
        return device[key]

    def nvmlInit(self) -> None:
        self._record("nvmlInit")
        if self.profile.get("init_error"):
            raise nvml_error(self.profile["init_error"])
        self.initialized = True

    def nvmlShutdown(self) -> None:
        self._record("nvmlShutdown")
        self.initialized = False

    def nvmlSystemGetDriverVersion(self) -> str:
        self._record("nvmlSystemGetDriverVersion")
        return self._system_value("driver_version")

    def nvmlSystemGetCudaDriverVersion(self) -> int:
        self._record("nvmlSystemGetCudaDriverVersion")
        return self._system_value("cuda_driver_version")

    def nvmlSystemGetCudaDriverVersion_v2(self) -> int:
        self._record("nvmlSystemGetCudaDriverVersion_v2")
        if "cuda_driver_version_v2_error" in self.profile:
            raise nvml_error(self.profile["cuda_driver_version_v2_error"])
        return self._system_value("cuda_driver_version")

    def nvmlDeviceGetCount(self) -> int:
        self._record("nvmlDeviceGetCount")
        return len(self.profile.get("devices", []))

    def nvmlDeviceGetHandleByIndex(self, index: int) -> int:
        self._record("nvmlDeviceGetHandleByIndex")
        if not 0 <= index < len(self.profile.get("devices", [])):
            raise nvml_error("InvalidArgument")
        return index

    def nvmlDeviceGetName(self, handle: int) -> str:
        return self._device(handle, "nvmlDeviceGetName", "name")

    def nvmlDeviceGetUUID(self, handle: int) -> str:
        return self._device(handle, "nvmlDeviceGetUUID", "uuid")

    def nvmlDeviceGetPciInfo(self, handle: int) -> SimpleNamespace:
        # Real pynvml returns a ctypes struct whose busId is bytes on some versions.
        return SimpleNamespace(busId=self._device(handle, "nvmlDeviceGetPciInfo", "pci_bus_id").encode())

    def nvmlDeviceGetCudaComputeCapability(self, handle: int) -> tuple[int, int]:
        major, minor = self._device(handle, "nvmlDeviceGetCudaComputeCapability", "compute_capability")
        return major, minor

    def nvmlDeviceGetMemoryInfo(self, handle: int) -> SimpleNamespace:
        total = self._device(handle, "nvmlDeviceGetMemoryInfo", "memory_total_bytes")
        return SimpleNamespace(total=total, free=total, used=0)

    def nvmlDeviceGetMigMode(self, handle: int) -> list[int]:
        return list(self._device(handle, "nvmlDeviceGetMigMode", "mig_mode"))


class ProcessNvml(FakeNvml):
    """FakeNvml plus the per-process call; a device's ``processes`` is ``[{pid, used}]`` (used None: N/A)."""

    def nvmlDeviceGetComputeRunningProcesses(self, handle):
        self.calls.append("nvmlDeviceGetComputeRunningProcesses")
        if not self.initialized:
            raise nvml_error("Uninitialized")
        device = self.profile["devices"][handle]
        if "nvmlDeviceGetComputeRunningProcesses" in device.get("unsupported", ()):
            raise nvml_error("NotSupported")
        return [SimpleNamespace(pid=p["pid"], usedGpuMemory=p["used"]) for p in device.get("processes", [])]
