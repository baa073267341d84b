# SPDX-License-Identifier: Apache-2.0
"""Install one server release for the ``triton_install`` role: a request in, a current release out.

Every method ends in the same tree (docs/architecture.md, "Install layout")::

    <prefix>/releases/<server_version>/{bin,lib,backends,caches}/ + manifest.json
    <prefix>/current -> releases/<server_version>

``install_release`` stages the artifact (``triton_server_layout``, or the run specification of
``triton_container_spec``), holds it against the plan (``triton_server_inspect``), and runs the
release lifecycle every release follows (``triton_release_lifecycle``: manifest written last,
promotion by rename, ``current`` switched, leftovers removed, old releases pruned). Nothing
here imports AnsibleModule or exits; errors are ``InstallError`` (``triton_install_errors``).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ansible.module_utils.triton_container_image import (
    Runner,
    check_image,
    ensure_image,
    inspect_image,
    verify_image_archive,
)
from ansible.module_utils.triton_container_spec import container_run_argv, container_run_spec
from ansible.module_utils.triton_install_errors import InstallError
from ansible.module_utils.triton_release_lifecycle import (
    CURRENT_LINK,
    complete_manifest,
    has_manifest,
    linked_release,
    manifest_matches,
    manifest_tree_digest,
    point_link,
    promote,
    prune,
    release_dir,
    remove_leftovers,
    staging_dir,
    write_manifest,
)
from ansible.module_utils.triton_runtime import RuntimeSectionError, plan_runtime
from ansible.module_utils.triton_server_inspect import check_release, detect_server_version, inspect_release
from ansible.module_utils.triton_server_layout import (
    WHEEL_SERVER_DIR,
    check_archive,
    find_install_root,
    link_stable_library,
    stage_tarball_layout,
    stage_tree_layout,
    stage_wheel_layout,
    verify_archive,
    wheel_fingerprint,
    wheel_server_version,
)
from ansible.module_utils.triton_wheel_venv import wheel_request_paths

# The container release's run specification, next to its manifest (read by the service and removal).
CONTAINER_SPEC = "container.json"
# Bumped when every method's tree gains something (v2: lib/libtritonserver.so): a release laid
# out by an older tritonfleet is then laid out again once.
LAYOUT_VERSION = 2


def desired_identity(request: Mapping[str, Any]) -> dict[str, Any] | None:
    """Return the identity keys of the release a request would install, None when not yet knowable.

    Not knowable happens in check mode when an earlier step (pip, download, build) was skipped:
    the wheel or install dir does not exist yet.
    """
    plan = request["plan"]
    method = request["method"]
    sha256 = request.get("sha256")
    if method == "wheel":
        src = Path(request["src"])
        if not (src / WHEEL_SERVER_DIR).is_dir():
            return None
        sha256 = wheel_fingerprint(src)
    elif method == "container":
        spec = json.dumps(request["container_spec"], sort_keys=True).encode()
        sha256 = hashlib.sha256(spec).hexdigest()
    return {
        "server_version": str(plan["server_version"]),
        "release": str(plan["release"]),
        "method": method,
        "source": request["source"],
        "sha256": sha256,
        "python_bin_dir": request.get("python_bin_dir"),
        "layout_version": LAYOUT_VERSION,
    }


def container_image_current(release: Path, run: Runner) -> bool:
    """True when the engine still holds the image the container release at ``release`` runs (by id)."""
    try:
        spec = json.loads((release / CONTAINER_SPEC).read_text(encoding="utf-8"))
        return inspect_image(spec["engine"], spec["image_id"], run) is not None
    except (OSError, ValueError, KeyError, TypeError):
        return False


def container_argv(release: Path) -> list[str] | None:
    """The engine command line of the container release at ``release``; None before it is installed."""
    try:
        return list(json.loads((release / CONTAINER_SPEC).read_text(encoding="utf-8"))["argv"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _stage_container(request: Mapping[str, Any], staging: Path, run: Runner) -> tuple[dict[str, Any], str | None]:
    """Make the image present (pull or load), hold it against the plan, write ``container.json`` with its id."""
    spec = dict(request["container_spec"])
    plan = request["plan"]
    image, _ = ensure_image(spec["engine"], spec["source"], run, check_mode=False)
    where = f"{image['reference']} ({spec['engine']['name']} image {image['id'][:12]})"
    check_image(image, plan, where)
    gpu_build = bool(plan["runtime"]["gpu_build"])
    if image["gpu_build"] is not None and image["gpu_build"] != gpu_build:
        raise InstallError(
            f"The image {where} is {'a GPU' if image['gpu_build'] else 'a CPU-only'} build "
            f"(TRITON_SERVER_GPU_ENABLED) but the plan expects {'a GPU' if gpu_build else 'a CPU-only'} build "
            "(plan runtime.gpu_build). The install must be the build the plan was made for. Use the matching "
            "image, or set triton_gpu_build to match it and rerun preflight; the running server is unchanged."
        )
    spec.update(image=image["reference"], image_id=image["id"])
    spec["argv"] = container_run_argv(spec)
    staging.mkdir(parents=True)
    (staging / CONTAINER_SPEC).write_text(json.dumps(spec, indent=2, sort_keys=True) + "\n")
    # The image's backends/ stay inside the image: the manifest records the plan's (matrix) set.
    info = {"gpu_build": gpu_build, "backends": plan.get("backends"), "cudart": [], "image_id": image["id"]}
    return info, image["server_version"]


def _stage(request: Mapping[str, Any], staging: Path, run: Runner) -> tuple[dict[str, Any], str | None]:
    """Fill ``staging`` for the request's method; return (inspection, detected server version)."""
    method = request["method"]
    if method == "container":
        return _stage_container(request, staging, run)
    wheel_version = None
    if method == "wheel":
        src = Path(request["src"])
        wheel_version = wheel_server_version(src)[0]
        stage_wheel_layout(src, staging, request["python_version"])
    elif method == "tarball":
        archive = Path(request["archive"])
        verify_archive(archive, request["sha256"], request["source"])
        stage_tarball_layout(archive, staging)
    else:
        stage_tree_layout(find_install_root(Path(request["src"])), staging)
    link_stable_library(staging)
    info = inspect_release(staging)
    name_hint = request.get("archive") or request["source"]
    version = detect_server_version(method, info, str(name_hint), wheel_version)
    check_release(info, version, request["plan"], str(staging))
    return info, version


