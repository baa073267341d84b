# SPDX-License-Identifier: Apache-2.0
"""Host facts for tritonfleet: platform (jetson | dgpu | cpu), L4T/JetPack, GPUs, CUDA, runtimes.

Everything is read from files under a ``root`` directory, so the same code inspects the running
host (``/``), a mounted rootfs, or a fixture tree. NVML comes in as an injected object (see
``triton_nvml``); no subprocess is started. The schema is fixed by docs/architecture.md: every
key is always present, ``None`` or ``[]`` when unknown, and each conclusion adds a line to
``reasons`` saying what was read where.
"""

from __future__ import annotations

import ipaddress
import json
import os
import pwd
import re
import socket
from pathlib import Path, PurePosixPath
from typing import Any

from ansible.module_utils import triton_container_engine as tce
from ansible.module_utils.triton_nvml import (
    NvmlLike,
    format_cuda_driver_version,
    is_integrated_name,
    normalize_pci_bus_id,
    probe_nvml,
)
from ansible.module_utils.triton_versions import parse_version_prefix

SCHEMA_VERSION = 1

# Bigger files are not what the probes expect (dpkg status of a full desktop is ~3 MiB).
MAX_READ_BYTES = 16 * 1024 * 1024
_MAX_SYMLINK_HOPS = 40

# jtop NVIDIA_JETPACK / jetson-containers get_jetpack_version (docs/upstream-facts.md, "Jetson"). Releases
# before R31 have no Triton build and ambiguous JetPack labels, so they are reported unknown.
L4T_TO_JETPACK: dict[str, str] = {
    "39.2.0": "7.2",
    "39.0.0": "7.2 EA",
    "38.4.0": "7.1",
    "38.2.2": "7.0",
    "38.2.1": "7.0",
    "38.2.0": "7.0",
    "36.5.0": "6.2.2",
    "36.4.7": "6.2.1",
    "36.4.4": "6.2.1",
    "36.4.3": "6.2",
    "36.4.2": "6.1 (rev1)",
    "36.4.0": "6.1",
    "36.3.0": "6.0",
    "36.2.0": "6.0 DP",
    "36.0.0": "6.0 EA",
    "35.6.4": "5.1.6",
    "35.6.3": "5.1.5",
    "35.6.2": "5.1.5",
    "35.6.1": "5.1.5",
    "35.6.0": "5.1.4",
    "35.5.0": "5.1.3",
    "35.4.1": "5.1.2",
    "35.3.1": "5.1.1",
    "35.3.0": "5.1.1 PRE",
    "35.2.1": "5.1",
    "35.1.0": "5.0.2",
    "34.1.1": "5.0.1 DP",
    "34.1.0": "5.0 DP",
    "34.0.1": "5.0 PRE-DP",
    "32.7.6": "4.6.6",
    "32.7.5": "4.6.5",
    "32.7.4": "4.6.4",
    "32.7.3": "4.6.3",
    "32.7.2": "4.6.2",
    "32.7.1": "4.6.1",
    "32.6.1": "4.6",
    "32.5.2": "4.5.1",
    "32.5.1": "4.5.1",
    "32.5.0": "4.5",
    "32.4.4": "4.4.1",
    "32.4.3": "4.4",
    "32.4.2": "4.4 DP",
    "32.3.1": "4.3",
    "32.2.3": "4.2.3",
    "32.2.1": "4.2.2",
    "32.2.0": "4.2.1",
    "32.1.0": "4.2",
    "31.1.0": "4.1.1",
    "31.0.2": "4.1",
    "31.0.1": "4.0",
}

# SoC (last "nvidia,tegraNNN" in the device-tree compatible) -> iGPU (docs/upstream-facts.md, "Compute capability").
SOC_IGPU: dict[str, dict[str, str]] = {
    "tegra264": {"name": "Thor", "compute_capability": "11.0"},
    "tegra234": {"name": "Orin", "compute_capability": "8.7"},
    "tegra194": {"name": "Xavier", "compute_capability": "7.2"},
    "tegra186": {"name": "Tegra X2", "compute_capability": "6.2"},
    "tegra210": {"name": "Tegra X1", "compute_capability": "5.3"},
}

# jtop MODULE_NAME_TABLE (docs/upstream-facts.md, "Jetson"): module part number -> module name.
MODULE_NAMES: dict[str, str] = {
    "p3834-0008": "Jetson AGX Thor Developer Kit",
    "p3767-0005": "Jetson Orin Nano Developer Kit",
    "p3767-0004": "Jetson Orin Nano 4GB",
    "p3767-0003": "Jetson Orin Nano 8GB",
    "p3767-0001": "Jetson Orin NX 8GB",
    "p3767-0000": "Jetson Orin NX 16GB",
    "p3701-0005": "Jetson AGX Orin 64GB",
    "p3701-0004": "Jetson AGX Orin 32GB",
    "p3701-0002": "Jetson IGX Orin Developer Kit",
    "p3701-0000": "Jetson AGX Orin",
    "p3668-0003": "Jetson Xavier NX 16GB",
    "p3668-0001": "Jetson Xavier NX",
    "p3668-0000": "Jetson Xavier NX Developer Kit",
    "p2888-0008": "Jetson AGX Xavier Industrial 32GB",
    "p2888-0006": "Jetson AGX Xavier 8GB",
    "p2888-0005": "Jetson AGX Xavier 64GB",
    "p2888-0004": "Jetson AGX Xavier 32GB",
    "p2888-0003": "Jetson AGX Xavier 32GB",
    "p2888-0001": "Jetson AGX Xavier 16GB",
    "p3448-0003": "Jetson Nano 2GB",
    "p3448-0002": "Jetson Nano 16GB eMMC",
    "p3448-0000": "Jetson Nano 4GB",
    "p3636-0001": "Jetson TX2 NX",
    "p3509-0000": "Jetson TX2 NX",
    "p3489-0888": "Jetson TX2 4GB",
    "p3489-0000": "Jetson TX2i",
    "p3310-1000": "Jetson TX2",
    "p2180-1000": "Jetson TX1",
}

# Packages read from the dpkg status file, in one pass over it.
L4T_CORE_PACKAGE = "nvidia-l4t-core"
LIBC_PACKAGE = "libc6"
TENSORRT_PACKAGES = ("tensorrt", "libnvinfer10", "libnvinfer8", "libnvinfer7")
ENGINE_PACKAGES = tuple(p for packages in tce.ENGINE_PACKAGES.values() for p in packages)
DPKG_PACKAGES = (L4T_CORE_PACKAGE, LIBC_PACKAGE, *TENSORRT_PACKAGES, *ENGINE_PACKAGES)

