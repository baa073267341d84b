# SPDX-License-Identifier: Apache-2.0
"""The kit's own NVML readings, through the project's NVML loader and per-process measurement.

``memory_of`` sums what NVML reports for a server and every process under it (the python
backend's stubs are children of the server) with ``triton_server_check.measure_gpu_memory``,
the function verification uses; ``snapshot`` lists every GPU with its memory and every compute
process NVML sees, and names the ``libnvidia-ml`` file that answered (on a dry run, the
test-only library).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gpuproof.procs import process_name


def loaded_library(fragment: str = "libnvidia-ml.so") -> str | None:
    """The path of the first mapped file of this process whose name holds ``fragment``."""
    for line in Path("/proc/self/maps").read_text().splitlines():
        path = line.split(maxsplit=5)[-1] if len(line.split()) >= 6 else ""
        if fragment in path:
            return path
    return None


def snapshot(nvml: Any | None, reason: str | None) -> dict[str, Any]:
    """Every GPU NVML lists: memory total/used and its compute processes ({pid, name, used_bytes})."""
    result: dict[str, Any] = {"read": False, "reason": reason, "library": None, "driver": None, "gpus": []}
    if nvml is None:
        return result
    try:
        nvml.nvmlInit()
    except nvml.NVMLError as err:
        result["reason"] = f"nvmlInit failed: {err}"
        return result
    try:
        result["library"] = loaded_library()
        result["driver"] = nvml.nvmlSystemGetDriverVersion()
        for index in range(nvml.nvmlDeviceGetCount()):
            handle = nvml.nvmlDeviceGetHandleByIndex(index)
            memory = nvml.nvmlDeviceGetMemoryInfo(handle)
            processes = [
                {"pid": p.pid, "name": process_name(p.pid), "used_bytes": p.usedGpuMemory}
                for p in nvml.nvmlDeviceGetComputeRunningProcesses(handle)
            ]
            result["gpus"].append(
                {
                    "index": index,
                    "name": nvml.nvmlDeviceGetName(handle),
                    "memory_total_bytes": memory.total,
                    "memory_used_bytes": memory.used,
                    "processes": processes,
                }
            )
        result.update(read=True, reason=None)
    except nvml.NVMLError as err:
        result["reason"] = f"NVML query failed: {err}"
    finally:
        nvml.nvmlShutdown()
    return result


def memory_of(measure: Any, nvml: Any | None, reason: str | None, pid: int) -> dict[str, Any]:
    """GPU memory of ``pid`` and its descendants, per GPU, by ``measure`` (measure_gpu_memory)."""
    from ansible.module_utils.triton_app_probe import descendants

    pids = descendants(Path("/proc"), pid)
    result = measure(nvml, reason, pids)
    result["processes"] = [{"pid": p, "name": process_name(p)} for p in pids]
    return result
