# SPDX-License-Identifier: Apache-2.0
"""CUDA driver API probe through ctypes: the device view Triton itself will get.

Triton enumerates GPUs with the CUDA runtime, which sits on the driver library ``libcuda.so.1``
and honours ``CUDA_VISIBLE_DEVICES``. Loading that library in the service user's environment
and asking it the same questions (``cuInit``, ``cuDeviceGetCount``, name, compute capability,
UUID) shows what the server will see, independently of NVML (which ignores
``CUDA_VISIBLE_DEVICES`` and may work where CUDA does not).

``probe_cuda`` takes any object with ``init()``, ``device_count()`` and ``devices()`` so tests
can inject a fake; ``CudaDriver`` is the ctypes implementation.
"""

from __future__ import annotations

import ctypes
from typing import Any, Protocol

LIBCUDA = "libcuda.so.1"
# CUdevice_attribute values from cuda.h.
_ATTR_CC_MAJOR = 75
_ATTR_CC_MINOR = 76
_CUDA_SUCCESS = 0
# cuInit answers these when the driver works but shows no device (CUDA_VISIBLE_DEVICES="" included).
CUDA_ERROR_NO_DEVICE = 100
_KNOWN_ERRORS = {
    3: "CUDA_ERROR_NOT_INITIALIZED",
    35: "CUDA_ERROR_INSUFFICIENT_DRIVER",
    100: "CUDA_ERROR_NO_DEVICE",
    101: "CUDA_ERROR_INVALID_DEVICE",
    304: "CUDA_ERROR_OPERATING_SYSTEM",
    999: "CUDA_ERROR_UNKNOWN",
}


class CudaUnavailable(Exception):
    """The CUDA driver library cannot be loaded (a normal state on CPU hosts)."""


class CudaError(Exception):
    """A CUDA driver API call returned an error code."""

    def __init__(self, call: str, code: int, name: str) -> None:
        super().__init__(f"{call} returned {name} ({code})")
        self.call = call
        self.code = code
        self.name = name


class CudaLike(Protocol):
    """What ``probe_cuda`` needs from a CUDA driver binding."""

    def init(self) -> None: ...
    def device_count(self) -> int: ...
    def devices(self) -> list[dict[str, Any]]: ...


def format_uuid(raw: bytes) -> str:
    """Format the 16 bytes of a ``CUuuid`` the way NVML prints UUIDs: ``GPU-xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx``."""
    text = raw.hex()
    return f"GPU-{text[0:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:32]}"


class CudaDriver:
    """ctypes binding to the CUDA driver API; ``library`` is the soname or a path (tests)."""

    def __init__(self, library: str = LIBCUDA) -> None:
        self.library = library
        self._lib: Any = None

    def _call(self, name: str, *args: Any) -> None:
        code = getattr(self._lib, name)(*args)
        if code != _CUDA_SUCCESS:
            raise CudaError(name, code, self._error_name(code))

    def _error_name(self, code: int) -> str:
        text = ctypes.c_char_p()
        if hasattr(self._lib, "cuGetErrorName") and self._lib.cuGetErrorName(code, ctypes.byref(text)) == 0:
            return (text.value or b"").decode("ascii", "replace") or _KNOWN_ERRORS.get(code, "CUDA_ERROR")
        return _KNOWN_ERRORS.get(code, "CUDA_ERROR")

    def init(self) -> None:
        """Load the library and call ``cuInit(0)``; CudaUnavailable or CudaError on failure."""
        try:
            self._lib = ctypes.CDLL(self.library)
        except OSError as err:
            raise CudaUnavailable(f"{self.library} not found ({err})") from err
        self._call("cuInit", 0)

    def device_count(self) -> int:
        """Return ``cuDeviceGetCount``."""
        count = ctypes.c_int()
        self._call("cuDeviceGetCount", ctypes.byref(count))
        return count.value

    def devices(self) -> list[dict[str, Any]]:
        """Return ``[{index, name, compute_capability, uuid}]`` in CUDA order."""
        result = []
        for index in range(self.device_count()):
            device = ctypes.c_int()
            self._call("cuDeviceGet", ctypes.byref(device), index)
            name = ctypes.create_string_buffer(256)
            self._call("cuDeviceGetName", name, len(name), device)
            major, minor = ctypes.c_int(), ctypes.c_int()
            self._call("cuDeviceGetAttribute", ctypes.byref(major), _ATTR_CC_MAJOR, device)
            self._call("cuDeviceGetAttribute", ctypes.byref(minor), _ATTR_CC_MINOR, device)
            uuid = None
            if hasattr(self._lib, "cuDeviceGetUuid"):
                raw = ctypes.create_string_buffer(16)
                self._call("cuDeviceGetUuid", raw, device)
                uuid = format_uuid(raw.raw)
            result.append(
                {
                    "index": index,
                    "name": name.value.decode("utf-8", "replace"),
                    "compute_capability": f"{major.value}.{minor.value}",
                    "uuid": uuid,
                }
            )
        return result


def probe_cuda(cuda: CudaLike) -> dict[str, Any]:
    """Ask the injected CUDA binding what it sees.

    Returns ``{available, reason, error, count, devices}``: ``available`` is False only when the
    library cannot be loaded ("unavailable: libcuda.so.1 not found"); ``error`` is the CUDA error
    name when ``cuInit`` or a query failed (``CUDA_ERROR_NO_DEVICE`` counts as zero devices).
    """
    result: dict[str, Any] = {"available": False, "reason": None, "error": None, "count": 0, "devices": []}
    try:
        cuda.init()
        result["available"] = True
        result["devices"] = cuda.devices()
    except CudaUnavailable as err:
        result["reason"] = f"unavailable: {err}"
        return result
    except CudaError as err:
        result["available"] = True
        result["error"] = err.name
        result["reason"] = str(err)
        return result
    result["count"] = len(result["devices"])
    result["reason"] = f"cuInit succeeded, {result['count']} device(s)"
    return result
