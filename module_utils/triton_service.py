# SPDX-License-Identifier: Apache-2.0
"""Command line and environment of the tritonserver process run by the ``triton_service`` role.

Pure functions: the plan (``ansible_facts.triton_plan``), the release manifest and the role's
options go in, an argv list and an environment dict come out. Nothing here imports
AnsibleModule or exits; errors are ``ServiceConfigError`` with a four-part message (what is
wrong, what was found where, what is supported, what to do).

Two things are deliberately *not* in the argv built here, because they must be read when the
server starts rather than when Ansible renders files (docs/architecture.md, "Service"):

- ``--load-model=<name>`` for each model directory of the active repository: the models role
  switches releases through the repository API without a restart, so a list frozen at render
  time would be stale after the first switch. The launcher lists ``<repository>/*/config.pbtxt``.
- the restricted-API key: it lives only in its 0600 key file, which the launcher reads.
"""

from __future__ import annotations

import ipaddress
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

MANIFEST_NAME = "manifest.json"
PLAN_KINDS = ("jetson", "dgpu", "cpu")
# The server's own fallback search path for helpers (the python backend stub finds python3 on PATH).
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# Triton's default --exit-timeout-secs; the service manager waits a little longer before SIGKILL.
EXIT_TIMEOUT_SECS = 30


class ServiceConfigError(ValueError):
    """A user-facing configuration problem; ``str()`` is the four-part message."""


def read_manifest(release_dir: Path) -> dict[str, Any]:
    """Return the manifest of an installed release.

    Reads ``<release_dir>/manifest.json`` (written last by the ``triton_install`` role) and
    checks the keys the service needs: ``server_version`` (str), ``gpu_build`` (bool) and
    ``python_bin_dir`` (absolute path or null). Raises ServiceConfigError when the file is
    missing, unreadable, not JSON or lacks those keys.
    """
    path = release_dir / MANIFEST_NAME
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise ServiceConfigError(
            f"No installed Triton release: cannot read {path} ({err.strerror}). "
            "The service runs the release the triton_install role lays out, with its manifest.json written last. "
            "Run the triton_install role first, or point triton_service_install_prefix at the install prefix."
        ) from err
    except ValueError as err:
        raise ServiceConfigError(
            f"The release manifest {path} is not valid JSON ({err}). "
            "manifest.json is a JSON object written by triton_install. "
            "Rerun the triton_install role to rewrite it."
        ) from err
    return check_manifest(data, str(path))


def check_manifest(data: Any, source: str) -> dict[str, Any]:
    """Return ``data`` when it is a release manifest with the keys the service needs.

    ``source`` names where it came from in the message. Checks ``server_version`` (str),
    ``gpu_build`` (bool) and ``python_bin_dir`` (absolute path or null); raises
    ServiceConfigError otherwise.
    """
    if not isinstance(data, dict):
        raise ServiceConfigError(
            f"The release manifest {source} holds a {type(data).__name__}, not an object. "
            "manifest.json is a JSON object written by triton_install. Rerun the triton_install role."
        )
    problems = []
    if not isinstance(data.get("server_version"), str):
        problems.append("server_version (string)")
    if not isinstance(data.get("gpu_build"), bool):
        problems.append("gpu_build (boolean)")
    python_bin_dir = data.get("python_bin_dir")
    if python_bin_dir is not None and not (isinstance(python_bin_dir, str) and os.path.isabs(python_bin_dir)):
        problems.append("python_bin_dir (absolute path or null)")
    if problems:
        raise ServiceConfigError(
            f"The release manifest {source} lacks or mistypes: {', '.join(problems)}. "
            "The service needs server_version, gpu_build and python_bin_dir from manifest.json. "
            "Rerun the triton_install role to rewrite the manifest."
        )
    return data


def _plan_kind(plan: Mapping[str, Any]) -> str:
    """Return the plan's platform after checking the keys the service reads."""
    platform = plan.get("platform")
    if platform not in PLAN_KINDS:
        raise ServiceConfigError(
            f"triton_service_plan.platform is {platform!r} (from ansible_facts.triton_plan). "
            f"Supported platforms: {', '.join(PLAN_KINDS)}. "
            "Run the preflight playbook so triton_plan is set, or pass a plan with a valid platform."
        )
    if not isinstance(plan.get("enable_gpu"), bool):
        raise ServiceConfigError(
            f"triton_service_plan.enable_gpu is {plan.get('enable_gpu')!r} (from ansible_facts.triton_plan). "
            "It must be true or false. Run the preflight playbook to compute the plan."
        )
    gpu_ids = plan.get("gpu_ids") or []
    if plan["enable_gpu"] and not gpu_ids:
        raise ServiceConfigError(
            f"triton_service_plan enables the GPU on platform {platform} but lists no gpu_ids "
            "(from ansible_facts.triton_plan). A GPU plan names the CUDA ids Triton uses. "
            "Rerun preflight, or set triton_enable_gpu=false for a CPU deployment."
        )
    if not all(isinstance(i, int) and i >= 0 for i in gpu_ids):
        raise ServiceConfigError(
            f"triton_service_plan.gpu_ids is {gpu_ids!r} (from ansible_facts.triton_plan). "
            "gpu_ids are non-negative CUDA device ids. Rerun preflight to compute the plan."
        )
    return str(platform)


