# SPDX-License-Identifier: Apache-2.0
"""Can Triton see the devices its plan needs? Device nodes, NVML view, CUDA view, compared with the plan.

Run as the service user with the service's environment: node access (``os.access``), group
membership, ``CUDA_VISIBLE_DEVICES`` and the CUDA driver's answers are then the server's own.
NVML and CUDA come in as injected objects (``triton_nvml.probe_nvml`` conventions and
``triton_cuda.CudaLike``); device nodes are read under ``root``.
"""

from __future__ import annotations

import grp
import os
import pwd
import re
import stat
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from ansible.module_utils.triton_cuda import probe_cuda
from ansible.module_utils.triton_nvml import probe_nvml
from ansible.module_utils.triton_runtime import plan_runtime
from ansible.module_utils.triton_versions import version_tuple

_X86_GLOBAL_NODES = ("dev/nvidiactl", "dev/nvidia-uvm")
# nvgpu exposes the same control node under two names (nvgpu-ctrl.h); either one is enough.
_JETSON_CTRL_NODES = ("dev/nvhost-ctrl-gpu", "dev/nvgpu/igpu0/ctrl")
_JETSON_NODES = ("dev/nvmap",)
_GPU_NODE_RE = re.compile(r"nvidia\d+")
_GPU_CAUSES = (
    "the NVIDIA container runtime is not used (container without --runtime nvidia / CDI devices)",
    "the service user cannot open the device nodes (group membership)",
    "CUDA_VISIBLE_DEVICES hides them",
)


def _finding(severity: str, code: str, message: str, fix: str) -> dict[str, str]:
    return {"severity": severity, "code": code, "message": message, "fix": fix}


def _node(root: Path, rel: str, required: bool, access: Callable[[str, int], bool], gids: set[int]) -> dict[str, Any]:
    """Describe one device node: presence, R/W access for this user, owning group and membership."""
    path = root / rel
    info: dict[str, Any] = {
        "path": "/" + rel,
        "required": required,
        "exists": False,
        "accessible": False,
        "mode": None,
        "group": None,
        "user_in_group": None,
    }
    try:
        st = path.stat()
    except OSError:
        return info
    try:
        group = grp.getgrgid(st.st_gid).gr_name
    except KeyError:
        group = str(st.st_gid)
    info.update(
        exists=True,
        accessible=access(str(path), os.R_OK | os.W_OK),
        mode=f"{stat.S_IMODE(st.st_mode):04o}",
        group=group,
        user_in_group=st.st_gid in gids,
    )
    return info


def access_for_user(name: str) -> tuple[Callable[[str, int], bool], set[int]]:
    """Return an access test and the group ids for user ``name``, judged from mode bits.

    The check runs as the connection user (root can open anything, and the service user's
    Python may not be readable), so the service user's view is computed from each node's owner,
    group and mode with that user's uid and groups from the passwd and group databases.
    Raises KeyError when the user does not exist.
    """
    entry = pwd.getpwnam(name)
    gids = {entry.pw_gid} | {g.gr_gid for g in grp.getgrall() if name in g.gr_mem}

    def access(path: str, mode: int) -> bool:
        st = os.stat(path)
        if st.st_uid == entry.pw_uid:
            shift = 6
        elif st.st_gid in gids:
            shift = 3
        else:
            shift = 0
        granted = (stat.S_IMODE(st.st_mode) >> shift) & 0o7
        wanted = (4 if mode & os.R_OK else 0) | (2 if mode & os.W_OK else 0) | (1 if mode & os.X_OK else 0)
        return granted & wanted == wanted

    return access, gids


def _running_user() -> str:
    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return f"uid {os.geteuid()}"


def access_for(name: str | None) -> tuple[Callable[[str, int], bool], set[int] | None, dict[str, Any]]:
    """Return the access test, the group ids and whose access is judged, for account ``name``.

    An existing account is judged from mode bits (``access_for_user``). Without ``name``, or
    when the account does not exist yet (before the first install creates it), the running
    user is judged with ``os.access`` and its own groups. The third value is
    ``{requested, exists, judged}``: the account asked for, whether it exists, and the account
    whose access the node results describe.
    """
    if name:
        try:
            access, gids = access_for_user(name)
        except KeyError:
            return os.access, None, {"requested": name, "exists": False, "judged": _running_user()}
        return access, gids, {"requested": name, "exists": True, "judged": name}
    return os.access, None, {"requested": None, "exists": None, "judged": _running_user()}


