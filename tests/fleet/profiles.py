"""Host profiles of the simulated fleet and the spec file that lists the hosts.

A spec is YAML::

    hosts:
      - {name: cpu-1, profile: cpu}
      - {name: orin-1, profile: jetson, board: agx-orin-jp62}
      - {name: gpu-1, profile: dgpu, gpus: 2}

``load_spec`` validates it into ``HostSpec`` objects; every other module reads only those.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml


class SpecError(ValueError):
    """The fleet spec is not valid; the message says which key and what is accepted."""


@dataclass(frozen=True)
class JetsonBoard:
    """What a Jetson exposes that detection reads: L4T release, device tree, dpkg, nodes."""

    l4t_version: str
    nv_tegra_release: str  # whole file, first line is the one parsers read
    dpkg_version: str  # nvidia-l4t-core package version
    model: str  # /sys/firmware/devicetree/base/model
    compatible: tuple[str, ...]  # /sys/firmware/devicetree/base/compatible, NUL separated
    device_nodes: tuple[str, ...]  # created only with device_nodes: true


# Tail of a JetPack 6 /etc/nv_tegra_release (captured on a JP 6.1 Orin Nano, L4T 36.4.0).
_JP6_TAIL = (
    "# KERNEL_VARIANT: oot\n"
    "TARGET_USERSPACE_LIB_DIR=nvidia\n"
    "TARGET_USERSPACE_LIB_DIR_PATH=usr/lib/aarch64-linux-gnu/nvidia\n"
)
# Nodes libcuda opens on nvgpu JetPacks (docs/upstream-facts.md, "Jetson"), a subset of the r36 set.
_JP6_NODES = (
    "/dev/nvhost-ctrl-gpu",
    "/dev/nvhost-gpu",
    "/dev/nvhost-as-gpu",
    "/dev/nvmap",
    "/dev/nvgpu/igpu0/ctrl",
    "/dev/nvgpu/igpu0/power",
    "/dev/dri/renderD128",
    "/dev/host1x-fence",
)
_JP5_NODES = ("/dev/nvhost-ctrl", "/dev/nvhost-ctrl-gpu", "/dev/nvhost-prof-gpu", "/dev/nvhost-gpu", "/dev/nvmap")

# Release lines: 36.4.3 as given in issue 5; 36.4.0 and 35.4.1 as captured on real boards
# (public captures quoted by jetson-containers' l4t_version.py and device-vendor docs). Device-tree strings
# follow mainline Linux arch/arm64/boot/dts/nvidia/*.dts; the Xavier NX model text is not verified there. dpkg build
# stamps are illustrative: parsers keep only the part before "-".
JETSON_BOARDS: dict[str, JetsonBoard] = {
    "agx-orin-jp62": JetsonBoard(
        l4t_version="36.4.3",
        nv_tegra_release="# R36 (release), REVISION: 4.3, GCID: 38968081, BOARD: generic, EABI: aarch64, "
        "DATE: Wed Jan  8 01:49:37 UTC 2025\n" + _JP6_TAIL,
        dpkg_version="36.4.3-20250107174145",
        model="NVIDIA Jetson AGX Orin Developer Kit",
        compatible=("nvidia,p3737-0000+p3701-0005", "nvidia,p3701-0005", "nvidia,tegra234"),
        device_nodes=_JP6_NODES,
    ),
    "orin-nano-jp61": JetsonBoard(
        l4t_version="36.4.0",
        nv_tegra_release="# R36 (release), REVISION: 4.0, GCID: 37537400, BOARD: generic, EABI: aarch64, "
        "DATE: Fri Sep 13 04:36:44 UTC 2024\n" + _JP6_TAIL,
        dpkg_version="36.4.0-20240913043644",
        model="NVIDIA Jetson Orin Nano Developer Kit",
        compatible=("nvidia,p3768-0000+p3767-0005", "nvidia,p3767-0005", "nvidia,tegra234"),
        device_nodes=_JP6_NODES,
    ),
    "xavier-nx-jp512": JetsonBoard(
        l4t_version="35.4.1",
        nv_tegra_release="# R35 (release), REVISION: 4.1, GCID: 33958178, BOARD: t186ref, EABI: aarch64, "
        "DATE: Tue Aug  1 19:57:35 UTC 2023\n",
        dpkg_version="35.4.1-20230801195735",
        model="NVIDIA Jetson Xavier NX Developer Kit",
        compatible=("nvidia,p3509-0000+p3668-0000", "nvidia,tegra194"),
        device_nodes=_JP5_NODES,
    ),
}

# x86 dGPU nodes (docs/upstream-facts.md, "Jetson"); nvidia<N> is added per GPU.
DGPU_GLOBAL_NODES = ("/dev/nvidiactl", "/dev/nvidia-uvm", "/dev/nvidia-uvm-tools")

PROFILES = ("cpu", "jetson", "dgpu")
MIG_MODES = ("disabled", "enabled", "unsupported")
_NAME_RE = re.compile(r"^[a-z][a-z0-9-]{0,19}$")
_VERSION_RE = re.compile(r"^\d+\.\d+(\.\d+)?$")


@dataclass(frozen=True)
class Gpu:
    """One simulated GPU as the fake NVML reports it."""

    index: int
    name: str
    uuid: str
    pci_bus_id: str
    compute_capability: tuple[int, int]
    memory_mib: int
    mig_mode: str


@dataclass(frozen=True)
class HostSpec:
    """One simulated host: its name, profile and the profile's knobs (defaults filled in)."""

    name: str
    profile: str
    board: str | None = None
    device_nodes: bool = False
    l4t_release_file: bool = True
    gpus: tuple[Gpu, ...] = ()
    driver_version: str | None = None
    cuda_driver_version: str | None = None
    nvml: bool = False
    nvml_init_error: int | None = None

    @property
    def jetson_board(self) -> JetsonBoard | None:
        """The board table entry of a Jetson host, else None."""
        return JETSON_BOARDS[self.board] if self.board else None

    @property
    def group(self) -> str:
        """Inventory group of the host: the profile name."""
        return self.profile


