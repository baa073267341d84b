# SPDX-License-Identifier: Apache-2.0
"""What a staged server release is: does it run, which version, which backends, a GPU build or not.

``check_release`` holds it against the plan: the version the plan wants and the build kind the
plan's ``runtime.gpu_build`` names (docs/architecture.md, "Runtime"). Nothing is installed that
the plan was not made for.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ansible.module_utils.triton_elf import elf_needed
from ansible.module_utils.triton_install_errors import InstallError
from ansible.module_utils.triton_server_layout import HEADER, LIBRARY, WHEEL_SERVER_VERSIONS


def inspect_release(release_dir: Path) -> dict[str, Any]:
    """Describe a release tree: does it run, which backends, is it a GPU build.

    ``gpu_build`` is true when ``lib/`` carries a CUDA runtime (``libcudart*.so*``) or
    ``bin/tritonserver`` links one (Jetson tarballs use the system's CUDA). Returns
    ``{tritonserver, gpu_build, cudart, backends, triton_version_file}``.
    """
    server = release_dir / "bin" / "tritonserver"
    lib = release_dir / "lib"
    cudart_files = sorted(p.name for p in lib.glob("libcudart*.so*")) if lib.is_dir() else []
    cudart_needed = [n for n in elf_needed(server) if n.startswith("libcudart")] if server.is_file() else []
    backends_dir = release_dir / "backends"
    backends = sorted(p.name for p in backends_dir.iterdir() if p.is_dir()) if backends_dir.is_dir() else []
    version_file = release_dir / "TRITON_VERSION"
    return {
        "tritonserver": server.is_file() and os.access(server, os.X_OK),
        "gpu_build": bool(cudart_files or cudart_needed),
        "cudart": cudart_files or cudart_needed,
        "backends": backends,
        "triton_version_file": version_file.read_text().strip() if version_file.is_file() else None,
        "library": LIBRARY if (release_dir / LIBRARY).is_file() else None,
        "include": "include" if (release_dir / HEADER).is_file() else None,
    }


_ARTIFACT_VERSION_RE = re.compile(r"tritonserver-?(\d+\.\d+\.\d+)")


def detect_server_version(method: str, info: Mapping[str, Any], source: str, wheel_version: str | None) -> str | None:
    """Return the server version an artifact declares, or None when it declares none.

    Sources, first match wins: the wheel's version (WHEEL_SERVER_VERSIONS), a ``TRITON_VERSION``
    file at the install root (build.py trees and containers carry it), the artifact name
    (``tritonserver2.35.0-jetpack5.1.2.tgz``, ``tritonserver-2.50.0-igpu.tar.gz``).
    """
    if method == "wheel" and wheel_version in WHEEL_SERVER_VERSIONS:
        return WHEEL_SERVER_VERSIONS[wheel_version][0]
    if info.get("triton_version_file"):
        return str(info["triton_version_file"])
    match = _ARTIFACT_VERSION_RE.search(os.path.basename(source))
    return match.group(1) if match else None


def check_release(info: Mapping[str, Any], detected_version: str | None, plan: Mapping[str, Any], where: str) -> None:
    """Raise InstallError unless the staged release runs, has the plan's version and the plan's build kind.

    The plan's ``runtime.gpu_build`` says whether the server must be a GPU build (the models
    are rendered and the source build is configured for that); an artifact that differs is refused.
    """
    if not info["tritonserver"]:
        raise InstallError(
            f"The staged release has no executable bin/tritonserver (staged in {where}). "
            "Every install method must produce bin/tritonserver, lib/ and backends/. "
            "Check the artifact; the previous release is unchanged."
        )
    wanted = str(plan.get("server_version"))
    if detected_version is None:
        raise InstallError(
            f"Cannot tell which Triton version the artifact is (staged in {where}): no wheel version, no "
            "TRITON_VERSION file, no version in the artifact name. "
            f"The plan wants tritonserver {wanted}. Use an artifact that names its version "
            "(e.g. tritonserver2.35.0-jetpack5.1.2.tgz) or add TRITON_VERSION at its root."
        )
    if detected_version != wanted:
        raise InstallError(
            f"The artifact is tritonserver {detected_version} (staged in {where}) but the plan wants "
            f"{wanted} (release {plan.get('release')}). Only the plan's version is installed. "
            "Use the artifact for the planned release, or change triton_release and rerun preflight."
        )
    gpu_build = bool(plan["runtime"]["gpu_build"])
    if info["gpu_build"] and not gpu_build:
        raise InstallError(
            f"The artifact is a GPU build ({', '.join(info['cudart'])}, staged in {where}) but the plan declares a "
            "CPU-only build (plan runtime.gpu_build false, from triton_gpu_build: false). The install must be the "
            "build the plan was made for. Install a CPU-only build, or set triton_gpu_build: auto and rerun preflight."
        )
    if gpu_build and not info["gpu_build"]:
        raise InstallError(
            f"The artifact is a CPU-only build (no libcudart in lib/ or linked by bin/tritonserver, staged in "
            f"{where}) but the plan expects a GPU build (plan runtime.gpu_build true). The install must be the build "
            "the plan was made for. Install a GPU build, or declare this one with triton_gpu_build: false and rerun "
            "preflight (the host then gets a CPU plan)."
        )
