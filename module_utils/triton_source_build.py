# SPDX-License-Identifier: Apache-2.0
"""The source method: Triton's ``build.py`` command line for the plan, and whether a build is needed."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ansible.module_utils.triton_install_errors import InstallError
from ansible.module_utils.triton_release_lifecycle import manifest_matches, release_dir

# Backends a build without TRITON_ENABLE_GPU can have (docs/customization_guide/build.md).
CPU_ONLY_BACKENDS = ("identity", "repeat", "ensemble", "square", "pytorch", "onnxruntime", "openvino", "python", "fil")
GPU_BACKENDS = ("tensorrt",)


def jetpack_major(host: Mapping[str, Any]) -> int | None:
    """Return the JetPack major version from ``triton_host.jetpack_version`` ("6.2" -> 6), or None."""
    version = host.get("jetpack_version")
    try:
        return int(str(version).split(".", 1)[0]) if version else None
    except ValueError:
        return None


def source_build_argv(plan: Mapping[str, Any], host: Mapping[str, Any], options: Mapping[str, Any]) -> list[str]:
    """Return the ``build.py`` argv for a non-container build of the plan's release.

    ``options``: python, checkout (server repo), build_dir, backends (names), dryrun (bool).
    The plan's ``runtime.gpu_build`` decides a GPU build: it adds ``--enable-gpu``, (off Jetson,
    where DCGM is unavailable) ``--enable-gpu-metrics`` and ``--min-compute-capability`` (the
    plan's ``runtime.min_compute_capability``); CPU builds must only ask for backends that build
    without GPU. Jetson up to JetPack 6 targets ``igpu``; JetPack 7 is SBSA and uses the default target.
    """
    enable_gpu = bool(plan["runtime"]["gpu_build"])
    backends = list(options.get("backends") or [])
    allowed = CPU_ONLY_BACKENDS + (GPU_BACKENDS if enable_gpu else ())
    refused = [b for b in backends if b not in allowed]
    if refused:
        raise InstallError(
            f"triton_install_source_backends asks for {', '.join(refused)}, which "
            f"{'is not a known backend' if enable_gpu else 'a CPU-only build cannot have'}. "
            f"Supported {'GPU' if enable_gpu else 'CPU-only'} backends: {', '.join(allowed)}. "
            "Remove them from triton_install_source_backends, or plan a GPU build (triton_gpu_build: true)."
        )
    tag = f"r{plan['release']}"
    checkout = Path(options["checkout"])
    argv = [
        str(options.get("python", "python3")),
        str(checkout / "build.py"),
        "--no-container-build",
        f"--build-dir={options['build_dir']}",
        "--enable-logging",
        "--enable-stats",
        "--enable-metrics",
        "--enable-cpu-metrics",
        "--endpoint=http",
        "--endpoint=grpc",
    ]
    for component in ("common", "core", "backend", "thirdparty"):
        argv.append(f"--repo-tag={component}:{tag}")
    if enable_gpu:
        argv.append("--enable-gpu")
        if plan.get("platform") != "jetson":
            argv.append("--enable-gpu-metrics")
        argv.append(f"--min-compute-capability={plan['runtime']['min_compute_capability']}")
    major = jetpack_major(host)
    if plan.get("platform") == "jetson" and (major is None or major <= 6):
        argv.append("--target-platform=igpu")
    argv += [f"--backend={name}:{tag}" for name in backends]
    if options.get("dryrun"):
        argv.append("--dryrun")
    return argv


def source_build_needed(prefix: Path, plan: Mapping[str, Any], source: str) -> bool:
    """False when ``releases/<server_version>`` is a complete source build of ``source`` (repo@commit)."""
    return not manifest_matches(
        release_dir(prefix, str(plan["server_version"])), {"method": "source", "source": source}
    )