_COMMON_KEYS = {"name", "profile", "device_nodes"}
_PROFILE_KEYS = {
    "cpu": set(),
    "jetson": {"board", "l4t_release_file"},
    "dgpu": {
        "gpus",
        "gpu_name",
        "gpu_memory_mib",
        "compute_capability",
        "mig_mode",
        "driver_version",
        "cuda_driver_version",
        "nvml",
        "nvml_init_error",
    },
}


def _fail(where: str, found: Any, supported: str, todo: str) -> SpecError:
    return SpecError(f"Fleet spec {where} is invalid: found {found!r}; supported: {supported}; {todo}.")


def _version(raw: Any, where: str) -> str:
    text = str(raw)
    if not _VERSION_RE.match(text):
        raise _fail(where, raw, "a dotted version such as 550.54.15 or 12.4", f"quote it as a string in {where}")
    return text


def _dgpu_gpus(name: str, raw: dict[str, Any]) -> tuple[Gpu, ...]:
    count = raw.get("gpus", 1)
    if not isinstance(count, int) or isinstance(count, bool) or not 0 <= count <= 8:
        raise _fail(f"host {name} key gpus", count, "an integer 0..8", "set gpus to the number of GPUs to simulate")
    cc_text = _version(raw.get("compute_capability", "8.0"), f"host {name} key compute_capability")
    major, minor = (int(part) for part in cc_text.split(".")[:2])
    mig = raw.get("mig_mode", "disabled")
    if mig not in MIG_MODES:
        raise _fail(f"host {name} key mig_mode", mig, ", ".join(MIG_MODES), "pick one of those")
    memory = raw.get("gpu_memory_mib", 40960)
    if not isinstance(memory, int) or memory <= 0:
        raise _fail(f"host {name} key gpu_memory_mib", memory, "a positive integer", "give the size in MiB")
    return tuple(
        Gpu(
            index=i,
            name=str(raw.get("gpu_name", "NVIDIA A100-SXM4-40GB")),
            # Stable per host and index, so reruns of a spec report the same UUIDs.
            uuid=f"GPU-{uuid.uuid5(uuid.NAMESPACE_DNS, f'{name}.gpu{i}.tritonfleet.test')}",
            pci_bus_id=f"00000000:{0x17 + 0x10 * i:02X}:00.0",
            compute_capability=(major, minor),
            memory_mib=memory,
            mig_mode=mig,
        )
        for i in range(count)
    )


