# SPDX-License-Identifier: Apache-2.0
"""The container method: how the server's container is run, as data the install writes and the service runs.

``container_run_spec`` describes the run of the plan's image: the engine with the settings the
host facts decided (``triton_host.container_engines``: path, global and run arguments), the image
source, the container's name and non-root user, the plan's runtime devices and environment
verbatim, the read-only model mount, shared memory and the stop timeout. The install adds the
image id once the image is present (``triton_container_image``) and writes the spec with its
``argv`` (:func:`container_run_argv`) to ``container.json``; the service appends the server's
command line (``triton_service.container_launch``) and runs it in the foreground.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ansible.module_utils.triton_container_image import engine_argv, image_source
from ansible.module_utils.triton_install_errors import InstallError
from ansible.module_utils.triton_service import EXIT_TIMEOUT_SECS

CONTAINER_USER = "triton-server"  # the NGC image's non-root user (server build.py: uid 1000)
ENGINE_KEYS = ("name", "path", "global_args", "run_args")
# The engine's stop (podman --replace, podman/docker stop) waits as long as the service manager:
# Triton drains for up to --exit-timeout-secs before it exits.
STOP_TIMEOUT = EXIT_TIMEOUT_SECS + 10


def select_engine(host: Mapping[str, Any], name: str | None) -> dict[str, Any]:
    """The record of engine ``name`` (the plan's ``container_engine``) from ``triton_host.container_engines``.

    Raises InstallError when the host does not list it or it cannot start a container here.
    """
    engines = host.get("container_engines") or []
    found = next((e for e in engines if e.get("name") == name), None)
    if found is None or found.get("can_run") is False:
        seen = "; ".join(f"{e.get('name')}: {'; '.join(e.get('problems') or []) or 'can run'}" for e in engines)
        raise InstallError(
            f"The container engine {name!r} (triton_install_container_engine, from the plan's container_engine) "
            f"cannot start the server's container on this host. Found: {seen or 'no engine'} "
            "(triton_host.container_engines). Supported: docker or podman that can run containers here "
            "(docs/containers.md). Rerun preflight with triton_install_method=container so the plan picks "
            "one, or fix what the engine's message names."
        )
    return {key: found.get(key) or ([] if key.endswith("_args") else found.get(key)) for key in ENGINE_KEYS}


def container_run_spec(plan: Mapping[str, Any], host: Mapping[str, Any], options: Mapping[str, Any]) -> dict[str, Any]:
    """Build the container run specification for a plan: everything but the image id and the server's command.

    ``host`` is ``ansible_facts.triton_host``; ``options``: engine (the plan's container_engine),
    source (``triton_install_container_source``), name, user, models_root (mounted read-only at
    the same path), shm_size. The GPU hand-over and the environment are the plan's
    ``runtime.container_devices[engine]`` and ``runtime.env`` + ``runtime.container_env``, verbatim.
    """
    if not plan.get("container_image") and (options.get("source") or {}).get("type", "registry") == "registry":
        raise InstallError(
            f"The plan has no container image for this host (plan.container_image is null: platform "
            f"{plan.get('platform')}, JetPack {host.get('jetpack_version')}). NGC images exist for x86_64 and "
            "arm64 hosts and, on Jetson, for JetPack 6 (-igpu) and 7. Rerun preflight with "
            "triton_install_method=container, or use the tarball method on JetPack 4/5."
        )
    engine = select_engine(host, options.get("engine") or plan.get("container_engine"))
    runtime = plan["runtime"]
    models_root = str(options["models_root"])
    return {
        "engine": engine,
        "source": image_source(options.get("source") or {"type": "registry"}, plan.get("container_image")),
        "name": str(options.get("name", "tritonserver")),
        "user": str(options.get("user") or CONTAINER_USER),
        "stop_timeout": STOP_TIMEOUT,
        "devices": list(runtime["container_devices"][engine["name"]]),
        "env": {**runtime["env"], **runtime["container_env"]},
        "mounts": [{"source": models_root, "target": models_root, "read_only": True}],
        "shm_size": str(options.get("shm_size", "256m")),
    }


def container_run_argv(spec: Mapping[str, Any]) -> list[str]:
    """The foreground ``run`` of the server's container, ending with the image id (the service adds the command).

    Named, removed on exit, read-only mounts, the host's network (the server binds the addresses
    the service asks for; no container network is ever created), the image's non-root user, the
    stop timeout, the facts' limits, the plan's devices and environment. podman replaces a stale
    container of the same name itself; for docker the launcher removes it first
    (``triton_container_image.remove_argv``).
    """
    engine = spec["engine"]
    argv = engine_argv(engine, "run", "--rm", "--name", spec["name"])
    if engine["name"] == "podman":
        # The server's output goes straight to the service manager's log; podman's default log
        # driver would also keep a copy in its storage that grows for as long as the server runs.
        argv += ["--replace", "--log-driver", "passthrough"]
    argv += ["--user", spec["user"], "--network", "host", "--stop-timeout", str(spec["stop_timeout"])]
    argv += [*engine.get("run_args", []), *spec["devices"]]
    for key, value in sorted(spec["env"].items()):
        argv += ["--env", f"{key}={value}"]
    for mount in spec["mounts"]:
        argv += ["--volume", f"{mount['source']}:{mount['target']}{':ro' if mount.get('read_only') else ''}"]
    return [*argv, "--shm-size", str(spec["shm_size"]), str(spec["image_id"])]