DPKG_ARCH_TO_MACHINE = {"amd64": "x86_64", "arm64": "aarch64", "armhf": "armv7l", "ppc64el": "ppc64le"}

BIN_DIRS = ("usr/bin", "usr/local/bin", "bin")
CONTAINER_ENGINES = ("docker", "podman", "nerdctl")
# docker --gpus calls nvidia-container-runtime-hook (nvidia-container-toolkit in older toolkits).
NVIDIA_CONTAINER_TOOLS = (
    "nvidia-container-runtime",
    "nvidia-ctk",
    "nvidia-container-toolkit",
    "nvidia-container-runtime-hook",
)
CDI_DIRS = ("etc/cdi", "var/run/cdi")
SYSTEMD_CANARIES = ("run/systemd/system", "dev/.run/systemd", "dev/.systemd")

DEVICE_TREE_DIRS = ("proc/device-tree", "sys/firmware/devicetree/base")
# Nodes whose presence means a GPU can be opened: nvgpu (JetPack <= 6) and OpenRM (x86, JetPack 7).
GPU_CONTROL_NODES = ("dev/nvhost-ctrl-gpu", "dev/nvgpu/igpu0/ctrl", "dev/nvidiactl")
GPU_EXTRA_NODES = ("dev/nvmap", "dev/nvidia-uvm", "dev/nvidia-uvm-tools")

NV_TEGRA_RELEASE = "etc/nv_tegra_release"
DRIVER_VERSION_FILES = ("proc/driver/nvidia/version", "sys/module/nvidia/version")
PROC_NVIDIA_GPUS = "proc/driver/nvidia/gpus"
CUDA_DIR = "usr/local/cuda"
TENSORRT_HEADER_DIRS = ("usr/include", "usr/local/tensorrt/include")

# "# R36 (release), REVISION: 4.3, GCID: 38968081, BOARD: generic, EABI: aarch64, DATE: ..."
_NV_TEGRA_RE = re.compile(r"^#\s*R(\d+)\s*\(release\),\s*REVISION:\s*(\d+(?:\.\d+)*)\s*(?:,|$)")
# "NVRM version: NVIDIA UNIX x86_64 Kernel Module  550.54.15  Tue Mar  5 22:23:56 UTC 2024"
_DRIVER_TOKEN_RE = re.compile(r"^\d+\.\d+(?:\.\d+)?$")
_SOC_RE = re.compile(r"^nvidia,(tegra\d+)$")
_PART_RE = re.compile(r"(p\d{4}-\d{4})")
_LIBC_FILE_RE = re.compile(r"^libc-(\d+\.\d+(?:\.\d+)?)\.so$")
_TRT_DEFINE_RE = re.compile(r"^\s*#\s*define\s+(\w+)\s+(\w+)", re.MULTILINE)
_CUDA_TXT_RE = re.compile(r"CUDA Version\s+(\d+(?:\.\d+)*)")
_CUDA_H_RE = re.compile(r"^\s*#\s*define\s+CUDA_VERSION\s+(\d+)\s*$", re.MULTILINE)


# --------------------------------------------------------------------------------------------
# Reading files under root


def is_host_root(root: Path) -> bool:
    """True when ``root`` is this machine's ``/`` (then NVML, uname and confstr describe it)."""
    try:
        return root.resolve() == Path("/")
    except OSError:
        return False


def resolve_under(root: Path | str, rel: str) -> str:
    """Return the path of ``rel`` inside ``root``, following symlinks as if ``root`` were ``/``.

    A mounted rootfs holds absolute links (``usr/local/cuda -> /usr/local/cuda-12.6``) that
    must not escape to the inspecting host's files. Works on strings: it runs for every file
    read, so pathlib's overhead would dominate the detection time. Raises ValueError on a
    symlink loop.
    """
    base = os.fspath(root)
    if base == "/":
        return "/" + rel.lstrip("/")
    pending = [part for part in rel.split("/") if part not in ("", ".")]
    resolved: list[str] = []
    hops = 0
    while pending:
        part = pending.pop(0)
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        candidate = os.path.join(base, *resolved, part)
        if not os.path.islink(candidate):
            resolved.append(part)
            continue
        hops += 1
        if hops > _MAX_SYMLINK_HOPS:
            raise ValueError(f"too many symbolic links resolving /{rel} under {base}")
        target = os.readlink(candidate)
        if target.startswith("/"):
            resolved = []
        pending = [p for p in target.split("/") if p not in ("", ".")] + pending
    return os.path.join(base, *resolved)


def read_bytes(root: Path, rel: str, limit: int = MAX_READ_BYTES) -> tuple[bytes | None, str | None]:
    """Read ``/rel`` under ``root``: ``(data, None)``, or ``(None, why)`` when missing/unreadable."""
    try:
        path = resolve_under(root, rel)
        with open(path, "rb") as handle:
            return handle.read(limit), None
    except FileNotFoundError:
        return None, "not found"
    except (OSError, ValueError) as err:
        return None, f"unreadable: {getattr(err, 'strerror', None) or err}"


def read_text(root: Path, rel: str, limit: int = MAX_READ_BYTES) -> tuple[str | None, str | None]:
    """Like :func:`read_bytes`, decoded as UTF-8 with undecodable bytes replaced."""
    data, why = read_bytes(root, rel, limit)
    if data is None:
        return None, why
    return data.decode("utf-8", errors="replace"), None


def exists_under(root: Path, rel: str) -> bool:
    """True when ``/rel`` exists under ``root`` (device nodes, binaries)."""
    try:
        return os.path.exists(resolve_under(root, rel))
    except (OSError, ValueError):
        return False


def list_dir(root: Path, rel: str) -> list[str]:
    """Sorted entry names of directory ``/rel`` under ``root``; [] when absent or unreadable."""
    try:
        return sorted(os.listdir(resolve_under(root, rel)))
    except (OSError, ValueError):
        return []


# --------------------------------------------------------------------------------------------
# Pure parsers


def parse_os_release(text: str) -> dict[str, str]:
    """Parse os-release ``KEY=value`` lines (quotes removed); lines that are not assignments are skipped."""
    values: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.strip().partition("=")
        if not sep or not key or not key.replace("_", "").isalnum():
            continue
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        values[key] = value
    return values


