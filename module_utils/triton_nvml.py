# SPDX-License-Identifier: Apache-2.0
"""NVML probe for tritonfleet host facts.

The probe takes an injected ``nvml`` object with the pynvml calling convention (the real
``pynvml`` module from nvidia-ml-py, or ``tests/fakes/fake_nvml.FakeNvml``), so nothing is
patched in tests. A missing library or an unloaded driver is a normal state on Jetson before
JetPack 7 and on CPU hosts: it is reported as ``usable: false`` with a reason, never raised.
"""

from __future__ import annotations

import sys
from typing import Any, Protocol

# nvmlInit failures a host is expected to show, in host terms; anything else keeps pynvml's text.
_INIT_ERROR_REASONS = {
    "NVMLError_LibraryNotFound": "libnvidia-ml.so.1 not found (no NVIDIA driver user-space library)",
    "NVMLError_DriverNotLoaded": "NVIDIA kernel driver not loaded",
    "NVMLError_LibRmVersionMismatch": "NVML library and kernel driver versions differ (reboot or reload the driver)",
    "NVMLError_NoPermission": "no permission to open the NVIDIA device nodes",
}

# go-nvlib IsIntegratedGPUName: NVML names iGPUs "Orin (nvgpu)" (JetPack 6) and "NVIDIA Thor".
_INTEGRATED_NAME_MARKERS = ("(nvgpu)", "NVIDIA Thor")

_MIB = 1024 * 1024


class NvmlLike(Protocol):
    """The subset of the pynvml module the probe calls; ``NVMLError`` is the error base class."""

    NVMLError: type[Exception]

    def nvmlInit(self) -> None: ...
    def nvmlShutdown(self) -> None: ...
    def nvmlSystemGetDriverVersion(self) -> str | bytes: ...
    def nvmlSystemGetCudaDriverVersion(self) -> int: ...
    def nvmlSystemGetCudaDriverVersion_v2(self) -> int: ...
    def nvmlDeviceGetCount(self) -> int: ...
    def nvmlDeviceGetHandleByIndex(self, index: int) -> Any: ...
    def nvmlDeviceGetName(self, handle: Any) -> str | bytes: ...
    def nvmlDeviceGetUUID(self, handle: Any) -> str | bytes: ...
    def nvmlDeviceGetPciInfo(self, handle: Any) -> Any: ...
    def nvmlDeviceGetCudaComputeCapability(self, handle: Any) -> tuple[int, int]: ...
    def nvmlDeviceGetMemoryInfo(self, handle: Any) -> Any: ...
    def nvmlDeviceGetMigMode(self, handle: Any) -> list[int]: ...


def load_nvml() -> tuple[Any | None, str | None]:
    """Import pynvml lazily and return ``(module, None)`` or ``(None, reason)``.

    Importing costs ~25 ms, so callers only do it when they will query NVML (root is ``/``).
    """
    try:
        # Lazy on purpose: absent on most Jetson and CPU hosts, and only needed when root is /.
        import pynvml
    except ImportError as err:
        return None, f"nvidia-ml-py (pynvml) is not importable by {sys.executable}: {err}"
    return pynvml, None


def _text(value: str | bytes | None) -> str | None:
    """Return NVML string results as str (older pynvml returns bytes), stripped; None when empty."""
    if value is None:
        return None
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    value = value.strip().strip("\x00")
    return value or None


def error_reason(err: Exception, at_init: bool = False) -> str:
    """Describe an NVML error as ``"<meaning> (NVMLError_Xxx)"`` without calling into the library.

    ``at_init`` selects the host-state wording for nvmlInit failures (LibraryNotFound there means
    libnvidia-ml is missing; from nvmlSystemGetCudaDriverVersion_v2 it means libcuda is).
    """
    name = type(err).__name__
    meaning = _INIT_ERROR_REASONS.get(name) if at_init else None
    return f"{meaning or str(err) or name} ({name})"


def format_cuda_driver_version(encoded: int | None) -> str | None:
    """Turn NVML's ``major*1000 + minor*10`` encoding into ``"major.minor"``.

    ``12040`` -> ``"12.4"``, ``13000`` -> ``"13.0"``. Non-int values and values below 1000
    (major version 0, never a real CUDA) -> None.
    """
    if not isinstance(encoded, int) or isinstance(encoded, bool) or encoded < 1000:
        return None
    return f"{encoded // 1000}.{(encoded % 1000) // 10}"


def normalize_pci_bus_id(bus_id: str | bytes | None) -> str | None:
    """Return a PCI address in NVML's form ``"00000000:3B:00.0"`` (8-digit domain, upper-case hex).

    Accepts NVML's own form and the procfs/sysfs form ``"0000:3b:00.0"``. Garbage -> None.
    """
    text = _text(bus_id)
    if text is None:
        return None
    parts = text.split(":")
    if len(parts) == 2:
        parts = ["0", *parts]
    if len(parts) != 3 or "." not in parts[2]:
        return None
    slot, _, function = parts[2].partition(".")
    try:
        domain, bus, dev, fn = (int(x, 16) for x in (parts[0], parts[1], slot, function))
    except ValueError:
        return None
    return f"{domain:08X}:{bus:02X}:{dev:02X}.{fn:X}"


