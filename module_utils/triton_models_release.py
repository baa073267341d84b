# SPDX-License-Identifier: Apache-2.0
"""Build a host's model-repository release on the controller.

A release is a directory with one sub-directory per model (the source files, with
``config.pbtxt`` rendered for the host) plus ``instance_groups.json``, the rendered instance
groups the verification compares with the server's effective configs. Its id is a content
hash, so the same source and the same rendered configs give the same id on every run and on
every controller.

Files the server writes into a repository (``__pycache__/``, ``*.pyc``) are never part of a
release: they are skipped when copying and when hashing, on the controller and on the host.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ansible.module_utils.triton_model_config import model_config_pb2
from ansible.module_utils.triton_model_load_rules import read_listing
from ansible.module_utils.triton_model_repository import (
    RenderSettings,
    RepositoryCheck,
    check_repository,
    problems_message,
    scan_repository,
)
from ansible.module_utils.triton_model_rules import missing_config_problem
from ansible.module_utils.triton_release_lifecycle import file_entry, is_executable
from ansible.module_utils.triton_release_tree import (
    CONFIG_NAME,
    INSTANCE_GROUPS_NAME,
    ReleaseError,
    release_id_of,
    tree_files,
    tree_release_id,
    write_archive,
)

# The release packed for the host, next to its directory: <build dir>/<release id>.tar
ARCHIVE_SUFFIX = ".tar"


@dataclass
class ReleaseBuild:
    """What ``build_release`` produced: the release id, where it lies, what it holds."""

    release_id: str
    path: Path
    models: list[str]
    configs: dict[str, str]
    instance_groups: dict[str, list[dict]]
    warnings: list[str] = field(default_factory=list)
    created: bool = False
    archive: Path | None = None


def model_names(root: Path) -> list[str]:
    """Return the model directories of a repository (sorted); raise ReleaseError for a bad layout.

    Refuses a repository without models, files at its top level, links leaving it, and a model
    directory without ``config.pbtxt`` (the service disables auto-complete, so the server would
    refuse it), every problem in one message.
    """
    names, problems = scan_repository(root)
    problems += [
        missing_config_problem(model_config_pb2.ModelConfig(), name, read_listing(root / name), auto_complete=False)
        for name in names
        if not (root / name / CONFIG_NAME).is_file()
    ]
    if problems:
        raise ReleaseError(problems_message(root, problems), [p.as_dict() for p in problems])
    return names


def judge_repository(src: Path, settings: RenderSettings) -> RepositoryCheck:
    """``check_repository`` for one host; raise one ReleaseError with every problem when any refuses it."""
    check = check_repository(src, settings)
    if check.errors:
        raise ReleaseError(problems_message(src, check.problems), [p.as_dict() for p in check.errors])
    return check


def instance_groups_json(groups: dict[str, list[dict]]) -> str:
    """Serialize the rendered instance groups deterministically (sorted keys, newline end)."""
    return json.dumps(groups, indent=2, sort_keys=True) + "\n"


def build_release(src: Path, build_root: Path, settings: RenderSettings, write: bool = True) -> ReleaseBuild:
    """Assemble the release of ``src`` for one host under ``build_root/<release id>``.

    ``settings`` (``triton_model_repository.render_settings``) say how the host renders and judges the repository;
    ``check_repository`` judges every model in Triton's order first, and one ReleaseError lists
    every problem, four parts each, before anything is written. The id is computed from the source
    files and the rendered text before anything is written, so ``write=False`` (check mode)
    gives the same id and writes nothing. A release is written into a temporary directory
    and renamed to its id: complete or absent; an existing one is reused. Raises
    ReleaseError or OSError.
    """
    check = judge_repository(src, settings)
    models, configs, groups, warnings = check.models, check.configs, check.instance_groups, check.warnings

    sources = [
        relative
        for relative in tree_files(src)
        if relative.parts[0] in configs and not (len(relative.parts) == 2 and relative.name == CONFIG_NAME)
    ]
    groups_text = instance_groups_json(groups)
    entries = [file_entry(rel.as_posix(), src / rel) for rel in sources]
    entries += [(f"{model}/{CONFIG_NAME}", "-", _text_sha256(text)) for model, text in configs.items()]
    entries.append((INSTANCE_GROUPS_NAME, "-", _text_sha256(groups_text)))
    release_id = release_id_of(entries)
    final = build_root / release_id
    archive = build_root / f"{release_id}{ARCHIVE_SUFFIX}"
    created = not final.is_dir()
    build = ReleaseBuild(release_id, final, models, configs, groups, warnings, created=created, archive=archive)
    if write and build.created:
        _write_release(src, sources, configs, groups_text, build_root, release_id)
    if write and not archive.is_file():
        write_archive(final, archive)
    return build


def _text_sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _write_release(
    src: Path, sources: list[Path], configs: dict[str, str], groups_text: str, build_root: Path, release_id: str
) -> None:
    """Write a release into a temporary directory, check its hash, rename it to its id.

    Modes are normalised (0755 directories and executables, 0644 files) because the copy to
    the host preserves them and the server's user must be able to read everything.
    """
    build_root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=build_root))
    try:
        for relative in sources:
            target = staging / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src / relative, target)
            os.chmod(target, 0o755 if is_executable(src / relative) else 0o644)
        for model, text in configs.items():
            (staging / model).mkdir(exist_ok=True)
            (staging / model / CONFIG_NAME).write_text(text, encoding="utf-8")
            os.chmod(staging / model / CONFIG_NAME, 0o644)
        (staging / INSTANCE_GROUPS_NAME).write_text(groups_text, encoding="utf-8")
        os.chmod(staging / INSTANCE_GROUPS_NAME, 0o644)
        for directory, _dirs, _files in os.walk(staging):
            os.chmod(directory, 0o755)
        written = tree_release_id(staging)
        if written != release_id:
            raise ReleaseError(
                f"the release written to {staging} hashes to {written}, not {release_id}: a source file "
                f"changed while it was copied; a release must be built from a stable source; rerun the play"
            )
        if not (build_root / release_id).is_dir():
            os.rename(staging, build_root / release_id)
    finally:
        if staging.exists():
            shutil.rmtree(staging)


def check_overrides(src: Path, policies: dict[str, Any], counts: dict[str, Any]) -> dict[str, int]:
    """Check per-model overrides against the repository; return the counts as ints.

    A name that is not a model of ``src`` is a typo that would silently do nothing, so it is
    refused, as are policies other than auto/keep and counts that are not positive integers.
    """
    models = set(model_names(src))
    for variable, overrides in (
        ("triton_models_instance_policy_overrides", policies),
        ("triton_models_instance_count", counts),
    ):
        unknown = sorted(set(overrides) - models)
        if unknown:
            raise ReleaseError(
                f"{variable} names models that are not in the repository: {', '.join(unknown)}; {src} holds "
                f"{', '.join(sorted(models))}; overrides apply to those names only; fix or remove the entries"
            )
    bad_policies = {m: v for m, v in policies.items() if v not in ("auto", "keep")}
    if bad_policies:
        raise ReleaseError(
            f"triton_models_instance_policy_overrides has unknown policies: {bad_policies}; a policy is auto "
            "(render instance groups for the host) or keep (serve the config as written); use one of those"
        )
    result: dict[str, int] = {}
    for model, value in counts.items():
        count = value if isinstance(value, int) and not isinstance(value, bool) else None
        if isinstance(value, str) and value.strip().isdigit():
            count = int(value)
        if count is None or count < 1:
            raise ReleaseError(
                f"triton_models_instance_count[{model}] is {value!r}; an instance count is a positive integer "
                f"(instances per GPU on GPU groups); set it to 1 or more, or remove the entry"
            )
        result[model] = count
    return result