def parse_nv_tegra_release(text: str) -> str | None:
    """Return the L4T version from the first line of /etc/nv_tegra_release, or None.

    ``"# R35 (release), REVISION: 4.1, GCID: ..."`` -> ``"35.4.1"``. The BOARD field is ignored
    (jtop: "CONTAINS ALWAYS WRONG OUTPUT").
    """
    first = text.splitlines()[0] if text else ""
    match = _NV_TEGRA_RE.match(first.strip())
    if match is None:
        return None
    return f"{match.group(1)}.{match.group(2)}"


def normalize_l4t_version(version: str) -> str:
    """Pad an L4T version to three parts for the JetPack table: ``"32.5"`` -> ``"32.5.0"``."""
    parts = version.split(".")
    return ".".join(parts + ["0"] * (3 - len(parts))) if len(parts) < 3 else version


def jetpack_for_l4t(version: str | None) -> str | None:
    """JetPack release for an L4T version, or None when it is not in the table (never guessed)."""
    if not version:
        return None
    return L4T_TO_JETPACK.get(normalize_l4t_version(version))


def parse_device_tree_string(data: bytes) -> str | None:
    """Decode a device-tree string property (``model``): trailing NULs stripped; None when empty."""
    text = data.split(b"\x00", 1)[0].decode("utf-8", errors="replace").strip()
    return text or None


def parse_device_tree_compatible(data: bytes) -> list[str]:
    """Split the NUL-separated ``compatible`` property into its strings."""
    return [item.decode("utf-8", errors="replace") for item in data.split(b"\x00") if item.strip()]


def soc_from_compatible(compatible: list[str]) -> str | None:
    """The last ``nvidia,tegraNNN`` entry (``tegra23x`` family aliases are skipped), or None."""
    socs = [m.group(1) for m in (_SOC_RE.match(item.strip()) for item in compatible) if m]
    return socs[-1] if socs else None


def module_from_compatible(compatible: list[str]) -> str | None:
    """The module part number in ``compatible``, or None.

    Entries are ``nvidia,<carrier>+<module>`` or ``nvidia,<module>`` (``p3701-0005``); a part
    number listed in MODULE_NAMES wins, else the module half of the first board entry.
    """
    candidates: list[str] = []
    for item in compatible:
        vendor, _, board = item.strip().partition(",")
        if vendor != "nvidia" or not board.startswith("p"):
            continue
        for half in reversed(board.split("+")):
            match = _PART_RE.match(half)
            if match:
                candidates.append(match.group(1))
    for part in candidates:
        if part in MODULE_NAMES:
            return part
    return candidates[0] if candidates else None


def parse_driver_version(text: str) -> str | None:
    """Driver version from /proc/driver/nvidia/version or /sys/module/nvidia/version, or None.

    The first ``N.N[.N]`` token of the first line: the number after "Kernel Module"
    (proprietary) or "Kernel Module for <arch>" (open modules), or the sysfs file's only token.
    Dates and times on that line never match (``22:23:56``, ``2024``).
    """
    first = text.strip().splitlines()[0] if text.strip() else ""
    tokens = first.split()
    for token in tokens:
        if _DRIVER_TOKEN_RE.match(token):
            return token
    return None


def parse_proc_gpu_information(text: str) -> dict[str, str]:
    """Parse /proc/driver/nvidia/gpus/<bus>/information ``Key:  value`` lines into a dict."""
    info: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip():
            info[key.strip()] = value.strip()
    return info


def parse_cuda_version_json(text: str) -> str | None:
    """``{"cuda": {"version": "12.6.68"}}`` (usr/local/cuda/version.json) -> ``"12.6.68"``."""
    try:
        data = json.loads(text)
    except ValueError:
        return None
    cuda = data.get("cuda") if isinstance(data, dict) else None
    version = cuda.get("version") if isinstance(cuda, dict) else None
    return parse_version_prefix(version) if isinstance(version, str) else None


def parse_cuda_version_txt(text: str) -> str | None:
    """``"CUDA Version 10.2.300"`` (usr/local/cuda/version.txt, CUDA <= 11.0) -> ``"10.2.300"``."""
    match = _CUDA_TXT_RE.search(text)
    return match.group(1) if match else None


def parse_cuda_header(text: str) -> str | None:
    """``#define CUDA_VERSION 13000`` (include/cuda.h) -> ``"13.0"``, or None.

    Toolkits assembled from pip wheels have no version.json, only the header.
    """
    match = _CUDA_H_RE.search(text)
    return format_cuda_driver_version(int(match.group(1))) if match else None


def parse_tensorrt_header(text: str) -> str | None:
    """``"MAJOR.MINOR.PATCH"`` from NvInferVersion.h, or None.

    TensorRT 8/10 headers ``#define NV_TENSORRT_MAJOR 10``; newer ones define it as
    ``TRT_MAJOR_ENTERPRISE`` and give the number one define further, which is followed once.
    """
    defines = dict(_TRT_DEFINE_RE.findall(text))
    parts = []
    for key in ("NV_TENSORRT_MAJOR", "NV_TENSORRT_MINOR", "NV_TENSORRT_PATCH"):
        value = defines.get(key)
        value = defines.get(value, value) if value is not None else None
        if value is None or not value.isdigit():
            return None
        parts.append(value)
    return ".".join(parts)


def scan_dpkg_status(data: bytes, packages: tuple[str, ...]) -> dict[str, dict[str, str]]:
    """Find installed ``packages`` in a dpkg status file: ``{name: {version, architecture}}``.

    Looks each stanza up with ``bytes.find`` instead of parsing the whole file, so a 3 MiB
    status costs about a millisecond. Stanzas not in state "install ok installed" are ignored.
    """
    found: dict[str, dict[str, str]] = {}
    for name in packages:
        needle = f"Package: {name}\n".encode()
        start = 0
        while True:
            pos = data.find(needle, start)
            if pos < 0:
                break
            start = pos + len(needle)
            if pos and data[pos - 1 : pos] != b"\n":
                continue
            end = data.find(b"\n\n", pos)
            stanza = data[pos : end if end >= 0 else len(data)].decode("utf-8", errors="replace")
            fields = parse_dpkg_stanza(stanza)
            if fields.get("Status") == "install ok installed" and fields.get("Version"):
                found[name] = {"version": fields["Version"], "architecture": fields.get("Architecture", "")}
                break
    return found


def parse_dpkg_stanza(stanza: str) -> dict[str, str]:
    """Top-level ``Field: value`` pairs of one dpkg status stanza (continuation lines skipped)."""
    fields: dict[str, str] = {}
    for line in stanza.splitlines():
        if not line or line[0] in " \t":
            continue
        key, sep, value = line.partition(":")
        if sep:
            fields[key.strip()] = value.strip()
    return fields