def is_integrated_name(name: str | None) -> bool:
    """True when an NVML device name marks an integrated (Jetson) GPU."""
    return bool(name) and any(marker in name for marker in _INTEGRATED_NAME_MARKERS)


def _optional(nvml: Any, call: str, *args: Any) -> tuple[Any, str | None]:
    """Call ``nvml.<call>(*args)``; return ``(value, None)`` or ``(None, reason)`` on NVMLError.

    An older nvidia-ml-py without the function counts as unsupported, like the device saying so.
    """
    function = getattr(nvml, call, None)
    if function is None:
        return None, f"{call}: not provided by this nvidia-ml-py"
    try:
        return function(*args), None
    except nvml.NVMLError as err:
        return None, f"{call}: {error_reason(err)}"


def _device_facts(nvml: Any, index: int, notes: list[str]) -> dict[str, Any]:
    """Read one device; a call the device does not support leaves its field None with a note."""
    handle = nvml.nvmlDeviceGetHandleByIndex(index)
    name, note_name = _optional(nvml, "nvmlDeviceGetName", handle)
    uuid, note_uuid = _optional(nvml, "nvmlDeviceGetUUID", handle)
    pci, note_pci = _optional(nvml, "nvmlDeviceGetPciInfo", handle)
    cc, note_cc = _optional(nvml, "nvmlDeviceGetCudaComputeCapability", handle)
    memory, note_mem = _optional(nvml, "nvmlDeviceGetMemoryInfo", handle)
    mig, note_mig = _optional(nvml, "nvmlDeviceGetMigMode", handle)
    unsupported = [n for n in (note_name, note_uuid, note_pci, note_cc, note_mem, note_mig) if n]
    if unsupported:
        notes.append(f"NVML device {index}: " + "; ".join(unsupported))
    name = _text(name)
    mig_mode = None
    if mig is not None:
        mig_mode = "enabled" if mig[0] == 1 else "disabled"
    return {
        "index": index,
        "name": name,
        "uuid": _text(uuid),
        "pci_bus_id": normalize_pci_bus_id(getattr(pci, "busId", None)) if pci is not None else None,
        "compute_capability": f"{cc[0]}.{cc[1]}" if cc is not None else None,
        "memory_mib": int(memory.total) // _MIB if memory is not None else None,
        "mig_mode": mig_mode,
        "integrated": is_integrated_name(name),
    }


def _cuda_driver_version(nvml: Any, notes: list[str]) -> str | None:
    """Newest CUDA the driver supports; ``_v2`` asks libcuda, the v1 call falls back to NVML's own."""
    for call in ("nvmlSystemGetCudaDriverVersion_v2", "nvmlSystemGetCudaDriverVersion"):
        value, note = _optional(nvml, call)
        if note is None:
            return format_cuda_driver_version(value)
        notes.append(note)
    return None


def probe_nvml(nvml: NvmlLike) -> dict[str, Any]:
    """Query NVML through the injected ``nvml`` object.

    Returns ``{usable, reason, driver_version, cuda_driver_version, gpus, notes}``: ``gpus`` in
    NVML index order (PCI bus order), ``notes`` lists calls a device did not support. An init
    failure gives ``usable: False`` with the reason; NVML is always shut down after a good init.
    """
    result: dict[str, Any] = {
        "usable": False,
        "reason": None,
        "driver_version": None,
        "cuda_driver_version": None,
        "gpus": [],
        "notes": [],
    }
    try:
        nvml.nvmlInit()
    except nvml.NVMLError as err:
        result["reason"] = f"nvmlInit failed: {error_reason(err, at_init=True)}"
        return result
    notes: list[str] = result["notes"]
    try:
        driver, note = _optional(nvml, "nvmlSystemGetDriverVersion")
        if note:
            notes.append(note)
        driver = _text(driver)
        # Jetson's nvgpu NVML answers "N/A" rather than an error.
        result["driver_version"] = driver if driver and driver[0].isdigit() else None
        result["cuda_driver_version"] = _cuda_driver_version(nvml, notes)
        try:
            count = nvml.nvmlDeviceGetCount()
        except nvml.NVMLError as err:
            result["reason"] = f"nvmlDeviceGetCount failed: {error_reason(err)}"
            return result
        result["gpus"] = [_device_facts(nvml, index, notes) for index in range(count)]
        result["usable"] = True
        result["reason"] = f"nvmlInit succeeded, {count} device(s)"
    except nvml.NVMLError as err:
        result["gpus"] = []
        result["reason"] = f"NVML query failed: {error_reason(err)}"
    finally:
        try:
            nvml.nvmlShutdown()
        except nvml.NVMLError as err:
            notes.append(f"nvmlShutdown: {error_reason(err)}")
    return result
