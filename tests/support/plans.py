# SPDX-License-Identifier: Apache-2.0
"""Hosts as ``triton_host`` dicts and the plans triton_compat makes for them, for tests.

Hosts are built directly (docs/architecture.md, schema 1) by small builders, so tests do not
depend on the facts module; plans come from the real ``build_plan`` and the shipped matrix, so
every consumer test sees a plan (and its ``runtime`` section) exactly as preflight makes it.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from ansible.module_utils import triton_container_engine as tce
from ansible.module_utils.triton_compat import build_plan, load_matrix

MATRIX_PATH = Path(__file__).resolve().parents[2] / "roles" / "triton_platform" / "files" / "triton_matrix.yml"


@functools.cache
def _matrix() -> dict[str, Any]:
    return load_matrix(str(MATRIX_PATH))


def matrix() -> dict[str, Any]:
    """The shipped compatibility matrix (read once per test process)."""
    return _matrix()


def base_host(**over: Any) -> dict[str, Any]:
    host = {
        "schema_version": 1,
        "root": "/",
        "platform": "cpu",
        "arch": "x86_64",
        "os": {"id": "ubuntu", "version_id": "22.04", "pretty_name": "Ubuntu 22.04.4 LTS", "glibc_version": "2.35"},
        "kernel_release": "6.1.0",
        "l4t_version": None,
        "l4t_raw": None,
        "l4t_source": None,
        "l4t_known": None,
        "jetpack_version": None,
        "soc": None,
        "board": None,
        "module": None,
        "module_name": None,
        "igpu": None,
        "gpu_device_nodes": [],
        "gpu_device_nodes_present": False,
        "driver_version": None,
        "driver_source": None,
        "cuda_driver_version": None,
        "gpus": [],
        "cuda_version": None,
        "tensorrt_version": None,
        "nvml": {"usable": False, "reason": "libnvidia-ml.so.1 not found", "driver_version": None},
        "container_engines": [],
        "nvidia_container_runtime": {"present": False, "paths": [], "cdi_specs": []},
        "reasons": ["platform=cpu: no /etc/nv_tegra_release, no NVIDIA driver"],
    }
    host.update(over)
    return host


def gpu(index: int, name: str, cc: str | None) -> dict[str, Any]:
    return {
        "index": index,
        "name": name,
        "uuid": f"GPU-{index:08d}",
        "pci_bus_id": f"00000000:{index + 1:02x}:00.0",
        "compute_capability": cc,
        "memory_mib": 24576,
        "mig_mode": "disabled",
        "integrated": False,
    }


def dgpu_host(gpus: list[dict[str, Any]], driver: str | None = "560.35.03", **over: Any) -> dict[str, Any]:
    host = base_host(
        platform="dgpu",
        gpus=gpus,
        driver_version=driver,
        driver_source="nvml" if driver else None,
        gpu_device_nodes=["/dev/nvidiactl", "/dev/nvidia0"],
        gpu_device_nodes_present=True,
        nvml={"usable": True, "reason": "ok", "driver_version": driver},
        reasons=["platform=dgpu: driver loaded"],
    )
    host.update(over)
    return host


# A host where engines run as root without systemd, unified cgroups and generous limits.
CONTAINER_HOST = {
    "cgroup_layout": "unified",
    "unified_controllers": [],
    "pid1": "init",
    "hard_limits": {"nofile": 1048576, "nproc": 1048576},
    "sys_resource": True,
    "runtime_paths": {"runc": "/usr/bin/runc"},
}
NVIDIA_TOOLKIT = [
    "/usr/bin/nvidia-container-runtime",
    "/usr/bin/nvidia-ctk",
    "/usr/bin/nvidia-container-toolkit",
    "/usr/bin/nvidia-container-runtime-hook",
]
CDI_SPEC = "/etc/cdi/nvidia.yaml"


def docker_engine(nvidia_runtime: bool = True, daemon_running: bool = True) -> dict[str, Any]:
    """docker as triton_host_facts reports it (``triton_container_engine.docker_engine``)."""
    daemon = {"runtimes": {"nvidia": {"path": "nvidia-container-runtime"}}} if nvidia_runtime else {}
    return tce.docker_engine("/usr/bin/docker", "27.3.1", daemon, daemon_running, CONTAINER_HOST)


def podman_engine(**host: Any) -> dict[str, Any]:
    """podman as triton_host_facts reports it; ``host`` overrides the container host (e.g. runtime_paths={})."""
    return tce.podman_engine("/usr/bin/podman", "4.3.1", {}, {**CONTAINER_HOST, **host})


def with_containers(
    host: dict[str, Any], runtime: bool = True, engines: list[dict[str, Any]] | None = None, cdi: bool = True
) -> dict[str, Any]:
    """``host`` with container engines (docker by default) and, with ``runtime``, the NVIDIA Container Toolkit."""
    host["container_engines"] = engines if engines is not None else [docker_engine(nvidia_runtime=runtime)]
    specs = [CDI_SPEC] if runtime and cdi else []
    host["nvidia_container_runtime"] = {
        "present": runtime,
        "paths": (NVIDIA_TOOLKIT if runtime else []) + specs,
        "cdi_specs": specs,
    }
    return host


JETSONS = {
    # name: (l4t, jetpack, soc, igpu name, cc, ubuntu, glibc)
    "nano-jp4": ("32.7.1", "4.6.1", "tegra210", "Tegra X1", "5.3", "18.04", "2.27"),
    "nano-jp46": ("32.6.1", "4.6", "tegra210", "Tegra X1", "5.3", "18.04", "2.27"),
    "tx2-jp4": ("32.7.4", "4.6.4", "tegra186", "Tegra X2", "6.2", "18.04", "2.27"),
    "xavier-jp5": ("35.4.1", "5.1.2", "tegra194", "Xavier", "7.2", "20.04", "2.31"),
    "xavier-jp502": ("35.1.0", "5.0.2", "tegra194", "Xavier", "7.2", "20.04", "2.31"),
    "orin-jp6": ("36.4.3", "6.2", "tegra234", "Orin", "8.7", "22.04", "2.35"),
    "orin-jp60dp": ("36.2.0", "6.0 DP", "tegra234", "Orin", "8.7", "22.04", "2.35"),
    "thor-jp7": ("38.2.0", "7.0", "tegra264", "Thor", "11.0", "24.04", "2.39"),
}


def jetson_host(kind: str, nodes: bool = True, **over: Any) -> dict[str, Any]:
    l4t, jetpack, soc, igpu_name, cc, ubuntu, glibc = JETSONS[kind]
    major, _, revision = l4t.partition(".")
    host = base_host(
        platform="jetson",
        arch="aarch64",
        os={"id": "ubuntu", "version_id": ubuntu, "pretty_name": f"Ubuntu {ubuntu}", "glibc_version": glibc},
        l4t_version=l4t,
        l4t_raw=f"# R{major} (release), REVISION: {revision}, GCID: 1, BOARD: generic, EABI: aarch64",
        l4t_source="/etc/nv_tegra_release",
        l4t_known=True,
        jetpack_version=jetpack,
        soc=soc,
        board=f"NVIDIA Jetson {igpu_name} Developer Kit",
        module_name=f"Jetson {igpu_name}",
        igpu={"name": igpu_name, "compute_capability": cc},
        gpu_device_nodes=["/dev/nvhost-ctrl-gpu", "/dev/nvmap"] if nodes else [],
        gpu_device_nodes_present=nodes,
        reasons=["platform=jetson: /etc/nv_tegra_release found"],
    )
    host.update(over)
    return host


def make_plan(host: dict[str, Any], release: str = "24.10", method: str = "wheel", **kw: Any) -> dict[str, Any]:
    """The plan preflight makes for ``host`` (``kw``: enable_gpu, gpus, gpu_build, container_gpu_mode, ...)."""
    return build_plan(host, matrix(), release, method, **kw)


def with_method(plan: dict, method: str) -> dict:
    """``plan`` carrying another install method, as a stale or hand-edited plan would: the install
    role takes its method from the plan and must judge such a request itself."""
    return {**plan, "install_method": method}