def l4t_from_package_version(version: str) -> str | None:
    """``nvidia-l4t-core`` version ``"32.7.1-20220219090432"`` -> ``"32.7.1"``."""
    head = version.split("-", 1)[0]
    return head if re.fullmatch(r"\d+\.\d+(?:\.\d+)?", head) else None


# --------------------------------------------------------------------------------------------
# Probes: each reads under root and appends its reasons


def probe_os(root: Path, host_root: bool, dpkg: dict[str, dict[str, str]], reasons: list[str]) -> dict[str, Any]:
    """OS identity from etc/os-release (else usr/lib/os-release) and the glibc version.

    glibc: ``os.confstr`` when root is this host; under a root the ``libc-X.Y.so`` target of
    ``libc.so.6`` (glibc < 2.34), else the dpkg ``libc6`` version. No ldd is run.
    """
    info: dict[str, Any] = {"id": None, "version_id": None, "pretty_name": None, "glibc_version": None}
    for rel in ("etc/os-release", "usr/lib/os-release"):
        text, _why = read_text(root, rel, limit=64 * 1024)
        if text is None:
            continue
        values = parse_os_release(text)
        info["id"] = values.get("ID") or None
        info["version_id"] = values.get("VERSION_ID") or None
        info["pretty_name"] = values.get("PRETTY_NAME") or None
        if info["id"] and info["version_id"]:
            reasons.append(f"os={info['id']} {info['version_id']}: /{rel}")
        else:
            reasons.append(f"os: /{rel} lacks ID= or VERSION_ID=")
        break
    else:
        reasons.append("os: no /etc/os-release or /usr/lib/os-release")
    info["glibc_version"], source = _glibc_version(root, host_root, dpkg)
    reasons.append(f"glibc={info['glibc_version']}: {source}")
    return info


def _glibc_version(root: Path, host_root: bool, dpkg: dict[str, dict[str, str]]) -> tuple[str | None, str]:
    if host_root:
        try:
            banner = os.confstr("CS_GNU_LIBC_VERSION") or ""
        except (OSError, ValueError):
            banner = ""
        version = parse_version_prefix(banner.rpartition(" ")[2])
        if version:
            return version, f"confstr CS_GNU_LIBC_VERSION {banner!r}"
    for libdir in _lib_dirs(root):
        try:
            target = os.readlink(os.path.join(resolve_under(root, libdir), "libc.so.6"))
        except (OSError, ValueError):
            continue
        match = _LIBC_FILE_RE.match(PurePosixPath(target).name)
        if match:
            return match.group(1), f"/{libdir}/libc.so.6 -> {target}"
    package = dpkg.get(LIBC_PACKAGE)
    if package:
        version = parse_version_prefix(package["version"], parts=2)
        if version:
            return version, f"dpkg {LIBC_PACKAGE} {package['version']}"
    return None, "no libc-X.Y.so link, no installed libc6 in /var/lib/dpkg/status"


def _lib_dirs(root: Path) -> list[str]:
    """Library directories that may hold libc.so.6: multiarch triplets first, then lib64."""
    dirs: list[str] = []
    for base in ("lib", "usr/lib"):
        dirs += [f"{base}/{name}" for name in list_dir(root, base) if name.endswith("-linux-gnu")]
    return [*dirs, "lib64", "usr/lib64"]


def probe_arch(
    root: Path, host_root: bool, arch: str | None, dpkg: dict[str, dict[str, str]], reasons: list[str]
) -> str:
    """Machine architecture: the ``arch`` option, else uname on this host, else dpkg libc6's."""
    if arch:
        reasons.append(f"arch={arch}: given by the arch option")
        return arch
    if not host_root:
        package = dpkg.get(LIBC_PACKAGE)
        machine = DPKG_ARCH_TO_MACHINE.get(package["architecture"]) if package else None
        if machine:
            reasons.append(f"arch={machine}: dpkg {LIBC_PACKAGE} Architecture {package['architecture']}")
            return machine
    machine = os.uname().machine
    reasons.append(f"arch={machine}: uname of the inspecting host")
    return machine


def probe_l4t(root: Path, dpkg: dict[str, dict[str, str]], reasons: list[str]) -> dict[str, Any]:
    """L4T release from /etc/nv_tegra_release, else the ``nvidia-l4t-core`` package version."""
    result: dict[str, Any] = {
        "l4t_version": None,
        "l4t_raw": None,
        "l4t_source": None,
        "l4t_known": None,
        "jetpack_version": None,
    }
    text, _why = read_text(root, NV_TEGRA_RELEASE, limit=64 * 1024)
    if text is not None:
        raw = text.splitlines()[0].strip() if text.strip() else ""
        result.update(l4t_raw=raw, l4t_source=f"/{NV_TEGRA_RELEASE}", l4t_version=parse_nv_tegra_release(text))
        if result["l4t_version"] is None:
            reasons.append(
                f"l4t: /{NV_TEGRA_RELEASE} found but not in '# R<n> (release), REVISION: <x.y>' form: {raw!r}"
            )
    elif L4T_CORE_PACKAGE in dpkg:
        raw = dpkg[L4T_CORE_PACKAGE]["version"]
        result.update(l4t_raw=raw, l4t_source=f"dpkg:{L4T_CORE_PACKAGE}", l4t_version=l4t_from_package_version(raw))
        if result["l4t_version"] is None:
            reasons.append(f"l4t: dpkg {L4T_CORE_PACKAGE} version {raw!r} is not <major>.<minor>.<patch>-<build>")
    else:
        return result
    result["jetpack_version"] = jetpack_for_l4t(result["l4t_version"])
    result["l4t_known"] = result["jetpack_version"] is not None
    if result["l4t_version"] is not None:
        if result["l4t_known"]:
            reasons.append(f"l4t={result['l4t_version']} ({result['l4t_source']}): JetPack {result['jetpack_version']}")
        else:
            reasons.append(
                f"l4t={result['l4t_version']} ({result['l4t_source']}): not in the L4T->JetPack table, JetPack unknown"
            )
    return result


