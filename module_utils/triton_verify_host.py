# SPDX-License-Identifier: Apache-2.0
"""Everything verify asks a host, in one process: the deployed state, the device check, the server check.

``verify_host`` reads the deployment (``triton_report.read_deployed``), then runs the device
check (``triton_device_check.check_devices``) with the CUDA view the running server has (its
``CUDA_*``/``NVIDIA_*`` variables, or the plan's service environment when no server runs), then
the server check (``triton_server_check.verify``) against the active release. The device check
used to get that environment from Ansible's ``environment:``; here it is set in this process's
own environment before the NVML binding is imported and before ``libcuda.so.1`` is loaded
(``CudaDriver.init``), which is when CUDA reads it. Importing this module initialises nothing.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, MutableMapping
from pathlib import Path
from typing import Any

from ansible.module_utils.triton_cuda import LIBCUDA, CudaLike
from ansible.module_utils.triton_device_check import access_for, check_devices
from ansible.module_utils.triton_report import read_deployed
from ansible.module_utils.triton_runtime import plan_runtime
from ansible.module_utils.triton_server_check import read_api_key, read_pids, verify

# The variables CUDA and the NVIDIA container runtime read; the module replaces its inherited
# ones with the server's so a stray CUDA_VISIBLE_DEVICES of the connection cannot leak in.
CUDA_PREFIXES = ("CUDA_", "NVIDIA_")


def device_environment(process: Mapping[str, Any], plan: Mapping[str, Any]) -> dict[str, str]:
    """Return the environment the device check runs with: the running server's, else the plan's runtime env.

    The plan's ``runtime.env`` is what the service gives every Triton process, so a check made
    while no server runs sees the devices the next server will see.
    """
    if process["found"]:
        return dict(process["environment"])
    return {str(key): str(value) for key, value in plan_runtime(plan)["env"].items()}


def apply_cuda_environment(environ: MutableMapping[str, str], wanted: Mapping[str, str]) -> None:
    """Make ``environ``'s ``CUDA_*``/``NVIDIA_*`` variables exactly those of ``wanted``.

    Only these prefixes change: ``PATH`` and ``HOME`` do not matter to an in-process probe and
    ``LD_LIBRARY_PATH`` is read by the loader at process start only (see ``cuda_library``).
    """
    for key in [k for k in environ if k.startswith(CUDA_PREFIXES) and k not in wanted]:
        del environ[key]
    environ.update({k: v for k, v in wanted.items() if k.startswith(CUDA_PREFIXES)})


def cuda_library(environment: Mapping[str, str], root: str = "/") -> str:
    """Return the ``libcuda.so.1`` the server loads: the first one in its ``LD_LIBRARY_PATH``, else the soname.

    The dynamic loader reads ``LD_LIBRARY_PATH`` once at process start, so setting it now would
    not reach ``dlopen``; searching its directories by hand gives the same precedence (a CUDA
    forward-compatibility ``compat/`` directory wins over the system driver). ``root`` prefixes
    the directories (tests and mounted roots).
    """
    for directory in environment.get("LD_LIBRARY_PATH", "").split(":"):
        if directory and os.path.isabs(directory):
            candidate = Path(root, directory.lstrip("/"), LIBCUDA)
            if candidate.is_file():
                return str(candidate)
    return LIBCUDA


def _read(install_prefix: Path, models_root: Path, proc_root: Path, http_port: int) -> dict[str, Any]:
    try:
        return read_deployed(install_prefix, models_root, proc_root, http_port)
    except (OSError, ValueError) as err:
        raise ValueError(
            f"verify cannot read the deployed state: {err}. Looked in {install_prefix}/current/manifest.json, "
            f"{models_root}/current/instance_groups.json and {proc_root}. Supported: the layout triton_install "
            "and triton_models write. Fix: rerun playbooks/site.yml on this host to rewrite them."
        ) from err


def _api_key(path: str | None) -> str | None:
    try:
        return read_api_key(path) if path else None
    except OSError as err:
        raise ValueError(
            f"the restricted-API key cannot be read: {err}. Found: api_key_file={path}. Supported: a file the "
            "connection user can read, or none. Fix: fix its permissions or rerun triton_service."
        ) from err


def _device_check(
    plan: Mapping[str, Any], user: str | None, nvml: Any | None, nvml_reason: str | None, cuda: CudaLike, root: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    access, gids, access_user = access_for(user)
    try:
        result = check_devices(plan, nvml, cuda, os.environ, root, nvml_reason, access, gids)
    except ValueError as err:
        raise ValueError(
            f"the plan's compute capability cannot be compared: {err}. Found: plan runtime.min_compute_capability="
            f"{(plan.get('runtime') or {}).get('min_compute_capability')!r}. Supported: dotted numbers such "
            "as '7.5'. Fix: re-run preflight to rebuild triton_plan."
        ) from err
    return result, access_user


def verify_host(
    params: Mapping[str, Any],
    load_nvml: Callable[[], tuple[Any | None, str | None]],
    make_cuda: Callable[[str], CudaLike],
    session: Any,
    on_key: Callable[[str], None],
) -> dict[str, Any]:
    """Read the deployment, check the devices and the server; return what the report needs.

    ``params`` are the module's options (``install_prefix``, ``models_root``, ``proc_root``,
    ``http_port``, ``plan``, ``device_check``, ``user``, ``root``, ``url``, ``api_key_header``,
    ``api_key_file``, ``expected_outputs``, ``smoke_inference``, ``timeout``). Sets the CUDA
    variables of ``os.environ`` (this process is the probe) before ``load_nvml`` and
    ``make_cuda(library)`` run. ``on_key`` gets the API key so the caller can hide it;
    ``session`` is a requests-like session the key header is set on.

    Returns ``{manifest, release, process, device_check, access_user, server_check}``:
    ``device_check`` is ``{devices, findings}`` (None when ``params['device_check']`` is false),
    ``server_check`` the server check's report. Raises ValueError with the whole message when
    the state or the key cannot be read or the plan cannot be compared.
    """
    state = _read(
        Path(params["install_prefix"]), Path(params["models_root"]), Path(params["proc_root"]), params["http_port"]
    )
    key = _api_key(params["api_key_file"])
    environment = device_environment(state["process"], params["plan"]) if params["device_check"] else None
    if environment is not None:
        apply_cuda_environment(os.environ, environment)
    nvml, nvml_reason = load_nvml()
    device_check, access_user = None, None
    if environment is not None:
        cuda = make_cuda(cuda_library(environment, params["root"]))
        device_check, access_user = _device_check(
            params["plan"], params["user"], nvml, nvml_reason, cuda, params["root"]
        )
    if key:
        on_key(key)
    if params["api_key_header"] and key is not None:
        session.headers[params["api_key_header"]] = key
    pids, pid_reason = read_pids([state["process"]["pid"]] if state["process"]["found"] else [], None)
    release = state["release"] or {}
    server_check = verify(
        session,
        params["url"],
        params["plan"],
        nvml,
        nvml_reason,
        pids,
        pid_reason,
        expected_instance_groups=release.get("instance_groups"),
        expected_outputs=params["expected_outputs"],
        infer=params["smoke_inference"],
        timeout=params["timeout"],
    )
    return {**state, "device_check": device_check, "access_user": access_user, "server_check": server_check}
