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

from ansible.module_utils.triton_container_image import help_argv, remove_argv
from ansible.module_utils.triton_release_lifecycle import MANIFEST_NAME, ManifestError
from ansible.module_utils.triton_release_lifecycle import read_manifest as lifecycle_read_manifest
from ansible.module_utils.triton_runtime import RuntimeSectionError, plan_runtime

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
        data = lifecycle_read_manifest(release_dir)
    except ManifestError as err:
        raise ServiceConfigError(
            f"The release manifest {err}. manifest.json is a JSON object written by triton_install. "
            "Rerun the triton_install role to rewrite it."
        ) from err
    if data is None:
        raise ServiceConfigError(
            f"No installed Triton release: {path} does not exist. "
            "The service runs the release the triton_install role lays out, with its manifest.json written last. "
            "Run the triton_install role first, or point triton_service_install_prefix at the install prefix."
        )
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


def _plan_runtime(plan: Mapping[str, Any]) -> Mapping[str, Any]:
    """Return the plan's runtime section: the only part of the plan the server's command line reads."""
    try:
        return plan_runtime(plan, "triton_service_plan")
    except RuntimeSectionError as err:
        raise ServiceConfigError(str(err)) from err


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

    ``options`` keys: ``release_dir`` (installed release), ``model_repository``,
    ``{http,grpc,metrics}_{address,port}``, ``auto_complete_config`` (bool) and ``extra_args``
    (appended last). The device options are the plan's ``runtime.server_args``, verbatim.
    """
    runtime = _plan_runtime(plan)
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
    argv += [str(arg) for arg in runtime["server_args"]]
    argv += [str(arg) for arg in options.get("extra_args") or []]
    return argv


# Where NGC images install Triton (server build.py: the install tree is copied to /opt/tritonserver).
CONTAINER_RELEASE_DIR = "/opt/tritonserver"


def container_launch(release_dir: Path, manifest: Mapping[str, Any], options: Mapping[str, Any]) -> dict[str, Any]:
    """Return ``{argv, prepare, help_argv, image_id}`` that run a ``container`` release with this plan's server.

    Reads the run specification ``triton_install`` wrote (``<release_dir>/<manifest.container_spec>``,
    whose ``argv`` is the engine's foreground ``run`` ending with the image id) and appends the
    image's ``tritonserver`` with :func:`server_argv` for the image's layout. The container shares
    the host's network, so the server binds the addresses and ports the service asks for, as a
    native one does. ``prepare`` removes a stale container of the same name first where the engine
    cannot replace it itself (docker). ``help_argv`` prints the options of the image's server
    (extra arguments are judged by them). Raises ServiceConfigError when the spec is unusable.
    """
    path = release_dir / str(manifest.get("container_spec") or "container.json")
    try:
        spec = json.loads(path.read_text(encoding="utf-8"))
        engine_argv = [str(arg) for arg in spec["argv"]]
        if not engine_argv or engine_argv[-1] != spec["image_id"]:
            raise ValueError(f"argv does not end with the image id {spec['image_id']!r}")
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ServiceConfigError(
            f"The container release's run specification {path} is unusable ({err}). "
            "A container release holds the engine argv, ending with the image id, written by triton_install. "
            "Rerun the triton_install role with triton_install_method=container."
        ) from err
    inner = {**options, "release_dir": CONTAINER_RELEASE_DIR}
    server = server_argv(options["plan"], inner)
    prepare = [] if spec["engine"]["name"] == "podman" else [remove_argv(spec)]
    return {
        "argv": [*engine_argv, *server],
        "prepare": prepare,
        "help_argv": help_argv(spec, server[0]),
        "image_id": str(spec["image_id"]),
    }


def server_env(plan: Mapping[str, Any], manifest: Mapping[str, Any], options: Mapping[str, Any]) -> dict[str, str]:
    """Return the complete environment of the tritonserver process.

    ``PATH`` starts with the manifest's ``python_bin_dir`` (the python backend stub runs the
    first ``python3`` on PATH and needs numpy there), ``LD_LIBRARY_PATH`` is the release's
    ``lib/`` (the stub does not use the server's RPATH), ``HOME`` is the service state dir
    (``options['state_dir']``). The CUDA variables are the plan's ``runtime.env``, verbatim.
    """
    runtime = _plan_runtime(plan)
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
    env.update({str(key): str(value) for key, value in runtime["env"].items()})
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