def probe_device_tree(root: Path, reasons: list[str]) -> dict[str, Any]:
    """Board model, SoC and module part number from the device tree.

    Reads ``model`` and ``compatible`` from proc/device-tree, else
    sys/firmware/devicetree/base (containers mask the latter, simulated hosts lack the former).
    """
    result: dict[str, Any] = {"soc": None, "board": None, "module": None, "module_name": None}
    for prop in ("model", "compatible"):
        for directory in DEVICE_TREE_DIRS:
            data, _why = read_bytes(root, f"{directory}/{prop}", limit=4096)
            if data is None:
                continue
            if prop == "model":
                result["board"] = parse_device_tree_string(data)
                reasons.append(
                    f"board={result['board']}: /{directory}/model"
                    if result["board"]
                    else f"board: /{directory}/model is empty"
                )
            else:
                compatible = parse_device_tree_compatible(data)
                result["soc"] = soc_from_compatible(compatible)
                result["module"] = module_from_compatible(compatible)
                result["module_name"] = MODULE_NAMES.get(result["module"] or "")
                reasons.append(f"soc={result['soc']}, module={result['module']}: /{directory}/compatible {compatible}")
            break
    return result


def probe_device_nodes(root: Path) -> list[str]:
    """GPU device nodes present: nvgpu (/dev/nvhost-*, /dev/nvgpu/igpu0/ctrl, /dev/nvmap) and /dev/nvidia*."""
    nodes = [f"/{rel}" for rel in (*GPU_CONTROL_NODES, *GPU_EXTRA_NODES) if exists_under(root, rel)]
    numbered = [name for name in list_dir(root, "dev") if re.fullmatch(r"nvidia\d+", name)]
    nodes += [f"/dev/{name}" for name in sorted(numbered, key=lambda n: int(n[6:]))]
    return nodes


def probe_driver_files(root: Path) -> tuple[str | None, str | None, str | None]:
    """Kernel driver version from procfs/sysfs: ``(version, source, raw first line)``."""
    for rel in DRIVER_VERSION_FILES:
        text, _why = read_text(root, rel, limit=4096)
        if text is None:
            continue
        first = text.strip().splitlines()[0] if text.strip() else ""
        return parse_driver_version(text), f"/{rel}", first
    return None, None, None


def probe_proc_gpus(root: Path) -> list[dict[str, Any]]:
    """GPUs from /proc/driver/nvidia/gpus/*/information, in PCI bus order (CUDA's PCI_BUS_ID order).

    Used when the driver is loaded but NVML is not usable: name, UUID and bus id only.
    """
    gpus = []
    for entry in list_dir(root, PROC_NVIDIA_GPUS):
        text, _why = read_text(root, f"{PROC_NVIDIA_GPUS}/{entry}/information", limit=16 * 1024)
        if text is None:
            continue
        info = parse_proc_gpu_information(text)
        bus_id = normalize_pci_bus_id(info.get("Bus Location") or entry)
        gpus.append(
            {
                "name": info.get("Model") or None,
                "uuid": info.get("GPU UUID") or None,
                "pci_bus_id": bus_id,
                "compute_capability": None,
                "memory_mib": None,
                "mig_mode": None,
                "integrated": is_integrated_name(info.get("Model")),
            }
        )
    gpus.sort(key=lambda gpu: gpu["pci_bus_id"] or "")
    return [{"index": index, **gpu} for index, gpu in enumerate(gpus)]


def probe_cuda_toolkit(root: Path, reasons: list[str]) -> str | None:
    """Installed CUDA toolkit: usr/local/cuda/version.json, else version.txt, else include/cuda.h
    (major.minor only); then the same in the newest usr/local/cuda-X.Y."""
    candidates = [CUDA_DIR] + [
        f"usr/local/{name}"
        for name in sorted(list_dir(root, "usr/local"), key=_dir_version_key, reverse=True)
        if name.startswith("cuda-")
    ]
    for directory in candidates:
        for name, parser in (
            ("version.json", parse_cuda_version_json),
            ("version.txt", parse_cuda_version_txt),
            ("include/cuda.h", parse_cuda_header),
        ):
            # cuda.h is ~1 MiB; CUDA_VERSION sits in its first 16 KiB.
            text, _why = read_text(root, f"{directory}/{name}", limit=64 * 1024)
            if text is None:
                continue
            version = parser(text)
            if version:
                reasons.append(f"cuda={version}: /{directory}/{name}")
                return version
            reasons.append(f"cuda: /{directory}/{name} has no version")
    reasons.append(f"cuda: no toolkit version under /{CUDA_DIR} or /usr/local/cuda-*")
    return None


def _dir_version_key(name: str) -> tuple[int, ...]:
    version = parse_version_prefix(name.partition("-")[2]) or "0"
    return tuple(int(part) for part in version.split("."))


def probe_tensorrt(root: Path, dpkg: dict[str, dict[str, str]], reasons: list[str]) -> str | None:
    """TensorRT version from dpkg (tensorrt, libnvinfer10/8/7), else NvInferVersion.h."""
    for name in TENSORRT_PACKAGES:
        if name in dpkg:
            version = parse_version_prefix(dpkg[name]["version"], parts=3)
            if version:
                reasons.append(f"tensorrt={version}: dpkg {name} {dpkg[name]['version']}")
                return version
    for base in TENSORRT_HEADER_DIRS:
        subdirs = [name for name in list_dir(root, base) if name.endswith("-linux-gnu")]
        for rel in [f"{base}/NvInferVersion.h"] + [f"{base}/{sub}/NvInferVersion.h" for sub in subdirs]:
            text, _why = read_text(root, rel, limit=64 * 1024)
            if text is None:
                continue
            version = parse_tensorrt_header(text)
            if version:
                reasons.append(f"tensorrt={version}: /{rel}")
                return version
            reasons.append(f"tensorrt: /{rel} has no NV_TENSORRT_MAJOR/MINOR/PATCH defines")
    reasons.append(f"tensorrt: no {'/'.join(TENSORRT_PACKAGES)} package installed, no NvInferVersion.h")
    return None


def find_binaries(root: Path, names: tuple[str, ...]) -> list[dict[str, str]]:
    """First ``usr/bin``, ``usr/local/bin`` or ``bin`` hit per name: ``[{name, path}]``."""
    found = []
    for name in names:
        for directory in BIN_DIRS:
            if exists_under(root, f"{directory}/{name}"):
                found.append({"name": name, "path": f"/{directory}/{name}"})
                break
    return found


