# SPDX-License-Identifier: Apache-2.0
"""The server's container image and container: where the image comes from, how it is run and removed.

An image comes from a **registry** (a reference, NGC's ``nvcr.io/nvidia/tritonserver:<tag>`` or a
mirror of it, pulled only when the engine does not hold it yet) or from an **archive** (a
``docker save``/``podman save`` file, checked against its sha256 before ``load``), so edge and
air-gapped hosts can be pre-staged. The image is then identified by what NGC's images declare
(server build.py): the ``com.nvidia.tritonserver.version`` label or the ``TRITON_SERVER_VERSION``
environment variable, ``NVIDIA_TRITON_SERVER_VERSION`` (the release) and
``TRITON_SERVER_GPU_ENABLED``, and run by its id, so a re-tag never changes what a host runs.

Engines run as ``<engine> <global_args> <subcommand> ...`` with the settings of the host facts
(``triton_container_engine``). Commands go through an injected ``run(argv) -> (rc, out, err)``;
nothing here exits. Errors are ``ContainerError`` with a four-part message.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ansible.module_utils.triton_install_errors import ChecksumError, InstallError
from ansible.module_utils.triton_release_lifecycle import file_sha256

Runner = Callable[[Sequence[str]], "tuple[int, str, str]"]

SOURCE_TYPES = ("registry", "archive")
VERSION_LABEL = "com.nvidia.tritonserver.version"
VERSION_ENV = "TRITON_SERVER_VERSION"
RELEASE_ENV = "NVIDIA_TRITON_SERVER_VERSION"
GPU_ENV = "TRITON_SERVER_GPU_ENABLED"
_SHA256 = re.compile(r"^[0-9a-fA-F]{64}$")
# "Loaded image: ref", podman's "Loaded image(s): a,b", docker's "Loaded image ID: sha256:..."
_LOADED = re.compile(r"^Loaded image(?:\(s\)| ID)?:\s*(.+)$", re.MULTILINE)


class ContainerError(InstallError):
    """A user-facing container failure; ``str()`` is the four-part message."""


class ArchiveChecksumError(ContainerError, ChecksumError):
    """The image archive's sha256 is not the expected one."""


def engine_argv(engine: Mapping[str, Any], *args: str) -> list[str]:
    """``<engine path> <global args> <args>``: every engine call goes through the facts' settings."""
    return [str(engine["path"]), *engine.get("global_args", []), *args]


def _tail(out: str, err: str) -> str:
    return (err or out).strip()[-1500:] or "no output"


# --- sources -------------------------------------------------------------------------------


def image_source(source: Mapping[str, Any], plan_image: str | None) -> dict[str, Any]:
    """Check and complete an image source (``triton_install_container_source``).

    ``{type: registry, image}``: ``image`` defaults to the plan's ``container_image``.
    ``{type: archive, path, sha256, image}``: ``path`` is the archive on the host (the role
    downloads a ``url`` there first), ``sha256`` its required checksum, ``image`` (optional) the
    reference to use when the archive holds several. Returns ``{type, image, path, sha256, url}``.
    """
    kind = source.get("type", "registry")
    image = source.get("image") or None
    if kind == "registry":
        image = image or plan_image
        if not image:
            raise ContainerError(
                "The container image source names no image: triton_install_container_source is a registry "
                f"source without image, and the plan has none (plan.container_image={plan_image!r}). Supported: "
                "a reference such as nvcr.io/nvidia/tritonserver:24.10-py3 or a mirror of it. Set "
                "triton_install_container_source.image, or rerun preflight with triton_install_method=container."
            )
        return {"type": "registry", "image": str(image), "path": None, "sha256": None, "url": None}
    if kind == "archive":
        path, sha256 = source.get("path"), str(source.get("sha256") or "")
        if not path or not _SHA256.match(sha256):
            raise ContainerError(
                f"The image archive source is incomplete: path={path!r}, sha256={sha256!r} "
                "(triton_install_container_source). Supported: an archive from docker save or podman save, "
                "by path on the host or url, with its 64-hex-digit sha256. Set path (or url) and sha256."
            )
        return {"type": "archive", "image": image, "path": str(path), "sha256": sha256.lower(),
                "url": source.get("url") or None}  # fmt: skip
    raise ContainerError(
        f"triton_install_container_source.type is {kind!r}. Supported: {', '.join(SOURCE_TYPES)}. "
        "Set type: registry (with an image reference) or type: archive (with path or url and sha256)."
    )


def verify_image_archive(source: Mapping[str, Any]) -> None:
    """Raise unless the archive of an archive source exists and has its sha256 (before any change)."""
    archive = Path(source["path"])
    origin = source.get("url") or "triton_install_container_source.path"
    if not archive.is_file():
        raise ContainerError(
            f"The image archive is missing: {archive} does not exist (from {origin}). An archive source "
            "loads a docker save / podman save file from the host. Copy the archive there or fix "
            "triton_install_container_source; the installed release and the running server are unchanged."
        )
    actual = file_sha256(archive)
    if actual != source["sha256"]:
        raise ArchiveChecksumError(
            f"Checksum mismatch for the image archive {archive} (from {origin}): sha256 is {actual}, "
            f"triton_install_container_source.sha256 expects {source['sha256']}. Only an archive with the "
            "expected sha256 is loaded. Re-download or re-copy the archive, or correct the sha256; the "
            "installed release and the running server are unchanged."
        )


