# SPDX-License-Identifier: Apache-2.0
"""What the machine has (probe) and the few things the kit must add before measuring (prepare).

The GPU machine starts bare and is described only by its recipe: whether it has a system
``/usr/bin/python3``, a shared ``libpython3.X`` (the python backend stub links it), systemd,
``setpriv``, ``useradd`` or a C compiler is read here at run time and recorded, never assumed.

Host preparations are limited to the dynamic loader's view: a library the host has but the
loader cache lacks (``libcuda.so.1`` reachable only through the caller's ``LD_LIBRARY_PATH``, a
``libpython`` beside a non-system Python) gets its directory listed in
``/etc/ld.so.conf.d/`` (tritonfleet's server runs with ``env -i`` and inherits no
``LD_LIBRARY_PATH``). Each preparation is recorded with the reason it was needed.
"""

from __future__ import annotations

import os
import platform
import re
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path
from typing import Any

LD_CONF = Path("/etc/ld.so.conf.d/zz-tritonfleet-gpu-proof.conf")
DRIVER_DIRS = ("/usr/local/nvidia/lib64", "/usr/local/nvidia/lib", "/usr/lib/x86_64-linux-gnu", "/usr/lib64")
DRIVER_LIBS = ("libcuda.so.1", "libnvidia-ml.so.1")
TOOLS = (
    "systemctl",
    "supervisord",
    "setpriv",
    "useradd",
    "groupadd",
    "gcc",
    "cc",
    "nvcc",
    "make",
    "nvidia-smi",
    "xz",
    "tar",
    "git",
    # The container method (docs/containers.md): engines and the NVIDIA toolkit's CDI generator.
    "podman",
    "docker",
    "nvidia-ctk",
)
_LDCONFIG_LINE = re.compile(r"^\s*(\S+) \(([^)]*)\) => (\S+)$")


def _output(argv: list[str], timeout: float = 30) -> tuple[int | None, str]:
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired) as err:
        return None, str(err)
    return proc.returncode, (proc.stdout + proc.stderr).strip()


def loader_cache(text: str) -> dict[str, str]:
    """``ldconfig -p`` output -> {soname: path} for the 64-bit x86 entries (first one wins)."""
    found: dict[str, str] = {}
    for line in text.splitlines():
        match = _LDCONFIG_LINE.match(line)
        if match and "x86-64" in match.group(2):
            found.setdefault(match.group(1), match.group(3))
    return found


def base_python() -> str:
    """The interpreter a venv made from this Python runs (a venv's own base), resolved."""
    return os.path.realpath(getattr(sys, "_base_executable", None) or sys.executable)


def libpython_soname() -> str:
    """The shared library the python backend stub of this Python's minor version needs."""
    return f"libpython{sys.version_info[0]}.{sys.version_info[1]}.so.1.0"


def libpython_dirs() -> list[str]:
    """Where a shared libpython of this Python would be, the loader cache aside."""
    candidates = [
        sysconfig.get_config_var("LIBDIR"),
        os.path.join(sys.base_prefix, "lib"),
        "/usr/lib/x86_64-linux-gnu",
        "/usr/local/lib",
    ]
    return [d for i, d in enumerate(candidates) if d and d not in candidates[:i]]


def find_outside_cache(soname: str, cache: dict[str, str], dirs: list[str]) -> str | None:
    """The first ``dir/soname`` that exists when the loader cache has no entry; None otherwise."""
    if soname in cache:
        return None
    return next((d for d in dirs if Path(d, soname).exists()), None)


def venv_makes_pip(python: str) -> tuple[bool, str]:
    """Whether ``python -m venv`` makes a venv with pip here (Debian and Ubuntu split ensurepip off)."""
    with tempfile.TemporaryDirectory(prefix="gpu-proof-venv-") as temp:
        rc, out = _output([python, "-m", "venv", str(Path(temp, "v"))], timeout=120)
        has_pip = rc == 0 and Path(temp, "v", "bin", "pip").exists()
    return has_pip, out


