"""A plan's ``runtime`` section for tests, in the schema the runtime-contract work puts into ``triton_plan``.

Until ``triton_compat`` computes ``plan.runtime`` itself, tests that feed an embedded application or
the in-process probe a plan give it this section (docs/architecture.md, "Plan"). It is the same
decision the service makes today: a CPU plan hides every GPU and zeroes the pools on each host
GPU; a GPU plan numbers devices in PCI order and zeroes the pools of host GPUs outside the plan.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


def with_runtime(plan: Mapping[str, Any], host_gpu_ids: Sequence[int] = ()) -> dict[str, Any]:
    """Return ``plan`` with a ``runtime`` section for ``host_gpu_ids`` (the host's CUDA ids)."""
    if plan.get("enable_gpu"):
        env = {"CUDA_DEVICE_ORDER": "PCI_BUS_ID"}
        unused = sorted(set(host_gpu_ids) - set(plan.get("gpu_ids") or []))
        memory = {
            "pinned_memory_pool_bytes": None,
            "cuda_memory_pool_bytes": {str(i): 0 for i in unused},
            "min_supported_compute_capability": plan.get("min_supported_compute_capability"),
            "gpu_metrics": plan.get("platform") != "jetson",
            "peer_access": True,
        }
    else:
        env = {"CUDA_VISIBLE_DEVICES": ""}
        memory = {
            "pinned_memory_pool_bytes": 0,
            "cuda_memory_pool_bytes": {str(i): 0 for i in sorted(host_gpu_ids)},
            "min_supported_compute_capability": None,
            "gpu_metrics": False,
            "peer_access": False,
        }
    args = []
    if memory["pinned_memory_pool_bytes"] is not None:
        args.append(f"--pinned-memory-pool-byte-size={memory['pinned_memory_pool_bytes']}")
    args += [f"--cuda-memory-pool-byte-size={gpu}:{size}" for gpu, size in memory["cuda_memory_pool_bytes"].items()]
    if memory["min_supported_compute_capability"]:
        args.append(f"--min-supported-compute-capability={memory['min_supported_compute_capability']}")
    # Options at Triton's default get no flag.
    args += [] if memory["gpu_metrics"] else ["--allow-gpu-metrics=false"]
    args += [] if memory["peer_access"] else ["--enable-peer-access=false"]
    container_env = {"NVIDIA_VISIBLE_DEVICES": "void"} if not plan.get("enable_gpu") else {}
    runtime = {
        "gpu_build": True,
        "min_compute_capability": memory["min_supported_compute_capability"] or plan.get("min_compute_capability"),
        "env": env,
        "container_env": container_env,
        "memory": memory,
        "server_args": args,
        "container_devices": {"docker": [], "podman": []},
    }
    return {**plan, "runtime": runtime}