def device_nodes(
    platform: str,
    root: str = "/",
    access: Callable[[str, int], bool] = os.access,
    gids: set[int] | None = None,
) -> list[dict[str, Any]]:
    """List the GPU device nodes under ``root`` that CUDA needs on ``platform``.

    dgpu (and JetPack 7 Jetsons, which use the dGPU-style driver): ``/dev/nvidiactl``,
    ``/dev/nvidia-uvm`` and every ``/dev/nvidiaN``; older Jetsons: ``/dev/nvhost-ctrl-gpu`` or
    ``/dev/nvgpu/igpu0/ctrl`` plus ``/dev/nvmap``. On a CPU plan the nodes present are listed
    but none is required. ``gids`` defaults to this process's groups.
    """
    base = Path(root)
    if gids is None:
        gids = set(os.getgroups()) | {os.getegid()}
    required = platform != "cpu"
    per_gpu = sorted(p.name for p in (base / "dev").glob("nvidia*") if _GPU_NODE_RE.fullmatch(p.name))
    jetson_style = platform == "jetson" and not (base / _X86_GLOBAL_NODES[0]).exists()
    if jetson_style:
        ctrl = next((rel for rel in _JETSON_CTRL_NODES if (base / rel).exists()), _JETSON_CTRL_NODES[0])
        wanted = [ctrl, *_JETSON_NODES]
    else:
        wanted = [*_X86_GLOBAL_NODES, *(f"dev/{name}" for name in per_gpu)]
        if not per_gpu:
            wanted.append("dev/nvidia0")
    nodes = [_node(base, rel, required, access, gids) for rel in wanted]
    if platform == "cpu":
        nodes = [n for n in nodes if n["exists"]]
    return nodes


def nvml_view(nvml: Any | None, reason: str | None = None) -> dict[str, Any]:
    """NVML's view: ``{usable, reason, count, uuids, gpus}``; ``nvml`` None means not loadable (``reason`` says why)."""
    if nvml is None:
        return {"usable": False, "reason": reason or "NVML not loaded", "count": 0, "uuids": [], "gpus": []}
    probe = probe_nvml(nvml)
    return {
        "usable": probe["usable"],
        "reason": probe["reason"],
        "count": len(probe["gpus"]),
        "uuids": [g["uuid"] for g in probe["gpus"]],
        "gpus": probe["gpus"],
    }


def cuda_view(cuda: Any, environ: Mapping[str, str]) -> dict[str, Any]:
    """CUDA's view through the injected binding, with the ``CUDA_VISIBLE_DEVICES`` it ran under (None: unset)."""
    view = probe_cuda(cuda)
    view["cuda_visible_devices"] = environ.get("CUDA_VISIBLE_DEVICES")
    return view


def _node_findings(nodes: list[dict[str, Any]]) -> list[dict[str, str]]:
    findings = []
    for node in (n for n in nodes if n["required"]):
        if not node["exists"]:
            findings.append(
                _finding(
                    "error",
                    "device_node_missing",
                    f"{node['path']} is missing, so CUDA cannot open the GPU",
                    "load the NVIDIA driver (x86: nvidia and nvidia-uvm modules; Jetson: the nvgpu module), "
                    "or pass the node into the container (NVIDIA container runtime or CDI)",
                )
            )
        elif not node["accessible"]:
            findings.append(
                _finding(
                    "error",
                    "device_node_denied",
                    f"{node['path']} (mode {node['mode']}, group {node['group']}) is not readable and writable "
                    f"by the service user (member of {node['group']}: {node['user_in_group']})",
                    f"add the service user to group {node['group']} and restart the service",
                )
            )
    return findings


def _min_cc(plan: Mapping[str, Any]) -> str:
    """The minimum compute capability the server applies, as the plan's runtime section states it."""
    return str(plan_runtime(plan)["min_compute_capability"])


