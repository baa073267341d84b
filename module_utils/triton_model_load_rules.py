# SPDX-License-Identifier: Apache-2.0
"""What Triton checks when it loads a model, before the backend reads the model: the versions the
version policy loads, where the backend library is, and the model file each backend opens.

Pure functions over a completed config and a ``ModelListing`` (``read_listing`` is the one that
reads a directory); the rows of ``triton_model_rules.RULES`` with phase ``load`` and
docs/model-config-rules.md name their Triton sources.
"""

from __future__ import annotations

import os
import posixpath
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from ansible.module_utils.triton_model_rules import (
    DEFAULT_MODEL_FILES,
    NON_VERSION_DIRS,
    PYTHON_BACKEND,
    PYTHON_RUNTIME,
    ModelListing,
    Problem,
    backend_of,
    make_problem,
    rule_applies,
)
from ansible.module_utils.triton_versions import version_at_least

_LEADING_INT = re.compile(r"\s*[+-]?\d+")
# core backend_model.cc looks the backend library up with GetBackendLibraryProperties from 24.01 (Python-based
# backends, the runtime escape check); up to 23.12 it says "unable to find '<library>' for model '<m>',
# searched: ..." for a missing backend and a missing runtime alike (core@r23.12 TritonModel::Create).
BACKEND_LOOKUP_SINCE = "24.01"


def versions_to_load(config: Any, listing: ModelListing) -> tuple[list[int], list[str]]:
    """core VersionsToLoad: the versions Triton loads under the version policy, and why others are skipped.

    A version directory is a sub-directory whose name starts with an integer (std::stoll); names
    with leading zeros and the warmup/initial_state/configs directories are skipped.
    Returns ``(versions, notes)``.
    """
    existing: set[int] = set()
    notes = []
    for name in listing.subdirs:
        if name in NON_VERSION_DIRS:
            continue
        if len(name) > 1 and name[0] == "0":
            notes.append(f"ignore version directory '{name}' which contains leading zeros in its directory name")
            continue
        match = _LEADING_INT.match(name)
        if not match:
            notes.append(f"ignore version directory '{name}' which fails to convert to integral number")
            continue
        existing.add(int(match.group(0)))
    policy = config.version_policy
    choice = policy.WhichOneof("policy_choice") if config.HasField("version_policy") else "latest"
    if choice == "specific":
        chosen = [v for v in policy.specific.versions if v in existing]
        notes += [
            f"version {v} is specified for model '{config.name}', but the version directory is not present"
            for v in policy.specific.versions
            if v not in existing
        ]
    elif choice == "all":
        chosen = sorted(existing)
    else:
        wanted = policy.latest.num_versions if config.HasField("version_policy") else 1
        chosen = sorted(existing, reverse=True)[:wanted]
    return sorted(set(chosen)), notes


def _version_entries(listing: ModelListing, versions: list[int]) -> list[tuple[int, str, Mapping[str, bool]]]:
    """``(version, directory name, entries)`` of the versions Triton loads (the first directory per number)."""
    by_number: dict[int, tuple[str, Mapping[str, bool]]] = {}
    for name, entries in sorted(listing.subdirs.items()):
        match = _LEADING_INT.match(name)
        if match and name not in NON_VERSION_DIRS and not (len(name) > 1 and name[0] == "0"):
            by_number.setdefault(int(match.group(0)), (name, entries))
    return [(v, *by_number.get(v, (str(v), {}))) for v in versions]


def _find_library(listing: ModelListing, versions: list[int], library: str) -> str | None:
    """The search of core GetBackendLibrarySearchPaths within the model directory: each version directory
    Triton loads, then the model directory. Returns the directory (relative to the model) holding
    ``library``, or None."""
    for search in [d for _v, d, _e in _version_entries(listing, versions)] + [""]:
        path = posixpath.normpath(posixpath.join(search, library)) if search else posixpath.normpath(library)
        parts = path.split("/")
        if path.startswith("../") or path == ".." or library.startswith("/") or len(parts) > 2:
            continue
        if len(parts) == 1 and parts[0] in listing.files:
            return search
        if len(parts) == 2 and listing.subdirs.get(parts[0], {}).get(parts[1]) is False:
            return search
    return None


def _escapes(library: str) -> bool:
    normalized = posixpath.normpath(library)
    return library.startswith("/") or normalized == ".." or normalized.startswith("../")