def _host(raw: Any, position: int) -> HostSpec:
    if not isinstance(raw, dict):
        raise _fail(
            f"hosts[{position}]", raw, "a mapping with name and profile", "write it as {name: ..., profile: ...}"
        )
    name = raw.get("name")
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise _fail(
            f"hosts[{position}].name",
            name,
            "1-20 characters of a-z, 0-9 and '-', starting with a letter",
            "rename the host (it becomes a hostname and part of a namespace name)",
        )
    profile = raw.get("profile")
    if profile not in PROFILES:
        raise _fail(f"host {name} key profile", profile, ", ".join(PROFILES), "pick one of those")
    unknown = set(raw) - _COMMON_KEYS - _PROFILE_KEYS[profile]
    if unknown:
        allowed = ", ".join(sorted(_COMMON_KEYS | _PROFILE_KEYS[profile]))
        raise _fail(f"host {name}", sorted(unknown), f"keys for profile {profile}: {allowed}", "remove the others")
    device_nodes = raw.get("device_nodes", False)
    if not isinstance(device_nodes, bool):
        raise _fail(f"host {name} key device_nodes", device_nodes, "true or false", "use a YAML boolean")
    if profile == "cpu":
        return HostSpec(name=name, profile=profile, device_nodes=device_nodes)
    if profile == "jetson":
        board = raw.get("board")
        if board not in JETSON_BOARDS:
            raise _fail(f"host {name} key board", board, ", ".join(JETSON_BOARDS), "pick one of those boards")
        return HostSpec(
            name=name,
            profile=profile,
            board=board,
            device_nodes=device_nodes,
            l4t_release_file=bool(raw.get("l4t_release_file", True)),
        )
    init_error = raw.get("nvml_init_error")
    if init_error is not None and (not isinstance(init_error, int) or init_error <= 0):
        raise _fail(f"host {name} key nvml_init_error", init_error, "an NVML error code such as 9", "or leave it out")
    return HostSpec(
        name=name,
        profile=profile,
        device_nodes=device_nodes,
        gpus=_dgpu_gpus(name, raw),
        driver_version=_version(raw.get("driver_version", "550.54.15"), f"host {name} key driver_version"),
        cuda_driver_version=_version(raw.get("cuda_driver_version", "12.4"), f"host {name} key cuda_driver_version"),
        nvml=bool(raw.get("nvml", True)),
        nvml_init_error=init_error,
    )


def parse_spec(data: Any) -> list[HostSpec]:
    """Validate a spec mapping (``{"hosts": [...]}``) and return its hosts in order."""
    if not isinstance(data, dict) or not isinstance(data.get("hosts"), list) or not data["hosts"]:
        raise _fail("top level", data, "a mapping with a non-empty 'hosts' list", "see tests/fleet/README.md")
    unknown = set(data) - {"hosts"}
    if unknown:
        raise _fail("top level", sorted(unknown), "only the key 'hosts'", "remove the others")
    hosts = [_host(raw, i) for i, raw in enumerate(data["hosts"])]
    names = [h.name for h in hosts]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise _fail("hosts", duplicates, "unique host names", "rename the duplicates")
    return hosts


def load_spec(path: Path) -> list[HostSpec]:
    """Read and validate a spec file (YAML); see ``parse_spec``."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as err:
        raise SpecError(
            f"Fleet spec {path} cannot be read: {err}; expected a YAML file; fix the path or syntax."
        ) from err
    return parse_spec(data)