def _gpu_plan_findings(plan: Mapping[str, Any], nvml: dict[str, Any], cuda: dict[str, Any]) -> list[dict[str, str]]:
    findings = []
    visible = cuda["cuda_visible_devices"]
    if not cuda["available"]:
        findings.append(
            _finding(
                "error",
                "cuda_unavailable",
                f"the plan gives Triton GPUs {plan.get('gpu_ids')} but the CUDA driver library cannot be loaded "
                f"({cuda['reason']})",
                "install the NVIDIA driver's user-space libraries (Jetson: the L4T CUDA libraries on the loader path), "
                "or run the container with the NVIDIA container runtime",
            )
        )
        return findings
    if cuda["count"] == 0:
        seen = f"NVML sees {nvml['count']} GPU(s) but " if nvml["count"] else ""
        causes = "; ".join(_GPU_CAUSES) if nvml["count"] else "no GPU or the driver is not working"
        findings.append(
            _finding(
                "error",
                "nvml_gpus_cuda_none" if nvml["count"] else "gpu_plan_no_cuda_device",
                f"{seen}CUDA sees no device (cuInit: {cuda['error'] or 'ok'}, CUDA_VISIBLE_DEVICES="
                f"{visible!r}); Triton will fail KIND_GPU models with 'no GPUs are available'. Likely: {causes}",
                "unset or correct CUDA_VISIBLE_DEVICES in the service environment, give the service user access "
                "to the device nodes, or use the NVIDIA container runtime; otherwise plan this host as CPU "
                "(triton_enable_gpu: false)",
            )
        )
        return findings
    min_cc = _min_cc(plan)
    plan_ids = [int(i) for i in plan.get("gpu_ids") or []]
    for gid in plan_ids:
        if gid >= cuda["count"]:
            findings.append(
                _finding(
                    "error",
                    "plan_gpu_not_visible",
                    f"the plan gives Triton CUDA device {gid} but CUDA sees only {cuda['count']} device(s) "
                    f"(CUDA_VISIBLE_DEVICES={visible!r})",
                    f"set triton_gpus to ids below {cuda['count']} or make the device visible to the service",
                )
            )
    for device in cuda["devices"]:
        if version_tuple(device["compute_capability"]) >= version_tuple(min_cc):
            continue
        used = device["index"] in plan_ids
        findings.append(
            _finding(
                "error" if used else "warning",
                "gpu_below_min_cc",
                f"gpu {device['index']} has compute capability '{device['compute_capability']}' which is less than "
                f"the minimum supported of '{min_cc}' ({device['name']}); Triton will not use it",
                "pass --min-supported-compute-capability (plan runtime.memory.min_supported_compute_capability) "
                "no higher than "
                f"{device['compute_capability']} if the release's kernels support it, "
                "or leave this GPU out of triton_gpus",
            )
        )
    if visible is None and nvml["usable"] and nvml["count"] != cuda["count"]:
        findings.append(
            _finding(
                "warning",
                "nvml_cuda_count_mismatch",
                f"NVML sees {nvml['count']} GPU(s) and CUDA sees {cuda['count']} (MIG instances or a device CUDA "
                "cannot open)",
                "check MIG mode and device node access; pin the intended devices with triton_gpus",
            )
        )
    return findings


def compare_with_plan(
    plan: Mapping[str, Any], nodes: list[dict[str, Any]], nvml: dict[str, Any], cuda: dict[str, Any]
) -> list[dict[str, str]]:
    """Compare the node, NVML and CUDA views with the plan; return findings ``{severity, code, message, fix}``."""
    if plan.get("enable_gpu"):
        return _node_findings(nodes) + _gpu_plan_findings(plan, nvml, cuda)
    if cuda["count"]:
        return [
            _finding(
                "error",
                "cpu_plan_gpus_visible",
                f"the plan runs Triton on the CPU but CUDA shows it {cuda['count']} GPU(s) "
                f"(CUDA_VISIBLE_DEVICES={cuda['cuda_visible_devices']!r}); a GPU-enabled build creates memory pools "
                "and CUDA contexts on every visible GPU even when all models are KIND_CPU",
                'set CUDA_VISIBLE_DEVICES="" in the service environment (the plan\'s runtime.env), or set '
                "triton_enable_gpu: true to use the GPUs",
            )
        ]
    return []


def check_devices(
    plan: Mapping[str, Any],
    nvml: Any | None,
    cuda: Any,
    environ: Mapping[str, str],
    root: str = "/",
    nvml_reason: str | None = None,
    access: Callable[[str, int], bool] = os.access,
    gids: set[int] | None = None,
) -> dict[str, Any]:
    """Run every check; return ``{devices: {nodes, nvml, cuda}, findings}``.

    ``nvml`` is a pynvml-like object (None when not loadable, with ``nvml_reason``), ``cuda`` a
    ``triton_cuda.CudaLike``; ``environ`` supplies ``CUDA_VISIBLE_DEVICES``.
    """
    nodes = device_nodes(str(plan.get("platform") or "cpu"), root, access, gids)
    nvml_data = nvml_view(nvml, nvml_reason)
    cuda_data = cuda_view(cuda, environ)
    findings = compare_with_plan(plan, nodes, nvml_data, cuda_data)
    return {"devices": {"nodes": nodes, "nvml": nvml_data, "cuda": cuda_data}, "findings": findings}