def probe_service_manager(root: Path) -> tuple[str, str]:
    """Return (``systemd`` or ``other``, reason): does systemd manage the services of the host under ``root``?

    The rule of Ansible's ``service_mgr`` fact (lib/ansible/module_utils/facts/system/service_mgr.py):
    systemd when PID 1 is ``systemd`` (``/proc/1/comm``); when PID 1 says nothing useful
    (unreadable, ``init`` or a shell, as in containers), systemd when ``systemctl`` exists and
    systemd's boot canaries (``/run/systemd/system`` and its older spellings) or a ``/sbin/init``
    link to systemd are there. The one place this is decided: the service role (supervisord
    elsewhere) and the pull role (a pidfile daemon elsewhere) read the fact.
    """
    comm = (read_text(root, "proc/1/comm")[0] or "").strip()
    has_systemctl = bool(find_binaries(root, ("systemctl",)))
    if comm == "systemd":
        return "systemd", "service_manager=systemd: /proc/1/comm is systemd"
    if comm and comm != "init" and not comm.endswith("sh"):
        return "other", f"service_manager=other: /proc/1/comm is {comm}"
    if not has_systemctl:
        return "other", f"service_manager=other: PID 1 is {comm or 'unknown'} and there is no systemctl"
    canary = next((c for c in SYSTEMD_CANARIES if exists_under(root, c)), None)
    if canary:
        return "systemd", f"service_manager=systemd: systemctl and /{canary}"
    init = os.path.join(os.fspath(root), "sbin", "init")
    if os.path.islink(init) and os.path.basename(os.readlink(init)) == "systemd":
        return "systemd", "service_manager=systemd: systemctl and /sbin/init links to systemd"
    return "other", f"service_manager=other: PID 1 is {comm or 'unknown'}, no systemd boot canary"


def probe_cdi_specs(root: Path) -> list[str]:
    """CDI spec files (``*.yaml``, ``*.json``) under etc/cdi and var/run/cdi."""
    return [
        f"/{directory}/{name}"
        for directory in CDI_DIRS
        for name in list_dir(root, directory)
        if name.endswith((".yaml", ".yml", ".json"))
    ]