def install_release(request: Mapping[str, Any], check_mode: bool, run: Runner | None = None) -> dict[str, Any]:
    """Make ``<prefix>/releases/<plan.server_version>`` the installed, current release.

    ``request`` keys: prefix, method, plan, source (what the manifest records), src (wheel
    site-packages dir or build install dir), archive + sha256 (tarball), container_spec
    (container), python_bin_dir, python_version, keep_releases. ``run(argv) -> (rc, out, err)``
    runs the container engine (container method only).

    Order: (container: the image archive's checksum, before anything) → remove leftovers of
    interrupted runs → stage into ``releases/.staging-<v>`` (container: pull or load the image,
    hold it against the plan) → inspect and verify → write manifest.json last → rename into
    place → switch ``current`` → prune. A failure removes the staging dir and leaves the previous
    release and link as they were. In check mode nothing is written and the result says what
    would change. Returns {changed, release_dir, manifest, actions}.
    """
    prefix = Path(request["prefix"])
    version = str(request["plan"]["server_version"])
    target = release_dir(prefix, version)
    identity = desired_identity(request)
    container = request["method"] == "container"
    current = manifest_matches(target, identity) and (not container or container_image_current(target, run))
    source = request["container_spec"]["source"] if container else {}
    # Before any change, also in check mode; a URL archive that check mode did not download is
    # checked by the real run.
    if not current and source.get("type") == "archive" and (Path(source["path"]).exists() or not source.get("url")):
        verify_image_archive(source)
    # The real run checks a tarball as it unpacks it; check mode checks it first, so the role can
    # refuse it before it makes the release's python runtime (a download check mode skipped: later).
    tarball = request["method"] == "tarball"
    if (
        check_mode
        and not current
        and tarball
        and (Path(request["archive"]).exists() or request["archive"] == request["source"])
    ):
        check_archive(Path(request["archive"]), request["sha256"], request["source"], staging_dir(prefix, version))
    actions = [f"remove incomplete {p}" for p in remove_leftovers(prefix, check_mode, complete=has_manifest)]
    manifest = complete_manifest(target)
    if not current:
        actions.append(f"install {request['method']} release {version} into {target}")
        if check_mode and container:
            spec = request["container_spec"]
            actions += ensure_image(spec["engine"], spec["source"], run, check_mode=True)[1]
        if not check_mode:
            manifest = _install_new(request, prefix, identity, run)
    elif not container:
        # Unchanged files, but the plan's build kind (triton_gpu_build) may have moved.
        check_release(inspect_release(target), version, request["plan"], str(target))
    if linked_release(prefix) != version or not (prefix / CURRENT_LINK).is_symlink():
        actions.append(f"point {prefix / CURRENT_LINK} at releases/{version}")
        if not check_mode:
            point_link(prefix, CURRENT_LINK, version)
    pruned = prune(prefix, int(request.get("keep_releases", 3)), (version,), check_mode)
    actions += [f"prune old release {release_dir(prefix, old)}" for old in pruned]
    return {"changed": bool(actions), "release_dir": str(target), "manifest": manifest, "actions": actions}