def backend_problems(
    config: Any, listing: ModelListing, versions: list[int], release: str | None, release_backends: Iterable[str] | None
) -> list[Problem]:
    """Where Triton finds the model's backend library (core backend_model.cc), against the release's backends.

    The search covers the model's version directories, the model directory and the release's
    ``backends/<backend>/``, whose library is ``libtriton_<backend>.so`` (every backend the
    release installs; the release tree is tritonfleet's own, checked by its digest).
    ``release_backends`` None means the release's backend set is not known yet (it is checked
    once the release is installed and its manifest lists them).
    """
    backend = config.backend
    if not backend or release_backends is None:
        return []
    available = set(release_backends)
    name = config.name
    runtime = config.runtime
    where = f"{name}/config.pbtxt"
    have = f"the release's backends are {', '.join(sorted(available)) or 'none'}"
    fix = (
        f"serve {name} on hosts whose release has the {backend} backend (an install method or release that ships "
        f"it), or remove {name} from this repository"
    )
    lookup = release is None or version_at_least(release, BACKEND_LOOKUP_SINCE)
    if not runtime or not lookup:
        library = runtime or f"libtriton_{backend}.so"
        if _find_library(listing, versions, library) is not None or (
            library == f"libtriton_{backend}.so" and backend in available
        ):
            return []
        message = (
            f"unable to find backend library for backend '{backend}', try specifying runtime on the model "
            "configuration."
            if lookup
            else f"unable to find '{library}' for model '{name}', searched: {name}/<version>, {name}, "
            f"backends/{backend}"
        )
        return [
            make_problem(
                "backend_not_found" if not runtime else "runtime_not_found",
                name,
                (
                    message,
                    f"{where} needs backend {backend!r}; {have}; {name}/ ships no {library}",
                    f"models of the release's backends ({', '.join(sorted(available)) or 'none'})",
                    fix,
                ),
            )
        ]
    python_based = runtime == PYTHON_RUNTIME
    library = f"libtriton_{PYTHON_BACKEND}.so" if python_based else runtime
    found_in = _find_library(listing, versions, library)
    in_release = (python_based and PYTHON_BACKEND in available) or (
        library == f"libtriton_{backend}.so" and backend in available
    )
    if found_in is None and not in_release:
        searched = " ".join(
            [f"'{name}/{d}'" for _v, d, _e in _version_entries(listing, versions)]
            + [f"'{name}'", f"'backends/{backend}'"]
            + (["'backends/python'"] if python_based else [])
        )
        return [
            make_problem(
                "runtime_not_found",
                name,
                (
                    f"unable to find backend library '{library}' for model '{name}', searched: {searched}",
                    f"runtime: {runtime!r} in {where}; {have}",
                    "runtime naming libtriton_<backend>.so of a backend the release has, a library shipped inside the "
                    "model directory, or model.py for a Python-based backend",
                    "correct runtime, ship the library in the model directory, or remove runtime",
                ),
            )
        ]
    if found_in is not None and _escapes(library) and rule_applies("runtime_escape", release):
        libdir = f"{name}/{found_in}".rstrip("/")
        return [
            make_problem(
                "runtime_escape",
                name,
                (
                    f"backend library name '{library}' escapes backend directory '{libdir}', for model '{name}', "
                    "check model config runtime field",
                    f"runtime: {runtime!r} in {where} resolves outside {libdir}",
                    "a runtime naming a library file inside the directory that holds it",
                    "set runtime to the library's file name and put it in the model or version directory",
                ),
            )
        ]
    if python_based and (backend == PYTHON_BACKEND or backend not in available):
        return [
            make_problem(
                "python_based_backend_not_found",
                name,
                (
                    f"unable to find Python backend based backend library '{runtime}' for model '{name}', searched: "
                    f"'backends/{backend}/model.py'",
                    f"runtime: model.py with backend {backend!r} in {where}; {have}",
                    "runtime model.py only for Python-based backends the release installs (backends/<name>/model.py); "
                    "python models need no runtime",
                    f"remove runtime from {where}" if backend == PYTHON_BACKEND else fix,
                ),
            )
        ]
    return []


def artifact_names(config: Any, backend: str, gpu_ccs: Iterable[str | None]) -> list[str]:
    """The model files a backend opens per version: ``default_model_filename`` (or the backend's default),
    replaced on GPU instances by ``cc_model_filenames[<compute capability>]`` (backend_model_instance.cc).
    ``gpu_ccs`` holds one entry per instance placement: a GPU's compute capability, None for the CPU."""
    key = config.platform if backend == "tensorflow" else backend
    default = config.default_model_filename or DEFAULT_MODEL_FILES.get(key, ("", ""))[0]
    names = {(config.cc_model_filenames.get(cc, default) if cc else default) for cc in gpu_ccs} or {default}
    return sorted(n for n in names if n)


