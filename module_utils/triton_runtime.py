# SPDX-License-Identifier: Apache-2.0
"""The plan's runtime contract: the device environment and options of every Triton process.

``runtime_section`` turns the device decisions of a plan (platform, GPU use, CUDA ids, the
build's GPU support and minimum compute capability, the Jetson pool sizes, the container GPU
mode) into ``triton_plan.runtime`` (docs/architecture.md, "Runtime"). It runs once, on the
controller, inside ``triton_compat.build_plan``; the service launcher, the container run
specification, the preflight device check, verification and embedded applications read the
result verbatim and decide nothing about devices themselves.

Facts behind the rules (Triton 2.51.0 / r24.10 sources):

- server ``src/command_line_parser.cc`` defines ``--pinned-memory-pool-byte-size``,
  ``--cuda-memory-pool-byte-size``, ``--min-supported-compute-capability`` and
  ``--enable-peer-access`` in every build (no ``TRITON_ENABLE_GPU`` guard; a CPU-only build
  ignores them), ``--allow-gpu-metrics`` in every build with metrics. Defaults
  (``src/command_line_parser.h``): pinned pool 256 MiB, peer access and GPU metrics on.
- core ``src/cuda_memory_manager.cc`` creates a pool only on a supported GPU whose size is not
  zero, so a zero pool on an id CUDA does not show is harmless.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

ENGINES = ("docker", "podman")
CONTAINER_GPU_MODES = ("auto", "gpus", "cdi", "runtime")
# Jetson boards share one RAM between CPU and iGPU: both pools come out of it.
JETSON_POOL_BYTES = 64 * 1024 * 1024
# What Triton needs from the NVIDIA container runtime: CUDA (compute) and NVML (utility).
DRIVER_CAPABILITIES = "compute,utility"
# Every GPU of the host enters a container: a subset would renumber the CUDA ids that the plan
# and the rendered model configs use (ids are PCI order on the host).
_ALL_GPUS = {
    "gpus": ["--gpus", "all"],
    "cdi": ["--device", "nvidia.com/gpu=all"],
    "runtime": ["--runtime", "nvidia", "-e", "NVIDIA_VISIBLE_DEVICES=all"],
}


def container_gpu_modes(platform: str, requested: str) -> dict[str, str]:
    """Return the GPU hand-over mode per engine for ``requested`` (``auto`` or a fixed mode).

    ``auto``: docker uses ``--gpus`` on x86/SBSA hosts and ``--runtime nvidia`` on Jetson
    (``--gpus`` is refused there, server issue #5641); podman uses CDI.
    """
    if requested != "auto":
        return {engine: requested for engine in ENGINES}
    return {"docker": "runtime" if platform == "jetson" else "gpus", "podman": "cdi"}


def memory_options(
    platform: str,
    enable_gpu: bool,
    gpu_ids: Iterable[int],
    host_gpu_ids: Iterable[int],
    min_supported_compute_capability: str | None,
    jetson_pool_bytes: Mapping[str, int],
) -> dict[str, Any]:
    """Return the device-dependent server options as data (None = Triton's default).

    A CPU plan takes no GPU memory: zero pinned pool, a zero CUDA pool on every GPU of the host,
    no GPU metrics, no peer access. A GPU plan keeps Triton's defaults on its GPUs and gives the
    host's other GPUs a zero pool; on Jetson both pools are sized for unified memory and GPU
    metrics are off (no DCGM on Jetson).
    """
    used = sorted(set(gpu_ids))
    every = sorted(set(host_gpu_ids) | set(used))
    if not enable_gpu:
        return {
            "pinned_memory_pool_bytes": 0,
            "cuda_memory_pool_bytes": {str(gpu): 0 for gpu in every},
            "min_supported_compute_capability": None,
            "gpu_metrics": False,
            "peer_access": False,
        }
    pools = {str(gpu): 0 for gpu in every if gpu not in used}
    jetson = platform == "jetson"
    if jetson:
        pools.update({str(gpu): int(jetson_pool_bytes["cuda"]) for gpu in used})
    return {
        "pinned_memory_pool_bytes": int(jetson_pool_bytes["pinned"]) if jetson else None,
        "cuda_memory_pool_bytes": dict(sorted(pools.items(), key=lambda item: int(item[0]))),
        "min_supported_compute_capability": min_supported_compute_capability,
        "gpu_metrics": not jetson,
        "peer_access": True,
    }


def server_args(memory: Mapping[str, Any]) -> list[str]:
    """Return ``memory`` as tritonserver flags; options at Triton's default get no flag."""
    args = []
    if memory["pinned_memory_pool_bytes"] is not None:
        args.append(f"--pinned-memory-pool-byte-size={memory['pinned_memory_pool_bytes']}")
    args += [f"--cuda-memory-pool-byte-size={gpu}:{size}" for gpu, size in memory["cuda_memory_pool_bytes"].items()]
    if memory["min_supported_compute_capability"] is not None:
        args.append(f"--min-supported-compute-capability={memory['min_supported_compute_capability']}")
    if not memory["gpu_metrics"]:
        args.append("--allow-gpu-metrics=false")
    if not memory["peer_access"]:
        args.append("--enable-peer-access=false")
    return args


def runtime_section(
    platform: str,
    enable_gpu: bool,
    gpu_ids: Iterable[int],
    host_gpu_ids: Iterable[int],
    gpu_build: bool,
    build_min_compute_capability: str,
    min_supported_compute_capability: str | None,
    container_gpu_mode: str = "auto",
    jetson_pool_bytes: Mapping[str, int] | None = None,
) -> dict[str, Any]:
    """Return ``triton_plan.runtime`` for one host's device decisions.

    ``gpu_ids`` are the CUDA ids the plan uses, ``host_gpu_ids`` every CUDA id the host has
    (the iGPU is id 0), ``build_min_compute_capability`` the build's default minimum and
    ``min_supported_compute_capability`` the value for the server flag (or None).
    ``jetson_pool_bytes`` is ``{pinned, cuda}`` (64 MiB each when None).

    Keys: ``gpu_build``, ``min_compute_capability`` (the minimum the server applies), ``env``
    (CUDA variables of every Triton process), ``container_env`` (added inside a container),
    ``memory``, ``server_args`` and ``container_devices`` (engine flags per engine).
    """
    pools = jetson_pool_bytes or {"pinned": JETSON_POOL_BYTES, "cuda": JETSON_POOL_BYTES}
    memory = memory_options(platform, enable_gpu, gpu_ids, host_gpu_ids, min_supported_compute_capability, pools)
    if enable_gpu:
        # CUDA's default order is fastest-first; PCI order makes CUDA ids the NVML indices.
        env = {"CUDA_DEVICE_ORDER": "PCI_BUS_ID"}
        container_env = {"NVIDIA_DRIVER_CAPABILITIES": DRIVER_CAPABILITIES}
        modes = container_gpu_modes(platform, container_gpu_mode)
        devices = {engine: list(_ALL_GPUS[modes[engine]]) for engine in ENGINES}
    else:
        env = {"CUDA_VISIBLE_DEVICES": ""}
        # void: the NVIDIA runtime injects nothing, even where it is the engine's default runtime.
        container_env = {"NVIDIA_VISIBLE_DEVICES": "void"}
        devices = {engine: [] for engine in ENGINES}
    return {
        "gpu_build": gpu_build,
        "min_compute_capability": min_supported_compute_capability or build_min_compute_capability,
        "env": env,
        "container_env": container_env,
        "memory": memory,
        "server_args": server_args(memory),
        "container_devices": devices,
    }


RUNTIME_KEYS = (
    "gpu_build",
    "min_compute_capability",
    "env",
    "container_env",
    "memory",
    "server_args",
    "container_devices",
)


class RuntimeSectionError(ValueError):
    """A plan without a complete runtime section; ``str()`` is the four-part message."""


def plan_runtime(plan: Any, where: str = "ansible_facts.triton_plan") -> Mapping[str, Any]:
    """Return the runtime section of ``plan`` for a consumer to read verbatim.

    Raises RuntimeSectionError when the plan has none or lacks one of RUNTIME_KEYS (a plan from
    an older tritonfleet, or one written by hand).
    """
    runtime = plan.get("runtime") if isinstance(plan, Mapping) else None
    missing = [key for key in RUNTIME_KEYS if not isinstance(runtime, Mapping) or key not in runtime]
    if missing:
        raise RuntimeSectionError(
            f"The plan has no complete runtime section (missing {', '.join(missing)}). Found: the plan in {where}. "
            "Supported: the plan triton_compat computes, whose runtime section holds the device environment and "
            "options every Triton process gets (docs/architecture.md, Runtime). To fix: run preflight "
            "(playbooks/preflight.yml or the triton_platform role) in the same play, or pass its triton_plan."
        )
    return runtime
