"""Build the test-only libnvidia-ml.so.1 and render the GPU list it reads.

The C source and the config format are documented in tests/fakes/libnvidia-ml/README.md.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

from fleet.profiles import HostSpec

SOURCE = Path(__file__).resolve().parent.parent / "fakes" / "libnvidia-ml" / "fake_nvml.c"
LIBRARY_NAME = "libnvidia-ml.so.1"
CONFIG_PATH = "etc/fake-nvml/gpus.conf"  # relative to a host's root
GCC_FLAGS = (
    "-std=c11",
    "-D_POSIX_C_SOURCE=200809L",
    "-shared",
    "-fPIC",
    "-O2",
    "-Wall",
    "-Wextra",
    "-Werror",
    # Only the NVML entry points are exported; helpers stay private.
    "-fvisibility=hidden",
    f"-Wl,-soname,{LIBRARY_NAME}",
)


class BuildError(RuntimeError):
    """gcc is missing or the fake NVML source does not compile."""


def build_library(out_dir: Path) -> Path:
    """Compile ``fake_nvml.c`` into ``out_dir/<source sha>/libnvidia-ml.so.1``; reuse a previous build.

    Returns the library path. Raises BuildError with gcc's output when the build fails.
    """
    digest = hashlib.sha256(SOURCE.read_bytes() + " ".join(GCC_FLAGS).encode()).hexdigest()[:16]
    target = out_dir / digest / LIBRARY_NAME
    if target.is_file():
        return target
    gcc = shutil.which("gcc")
    if gcc is None:
        raise BuildError(
            "Cannot build the fake NVML: gcc not found on PATH; the fleet's dgpu profile needs a C compiler; "
            "install gcc (apt-get install gcc) or use only cpu/jetson hosts."
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    # A per-process name: parallel fleets may build at once; the rename below is atomic.
    partial = target.with_name(f"{LIBRARY_NAME}.{os.getpid()}.partial")
    proc = subprocess.run(
        [gcc, *GCC_FLAGS, "-o", str(partial), str(SOURCE)], capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise BuildError(
            f"Cannot build the fake NVML: gcc exited {proc.returncode} on {SOURCE}: {proc.stderr.strip()}; "
            "the source must compile warning-free with the flags in tests/fleet/fakenvml.py; fix the C source."
        )
    partial.replace(target)
    return target


def _cuda_encoded(version: str) -> int:
    """NVML's integer form of a CUDA version: "12.4" -> 12040."""
    major, minor = (int(part) for part in version.split(".")[:2])
    return major * 1000 + minor * 10


def render_config(host: HostSpec) -> str:
    """The ``gpus.conf`` text for a dgpu host (format in tests/fakes/libnvidia-ml/README.md)."""
    lines = [
        f"# Fake NVML for simulated host {host.name}; written by tests/fleet.",
        f"driver_version: {host.driver_version}",
        f"cuda_driver_version: {_cuda_encoded(host.cuda_driver_version or '0.0')}",
    ]
    if host.nvml_init_error is not None:
        lines.append(f"init_error: {host.nvml_init_error}")
    lines.extend(
        f"gpu: {g.index} | {g.name} | {g.uuid} | {g.pci_bus_id} | {g.compute_capability[0]} | "
        f"{g.compute_capability[1]} | {g.memory_mib} | {g.mig_mode}"
        for g in host.gpus
    )
    return "\n".join(lines) + "\n"