def probe() -> dict[str, Any]:
    """Read what the machine has; every key always present."""
    rc, ldconfig = _output(["ldconfig", "-p"])
    cache = loader_cache(ldconfig) if rc == 0 else {}
    os_release = {}
    if Path("/etc/os-release").is_file():
        for line in Path("/etc/os-release").read_text().splitlines():
            key, _, value = line.partition("=")
            os_release[key] = value.strip('"')
    smi_rc, smi = _output(["nvidia-smi", "-L"])
    query_rc, query = _output(
        ["nvidia-smi", "--query-gpu=index,name,driver_version,memory.total,compute_cap", "--format=csv,noheader"]
    )
    base = base_python()
    pip_ok, venv_output = venv_makes_pip(base)
    soname = libpython_soname()
    ld_path = [d for d in os.environ.get("LD_LIBRARY_PATH", "").split(":") if d]
    return {
        "hostname": platform.node(),
        "arch": platform.machine(),
        "kernel": platform.release(),
        "os": os_release.get("PRETTY_NAME", "unknown"),
        "cpus": os.cpu_count(),
        "pid1": Path("/proc/1/comm").read_text().strip() if Path("/proc/1/comm").exists() else None,
        "systemd_booted": Path("/run/systemd/system").is_dir(),
        "python": sys.executable,
        "python_version": platform.python_version(),
        "python_base": base,
        "system_python3": os.path.realpath("/usr/bin/python3") if Path("/usr/bin/python3").exists() else None,
        "venv_makes_pip": pip_ok,
        "venv_output": venv_output[-2000:],
        "libpython": {
            "soname": soname,
            "in_loader_cache": cache.get(soname),
            "outside_cache": find_outside_cache(soname, cache, libpython_dirs()),
            "looked_in": libpython_dirs(),
        },
        "driver_libs": {
            name: {
                "in_loader_cache": cache.get(name),
                "outside_cache": find_outside_cache(name, cache, [*ld_path, *DRIVER_DIRS]),
            }
            for name in DRIVER_LIBS
        },
        "ld_library_path": os.environ.get("LD_LIBRARY_PATH"),
        "tools": {tool: shutil.which(tool) for tool in TOOLS},
        "nvidia_smi_gpus": smi.splitlines() if smi_rc == 0 else [],
        "nvidia_smi_query": query.splitlines() if query_rc == 0 else [],
        "nvidia_smi_error": None if smi_rc == 0 else smi[-500:],
    }


def loader_preparations(machine: dict[str, Any]) -> list[tuple[str, str]]:
    """(directory, why) for each library the host has outside the loader cache and the kit needs in it."""
    wanted: list[tuple[str, str]] = []
    for name, where in machine["driver_libs"].items():
        if where["outside_cache"]:
            wanted.append(
                (
                    where["outside_cache"],
                    f"{name} is in {where['outside_cache']} but not in the loader cache; "
                    "tritonfleet's server starts with env -i and would not find it",
                )
            )
    libpython = machine["libpython"]
    if libpython["outside_cache"]:
        wanted.append(
            (
                libpython["outside_cache"],
                f"{libpython['soname']} is in {libpython['outside_cache']} but not in the loader cache; "
                "the python backend stub links it",
            )
        )
    return wanted


def add_loader_dirs(dirs: list[str]) -> str:
    """Append ``dirs`` to the kit's ld.so.conf.d file and rebuild the cache; return the command shown."""
    existing = LD_CONF.read_text().splitlines() if LD_CONF.exists() else []
    LD_CONF.write_text("\n".join(dict.fromkeys([*existing, *dirs])) + "\n")
    subprocess.run(["ldconfig"], check=True, timeout=60)
    return f"echo {' '.join(dirs)} >> {LD_CONF} && ldconfig"
