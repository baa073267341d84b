# SPDX-License-Identifier: Apache-2.0
"""The source method: Triton's ``build.py`` command line for the plan, and whether a build is needed."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ansible.module_utils.triton_build_py import RELEASES, flags_of
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


def build_py_of(release: str) -> dict[str, Any]:
    """Return what the release's build.py accepts: ``{flags, target_platforms, requires}``.

    The record is module_utils/triton_build_py.py, read from each release's build.py.

    Raises InstallError for a release whose build.py is not recorded.
    """
    row = RELEASES.get(release)
    if row is None:
        raise InstallError(
            f"There is no record of what build.py of release {release} accepts (module_utils/triton_build_py.py). "
            f"Source builds are supported for releases {', '.join(RELEASES)}. Pick one of them in triton_release, "
            "or regenerate the record with tools/build_py_flags.py from a server checkout."
        )
    return {**row, "flags": flags_of(release)}


def target_platform(plan: Mapping[str, Any], host: Mapping[str, Any], platforms: tuple[str, ...]) -> str:
    """The ``--target-platform`` value for the plan, always given explicitly.

    build.py guesses it from /etc/os-release when it is missing and takes any distribution whose
    ID_LIKE lacks "debian" for RHEL (Debian itself has no ID_LIKE): its generated script then
    copies ``lib64/libtritonserver.so``, which CMake installs to ``lib/`` on Debian, and the build
    fails after compiling core. Jetson up to JetPack 6 is the iGPU target (named "jetpack" by
    build.py before 23.12, "igpu" since); JetPack 7 and every other host are "linux" (the
    machine, x86_64 or aarch64/SBSA, is build.py's own ``--target-machine`` default).
    """
    major = jetpack_major(host)
    if plan.get("platform") == "jetson" and (major is None or major <= 6):
        return "igpu" if "igpu" in platforms else "jetpack"
    return "linux"


def source_build_argv(plan: Mapping[str, Any], host: Mapping[str, Any], options: Mapping[str, Any]) -> list[str]:
    """Return the ``build.py`` argv for a non-container build of the plan's release.

    ``options``: python, checkout (server repo), build_dir, backends (names), dryrun (bool).
    The plan's ``runtime.gpu_build`` decides a GPU build: it adds ``--enable-gpu``, (off Jetson,
    where DCGM is unavailable) ``--enable-gpu-metrics`` and ``--min-compute-capability`` (the
    plan's ``runtime.min_compute_capability``); CPU builds must only ask for backends that build
    without GPU. Every flag is one the release's build.py defines (``--enable-cpu-metrics`` only
    where it exists; ``--dryrun`` is left out where build.py has none, and the caller runs nothing
    then). Raises InstallError otherwise.
    """
    build_py = build_py_of(str(plan["release"]))
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
    flags = [
        "--no-container-build",
        f"--build-dir={options['build_dir']}",
        f"--target-platform={target_platform(plan, host, build_py['target_platforms'])}",
        "--enable-logging",
        "--enable-stats",
        "--enable-metrics",
        *(["--enable-cpu-metrics"] if "--enable-cpu-metrics" in build_py["flags"] else []),
        "--endpoint=http",
        "--endpoint=grpc",
    ]
    flags += [f"--repo-tag={component}:{tag}" for component in ("common", "core", "backend", "thirdparty")]
    if enable_gpu:
        flags.append("--enable-gpu")
        if plan.get("platform") != "jetson":
            flags.append("--enable-gpu-metrics")
        flags.append(f"--min-compute-capability={plan['runtime']['min_compute_capability']}")
    flags += [f"--backend={name}:{tag}" for name in backends]
    if options.get("dryrun") and "--dryrun" in build_py["flags"]:
        flags.append("--dryrun")
    unknown = [flag for flag in flags if flag.split("=", 1)[0] not in build_py["flags"]]
    if unknown:
        raise InstallError(
            f"build.py of release {plan['release']} does not define {', '.join(unknown)} "
            "(module_utils/triton_build_py.py, read from its build.py). The source method passes only flags the "
            "release's build.py defines. Pick a release whose build.py has them, or another install method."
        )
    return [str(options.get("python", "python3")), str(checkout / "build.py"), *flags]


def interpreter_probe(python: str, release: str) -> list[str] | None:
    """The command that proves ``python`` can import what the release's build.py imports; None when it needs nothing."""
    requires = build_py_of(release)["requires"]
    return [python, "-c", f"import {', '.join(requires)}"] if requires else None


def interpreter_error(python: str, release: str, stderr: str) -> InstallError:
    """The four-part refusal when ``python`` cannot import build.py's modules (``stderr`` of the probe)."""
    requires = ", ".join(build_py_of(release)["requires"])
    last = (stderr.strip().splitlines() or ["no output"])[-1]
    return InstallError(
        f"build.py of release {release} imports {requires}, which the interpreter {python} lacks ({last}). "
        "build.py runs with triton_install_source_build_python, by default the role's own venv that holds "
        "triton_install_source_build_packages. Keep that default, or point it at a Python that has them."
    )


def source_build_needed(prefix: Path, plan: Mapping[str, Any], source: str) -> bool:
    """False when ``releases/<server_version>`` is a complete source build of ``source`` (repo@commit)."""
    return not manifest_matches(
        release_dir(prefix, str(plan["server_version"])), {"method": "source", "source": source}
    )