# --- images --------------------------------------------------------------------------------


def inspect_image(engine: Mapping[str, Any], reference: str, run: Runner) -> dict[str, Any] | None:
    """``image inspect`` of ``reference``: the image's JSON, or None when the engine holds no such image."""
    rc, out, err = run(engine_argv(engine, "image", "inspect", reference))
    if rc != 0:
        if re.search(r"image not known|no such image|not found", err, re.IGNORECASE):
            return None
        raise ContainerError(
            f"{engine['name']} cannot inspect images: {' '.join(engine_argv(engine, 'image', 'inspect', reference))} "
            f"exited {rc} ({_tail(out, err)}). A working engine lists its images. Fix the engine (see its "
            "message), then rerun."
        )
    try:
        found = json.loads(out)
        return found[0] if isinstance(found, list) else found
    except (ValueError, IndexError) as exc:
        raise ContainerError(
            f"{engine['name']} image inspect {reference} printed no image JSON ({exc}). The engine prints a JSON "
            "list. Check the engine version (docker >= 20.10, podman >= 4)."
        ) from exc


def _config(inspected: Mapping[str, Any]) -> tuple[dict[str, str], dict[str, str], str]:
    config = inspected.get("Config") or {}
    env = dict(item.split("=", 1) for item in config.get("Env") or [] if "=" in item)
    labels = dict(config.get("Labels") or inspected.get("Labels") or {})
    return env, labels, str(config.get("User") or "")


def image_identity(inspected: Mapping[str, Any]) -> dict[str, Any]:
    """What an image declares: ``{id, server_version, release, gpu_build, user, tags}`` (None when it does not)."""
    env, labels, user = _config(inspected)
    gpu = env.get(GPU_ENV)
    return {
        "id": str(inspected["Id"]).removeprefix("sha256:"),
        "server_version": labels.get(VERSION_LABEL) or env.get(VERSION_ENV),
        "release": env.get(RELEASE_ENV),
        "gpu_build": None if gpu is None else gpu == "1",
        "user": user or None,
        "tags": list(inspected.get("RepoTags") or []),
    }


def loaded_references(output: str) -> list[str]:
    """The references (or ids) a ``load`` says it loaded, in order."""
    refs: list[str] = []
    for match in _LOADED.finditer(output):
        refs += [ref.strip() for ref in match[1].split(",") if ref.strip()]
    return refs


def check_image(identity: Mapping[str, Any], plan: Mapping[str, Any], where: str) -> None:
    """Raise unless the image is the plan's server version (NGC images declare it)."""
    wanted = str(plan["server_version"])
    found = identity["server_version"]
    if found is None:
        raise ContainerError(
            f"The image {where} does not say which Triton it is: no {VERSION_LABEL} label and no {VERSION_ENV} "
            f"variable. The plan wants tritonserver {wanted}. Use an NGC tritonserver image (or one built "
            "with server build.py), which declares both."
        )
    if found != wanted:
        raise ContainerError(
            f"The image {where} is tritonserver {found} but the plan wants {wanted} (release "
            f"{plan.get('release')}). Only the plan's version is installed. Use the image of the planned "
            "release, or change triton_release and rerun preflight; the running server is unchanged."
        )