def _check_address(name: str, address: str) -> None:
    """Raise ServiceConfigError unless ``address`` is an IP literal."""
    try:
        ipaddress.ip_address(address)
    except ValueError as err:
        raise ServiceConfigError(
            f"triton_service_{name}_address is {address!r}. "
            "Triton binds an IP literal (e.g. 0.0.0.0, 127.0.0.1, ::), not a host name. "
            f"Set triton_service_{name}_address to an IP address."
        ) from err


def _check_port(name: str, port: int) -> None:
    """Raise ServiceConfigError unless ``port`` is a TCP port."""
    if not 1 <= port <= 65535:
        raise ServiceConfigError(
            f"triton_service_{name}_port is {port}. A port is 1-65535. Set triton_service_{name}_port to one."
        )


def server_argv(plan: Mapping[str, Any], options: Mapping[str, Any]) -> list[str]:
    """Return the tritonserver argv (binary first) for a plan, without --load-model and the API key.

    ``options`` keys: ``release_dir`` (installed release), ``gpu_build`` (manifest), ``model_repository``,
    ``{http,grpc,metrics}_{address,port}``, ``host_gpu_ids`` (CUDA ids the host has, from
    ``triton_host.gpus``), ``auto_complete_config`` (bool), ``jetson_pinned_memory_pool_bytes``,
    ``jetson_cuda_memory_pool_bytes`` and ``extra_args`` (appended last).

    Per plan: a CPU plan (``enable_gpu`` false) on a GPU build zeroes the pinned pool and one CUDA
    pool per host GPU, and turns off GPU metrics and peer access, so it takes no GPU memory even
    where GPUs exist (triton-facts.md §3.2). A Jetson GPU plan turns off GPU metrics (no DCGM on
    Jetson) and sizes both pools for unified memory. Any GPU plan passes
    ``--min-supported-compute-capability`` when the plan sets one. A CPU-only build gets none of
    the GPU flags.
    """
    kind = _plan_kind(plan)
    for name in ("http", "grpc", "metrics"):
        _check_address(name, str(options[f"{name}_address"]))
        _check_port(name, int(options[f"{name}_port"]))
    release_dir = str(options["release_dir"])
    argv = [
        f"{release_dir}/bin/tritonserver",
        f"--model-repository={options['model_repository']}",
        f"--backend-directory={release_dir}/backends",
        "--model-control-mode=explicit",
        "--strict-readiness=true",
        "--exit-on-error=true",
        f"--exit-timeout-secs={EXIT_TIMEOUT_SECS}",
    ]
    if not options["auto_complete_config"]:
        argv.append("--disable-auto-complete-config")
    for name in ("http", "grpc", "metrics"):
        argv += [f"--{name}-address={options[f'{name}_address']}", f"--{name}-port={int(options[f'{name}_port'])}"]
    if options["gpu_build"]:
        argv += _gpu_flags(kind, plan, options)
    argv += [str(arg) for arg in options.get("extra_args") or []]
    return argv


def _gpu_flags(kind: str, plan: Mapping[str, Any], options: Mapping[str, Any]) -> list[str]:
    """Return the memory, metrics and device flags a GPU-enabled build needs for this plan."""
    if not plan["enable_gpu"]:
        pools = [f"--cuda-memory-pool-byte-size={gpu}:0" for gpu in sorted(set(options.get("host_gpu_ids") or []))]
        return [
            "--pinned-memory-pool-byte-size=0",
            *pools,
            "--allow-gpu-metrics=false",
            "--enable-peer-access=false",
        ]
    # GPUs of the host outside the plan keep a context but no pool: hiding them would renumber
    # the CUDA ids that model configs name (plan.gpu_ids are NVML/PCI-order ids).
    unused = sorted(set(options.get("host_gpu_ids") or []) - set(plan["gpu_ids"]))
    flags = [f"--cuda-memory-pool-byte-size={gpu}:0" for gpu in unused]
    min_cc = plan.get("min_supported_compute_capability")
    if min_cc:
        flags.append(f"--min-supported-compute-capability={min_cc}")
    if kind == "jetson":
        flags += [
            "--allow-gpu-metrics=false",
            f"--pinned-memory-pool-byte-size={int(options['jetson_pinned_memory_pool_bytes'])}",
        ]
        flags += [
            f"--cuda-memory-pool-byte-size={gpu}:{int(options['jetson_cuda_memory_pool_bytes'])}"
            for gpu in plan["gpu_ids"]
        ]
    return flags


