# SPDX-License-Identifier: Apache-2.0
"""The container method: the run specification of an NGC image, which the service starts.

No engine runs here: ``container_run_spec`` describes how to run the plan's image (engine, user,
the plan's runtime devices and environment, the read-only model mount, ports, shared memory),
``container_run_argv`` turns it into the engine's ``run`` argv ending with the image, and the
service appends the server's command line (``triton_service.container_launch_argv``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ansible.module_utils.triton_install_errors import InstallError

CONTAINER_USER = "triton-server"  # the NGC image's non-root user
ENGINES = ("docker", "podman")


def select_engine(host: Mapping[str, Any], wanted: str) -> dict[str, str]:
    """Return ``{name, path}`` of the container engine to use (``wanted``: auto|docker|podman).

    Reads ``triton_host.container_engines``. Raises InstallError when none fits.
    """
    engines = [e for e in host.get("container_engines") or [] if e.get("name") in ENGINES]
    if wanted != "auto":
        engines = [e for e in engines if e["name"] == wanted]
    if not engines:
        seen = ", ".join(e.get("name", "?") for e in host.get("container_engines") or []) or "none"
        raise InstallError(
            f"No usable container engine for the container install method (wanted {wanted}; "
            f"triton_host.container_engines lists: {seen}). Supported engines: docker, podman. "
            "Install docker or podman (with the NVIDIA container toolkit on GPU hosts), or pick another "
            "triton_install_method."
        )
    engines.sort(key=lambda e: ENGINES.index(e["name"]))
    return {"name": engines[0]["name"], "path": engines[0].get("path") or engines[0]["name"]}


def container_run_spec(plan: Mapping[str, Any], host: Mapping[str, Any], options: Mapping[str, Any]) -> dict[str, Any]:
    """Build the container run specification for a plan: everything but the server's command line.

    ``host`` is ``ansible_facts.triton_host``; ``options``: engine (auto|docker|podman), name,
    models_root (host dir mounted read-only at the same path), ports (list of {name, address,
    port, container_port}), shm_size. The image is the plan's; the GPU hand-over (engine
    flags) and the environment are the plan's ``runtime.container_devices[engine]`` and
    ``runtime.env`` + ``runtime.container_env``, verbatim. The service appends the server's
    command line (``triton_service.container_launch_argv``).
    """
    engine = select_engine(host, str(options.get("engine", "auto")))
    runtime = plan["runtime"]
    if not plan.get("container_image"):
        raise InstallError(
            f"The plan has no container image for this host (plan.container_image is null: platform "
            f"{plan.get('platform')}, JetPack {host.get('jetpack_version')}). NGC images exist for x86_64 and "
            "arm64 hosts and, on Jetson, for JetPack 6 (-igpu) and 7. Rerun preflight with "
            "triton_install_method=container, or use the tarball method on JetPack 4/5."
        )
    if runtime["container_devices"][engine["name"]] and not (host.get("nvidia_container_runtime") or {}).get("present"):
        raise InstallError(
            f"The plan uses the GPU (platform {plan.get('platform')}) but no NVIDIA container runtime was found "
            "(triton_host.nvidia_container_runtime.present is false). A GPU container needs the NVIDIA "
            "container toolkit (nvidia-container-runtime / CDI). Install it, or set triton_enable_gpu=false."
        )
    models_root = str(options["models_root"])
    return {
        "engine": engine["name"],
        "engine_path": engine["path"],
        "name": str(options.get("name", "tritonserver")),
        "image": str(plan["container_image"]),
        "user": CONTAINER_USER,
        "devices": list(runtime["container_devices"][engine["name"]]),
        "env": {**runtime["env"], **runtime["container_env"]},
        "mounts": [{"source": models_root, "target": models_root, "read_only": True}],
        "ports": [dict(p) for p in options.get("ports") or []],
        "shm_size": str(options.get("shm_size", "256m")),
    }


def container_run_argv(spec: Mapping[str, Any]) -> list[str]:
    """Turn a run specification into the engine's ``run`` argv (foreground, ``--rm``), ending with the image."""
    argv = [spec["engine_path"], "run", "--rm", "--name", spec["name"], "--user", spec["user"], *spec["devices"]]
    for key, value in sorted(spec["env"].items()):
        argv += ["-e", f"{key}={value}"]
    for mount in spec["mounts"]:
        argv += ["-v", f"{mount['source']}:{mount['target']}{':ro' if mount.get('read_only') else ''}"]
    for port in spec["ports"]:
        argv += ["-p", f"{port['address']}:{port['port']}:{port['container_port']}"]
    return [*argv, "--shm-size", spec["shm_size"], spec["image"]]