def ensure_image(
    engine: Mapping[str, Any], source: Mapping[str, Any], run: Runner, check_mode: bool
) -> tuple[dict[str, Any] | None, list[str]]:
    """Make the source's image present in the engine: pull (registry, only when missing) or load (archive).

    Returns (the image's identity with the ``reference`` it runs by, or None in check mode when it
    is not there yet; actions). An archive is checked against its sha256 first, also in check mode.
    Raises ContainerError.
    """
    name = engine["name"]
    if source["type"] == "registry":
        found = inspect_image(engine, source["image"], run)
        if found:
            return dict(image_identity(found), reference=source["image"]), []
        actions = [f"{name} pull {source['image']}"]
        if check_mode:
            return None, actions
        argv = engine_argv(engine, "pull", source["image"])
        rc, out, err = run(argv)
        if rc != 0:
            raise ContainerError(
                f"The server image cannot be pulled: {' '.join(argv)} exited {rc} ({_tail(out, err)}). A registry "
                f"source needs a reference {name} can pull, or the image already loaded. Fix the reference or "
                "the registry access, or pre-stage the image with an archive source (type: archive, path, "
                "sha256); the installed release and the running server are unchanged."
            )
        found = inspect_image(engine, source["image"], run)
        if found is None:
            raise ContainerError(
                f"{name} pulled {source['image']} but does not list it afterwards. A pulled image is stored "
                f"under its reference. Check {name}'s storage (its images command), then rerun."
            )
        return dict(image_identity(found), reference=source["image"]), actions
    actions = [f"{name} load {source['path']}"]
    if check_mode and source.get("url") and not Path(source["path"]).exists():
        # Not downloaded in check mode: nothing to check yet.
        return None, [f"download {source['url']} to {source['path']}", *actions]
    verify_image_archive(source)
    if check_mode:
        found = inspect_image(engine, source["image"], run) if source["image"] else None
        return (dict(image_identity(found), reference=source["image"]) if found else None), actions
    argv = engine_argv(engine, "load", "--input", source["path"])
    rc, out, err = run(argv)
    loaded = loaded_references(out + "\n" + err)
    if rc != 0 or not loaded:
        raise ContainerError(
            f"The image archive {source['path']} cannot be loaded: {' '.join(argv)} exited {rc} "
            f"({_tail(out, err)}). An archive source is a docker save or podman save file. Check the file is "
            "such an archive (its checksum matched), then rerun; the running server is unchanged."
        )
    reference = source["image"] or loaded[0]
    found = inspect_image(engine, reference, run)
    if found is None:
        raise ContainerError(
            f"The archive {source['path']} loaded {', '.join(loaded)}, not {reference}. The image to run is "
            "triton_install_container_source.image, or the first image of the archive. Set image to one of "
            "the loaded references."
        )
    return dict(image_identity(found), reference=reference), actions


# --- the server's container ----------------------------------------------------------------


def remove_argv(spec: Mapping[str, Any]) -> list[str]:
    """Remove the server's container by name, running or not; succeeds when there is none."""
    return engine_argv(spec["engine"], "rm", "--force", spec["name"])


def help_argv(spec: Mapping[str, Any], binary: str) -> list[str]:
    """A throwaway run of the image's ``binary --help``: unnamed (the server's container is left alone), no network.

    It runs as the image's user with the engine's run settings (runtime, limits) of the server's
    run, and without its devices: the options a server accepts do not depend on them.
    """
    engine = spec["engine"]
    argv = engine_argv(engine, "run", "--rm", "--network", "none", "--user", spec["user"], *engine.get("run_args", []))
    return [*argv, str(spec["image_id"]), binary, "--help"]


def container_state(spec: Mapping[str, Any], run: Runner) -> str | None:
    """The state of the server's container (``running``, ``exited``, ...), or None when there is none."""
    argv = engine_argv(spec["engine"], "container", "inspect", "--format", "{{.State.Status}}", spec["name"])
    rc, out, _err = run(argv)
    return (out.strip() or None) if rc == 0 else None


def remove(spec: Mapping[str, Any], run: Runner, remove_image: bool, check_mode: bool) -> list[str]:
    """Remove the server's container and, when asked, its image; return what was (or would be) done."""
    actions = []
    engine = spec["engine"]
    if container_state(spec, run) is not None:
        actions.append(f"{engine['name']} rm --force {spec['name']}")
        if not check_mode:
            _checked(run, remove_argv(spec), "remove the server's container")
    if remove_image and inspect_image(engine, spec["image_id"], run) is not None:
        actions.append(f"{engine['name']} rmi {spec['image_id']}")
        if not check_mode:
            _checked(run, engine_argv(engine, "rmi", "--force", spec["image_id"]), "remove the server's image")
    return actions


def _checked(run: Runner, argv: Sequence[str], what: str) -> None:
    rc, out, err = run(argv)
    if rc != 0:
        raise ContainerError(
            f"Could not {what}: {' '.join(argv)} exited {rc} ({_tail(out, err)}). The engine removes what it "
            "runs and stores. Fix the cause the engine names, then rerun playbooks/remove.yml."
        )


def release_specs(install_prefix: Path) -> list[dict[str, Any]]:
    """The run specifications (``container.json``) of the container releases under ``install_prefix``."""
    specs = []
    for path in sorted((install_prefix / "releases").glob("*/container.json")):
        try:
            spec = json.loads(path.read_text(encoding="utf-8"))
            _ = (spec["engine"]["path"], spec["name"], spec["image_id"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ContainerError(
                f"The container release's run specification {path} is unreadable ({exc}). Removal reads "
                "the engine, container name and image id triton_install wrote there. Remove that "
                "container by hand (its engine's rm --force) and delete the file, then rerun."
            ) from exc
        specs.append(spec)
    return specs


def remove_releases(install_prefix: Path, run: Runner, remove_image: bool, check_mode: bool) -> list[str]:
    """Remove the container (and, when asked, the image) of every container release; return the actions."""
    actions: list[str] = []
    seen: set[tuple[str, ...]] = set()
    for spec in release_specs(install_prefix):
        key = (spec["engine"]["path"], spec["name"], spec["image_id"] if remove_image else "")
        if key not in seen:
            seen.add(key)
            actions += [a for a in remove(spec, run, remove_image, check_mode) if a not in actions]
    return actions