def _missing_file_message(backend: str, path: str, model: str, instance: str) -> str:
    """Each backend's own words for a model file it cannot open (sources in DEFAULT_MODEL_FILES)."""
    if backend == PYTHON_BACKEND:
        return f"Python model file not found in '{path}'"
    if backend == "openvino":
        return f"unable to find '{path}' for model '{model}'"
    return f"unable to find '{path}' for model instance '{instance}'"


def model_file_problems(
    config: Any, listing: ModelListing, versions: list[int], gpu_ccs: Iterable[str | None], instance: str
) -> list[Problem]:
    """The file each backend opens, present (as a file or directory, as the backend needs) in every version
    Triton loads. ``instance`` names the first instance (``<group>_0``) as the backends' messages do."""
    backend = backend_of(config)
    key = config.platform if backend == "tensorflow" else backend
    if key not in DEFAULT_MODEL_FILES or (backend == "pytorch" and config.runtime == PYTHON_RUNTIME):
        return []
    kind = DEFAULT_MODEL_FILES[key][1]
    names = artifact_names(config, backend, gpu_ccs)
    if backend == "openvino":
        names += [posixpath.splitext(n)[0] + ".bin" for n in names if n.endswith(".xml")]
    what = {"dir": "directory", "file": "file"}.get(kind, "file or directory")
    problems = []
    for _version, directory, entries in _version_entries(listing, versions):
        for name in names:
            is_dir = entries.get(name)
            if is_dir is not None and (kind == "any" or is_dir == (kind == "dir")):
                continue
            path = f"{config.name}/{directory}/{name}"
            problems.append(
                make_problem(
                    "model_file_missing",
                    config.name,
                    (
                        _missing_file_message(backend, path, config.name, instance),
                        f"{config.name}/{directory}/ holds {', '.join(sorted(entries)) or 'nothing'}"
                        + (f" ({name} is not a {what})" if is_dir is not None else ""),
                        f"the {backend} backend opens the {what} {name} in every version directory it loads "
                        "(default_model_filename or cc_model_filenames may name another)",
                        f"put {name} in {config.name}/{directory}/, or set default_model_filename to the model file "
                        "there",
                    ),
                )
            )
    return problems


def no_version_problem(config: Any, listing: ModelListing, notes: list[str]) -> Problem:
    """core AsyncLoad: nothing to load under the version policy."""
    subdirs = sorted(listing.subdirs)
    return make_problem(
        "no_version_available",
        config.name,
        (
            f"at least one version must be available under the version policy of model '{config.name}'",
            f"{config.name}/ has "
            + (f"sub-directories {subdirs}" if subdirs else "no version directory")
            + (f" ({'; '.join(notes)})" if notes else ""),
            "numeric version directories (1/, 2/, ...) holding the model file, matching version_policy",
            f"put the model in {config.name}/1/ (or correct version_policy)",
        ),
    )


def cpu_only_backend_problem(config: Any, backend: str) -> Problem:
    """openvino_backend ModelInstanceState: every instance must be KIND_CPU."""
    return make_problem(
        "cpu_only_backend_gpu_instance",
        config.name,
        (
            f"unable to load model '{config.name}', Triton openVINO backend supports only CPU device",
            f"an instance group of {config.name} (backend {backend}) resolves to KIND_GPU",
            "KIND_CPU instance groups (or none: the backend prefers KIND_CPU)",
            "set kind: KIND_CPU, or use instance policy auto",
        ),
    )


def read_listing(model_dir: Path) -> ModelListing:
    """What a model directory holds, as Triton lists it: sub-directories with their entries, top-level files.

    Symlinks count as what they point to (the repository checks refuse those leaving it).
    Raises OSError when the directory cannot be read.
    """
    subdirs: dict[str, dict[str, bool]] = {}
    files = set()
    with os.scandir(model_dir) as entries:
        for entry in entries:
            if entry.is_dir():
                with os.scandir(entry.path) as inner:
                    subdirs[entry.name] = {e.name: e.is_dir() for e in inner}
            elif entry.is_file():
                files.add(entry.name)
    return ModelListing(subdirs, frozenset(files))