def _install_new(
    request: Mapping[str, Any], prefix: Path, identity: Mapping[str, Any] | None, run: Runner | None
) -> dict[str, Any]:
    version = str(request["plan"]["server_version"])
    staging = staging_dir(prefix, version)
    staging.parent.mkdir(parents=True, exist_ok=True)
    try:
        info, _ = _stage(request, staging, run)
        manifest = dict(identity or desired_identity(request) or {})
        manifest.update(
            {
                "manifest_version": 1,
                "gpu_build": bool(info["gpu_build"]),
                "backends": info["backends"],
                # Relative to the release; null for a container release (the library is in the image).
                "library": info.get("library"),
                "include": info.get("include"),
                "files_sha256": manifest_tree_digest(staging),
            }
        )
        if request["method"] == "container":
            manifest.update(container_spec=CONTAINER_SPEC, image_id=info["image_id"])
        write_manifest(staging, manifest)
        promote(prefix, staging, version)
        return manifest
    finally:
        if staging.exists():
            shutil.rmtree(staging)


def require_plan(plan: Mapping[str, Any] | None) -> dict[str, Any]:
    """Return the plan as a dict; raise InstallError when a key the install needs is missing."""
    plan = dict(plan or {})
    missing = [k for k in ("server_version", "release", "platform", "runtime") if not plan.get(k)]
    if missing:
        raise InstallError(
            f"The install plan lacks {', '.join(missing)} (triton_install_plan, from ansible_facts.triton_plan). "
            "The plan comes from the triton_platform preflight (docs/architecture.md). "
            "Run the preflight first or pass a complete plan with -e triton_install_plan=..."
        )
    try:
        plan_runtime(plan, "triton_install_plan")
    except RuntimeSectionError as err:
        raise InstallError(str(err)) from err
    return plan


def build_request(params: Mapping[str, Any]) -> dict[str, Any]:
    """Turn the triton_install_release module's parameters into an ``install_release`` request.

    For the container method it builds the run specification from ``host`` and ``container``.
    """
    plan = require_plan(params["plan"])
    request = dict(params)
    request["plan"] = plan
    if params["method"] == "wheel" and params.get("venv"):
        request.update(wheel_request_paths(Path(params["venv"]["path"])))
    elif params["method"] == "wheel" and not all(params.get(k) for k in ("src", "python_bin_dir", "python_version")):
        raise InstallError(
            "The wheel method needs the venv that holds the wheel: venv (path, python, requirement) or all of "
            f"src, python_bin_dir and python_version; got src={params.get('src')!r}. Pass venv as the "
            "triton_install role does (roles/triton_install/tasks/wheel.yml)."
        )
    if params["method"] == "container":
        options = dict(params.get("container") or {})
        request["container_spec"] = container_run_spec(plan, params.get("host") or {}, options)
    return request