def _socket_answers(path: str) -> bool:
    """True when a unix socket at ``path`` accepts a connection (a daemon listens there)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        try:
            sock.connect(path)
        except OSError:
            return False
    return True


def _int_or_none(text: str | None) -> int | None:
    try:
        return int((text or "").strip())
    except ValueError:
        return None


def probe_container_host(root: Path, live: bool) -> dict[str, Any]:
    """What decides whether an engine can start a container: cgroup layout, PID 1, limits, runtimes.

    Read from ``proc/self/*`` and ``proc/1/comm`` (this process describes the host only when
    ``root`` is ``/``), ``sys/fs/cgroup/unified/cgroup.controllers`` and the OCI runtime binaries
    podman searches; see ``triton_container_engine``.
    """
    mounts = read_text(root, "proc/self/mounts")[0]
    layout = tce.parse_cgroup_layout(mounts)
    controllers = (read_text(root, "sys/fs/cgroup/unified/cgroup.controllers")[0] or "").split()
    runtime_paths = {}
    for name, paths in tce.OCI_RUNTIME_PATHS.items():
        hit = next((p for p in paths if exists_under(root, p.lstrip("/"))), None)
        if hit:
            runtime_paths[name] = hit
    return {
        "live": live,
        "cgroup_layout": layout,
        "unified_controllers": controllers if layout == "hybrid" else [],
        "pid1": (read_text(root, "proc/1/comm")[0] or "").strip() or None,
        "hard_limits": tce.parse_hard_limits(read_text(root, "proc/self/limits")[0]),
        # sysctl files refuse a read buffer as large as MAX_READ_BYTES (ENOMEM).
        "pid_max": _int_or_none(read_text(root, "proc/sys/kernel/pid_max", limit=64)[0]),
        "sys_resource": tce.has_capability(read_text(root, "proc/self/status")[0], tce.CAP_SYS_RESOURCE),
        "runtime_paths": runtime_paths,
    }


def probe_container_engines(
    root: Path, host_root: bool, dpkg: dict[str, dict[str, str]], reasons: list[str]
) -> list[dict[str, Any]]:
    """Every container engine found, with the settings tritonfleet would run it with (``triton_container_engine``)."""
    engines = []
    found = find_binaries(root, CONTAINER_ENGINES)
    host = probe_container_host(root, host_root) if found else {}
    for item in found:
        name, path = item["name"], item["path"]
        version = tce.package_version(dpkg, name)
        if name == "podman":
            conf_files = [*tce.PODMAN_CONF_FILES]
            conf_files += [
                f"{tce.PODMAN_CONF_DIR}/{n}" for n in list_dir(root, tce.PODMAN_CONF_DIR) if n.endswith(".conf")
            ]
            conf = tce.merge_containers_conf([t for t in (read_text(root, f)[0] for f in conf_files) if t is not None])
            extra = {
                key.rsplit(".", 1)[1]: next((p for p in value if exists_under(root, p.lstrip("/"))), None)
                for key, value in conf.items()
                if key.startswith("engine.runtimes.") and isinstance(value, list)
            }
            paths = {**{k: v for k, v in extra.items() if v}, **host["runtime_paths"]}
            engine = tce.podman_engine(path, version, conf, {**host, "runtime_paths": paths})
        elif name == "docker":
            daemon, why = tce.parse_daemon_json(read_text(root, tce.DOCKER_DAEMON_JSON)[0])
            if why:
                reasons.append(f"docker: {why}")
            running = (
                any(_socket_answers(f"/{s}") for s in tce.DOCKER_SOCKETS if exists_under(root, s))
                if host_root
                else None
            )
            engine = tce.docker_engine(path, version, daemon, running, host)
        else:
            engine = tce.unsupported_engine(name, path, version)
        reasons.append(tce.engine_summary(engine))
        engines.append(engine)
    if host and host["cgroup_layout"] is None:
        reasons.append(
            "containers: no cgroup filesystem at /sys/fs/cgroup (/proc/self/mounts)"
            if host_root
            else "containers: engines not judged: no cgroup mounts in /proc/self/mounts under root"
        )
    elif host:
        limits = ", ".join(f"{k} {v if v is not None else 'unlimited'}" for k, v in host["hard_limits"].items())
        controllers = " ".join(host["unified_controllers"]) or "none"
        runtimes = ", ".join(f"{k} {v}" for k, v in host["runtime_paths"].items()) or "none"
        reasons.append(
            f"containers: cgroup layout {host['cgroup_layout']} (/proc/self/mounts; cgroup2 controllers "
            f"{controllers}), PID 1 {host['pid1']}, hard limits {limits} (/proc/self/limits), pid_max "
            f"{host['pid_max']}, "
            f"CAP_SYS_RESOURCE {host['sys_resource']}, OCI runtimes {runtimes}"
        )
    return engines


def nvml_skip_reason(root: Path) -> str | None:
    """Why NVML should not be queried for ``root``, or None when it should.

    NVML describes only the running host, and needs a loaded driver: without a GPU control node
    and without /proc/driver/nvidia, nvmlInit can only fail (or make nvidia-modprobe load a
    driver as a side effect), so the ~10-100 ms import and library search are skipped.
    """
    if not is_host_root(root):
        return "not queried: root is not /"
    if any(exists_under(root, rel) for rel in GPU_CONTROL_NODES) or exists_under(root, "proc/driver/nvidia"):
        return None
    nodes = ", ".join(f"/{rel}" for rel in GPU_CONTROL_NODES)
    return f"not queried: no GPU control node ({nodes}) and no /proc/driver/nvidia (no NVIDIA driver loaded)"


# --------------------------------------------------------------------------------------------
# What the service will meet on the host: listening ports and existing accounts

# /proc/net/tcp state column: 0A is TCP_LISTEN.
TCP_LISTEN = "0A"
PROC_NET_TCP = ("proc/net/tcp", "proc/net/tcp6")


def parse_proc_net_address(text: str) -> tuple[str, int]:
    """Return (address, port) of a ``/proc/net/tcp{,6}`` ``local_address`` field.

    The address is hex in host byte order per 32-bit word (``0100007F:1F40`` is 127.0.0.1:8000);
    IPv6 is four such words (``00000000000000000000000000000000:1F40`` is [::]:8000).
    """
    hex_address, hex_port = text.split(":")
    raw = bytes.fromhex(hex_address)
    words = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
    return str(ipaddress.ip_address(words)), int(hex_port, 16)


def parse_proc_net_tcp(text: str) -> list[tuple[str, int, int]]:
    """Return ``(address, port, socket inode)`` of every LISTEN line of ``/proc/net/tcp{,6}``."""
    found = []
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 10 or fields[3] != TCP_LISTEN:
            continue
        try:
            address, port = parse_proc_net_address(fields[1])
            found.append((address, port, int(fields[9])))
        except ValueError:
            continue
    return found


def _socket_owners(root: Path, inodes: set[int]) -> dict[int, int]:
    """Map socket inodes to the pid holding them, from the ``socket:[N]`` links in /proc/<pid>/fd."""
    owners: dict[int, int] = {}
    for pid in list_dir(root, "proc"):
        if not pid.isdigit():
            continue
        fd_dir = os.path.join(os.fspath(root), "proc", pid, "fd")
        try:
            fds = os.listdir(fd_dir)
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(os.path.join(fd_dir, fd))
            except OSError:
                continue
            if target.startswith("socket:[") and int(target[8:-1]) in inodes:
                owners.setdefault(int(target[8:-1]), int(pid))
        if len(owners) == len(inodes):
            break
    return owners


def probe_listening(root: Path) -> list[dict[str, Any]]:
    """TCP sockets listening in the host's network namespace: ``[{address, port, pid, exe}]``.

    Read from ``<root>/proc/net/tcp`` and ``tcp6``, sorted by port; ``pid`` and ``exe`` (the
    link ``/proc/<pid>/exe``) name the process holding the socket, found through the
    ``socket:[inode]`` links in ``/proc/<pid>/fd``. None when no process of this pid namespace
    holds it (or it is another user's and we are not root).
    """
    sockets = []
    for rel in PROC_NET_TCP:
        text, _why = read_text(root, rel)
        sockets += parse_proc_net_tcp(text or "")
    wanted = {inode for _address, _port, inode in sockets if inode}
    owners = _socket_owners(root, wanted) if wanted else {}
    listening = []
    for address, port, inode in sockets:
        pid = owners.get(inode)
        try:
            exe = os.readlink(os.path.join(os.fspath(root), "proc", str(pid), "exe")) if pid else None
        except OSError:
            exe = None
        listening.append({"address": address, "port": port, "pid": pid, "exe": exe})
    return sorted(listening, key=lambda entry: (entry["port"], entry["address"]))


def parse_passwd(text: str) -> dict[str, dict[str, Any]]:
    """Return ``{name: {uid, gid, comment, home, shell}}`` from ``/etc/passwd`` text."""
    accounts = {}
    for line in text.splitlines():
        fields = line.split(":")
        if len(fields) != 7 or not fields[2].isdigit() or not fields[3].isdigit():
            continue
        accounts[fields[0]] = {
            "uid": int(fields[2]),
            "gid": int(fields[3]),
            "comment": fields[4],
            "home": fields[5],
            "shell": fields[6],
        }
    return accounts


def probe_accounts(root: Path, host_root: bool, names: list[str]) -> dict[str, dict[str, Any] | None]:
    """Each named account as ``{uid, gid, comment, home, shell}``, or None when it does not exist.

    The running host is asked through the name service (``pwd``, so directory accounts count);
    a mounted root through its ``etc/passwd``.
    """
    if not names:
        return {}
    if host_root:
        found = {}
        for name in names:
            try:
                entry = pwd.getpwnam(name)
            except KeyError:
                found[name] = None
                continue
            found[name] = {
                "uid": entry.pw_uid,
                "gid": entry.pw_gid,
                "comment": entry.pw_gecos,
                "home": entry.pw_dir,
                "shell": entry.pw_shell,
            }
        return found
    text, _why = read_text(root, "etc/passwd")
    table = parse_passwd(text or "")
    return {name: table.get(name) for name in names}


# --------------------------------------------------------------------------------------------
# Putting it together


def decide_platform(
    l4t_source: str | None,
    l4t_raw: str | None,
    soc: str | None,
    driver_file: str | None,
    driver_version: str | None,
    nvml_gpus: list[dict[str, Any]],
    nvml_reason: str | None,
) -> tuple[str, str]:
    """The platform rule: ``(platform, reason)``.

    jetson: an L4T release (file or package) or a known Tegra SoC in the device tree, whatever
    NVML says (Thor's NVML lists its iGPU). dgpu: otherwise, a loaded driver (version file) or an
    NVML GPU that is not integrated. cpu: neither.
    """
    if l4t_source is not None or soc in SOC_IGPU:
        evidence = [l4t_source and f"{l4t_source} found ({l4t_raw})", soc and f"device tree SoC {soc}"]
        return "jetson", "platform=jetson: " + ", ".join(e for e in evidence if e)
    discrete = [gpu for gpu in nvml_gpus if not gpu["integrated"]]
    if driver_file or discrete:
        evidence = [
            driver_file and f"driver loaded ({driver_file}: {driver_version})",
            discrete and f"NVML lists {len(discrete)} discrete GPU(s)",
        ]
        return "dgpu", "platform=dgpu: " + ", ".join(e for e in evidence if e)
    return "cpu", (
        f"platform=cpu: no /{NV_TEGRA_RELEASE}, no {L4T_CORE_PACKAGE} package, no tegra device tree, "
        f"no NVIDIA driver version file, NVML: {nvml_reason}"
    )


def gather_host_facts(
    root: Path | str,
    nvml: NvmlLike | None,
    arch: str | None = None,
    nvml_reason: str | None = None,
    accounts: list[str] | None = None,
) -> dict[str, Any]:
    """Return the ``triton_host`` facts dict (docs/architecture.md) for the host under ``root``.

    ``nvml`` is the pynvml module or a fake with the same calls; pass None when it must not be
    queried (root is not ``/``) or cannot be loaded, with ``nvml_reason`` saying why. ``arch``
    overrides the detected architecture; ``accounts`` names the accounts to look up. Never raises
    for missing, truncated or garbage files.
    """
    reported_root = str(root)
    host_root = is_host_root(Path(root))
    # "/" takes resolve_under's fast path; a symlink to / is read the same way.
    root = Path("/") if host_root else Path(root)
    reasons: list[str] = []
    status, why = read_bytes(root, "var/lib/dpkg/status")
    dpkg = scan_dpkg_status(status, DPKG_PACKAGES) if status else {}
    if status is None and why != "not found":
        reasons.append(f"dpkg: /var/lib/dpkg/status {why}")

    os_info = probe_os(root, host_root, dpkg, reasons)
    machine = probe_arch(root, host_root, arch, dpkg, reasons)
    l4t = probe_l4t(root, dpkg, reasons)
    tree = probe_device_tree(root, reasons)
    nodes = probe_device_nodes(root)

    if nvml is not None:
        nv = probe_nvml(nvml)
    else:
        nv = {
            "usable": False,
            "reason": nvml_reason or "not queried: no NVML library given",
            "driver_version": None,
            "cuda_driver_version": None,
            "gpus": [],
            "notes": [],
        }
    reasons.append(f"nvml usable={nv['usable']}: {nv['reason']}")
    reasons.extend(nv["notes"])

    file_driver, file_source, file_raw = probe_driver_files(root)
    if nv["driver_version"]:
        driver_version, driver_source = nv["driver_version"], "nvml"
    elif file_driver:
        driver_version, driver_source = file_driver, file_source
    else:
        driver_version, driver_source = None, None
    if file_source:
        reasons.append(f"driver={file_driver}: {file_source} {file_raw!r}")

    gpus = nv["gpus"]
    if not nv["usable"] and file_source:
        gpus = probe_proc_gpus(root)
        if gpus:
            reasons.append(f"gpus: {len(gpus)} from /{PROC_NVIDIA_GPUS}/*/information (NVML not usable)")

    platform, platform_reason = decide_platform(
        l4t["l4t_source"], l4t["l4t_raw"], tree["soc"], file_source, file_driver, nv["gpus"], nv["reason"]
    )
    reasons.insert(0, platform_reason)

    control_nodes = [node for node in nodes if node.lstrip("/") in GPU_CONTROL_NODES]
    reasons.append(
        f"gpu_device_nodes_present={bool(control_nodes)}: "
        + (", ".join(control_nodes) if control_nodes else "none of " + ", ".join(f"/{n}" for n in GPU_CONTROL_NODES))
    )
    engines = probe_container_engines(root, host_root, dpkg, reasons)
    runtime_paths = [item["path"] for item in find_binaries(root, NVIDIA_CONTAINER_TOOLS)]
    cdi_specs = probe_cdi_specs(root)
    reasons.append(
        f"container engines: {', '.join(e['path'] for e in engines) or 'none'}; "
        f"NVIDIA container runtime: {', '.join(runtime_paths) or 'none'}; CDI specs: {', '.join(cdi_specs) or 'none'}"
    )
    service_manager, service_reason = probe_service_manager(root)
    reasons.append(service_reason)
    return {
        "schema_version": SCHEMA_VERSION,
        "root": reported_root,
        "platform": platform,
        "arch": machine,
        "os": os_info,
        "kernel_release": os.uname().release if host_root else None,
        **l4t,
        **tree,
        "igpu": dict(SOC_IGPU[tree["soc"]]) if platform == "jetson" and tree["soc"] in SOC_IGPU else None,
        "gpu_device_nodes": nodes,
        "gpu_device_nodes_present": bool(control_nodes),
        "driver_version": driver_version,
        "driver_source": driver_source,
        "cuda_driver_version": nv["cuda_driver_version"],
        "gpus": gpus,
        "cuda_version": probe_cuda_toolkit(root, reasons),
        "tensorrt_version": probe_tensorrt(root, dpkg, reasons),
        "nvml": {"usable": nv["usable"], "reason": nv["reason"], "driver_version": nv["driver_version"]},
        "container_engines": engines,
        "nvidia_container_runtime": {
            "present": bool(runtime_paths),
            "paths": runtime_paths + cdi_specs,
            "cdi_specs": cdi_specs,
        },
        "service_manager": service_manager,
        # Sockets of a mounted root's /proc describe the inspecting machine, not that root.
        "listening": probe_listening(root) if host_root else [],
        "accounts": probe_accounts(root, host_root, accounts or []),
        "reasons": reasons,
    }


def gpu_compute_capability(host: dict[str, Any], index: int) -> str | None:
    """Compute capability of CUDA device ``index`` from ``triton_host`` facts, or None when unknown.

    The NVML entry's value first; where it is null (the iGPU under NVML on JetPack 7, or no NVML
    entry at all on JetPack <= 6) device 0 of a Jetson is its iGPU, whose capability the facts
    carry from the SoC table (``triton_host.igpu``). Every reader of a GPU's capability uses this.
    """
    gpu = next((g for g in host.get("gpus") or [] if g.get("index") == index), None)
    if gpu is not None and gpu.get("compute_capability"):
        return gpu["compute_capability"]
    igpu = host.get("igpu")
    if igpu and ((gpu is None and index == 0) or (gpu is not None and gpu.get("integrated"))):
        return igpu.get("compute_capability")
    return None