# Where NGC images install Triton, and the ports the server listens on inside the container
# (the engine publishes them on the host addresses and ports of the run specification).
CONTAINER_RELEASE_DIR = "/opt/tritonserver"
CONTAINER_PORTS = {"http": 8000, "grpc": 8001, "metrics": 8002}


def container_launch_argv(release_dir: Path, manifest: Mapping[str, Any], options: Mapping[str, Any]) -> list[str]:
    """Return the engine argv that runs a ``container`` release with this plan's server flags.

    Reads the run specification ``triton_install`` wrote (``<release_dir>/<manifest.container_spec>``,
    whose ``argv`` is the engine's ``run`` command ending with the image and a bare command) and
    replaces the command with :func:`server_argv` for the image's layout: the same memory, metrics
    and compute-capability flags as a native install, listening on every address inside the
    container. NGC images are GPU builds. Raises ServiceConfigError when the spec is unreadable.
    """
    path = release_dir / str(manifest.get("container_spec") or "container.json")
    try:
        spec = json.loads(path.read_text(encoding="utf-8"))
        engine_argv = list(spec["argv"])
        image_at = engine_argv.index(spec["image"])
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ServiceConfigError(
            f"The container release's run specification {path} is unusable ({err}). "
            "A container release holds the engine argv and image written by triton_install. "
            "Rerun the triton_install role with triton_install_method=container."
        ) from err
    inner = {
        **options,
        "release_dir": CONTAINER_RELEASE_DIR,
        "gpu_build": True,
        **{f"{name}_address": "0.0.0.0" for name in CONTAINER_PORTS},
        **{f"{name}_port": port for name, port in CONTAINER_PORTS.items()},
    }
    return [*engine_argv[: image_at + 1], "tritonserver", *server_argv(options["plan"], inner)[1:]]


def server_env(plan: Mapping[str, Any], manifest: Mapping[str, Any], options: Mapping[str, Any]) -> dict[str, str]:
    """Return the complete environment of the tritonserver process.

    ``PATH`` starts with the manifest's ``python_bin_dir`` (the python backend stub runs the
    first ``python3`` on PATH and needs numpy there), ``LD_LIBRARY_PATH`` is the release's
    ``lib/`` (the stub does not use the server's RPATH), ``HOME`` is the service state dir
    (``options['state_dir']``). CPU plans set ``CUDA_VISIBLE_DEVICES`` to the empty string so
    CUDA sees no device at all; dGPU GPU plans set ``CUDA_DEVICE_ORDER=PCI_BUS_ID`` so CUDA ids
    are the NVML indices that ``triton_host.gpus`` and ``plan.gpu_ids`` use.
    """
    kind = _plan_kind(plan)
    python_bin_dir = manifest.get("python_bin_dir")
    path = f"{python_bin_dir}:{SYSTEM_PATH}" if python_bin_dir else SYSTEM_PATH
    env = {
        "PATH": path,
        "LD_LIBRARY_PATH": f"{options['release_dir']}/lib",
        "HOME": str(options["state_dir"]),
        "LANG": "C.UTF-8",
        # The repository is read-only to the service user; skip the futile bytecode writes.
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    if not plan["enable_gpu"]:
        env["CUDA_VISIBLE_DEVICES"] = ""
    elif kind == "dgpu":
        env["CUDA_DEVICE_ORDER"] = "PCI_BUS_ID"
    return env


def probe_host(address: str) -> str:
    """Return the address a local client uses to reach a server bound to ``address``.

    A wildcard bind (0.0.0.0, ::) is reached on loopback; IPv6 literals come bracketed for URLs.
    """
    _check_address("http", address)
    ip = ipaddress.ip_address(address)
    if ip.is_unspecified:
        ip = ipaddress.ip_address("::1" if ip.version == 6 else "127.0.0.1")
    return f"[{ip}]" if ip.version == 6 else str(ip)


def leftover_pids(proc: Path, uid: int, mount_namespace: str) -> list[int]:
    """Return the pids under ``proc`` (``/proc``) that run as ``uid`` in ``mount_namespace``.

    Reads ``<proc>/<pid>/status`` (the real uid, second field of ``Uid:``) and the link
    ``<proc>/<pid>/ns/mnt`` (e.g. ``mnt:[4026531832]``). Processes of another mount namespace
    are another host's (a container, a simulated host) even when their uid number matches,
    so they are never returned. Processes that exit while being read are skipped.
    """
    pids = []
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text(encoding="utf-8", errors="replace")
            namespace = os.readlink(entry / "ns" / "mnt")
        except OSError:
            continue
        uids = next((line.split()[1:] for line in status.splitlines() if line.startswith("Uid:")), [])
        if uids and uids[0] == str(uid) and namespace == mount_namespace:
            pids.append(int(entry.name))
    return sorted(pids)
